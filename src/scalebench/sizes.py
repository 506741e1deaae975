"""Sizes: named tiers, explicit row counts, byte quantities and memory multiples."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

TIERS: dict[str, int] = {
    "tiny": 20_000,  # CI: every engine, every stage, in seconds
    "small": 1_000_000,  # the default: the whole matrix in minutes on 2 cores
    "medium": 10_000_000,
    "paper": 30_000_000,  # the Spark/Ray paper's users table
    "large": 100_000_000,
}
DEFAULT_TIER = "small"

_ROW_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}
_BYTE_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}


def parse_rows(text: str | int, option: str = "--rows") -> int:
    """'tiny' | '10M' | '2.5e7' | '1_000' -> a positive row count."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = float(text)
    else:
        s = str(text).strip().lower().replace("_", "").replace(",", "")
        if s in TIERS:
            return TIERS[s]
        m = re.fullmatch(r"([-+]?\d+(?:\.\d*)?(?:e[-+]?\d+)?)([kmgb]?)", s)
        if not m:
            raise ValueError(f"{option}: {text!r} is neither a size tier ({', '.join(TIERS)}) "
                             "nor a row count such as 10M or 2.5e7")
        value = float(m.group(1)) * _ROW_SUFFIX[m.group(2)]
    if not math.isfinite(value) or value < 1 or value != int(value):
        raise ValueError(f"{option}: {text!r} must be a whole number of rows, at least 1")
    return int(value)


def parse_bytes(text: str | int, option: str = "--memory-budget") -> int:
    """'2GiB' | '512MB' | '1.5g' -> bytes (KiB/MiB/GiB binary, KB/MB/GB decimal, k/m/g binary)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([a-z]*)\s*", str(text).lower())
        if not m or m.group(2) not in _BYTE_UNITS:
            raise ValueError(f"{option}: {text!r} is not a size in bytes such as 2GiB or 512MB")
        value = float(m.group(1)) * _BYTE_UNITS[m.group(2)]
    if value < 1:
        raise ValueError(f"{option}: {text!r} must be more than zero bytes")
    return int(value)


def parse_multiple(text: str | float, option: str = "--memory-multiple") -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{option}: {text!r} is not a number such as 1.2") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{option}: {text!r} must be a positive number")
    return value


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def format_rows(n: int) -> str:
    for div, suffix in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if n >= div and n % (div // 10) == 0:
            return f"{n / div:g}{suffix}"
    return str(n)


LADDERS: dict[str, tuple[str, ...]] = {
    "ladder": ("1M", "3M", "10M", "20M"),
}
"""Named size ladders for --scale: where each framework pays off is found between two rungs. `ladder`
is sized for about an hour of etl, groupby and sort on every engine on a 2-core machine with the
default 5 rounds (sized from the 1M-8M ladder's times, results/ladder-2026-12-04.json; measured
alone end to end with six engines: 1:15, the stage cells' timed work 41 minutes;
results/ladder-named-2026-12-05.json, README)."""


@dataclass(frozen=True)
class Rung:
    """One size of a run: a row count (from --scale) or a multiple of the memory budget (from
    --memory-multiple, sized per dataset). `label` names it in test ids and the report."""

    label: str
    rows: int | None = None
    multiple: float | None = None
    sf: float | None = None
    """A TPC-H scale factor (--tpch-sf): the size of the tpch stage's cells."""


def parse_ladder(scale: str, multiples: str | None = None) -> list[Rung]:
    """--scale as one size, a comma-separated list (1M,3M,10M) or a named ladder; or, when given,
    --memory-multiple as one multiple or a list (0.25,0.5,1.2), which then sets the sizes. Rungs
    come out smallest first, each once. In a list, thousands are written 1_000_000, not 1,000,000."""
    if multiples is not None:
        values = sorted({parse_multiple(m.strip()) for m in str(multiples).split(",") if m.strip()})
        if not values:
            raise ValueError(f"--memory-multiple: {multiples!r} names no multiple")
        return [Rung(f"x{v:g}", multiple=v) for v in values]
    texts = [t.strip() for t in str(scale).split(",") if t.strip()]
    if len(texts) == 1 and texts[0].lower() in LADDERS:
        texts = list(LADDERS[texts[0].lower()])
    if not texts:
        raise ValueError(f"--scale: {scale!r} names no size")
    rungs: dict[int, Rung] = {}
    for text in texts:
        rows = parse_rows(text, "--scale")
        rungs.setdefault(rows, Rung(format_rows(rows), rows=rows))
    return [rungs[r] for r in sorted(rungs)]
