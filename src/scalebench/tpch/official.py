"""The official TPC-H answer set at SF1, and the specification's rules for comparing with it.

answers_sf1/qN.out are the TPC-H kit's dbgen/answers files (TPC-H 3.0.1; see answers_sf1/SOURCE.md):
one header line, then one row per line, fields separated by '|' and padded with spaces. The
rules are those of the specification's clause 2.1.3.5, one per column kind (tpch.Answer.kinds,
from the kit's check_answers/colprecision.txt):
  str, int, cnt  equal (text compared without its padding)
  num            a single value (a price, a balance): equal to the cent
  sum            within $100 (money summed over many rows)
  avg, rat       within 1 % once rounded to the cent (the answer set prints 0.03 for q8's 0.0344)
Rows are matched after sorting both sides by the query's keys (tpch.Answer.keys).
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from scalebench.tpch import ANSWERS

SUM_TOLERANCE = 100.0
RELATIVE_TOLERANCE = 0.01


class OfficialMismatch(AssertionError):
    """An answer differs from the official answer set beyond the specification's rules."""


def official_answer(question: str) -> pd.DataFrame:
    """The kit's answer to `question` as text columns named as tpch.ANSWERS says."""
    answer = ANSWERS[question]
    text = resources.files("scalebench.tpch").joinpath("answers_sf1", f"{question}.out").read_text()
    rows = [line.split("|") for line in text.splitlines()[1:] if line.strip()]
    bad = [r for r in rows if len(r) != len(answer.columns)]
    if bad:
        raise ValueError(f"answers_sf1/{question}.out: a row has {len(bad[0])} fields, expected "
                         f"{len(answer.columns)} ({', '.join(answer.columns)})")
    return pd.DataFrame([[v.strip() for v in r] for r in rows], columns=list(answer.columns))


def _text(values: pd.Series) -> pd.Series:
    """Text without padding; dates as YYYY-MM-DD whatever type an engine returned them in."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.strftime("%Y-%m-%d")
    return values.map(lambda v: v.isoformat()[:10] if hasattr(v, "isoformat") else str(v)).str.strip()


def _sorted(frame: pd.DataFrame, keys: tuple[str, ...], kinds: dict[str, str]) -> pd.DataFrame:
    numeric = {c for c in keys if kinds[c] not in ("str",)}
    order = pd.DataFrame({c: pd.to_numeric(frame[c]) if c in numeric else _text(frame[c]) for c in keys})
    return frame.iloc[np.lexsort([order[c].to_numpy() for c in reversed(keys)])].reset_index(drop=True)


def compare_official(question: str, got: pd.DataFrame) -> None:
    """Raise OfficialMismatch naming the first cell outside the rules; None when the answer passes."""
    answer = ANSWERS[question]
    expected = official_answer(question)
    missing = [c for c in answer.columns if c not in got.columns]
    if missing:
        raise OfficialMismatch(f"tpch-{question}: answer lacks column(s) {missing}; has {list(got.columns)}")
    if len(got) != len(expected):
        raise OfficialMismatch(f"tpch-{question}: {len(got)} rows, the official answer has {len(expected)}")
    kinds = dict(zip(answer.columns, answer.kinds, strict=True))
    g, e = _sorted(got[list(answer.columns)], answer.keys, kinds), _sorted(expected, answer.keys, kinds)
    for col, kind in kinds.items():
        if kind == "str":
            a, b = _text(g[col]), _text(e[col])
            bad = (a != b).to_numpy()
        else:
            a = pd.to_numeric(g[col]).to_numpy(dtype="float64")
            b = pd.to_numeric(e[col]).to_numpy(dtype="float64")
            if kind in ("int", "cnt"):
                bad = a != b
            elif kind == "num":
                bad = np.abs(a - b) >= 0.005
            elif kind == "sum":
                bad = np.abs(a - b) > SUM_TOLERANCE
            else:  # avg, rat: rounded to the cent as the answer set is, then within 1 %
                bad = np.abs(np.round(a, 2) - b) > RELATIVE_TOLERANCE * np.abs(b)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise OfficialMismatch(f"tpch-{question}: column {col!r} ({kind}) row {i} "
                                   f"({dict(e.iloc[i][list(answer.keys)])}): got {g[col].iloc[i]!r}, official "
                                   f"{e[col].iloc[i]!r} ({int(bad.sum())} cells outside the rule)")
