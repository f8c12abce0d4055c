"""CPU threads and OpenMP's wait behaviour for stage processes, chosen for a busy machine.

Measured on 2 cores (benchmarks/quickstart_contention.py --micro, docs/benchmarks.md): the
quick start took 109 s idle, 312 s with one busy-loop process beside it and ~27 min under a test
suite. torch's CPU build runs its intra-op pool on GNU OpenMP, whose threads *spin* while they
wait for each other at every parallel region's barrier (``OMP_WAIT_POLICY`` unset = spin for a
while, then sleep). On an oversubscribed CPU the spinning thread holds the core the thread it
waits for needs, so every barrier waits out a scheduler slice: 2 threads sharing one free core
ran a training step ~5x slower than 1 thread. Two settings fix that:

* ``OMP_WAIT_POLICY=PASSIVE`` (and ``GOMP_SPINCOUNT=0``, ``KMP_BLOCKTIME=0`` for Intel's
  runtime): waiting threads sleep at once. libgomp reads them when torch loads it, so they go
  into the environment of the runner's fork server and of every stage process *before* torch is
  imported there (:func:`omp_env`); values the user set win.
* torch's thread count is the task's request, capped by the CPUs this process may run on
  (``sched_getaffinity``: a cgroup cpuset or ``taskset``) and by the CPUs that are actually idle
  right now (``/proc/stat`` sampled for 0.1 s): a stage that starts beside a busy core takes the
  free one only (:func:`choose_threads`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

#: Environment for every stage process: threads that wait sleep instead of spinning.
OMP_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0", "KMP_BLOCKTIME": "0"}
#: How long the idle CPUs are sampled at a stage's start, seconds.
SAMPLE_SECONDS = 0.1
#: Opt out of the idle-CPU cap (threads = min(request, affinity)): SELFTAUGHT_ADAPTIVE_THREADS=0.
ADAPTIVE_ENV = "SELFTAUGHT_ADAPTIVE_THREADS"
#: Opt out of the passive wait policy (OpenMP's own defaults): SELFTAUGHT_OMP_PASSIVE=0.
PASSIVE_ENV = "SELFTAUGHT_OMP_PASSIVE"


def omp_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The OpenMP settings ``environ`` lacks (pure): add them before torch is imported."""
    if environ.get(PASSIVE_ENV, "1") == "0":
        return {}
    return {key: value for key, value in OMP_DEFAULTS.items() if key not in environ}


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_times(stat: Path) -> tuple[int, int]:
    """(idle, total) jiffies of all CPUs from /proc/stat's first line."""
    fields = [int(v) for v in stat.read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return idle, sum(fields[:8])


def idle_cpus(*, seconds: float = SAMPLE_SECONDS, stat: Path = Path("/proc/stat")) -> float | None:
    """How many CPUs of the machine were idle over ``seconds`` (None where /proc is missing)."""
    try:
        idle0, total0 = _cpu_times(stat)
        time.sleep(seconds)
        idle1, total1 = _cpu_times(stat)
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (idle1 - idle0) / (total1 - total0) * (os.cpu_count() or 1)


def threads_for(requested: int, *, usable: int, idle: float | None) -> int:
    """Torch threads for a stage (pure): the request, capped by usable and idle CPUs.

    Idle CPUs round half-up (1.6 idle cores run 2 threads well with a passive wait policy), and
    never below 1. None (unknown) caps by ``usable`` only.
    """
    count = min(max(1, requested), usable)
    if idle is not None:
        count = min(count, max(1, int(idle + 0.5)))
    return count


def choose_threads(requested: int, environ: Mapping[str, str] = os.environ) -> int:
    adaptive = environ.get(ADAPTIVE_ENV, "1") != "0"
    return threads_for(
        requested, usable=usable_cpus(), idle=idle_cpus() if adaptive and requested > 1 else None
    )
