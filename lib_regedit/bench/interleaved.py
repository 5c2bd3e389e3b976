"""Whole runs timed side by side: each job once to warm up, then ``runs`` rounds whose order alternates,
so drifting machine load hits every job alike; the medians are compared."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved_medians(jobs: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """The median seconds of each job over ``runs`` interleaved rounds, after one warm-up call each."""
    for job in jobs.values():  # warm-up, not counted
        job()
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for r in range(runs):
        for name in (list(jobs) if r % 2 == 0 else list(jobs)[::-1]):
            start = time.perf_counter()
            jobs[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}
