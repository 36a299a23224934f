"""Timing helpers: repeated runs after warm-up, wall and CPU time, summarised as median and spread."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed_runs(fn: Callable[[], object], repeats: int, warmup: int = 1,
               sync: Callable[[], None] = lambda: None) -> tuple[dict, object]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times; return (stats, last result)."""
    result = None
    for _ in range(warmup):
        result = fn()
        sync()
    walls, cpus = [], []
    for _ in range(repeats):
        sync()
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        sync()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"wall": summary(walls), "cpu": summary(cpus)}, result


def summary(values: list[float]) -> dict:
    """Median, min, max and relative spread ((max - min) / median) of ``values`` (seconds)."""
    median = statistics.median(values)
    return {
        "median": median, "min": min(values), "max": max(values),
        "spread": (max(values) - min(values)) / median if median else 0.0, "n": len(values),
    }
