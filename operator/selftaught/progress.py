"""Live progress of a stage: items done/total and tokens per second, from inside a worker.

A stage reports through :func:`reporter`; where the numbers go depends on the environment the
worker was started in, so stages never care who is watching:

- ``SELFTAUGHT_PROGRESS_FILE``: the embedded runner's progress bars read this small JSON file
  (rewritten atomically, so a reader never sees half a write);
- ``SELFTAUGHT_PUSHGATEWAY``: on a cluster, the numbers are pushed to a Prometheus Pushgateway
  (grouped by namespace, run, stage and shard) for the Grafana dashboard. Pushing, not scraping:
  worker pods are short-lived batch pods whose last numbers should outlive them, and a
  Pushgateway needs no per-pod Service or PodMonitor.

Updates are rate-limited (``min_interval`` seconds) so reporting costs nothing measurable.

The worker shell activates one reporter per process (:func:`activate`); engines and trainers
report to :func:`current`: items done, tokens, and the seconds spent inside model compute,
which the summary carries as ``computeSeconds`` so the pipeline's overhead can be measured.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from selftaught.pod import PUSHGATEWAY_ENV

PROGRESS_FILE_ENV = "SELFTAUGHT_PROGRESS_FILE"
PUSH_JOB = "selftaught_worker"


@dataclass
class Reporter:
    """Accumulates progress and publishes it at most every ``min_interval`` seconds."""

    stage: str
    shard: int = 0
    namespace: str = ""
    run: str = ""
    total: int = 0
    done: int = 0
    tokens: int = 0
    min_interval: float = 0.5
    file: Path | None = None
    pushgateway: str | None = None
    started: float = field(default_factory=time.monotonic)
    #: Seconds spent inside model compute (generation, training steps) in this process.
    compute_seconds: float = 0.0
    _last: float = 0.0

    def expect(self, items: int) -> None:
        """More work arrived (an engine call): the total grows, the bar keeps its progress."""
        self.total += items
        self.publish(force=True)

    def start(self, total: int) -> None:
        self.total, self.done, self.tokens = total, 0, 0
        self.started = time.monotonic()
        self.publish(force=True)

    def advance(self, items: int = 1, *, tokens: int = 0) -> None:
        self.done += items
        self.tokens += tokens
        self.publish()

    def finish(self) -> None:
        self.done = max(self.done, self.total)
        self.publish(force=True)

    @property
    def tokens_per_second(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.tokens / elapsed if elapsed > 0 else 0.0

    def snapshot(self) -> dict[str, float | int | str]:
        return {
            "stage": self.stage,
            "shard": self.shard,
            "done": self.done,
            "total": self.total,
            "tokensPerSecond": round(self.tokens_per_second, 1),
            "elapsed": round(time.monotonic() - self.started, 3),
        }

    def publish(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        if self.file is not None:
            _write_atomically(self.file, json.dumps(self.snapshot()))
        if self.pushgateway:
            self._push()

    def close(self) -> None:
        """The stage is over: remove this shard's group from the Pushgateway.

        Worker gauges describe live progress only; once a stage ends, the operator's own
        metrics (stage durations, Jobs, accuracy) tell its story, and a deleted run must not
        leave progress bars behind on the dashboard.
        """
        if not self.pushgateway:
            return
        try:
            from prometheus_client import delete_from_gateway
        except ImportError:
            return
        with contextlib.suppress(OSError):  # best effort, as every push
            delete_from_gateway(
                str(self.pushgateway), job=PUSH_JOB, grouping_key=self._grouping(), timeout=2
            )

    def _grouping(self) -> dict[str, str]:
        return {
            "namespace": self.namespace,
            "run": self.run,
            "stage": self.stage,
            "shard": str(self.shard),
        }

    def _push(self) -> None:
        try:
            from prometheus_client import CollectorRegistry, Gauge, push_to_gateway
        except ImportError:  # the worker extra ships it; a bare install just does not push
            return
        registry = CollectorRegistry()
        values = {
            "selftaught_worker_items_done": ("Items finished by this shard.", self.done),
            "selftaught_worker_items_total": ("Items this shard has to do.", self.total),
            "selftaught_worker_tokens_per_second": (
                "Generated tokens per second.",
                self.tokens_per_second,
            ),
        }
        for name, (help_text, value) in values.items():
            Gauge(name, help_text, registry=registry).set(value)
        try:
            push_to_gateway(
                str(self.pushgateway),
                job=PUSH_JOB,
                registry=registry,
                grouping_key=self._grouping(),
                timeout=2,
            )
        except OSError:
            # Progress is best effort: an unreachable gateway must never fail a stage.
            self.pushgateway = None


class _ComputeTimer:
    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.reporter.compute_seconds += time.monotonic() - self.started


def compute(reporter: Reporter | None = None) -> _ComputeTimer:
    """``with progress.compute():`` around model work counts its time as compute."""
    return _ComputeTimer(reporter or current())


_current: Reporter | None = None


def activate(active: Reporter) -> Reporter:
    """Make ``active`` the process's current reporter (the worker shell, once per stage)."""
    global _current
    _current = active
    return active


def current() -> Reporter:
    """The process's reporter; a silent one when no worker activated any (tests, notebooks)."""
    global _current
    if _current is None:
        _current = Reporter(stage="")
    return _current


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".progress-")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(temporary, path)


def reporter(
    stage: str,
    shard: int = 0,
    *,
    namespace: str = "",
    run: str = "",
    environ: Mapping[str, str] | None = None,
) -> Reporter:
    """A reporter wired to whatever this worker's environment asks for."""
    environ = os.environ if environ is None else environ
    target = environ.get(PROGRESS_FILE_ENV)
    return Reporter(
        stage=stage,
        shard=shard,
        namespace=namespace,
        run=run,
        file=Path(target) if target else None,
        pushgateway=environ.get(PUSHGATEWAY_ENV) or None,
    )


def read(path: Path) -> dict[str, float | int | str] | None:
    """What a reporter last wrote, or None before its first write."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
