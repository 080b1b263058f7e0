"""How many torch threads a run uses, chosen so that a shared or busy machine does not collapse.

torch starts as many OpenMP threads as there are cores. When some of those cores are busy
(another job, or this run's own env worker processes), OpenMP threads that spin-wait for a
busy core slow every parallel region down by an order of magnitude: one NatureCNN
forward + backward took 28 ms with one thread and 361 ms with two on a 2-core machine
whose other core was busy. The default here is therefore the number of cores that were
idle when the run started, and one thread while env worker processes collect a rollout
(:class:`relic_rl.callbacks.TorchThreads`).
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
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def busy_cpus(interval: float = 0.2) -> int:
    """Cores kept busy by other processes right now, rounded.

    Measured from ``/proc/stat`` over ``interval`` seconds (the load average lags by a
    minute: right after another run ends it still counts that run); where there is no
    ``/proc/stat``, the 1-minute load average; else 0.
    """
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


def default_threads() -> int:
    """Torch threads for the update: ``OMP_NUM_THREADS`` when it is set (a cap chosen by the
    user or by ``relic_rl.ablate`` for each of its runs), else the cores of this process that
    are not busy (>= 1)."""
    capped = os.environ.get("OMP_NUM_THREADS", "").strip()
    if capped.isdigit() and int(capped) >= 1:
        return int(capped)
    return max(1, min(available_cpus(), (os.cpu_count() or 1) - busy_cpus()))


def rollout_threads(update_threads: int, vec_env: str) -> int:
    """Torch threads while a rollout is collected: 1 when env worker processes
    (``vec_env="subproc"``) need the cores, else ``update_threads``."""
    return 1 if vec_env == "subproc" else update_threads


def describe_threads(update_threads: int, vec_env: str, chosen: bool) -> str:
    """The start summary's line: ``"2 (update), 1 while collecting (subproc env workers)"``."""
    capped = os.environ.get("OMP_NUM_THREADS", "").strip()
    source = (
        f"OMP_NUM_THREADS={capped}"
        if capped.isdigit() and int(capped) >= 1
        else f"the idle ones of {available_cpus()} cores"
    )
    how = "" if chosen else f" (auto: {source}; --threads N)"
    rollout = rollout_threads(update_threads, vec_env)
    if rollout == update_threads:
        return f"{update_threads}{how}"
    return f"{update_threads} for updates, {rollout} while env workers collect a rollout{how}"
