"""What a run was measured on: the lock, the exact versions, Java and the machine.

Saved into every pytest-benchmark JSON (machine_info["scalebench"]) so that a number always
names the versions behind it, and `scalebench compare` can say when base and head differ in
more than our code.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path

LOCK_NAME = "requirements/lock.txt"
ENV_LOCK = "SCALEBENCH_LOCK"
PACKAGES = ("scalebench", "numpy", "pandas", "pyarrow", "duckdb", "dask", "distributed", "ray", "polars", "pyspark",
            "py4j", "scikit-learn", "memray", "pytest", "pytest-benchmark", "pytest-timeout")
"""The frameworks and the tools that shape a number; each recorded with its installed version."""


def find_lock() -> Path | None:
    """$SCALEBENCH_LOCK, else requirements/lock.txt of the checkout this package runs from (editable
    install) or of the working directory (asv and tox run from a checkout)."""
    if os.environ.get(ENV_LOCK):
        return Path(os.environ[ENV_LOCK])
    for root in (Path(__file__).resolve().parents[2], Path.cwd(), *Path.cwd().parents):
        if (root / LOCK_NAME).is_file():
            return root / LOCK_NAME
    return None


def lock_pins(path: Path) -> dict[str, str]:
    """name -> pinned version for the lines of the lock that apply to this interpreter."""
    from packaging.markers import Marker

    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        found = re.match(r"([A-Za-z0-9_.\-]+)==([^\s;]+)\s*(?:;(.*))?$", line)
        if found and (not found.group(3) or Marker(found.group(3).strip()).evaluate()):
            pins[canonical_name(found.group(1))] = found.group(2)
    return pins


def canonical_name(name: str) -> str:
    """PEP 503: the form a lock line and an installed distribution are matched in."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_versions(names: tuple[str, ...] | list[str] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def lock_record() -> dict:
    """The lock's path and SHA-256, and every locked package installed at another version."""
    path = find_lock()
    if path is None or not path.is_file():
        return {"lock": None, "lock_sha256": None, "off_lock": {}}
    pins = lock_pins(path)
    off = {}
    for dist in metadata.distributions():
        name = canonical_name(dist.metadata["Name"] or "")
        if name in pins and dist.version != pins[name]:
            off[name] = {"installed": dist.version, "locked": pins[name]}
    return {"lock": str(path), "lock_sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "off_lock": off}


def java_version() -> str | None:
    """`java -version`'s first line for the Java Spark would use (JAVA_HOME, else PATH); None if none."""
    from scalebench.engines.base import EngineUnavailable
    from scalebench.java import find_java

    try:
        return find_java().banner
    except EngineUnavailable:
        return None


TOPOLOGY_ENV = "SCALEBENCH_TOPOLOGY"
"""Set by a launcher that spreads the clusters over hosts (fixtures.multihost), e.g. '3 hosts (network
namespaces of one machine), links 1gbit'; unset, the run's clusters are on this machine's loopback
or wherever --dask-scheduler / --ray-address / --spark-master point."""


def machine() -> dict:
    import psutil

    return {"cores": os.cpu_count(), "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(), "memory_bytes": psutil.virtual_memory().total, "platform": platform.platform(),
            "topology": os.environ.get(TOPOLOGY_ENV) or "one host"}


def record() -> dict:
    """Everything above, in one JSON-ready dict."""
    return {"python": sys.version.split()[0], "java": java_version(), "versions": installed_versions(),
            **lock_record(), "machine": machine()}


def differences(base: dict | None, head: dict | None) -> list[str]:
    """One line per difference between two records that could move a number: the lock, a
    package's version, Python, Java, the machine's cores, memory and topology. Empty when all are equal."""
    if not base or not head:
        missing = " and ".join(w for w, r in (("base", base), ("head", head)) if not r)
        return [f"{missing} recorded no versions (saved before scalebench recorded them): cannot tell "
                "whether a framework changed"]
    lines = []
    if base.get("lock_sha256") != head.get("lock_sha256"):
        lines.append(f"lock: {_short(base.get('lock_sha256'))} -> {_short(head.get('lock_sha256'))}")
    names = list(dict.fromkeys([*base.get("versions", {}), *head.get("versions", {})]))
    for name in names:
        old, new = base.get("versions", {}).get(name), head.get("versions", {}).get(name)
        if old != new:
            lines.append(f"{name}: {old or 'not installed'} -> {new or 'not installed'}")
    for key in ("python", "java"):
        if base.get(key) != head.get(key):
            lines.append(f"{key}: {base.get(key)} -> {head.get(key)}")
    bm, hm = base.get("machine", {}), head.get("machine", {})
    bm, hm = {"topology": "one host", **bm}, {"topology": "one host", **hm}  # saved before it was recorded
    for key in ("cores_usable", "memory_bytes", "topology"):
        if bm.get(key) != hm.get(key):
            lines.append(f"machine {key}: {bm.get(key)} -> {hm.get(key)}")
    for which, rec in (("base", base), ("head", head)):
        if rec.get("off_lock"):
            lines.append(f"{which} ran off the lock: " + ", ".join(
                f"{n} {v['installed']} (locked {v['locked']})" for n, v in sorted(rec["off_lock"].items())))
    return lines


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "none"
