"""What a query costs in cores and memory, not just in seconds.

From the tree sampler's windows (one per timed round): the CPU seconds the whole process tree
spent, how much of the cores given to the cluster that was, the memory-time product, and a price
per query from a price per core-hour and per GiB-hour. The price is for what the query used
(CPU seconds and GiB-seconds, as a serverless bill would count them), not for the machine it held.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scalebench.measure.memory import Window

DEFAULT_PRICE_PER_CORE_HOUR = 0.031611
DEFAULT_PRICE_PER_GIB_HOUR = 0.004237
PRICE_SOURCE = ("Google Compute Engine N2 on-demand, us-central1: $0.031611 per vCPU-hour and $0.004237 per "
                "GiB-hour (an n2-standard-2, 2 vCPUs and 8 GiB, is $0.0971 an hour)")


@dataclass(frozen=True)
class Prices:
    per_core_hour: float = DEFAULT_PRICE_PER_CORE_HOUR
    per_gib_hour: float = DEFAULT_PRICE_PER_GIB_HOUR

    def __post_init__(self) -> None:
        for name, value in (("--price-per-core-hour", self.per_core_hour), ("--price-per-gib-hour", self.per_gib_hour)):
            if not value >= 0:
                raise ValueError(f"{name} must be a price of 0 or more, got {value!r}")

    def cost(self, cpu_s: float, gib_s: float) -> float:
        """Dollars for `cpu_s` core-seconds and `gib_s` GiB-seconds."""
        return cpu_s / 3600 * self.per_core_hour + gib_s / 3600 * self.per_gib_hour


def cost_figures(windows: Sequence[Window], cores: int, prices: Prices) -> dict[str, object]:
    """extra_info's CPU and cost figures for the timed windows (medians over them, and each)."""
    if not windows:
        return {}
    cpu = [w.cpu_s for w in windows]
    gib_s = [w.gib_s for w in windows]
    use = [w.cpu_s / (w.wall_s * cores) for w in windows if w.wall_s > 0 and cores > 0]
    cpu_med, gib_med = statistics.median(cpu), statistics.median(gib_s)
    return {
        "tree_cpu_s": cpu_med, "tree_cpu_s_rounds": cpu, "cores": cores,
        "cpu_utilisation": statistics.median(use) if use else None,
        "gib_s": gib_med, "gib_s_rounds": gib_s,
        "cost_per_query_usd": prices.cost(cpu_med, gib_med),
        "price_per_core_hour": prices.per_core_hour, "price_per_gib_hour": prices.per_gib_hour,
    }
