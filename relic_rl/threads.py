"""How many torch threads a run uses, so that a shared or busy machine does not collapse.

OpenMP threads spin-waiting for a busy core slow every parallel region by an order of magnitude
(NatureCNN step: 28 ms with one thread, 361 ms with two on a 2-core machine with one core busy), so
the default is the cores idle at start, and one thread while env workers collect a rollout.
"""

from __future__ import annotations

import os
import time


def available_cpus() -> int:
    """CPU cores this process may use (its affinity mask, where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all cores from ``/proc/stat``, or None where it is missing."""
    try:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 4:
        return None
    idle = sum(fields[3:5])  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def busy_cpus(interval: float = 0.2) -> int:
    """Cores busy right now, from ``/proc/stat`` over ``interval`` seconds (the load average lags a
    minute), else the 1-minute load average, else 0."""
    before = _cpu_times()
    if before is not None:
        time.sleep(interval)
        after = _cpu_times()
        if after is not None and after[1] > before[1]:
            share = (after[0] - before[0]) / (after[1] - before[1])
            return max(0, round(share * (os.cpu_count() or 1)))
    try:
        return max(0, round(os.getloadavg()[0]))
    except (AttributeError, OSError):
        return 0


def _omp_cap() -> int | None:
    capped = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(capped) if capped.isdigit() and int(capped) >= 1 else None


def default_threads() -> int:
    """Torch threads for the update: ``OMP_NUM_THREADS`` when set, else this process's idle cores (>= 1)."""
    return _omp_cap() or max(1, min(available_cpus(), (os.cpu_count() or 1) - busy_cpus()))


def rollout_threads(update_threads: int, vec_env: str) -> int:
    """Torch threads while a rollout is collected: 1 with ``vec_env="subproc"``, else ``update_threads``."""
    return 1 if vec_env == "subproc" else update_threads


def describe_threads(update_threads: int, vec_env: str, chosen: bool) -> str:
    """The start summary's line: ``"2 (update), 1 while collecting (subproc env workers)"``."""
    if _omp_cap():
        source = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS'].strip()}"
    else:
        source = f"the idle ones of {available_cpus()} cores"
    how = "" if chosen else f" (auto: {source}; --threads N)"
    rollout = rollout_threads(update_threads, vec_env)
    if rollout == update_threads:
        return f"{update_threads}{how}"
    return f"{update_threads} for updates, {rollout} while env workers collect a rollout{how}"
