"""A reconcile queue with controller-runtime semantics, on asyncio.

Why not one kopf handler per trigger? A run is touched by many things -- its own spec, each of its
Jobs and pods, the planner's ``requeue_after`` -- and every one of them must end in the same
reconcile, never two at once for one run (two concurrent planners would both see "no Job" and
both emit "StageStarted"). So kopf's handlers only *enqueue* the run's key, and this queue
guarantees, for each key:

* at most one reconcile in flight; triggers that arrive meanwhile collapse into one rerun;
* a delayed requeue (``add(key, after=s)``) that an earlier trigger supersedes;
* a bounded number of workers overall, and a clean stop that waits for in-flight reconciles;
* **triggers before routine**: a key added by a trigger (a watch event, a conflict) is taken
  before any key whose delayed requeue came due (resyncs, retries). With 1,000 runs, a resync
  per run per minute is a steady stream of reconciles; when the API server answers slowly they
  queue up, and a stage hand-off that waited behind them took as long as the queue (tens of
  seconds, measured with ``benchmarks/operator_scale.py``). Routine work is the safety net; a
  trigger is someone waiting. A routine key that gets a trigger moves to the front part.

Each reconcile is told whether it must read *fresh* from the API server rather than from the
watch caches: a retry after a failed reconcile does (whatever failed may have been a stale
copy); triggers and planned requeues do not.

No kopf daemon or timer is used because both make kopf put a finalizer on every run, which
would make deleting a run depend on the operator being up.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from selftaught.controller.kube import ApiError

Key = tuple[str, str]
#: Called with the key, ``fresh`` and ``routine`` (no trigger asked for it: a due requeue);
#: returns seconds until the key should be reconciled again (None: only on the next trigger).
ReconcileFn = Callable[[Key, bool, bool], Awaitable[float | None]]

log = logging.getLogger(__name__)


class WorkQueue:
    """Deduplicating, delaying work queue; ``start()`` spawns workers, ``stop()`` ends them."""

    def __init__(
        self,
        reconcile: ReconcileFn,
        *,
        workers: int = 4,
        error_backoff: tuple[float, ...] = (0.5, 1, 2, 5, 10, 30, 60),
    ) -> None:
        self._reconcile = reconcile
        self._workers = workers
        self._error_backoff = error_backoff
        #: Keys ready to run: triggered ones first, then routine ones (due requeues).
        self._urgent: deque[Key] = deque()
        self._routine: deque[Key] = deque()
        #: One permit per key in the two deques: workers wait on it.
        self._items = asyncio.Semaphore(0)
        self._queued: set[Key] = set()
        self._active: set[Key] = set()
        #: Keys added while their reconcile ran -> whether that rerun is routine.
        self._again: dict[Key, bool] = {}
        self._fresh: set[Key] = set()
        self._delayed: list[tuple[float, int, Key, bool]] = []
        self._due: dict[Key, float] = {}
        self._errors: dict[Key, int] = {}
        self._counter = 0
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------------------ api

    def add(
        self, key: Key, *, after: float | None = None, fresh: bool = False, routine: bool = False
    ) -> None:
        """Reconcile ``key`` now (or in ``after`` seconds, unless something sooner comes).

        ``fresh``: that reconcile reads the API server, not the caches. ``routine``: it waits
        behind every triggered key (the timer's requeues; see the module docstring).
        """
        if after is not None and after > 0:
            due = time.monotonic() + after
            if self._due.get(key, float("inf")) <= due:
                return
            self._due[key] = due
            self._counter += 1
            heapq.heappush(self._delayed, (due, self._counter, key, fresh))
            self._wakeup.set()
            return
        self._due.pop(key, None)
        if fresh:
            self._fresh.add(key)
        if key in self._active:
            self._again[key] = self._again.get(key, True) and routine
        elif key not in self._queued:
            self._queued.add(key)
            (self._routine if routine else self._urgent).append(key)
            self._items.release()
        elif not routine and key in self._routine:  # promoted: someone is waiting on it now
            self._routine.remove(key)
            self._urgent.append(key)

    def forget(self, key: Key) -> None:
        """Drop pending delayed work and error history of a deleted key."""
        self._due.pop(key, None)
        self._errors.pop(key, None)
        self._fresh.discard(key)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"selftaught-reconcile-{i}")
            for i in range(self._workers)
        ]
        self._tasks.append(asyncio.create_task(self._timer(), name="selftaught-requeue-timer"))

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work; give in-flight reconciles ``timeout`` seconds, then cancel."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
        self._tasks = []

    @property
    def depth(self) -> int:
        return len(self._urgent) + len(self._routine) + len(self._delayed)

    # ------------------------------------------------------------------------- internals

    async def _worker(self) -> None:
        while True:
            await self._items.acquire()
            routine = not self._urgent
            key = self._routine.popleft() if routine else self._urgent.popleft()
            self._queued.discard(key)
            self._active.add(key)
            fresh = key in self._fresh
            self._fresh.discard(key)
            try:
                after = await self._reconcile(key, fresh, routine)
                self._errors.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures = self._errors.get(key, 0)
                self._errors[key] = failures + 1
                after = self._error_backoff[min(failures, len(self._error_backoff) - 1)]
                # One line per failure; a traceback only the first time, and never for an
                # answer of the API server (its status and message are the whole story).
                log.warning(
                    "reconcile of %s/%s failed (%s: %s); retrying in %.1fs",
                    *key, type(error).__name__, error, after,
                    exc_info=failures == 0 and not isinstance(error, ApiError),
                )  # fmt: skip
                self._fresh.add(key)  # kept until the retry runs, whoever triggers it
            finally:
                self._active.discard(key)
            if key in self._again:
                self.add(key, routine=self._again.pop(key))
            elif after is not None:
                self.add(key, after=after)

    async def _timer(self) -> None:
        while True:
            now = time.monotonic()
            while self._delayed and self._delayed[0][0] <= now:
                due, _, key, fresh = heapq.heappop(self._delayed)
                if self._due.get(key) == due:
                    del self._due[key]
                    self.add(key, fresh=fresh, routine=True)
            timeout = self._delayed[0][0] - now if self._delayed else 3600.0
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=max(0.0, timeout))
