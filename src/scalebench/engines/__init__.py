"""Engine registry. Each framework lives in its own module, imported on demand."""

from __future__ import annotations

import importlib

from scalebench.engines.base import ClusterSpec, Engine, EngineUnavailable, StageInput

ENGINE_NAMES: tuple[str, ...] = ("pandas", "duckdb", "polars", "dask", "ray", "spark")
REFERENCE_ENGINE = "duckdb"

__all__ = ["ENGINE_NAMES", "REFERENCE_ENGINE", "ClusterSpec", "Engine", "EngineUnavailable",
           "StageInput", "engine_class", "parse_engines"]


def engine_class(name: str) -> type[Engine]:
    """The engine class for `name`; EngineUnavailable when its framework is missing."""
    if name not in ENGINE_NAMES:
        raise ValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINE_NAMES)}")
    try:
        module = importlib.import_module(f"scalebench.engines.{name}")
    except ImportError as exc:  # the framework itself is not installed
        raise EngineUnavailable(f"engine {name!r} needs a package that is not installed: {exc}") from exc
    return module.ENGINE


def parse_engines(text: str | None) -> list[str]:
    """'spark,dask' -> ['spark', 'dask']; None or 'all' -> every engine."""
    if text is None or text.strip() in ("", "all"):
        return list(ENGINE_NAMES)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ENGINE_NAMES]
    if unknown:
        raise ValueError(f"--engines: unknown engine(s) {', '.join(unknown)}; choose from {', '.join(ENGINE_NAMES)}")
    return names
