"""One home for the one-line error wrapper that every engine puts around its query methods.

A framework's failure arrives as pages of stack (a JVM trace, a worker traceback). The user
needs one line naming the engine, the query and the input file; the full chain stays as the
exception's cause.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar

from scalebench.engines.base import StageInput

_Q = TypeVar("_Q", bound=Callable[..., Any])
Translate = Callable[[Any, str, StageInput, BaseException], "BaseException | None"]


def one_line(exc: BaseException, noise: re.Pattern[str] | None = None, limit: int = 8) -> str:
    """The message of `exc` as one line: its distinct non-empty lines joined by ' | ', without the
    lines `noise` matches (stack frames), at most `limit` of them."""
    lines: list[str] = []
    for line in str(exc).splitlines():
        text = line.strip().removeprefix(": ")
        if text and not (noise is not None and noise.match(text)) and text not in lines:
            lines.append(text)
    return " | ".join(lines[:limit]) or type(exc).__name__


def query_errors(translate: Translate) -> Callable[[_Q], _Q]:
    """Decorate a query method `(self, inp, ...)`: when it raises, `translate(engine, method name,
    input, exception)` returns the one-line error to raise instead (the original becomes its
    cause), or None to let the original through."""

    def decorate(method: _Q) -> _Q:
        @functools.wraps(method)
        def run(self: Any, inp: StageInput, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, inp, *args, **kwargs)
            except Exception as exc:
                clear = translate(self, method.__name__, inp, exc)
                if clear is None or clear is exc:
                    raise
                raise clear from exc

        return run  # type: ignore[return-value]

    return decorate
