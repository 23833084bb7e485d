"""The timing protocol shared by the benchmarks.

A measurement is three calls of the same function, including the first one
(which pays for importing, allocating and first touching memory, as a user
meets it); the median is the headline number and the best is shown beside
it. Every ratio compares two measurements taken in the same run, and every
report states the machine's load average, since the machine may be shared.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Timing:
    """Wall times in seconds of repeated calls of one function."""

    times: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.times)

    def __str__(self) -> str:
        return f"{self.median:8.3f} s (best {self.best:7.3f} s)"


def measure(fn: Callable[[], Any], repeats: int = 3) -> tuple[Timing, Any]:
    """Time ``repeats`` calls of ``fn`` (the first included).

    Returns the timing and the last call's result. The previous result is
    dropped before each call so that its memory can be reused.
    """
    times, result = [], None
    for _ in range(repeats):
        result = None
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return Timing(times), result


def ratio(reference: Timing, ours: Timing) -> str:
    """Speed-up of ``ours`` over ``reference``: median (best-of)."""
    return (
        f"{reference.median / ours.median:6.2f}x "
        f"(best-of {reference.best / ours.best:5.2f}x)"
    )


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, with the number of usable CPUs."""
    one, five, fifteen = os.getloadavg()
    cpus = len(os.sched_getaffinity(0))
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {cpus} CPUs"
