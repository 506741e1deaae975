"""The report's network section: the same cells with the clusters on one host and spread over hosts.

Runs made through fixtures.multihost record their topology ('3 hosts (network namespaces of one
machine), links 1gbit'); runs without one ran on one host. Where the report holds the same cell
(engine, query, input, rows, workers) under more than one topology, it shows each one's median,
its slowdown against one host, and, for a limited link, the network's share of the time: the part
of the time at that bandwidth that the same hosts with unlimited links did not need,
(t_link - t_unlimited) / t_link.
"""

from __future__ import annotations

import re

import pandas as pd

from scalebench.report.advise_words import name
from scalebench.report.section import Section, count, engine_order, frame, natural, seconds

ONE_HOST = "one host"
KEYS = ["engine", "query", "format", "rows", "workers"]


def topology_of(df: pd.DataFrame, records: dict) -> pd.Series:
    """Each row's topology, from its run's machine record (`records`: run -> provenance; older runs
    recorded none: one host)."""
    return df["run"].map(lambda run: ((records.get(run) or {}).get("machine") or {}).get("topology") or ONE_HOST)


def _parts(topology: str) -> tuple[str, str] | None:
    """(hosts, link) of a multihost topology ('3 hosts (...), links 1gbit'), else None."""
    m = re.match(r"(\d+) hosts.*links (\S+)", topology)
    return (m.group(1), m.group(2)) if m else None


def short(topology: str) -> str:
    """'3 hosts, 1gbit' for a multihost topology; anything else as recorded."""
    parts = _parts(topology)
    return f"{parts[0]} hosts, {parts[1]}" if parts else topology


def _link(topology: str) -> str | None:
    parts = _parts(topology)
    return parts[1] if parts else None


def network_table(done: pd.DataFrame, records: dict) -> pd.DataFrame:
    """One row per cell measured under two topologies or more: the median per topology, the
    slowdown of each against one host, and each limited link's share of the time."""
    if done.empty:
        return pd.DataFrame()
    cells = done.assign(topology=topology_of(done, records))
    if cells["topology"].nunique() < 2:
        return pd.DataFrame()
    wide = cells.pivot_table(index=KEYS, columns="topology", values="median_s", aggfunc="median")
    wide = wide[wide.notna().sum(axis=1) >= 2]
    if wide.empty:
        return pd.DataFrame()
    topologies = sorted(wide.columns, key=lambda t: (t != ONE_HOST, _link(t) not in (None, "unlimited"), t))
    out = wide[topologies].copy()
    for t in topologies:
        if t != ONE_HOST and ONE_HOST in out:
            out[f"slowdown {short(t)}"] = out[t] / out[ONE_HOST]
        link = _link(t)
        if link not in (None, "unlimited"):
            unlimited = next((u for u in topologies if _parts(u) == (_parts(t)[0], "unlimited")), None)
            if unlimited is not None:
                out[f"network share at {link}"] = (out[t] - out[unlimited]) / out[t]
    out = out.reset_index()
    out = out.assign(order=out["engine"].map(engine_order), q=out["query"].map(natural))
    return out.sort_values(["order", "q", "rows"]).drop(columns=["order", "q"])


def sections(done: pd.DataFrame, records: dict) -> list[Section]:
    table = network_table(done, records)
    if table.empty:
        return []
    times = [c for c in table.columns if c not in KEYS and not c.startswith(("slowdown", "network share"))]
    derived = [c for c in table.columns if c.startswith(("slowdown", "network share"))]
    body = []
    for r in table.to_dict("records"):
        body.append([name(r["engine"]), r["query"], r["format"], count(r["rows"]), count(r["workers"]),
                     *[seconds(r[t]) for t in times],
                     *["-" if pd.isna(r[c]) else (f"{r[c]:.0%}" if c.startswith("network") else f"{r[c]:.2f}x")
                       for c in derived]])
    head = ["engine", "query", "input", "rows", "workers", *[short(t) for t in times], *derived]
    return [Section("Network: one host against hosts", frame(head, body),
                    "The same cells with the cluster on one host (loopback) and spread over test hosts "
                    "(fixtures.multihost: network namespaces of this machine, the driver and the scheduler, head "
                    "or master on one, a worker on each other). Slowdown: time over one host's. Network share at "
                    "a link: (time at that link - time with unlimited links) / time at that link, the part of "
                    "the time spent waiting for bandwidth.")]
