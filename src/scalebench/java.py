"""The Java that Spark's driver JVM would run on: found and checked without importing PySpark, so
the Spark engine and the provenance record share one lookup.

Checked before launching the JVM because PySpark's own failure is a bare
"Java gateway process exited before sending its port number".
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from scalebench.engines.base import EngineUnavailable

MIN_JAVA = 17
"""Spark 4 runs on Java 17 or newer."""


@dataclass(frozen=True)
class Java:
    """One Java installation as `java -version` describes it."""

    binary: str
    version: str
    """The quoted version, e.g. '17.0.9' (or '1.8.0_392')."""
    major: int
    """17 for '17.0.9', 8 for '1.8.0_392'."""
    banner: str
    """The first line of `java -version`, e.g. 'openjdk version "17.0.9" 2023-10-17'."""


_found: dict[str, Java] = {}


def java_binary() -> str:
    """The java that Spark would launch: $JAVA_HOME/bin/java, else `java` on PATH;
    EngineUnavailable saying how to get one when there is none."""
    home = os.environ.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if not os.access(java, os.X_OK):
            raise EngineUnavailable(f"spark: JAVA_HOME={home} but {java} is not an executable; "
                                    f"point JAVA_HOME at a JDK {MIN_JAVA}+ or unset it")
        return str(java)
    found = shutil.which("java")
    if found is None:
        raise EngineUnavailable(f"spark: Java {MIN_JAVA}+ not found (no `java` on PATH, JAVA_HOME not set); "
                                f"install one (e.g. openjdk-{MIN_JAVA}-jre-headless) or set JAVA_HOME to it")
    return found


def find_java() -> Java:
    """The Java Spark would use, any version (run once per binary and remembered);
    EngineUnavailable when there is none or `java -version` fails."""
    binary = java_binary()
    if binary in _found:
        return _found[binary]
    try:
        proc = subprocess.run([binary, "-version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineUnavailable(f"spark: cannot run {binary} -version: {exc}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?[^"]*"', proc.stderr + proc.stdout)
    if proc.returncode != 0 or match is None:
        raise EngineUnavailable(f"spark: {binary} -version failed: {(proc.stderr or proc.stdout).strip()[:300]}")
    major = int(match.group(1))
    if major == 1:  # "1.8.0_392" style
        major = int(match.group(2) or 0)
    banner = (proc.stderr or proc.stdout).strip().splitlines()[0].strip()
    _found[binary] = Java(binary, match.group(0).split('"')[1], major, banner)
    return _found[binary]


def java_version() -> str:
    """The Java version string Spark runs on ('17.0.9'); EngineUnavailable when no usable
    Java 17+ is found."""
    java = find_java()
    if java.major < MIN_JAVA:
        import pyspark  # only for the message: this module is used without PySpark too

        raise EngineUnavailable(f"spark {pyspark.__version__} needs Java {MIN_JAVA}+, but {java.binary} is "
                                f"Java {java.major}; set JAVA_HOME to a newer JDK")
    return java.version
