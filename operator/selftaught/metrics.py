"""Prometheus metrics of the operator: what runs are doing, what Jobs cost, how reconciles go.

The metric names are a contract with the Helm chart's dashboards and alerts; do not rename.

Cardinality is bounded on purpose: labels are namespaces, run names, stages, phases, failure
reasons and evaluation-set names (at most 32 per run, from the spec). Job and pod names never
become labels. Iteration numbers are a label of the two ``selftaught_iteration_*`` families only
(accuracy and GPU-seconds by iteration, for the dashboard's per-iteration panels): one value per
record of the run's history, so at most ``spec.iterations + 1`` values per run (0..iterations;
the CRD caps ``iterations`` at 100), times eval sets or stages. Everywhere else the iteration is a
gauge's *value*. A run's series are removed when the run is deleted
(:meth:`Metrics.forget_run`), and an iteration's when ``resumeFrom`` rewinds past it, so a
cluster that creates many runs does not leak series.

Everything per run is derived from the run's *status* (:meth:`Metrics.observe_run`), which is
the operator's memory, so a restarted operator shows the same values as the one before it.
Counters and the stage-duration histogram are fed from the difference between the status before
and after a reconcile (:meth:`Metrics.observe_transition`), so nothing is counted twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from selftaught.api import RunSpec, RunStatus, SelfTaughtRun
from selftaught.conditions import parse_time
from selftaught.phases import FailureClass, Phase, Reason, Stage

#: Stage durations span a smoke test (seconds) to a 70B training stage (days).
STAGE_BUCKETS = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400, 172800)
#: A reconcile is a plan plus a few API calls: milliseconds, seconds when the API is slow.
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

RunKey = tuple[str, str]

#: Every ``reason`` of ``selftaught_jobs_failed_total``: a failed attempt's class, or why a stuck
#: attempt was given up (controller.reconcile.consumed_failure).
FAILURE_REASONS: tuple[str, ...] = (
    *(failure.value for failure in FailureClass),
    Reason.UNSCHEDULABLE.value,
    Reason.IMAGE_PULL.value,
    Reason.NOT_ADMITTED.value,
)


@dataclass
class _RunSeries:
    """The label values one run has set, so that all of its series can be removed."""

    seed_model: str | None = None
    eval_sets: set[str] = field(default_factory=set)
    gpu_stages: set[str] = field(default_factory=set)
    phase: str | None = None
    #: (iteration, eval set) of ``selftaught_iteration_accuracy``.
    iteration_scores: set[tuple[str, str]] = field(default_factory=set)
    #: (iteration, stage) of ``selftaught_iteration_gpu_seconds``.
    iteration_gpu: set[tuple[str, str]] = field(default_factory=set)


class Metrics:
    """The operator's collectors on their own registry (one per operator, one per test)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        reg = self.registry
        run = ["namespace", "run"]
        self.run_info = Gauge(
            "selftaught_run_info", "A SelfTaughtRun exists (always 1).", [*run, "seed_model"],
            registry=reg,
        )  # fmt: skip
        self.run_phase = Gauge(
            "selftaught_run_phase", "1 for the run's current phase, 0 for the others.",
            [*run, "phase"], registry=reg,
        )  # fmt: skip
        self.run_stage = Gauge(
            "selftaught_run_stage", "1 for the run's current stage, 0 for the others.",
            [*run, "stage"], registry=reg,
        )  # fmt: skip
        self.run_iteration = Gauge(
            "selftaught_run_iteration", "Current iteration (0 = the seed's baseline).", run,
            registry=reg,
        )  # fmt: skip
        self.run_iterations_planned = Gauge(
            "selftaught_run_iterations_planned", "Iterations the spec asks for.", run,
            registry=reg,
        )  # fmt: skip
        self.stage_started = Gauge(
            "selftaught_run_stage_started_timestamp_seconds",
            "Unix time the current stage started (0 before the first stage).", run, registry=reg,
        )  # fmt: skip
        self.last_progress = Gauge(
            "selftaught_run_last_progress_timestamp_seconds",
            "Unix time of the run's latest progress (a stage started or finished).", run,
            registry=reg,
        )  # fmt: skip
        self.judge_accuracy = Gauge(
            "selftaught_judge_accuracy", "Accuracy of the latest evaluated judge (0-1).",
            [*run, "eval_set"], registry=reg,
        )  # fmt: skip
        self.judge_best_accuracy = Gauge(
            "selftaught_judge_best_accuracy", "Best accuracy of any iteration's judge (0-1).",
            [*run, "eval_set"], registry=reg,
        )  # fmt: skip
        self.kept_ratio = Gauge(
            "selftaught_judgments_kept_ratio",
            "Share of pairs with a correct (kept) judgment in the latest judge stage.", run,
            registry=reg,
        )  # fmt: skip
        self.judging_samples = Gauge(
            "selftaught_judging_samples",
            "Judgments sampled by the latest judge stage (all shards).", run, registry=reg,
        )  # fmt: skip
        self.judging_tokens = Gauge(
            "selftaught_judging_generated_tokens",
            "Tokens generated by the latest judge stage (all shards).", run, registry=reg,
        )  # fmt: skip
        self.tokens_per_kept = Gauge(
            "selftaught_judging_tokens_per_kept",
            "Generated tokens per kept judgment in the latest judge stage.", run, registry=reg,
        )  # fmt: skip
        self.gpu_seconds_per_point = Gauge(
            "selftaught_gpu_seconds_per_accuracy_point",
            "GPU-seconds spent so far per point of held-out accuracy gained over iteration 0 "
            "(latest evaluated iteration with a gain; the status has it in hours).", run,
            registry=reg,
        )  # fmt: skip
        # The only families with an ``iteration`` label: bounded by the run's history (at most
        # spec.iterations + 1 values), so a run of the paper's 5 iterations adds 6 per eval set.
        self.iteration_accuracy = Gauge(
            "selftaught_iteration_accuracy",
            "Pairwise accuracy (0-1) of each iteration's judge on each eval set; iteration 0 is "
            "the seed's baseline. At most spec.iterations + 1 iteration values per run.",
            [*run, "iteration", "eval_set"], registry=reg,
        )  # fmt: skip
        self.iteration_gpu_seconds = Gauge(
            "selftaught_iteration_gpu_seconds",
            "GPU-seconds each finished stage of each iteration spent (stages that used GPUs). "
            "At most spec.iterations + 1 iteration values per run.",
            [*run, "iteration", "stage"], registry=reg,
        )  # fmt: skip
        self.stage_duration = Histogram(
            "selftaught_stage_duration_seconds", "Wall-clock seconds of finished stages.",
            ["stage"], buckets=STAGE_BUCKETS, registry=reg,
        )  # fmt: skip
        self.jobs_created = Counter(
            "selftaught_jobs_created", "Jobs the operator created.", ["stage"], registry=reg
        )
        self.jobs_failed = Counter(
            "selftaught_jobs_failed", "Job attempts that failed, by failure class.",
            ["stage", "reason"], registry=reg,
        )  # fmt: skip
        self.gpu_seconds = Counter(
            "selftaught_gpu_seconds", "GPU-seconds spent by finished stages.",
            [*run, "stage"], registry=reg,
        )  # fmt: skip
        self.reconcile_duration = Histogram(
            "selftaught_reconcile_duration_seconds", "Seconds one reconcile of a run took.",
            buckets=RECONCILE_BUCKETS, registry=reg,
        )  # fmt: skip
        self.reconcile_errors = Counter(
            "selftaught_reconcile_errors", "Reconciles that raised an error.", registry=reg
        )
        self.runs = Gauge("selftaught_runs", "Runs by phase.", ["phase"], registry=reg)
        for phase in Phase:
            self.runs.labels(phase=phase.value).set(0)
        # Every per-stage child exists from the start, at 0: rate() and increase() only see a
        # counter move between two scrapes, so a child created by its first increment hides
        # that increment (the first failure of a kind would never reach the "Job failures"
        # panel or SelfTaughtJobsFailing, and a stage's first duration never reaches the p50).
        # The label values are small enums: 5 stages x 8 reasons.
        for stage in Stage:
            self.jobs_created.labels(stage=stage.value)
            self.stage_duration.labels(stage=stage.value)
            for reason in FAILURE_REASONS:
                self.jobs_failed.labels(stage=stage.value, reason=reason)
        self.serving_ready_replicas = Gauge(
            "selftaught_serving_ready_replicas",
            "Ready pods of the run's judge server (spec.serve); absent when nothing is served.",
            run, registry=reg,
        )  # fmt: skip
        self.serving_iteration = Gauge(
            "selftaught_serving_iteration",
            "Iteration of the judge the run's server is rolled to (spec.serve).", run,
            registry=reg,
        )  # fmt: skip
        self._series: dict[RunKey, _RunSeries] = {}
        self._lock = threading.Lock()

    # -------------------------------------------------------------------------- per run

    def observe_run(self, run: SelfTaughtRun) -> None:
        """Set every per-run gauge from the run's status (idempotent)."""
        key = (run.namespace, run.name)
        status = run.status
        with self._lock:
            series = self._series.setdefault(key, _RunSeries())
            if series.seed_model not in (None, run.spec.seed_model):
                self.run_info.remove(*key, series.seed_model)
            series.seed_model = run.spec.seed_model
            series.phase = Phase(status.phase).value
            self._count_phases()
        self.run_info.labels(*key, run.spec.seed_model).set(1)
        for phase in Phase:
            self.run_phase.labels(*key, phase.value).set(1 if status.phase == phase else 0)
        for stage in Stage:
            self.run_stage.labels(*key, stage.value).set(1 if status.stage == stage else 0)
        self.run_iteration.labels(*key).set(status.iteration)
        self.run_iterations_planned.labels(*key).set(run.spec.iterations)
        self.stage_started.labels(*key).set(_timestamp(status.stage_started_at))
        self.last_progress.labels(*key).set(last_progress(status))
        self._observe_scores(key, status, series)
        self._observe_iterations(key, status, series)
        self._observe_serving(key, status)

    def _observe_serving(self, key: RunKey, status: RunStatus) -> None:
        """The served judge: ready replicas and its iteration, or no series when none."""
        serving = status.serving
        if serving is None or serving.iteration is None:
            _remove(self.serving_ready_replicas, *key)
            _remove(self.serving_iteration, *key)
            return
        self.serving_ready_replicas.labels(*key).set(serving.ready_replicas)
        self.serving_iteration.labels(*key).set(serving.iteration)

    def _observe_scores(self, key: RunKey, status: RunStatus, series: _RunSeries) -> None:
        latest: dict[str, float] = {}
        best: dict[str, float] = {}
        for record in status.history:
            for name, scores in record.scores.items():
                latest[name] = scores.accuracy
                best[name] = max(best.get(name, 0.0), scores.accuracy)
        for gone in series.eval_sets - set(latest):
            self.judge_accuracy.remove(*key, gone)
            self.judge_best_accuracy.remove(*key, gone)
        series.eval_sets = set(latest)
        for name, value in latest.items():
            self.judge_accuracy.labels(*key, name).set(value)
            self.judge_best_accuracy.labels(*key, name).set(best[name])
        judged = [r for r in status.history if r.pairs and r.judgments_kept is not None]
        if judged:
            record = judged[-1]
            self.kept_ratio.labels(*key).set((record.judgments_kept or 0) / (record.pairs or 1))
        self._observe_cost(key, status)

    def _observe_cost(self, key: RunKey, status: RunStatus) -> None:
        """Judging cost of the latest judge stage, GPU-hours per point of the latest gain."""
        judged = [r for r in status.history if r.judgments_sampled is not None]
        if judged:
            record = judged[-1]
            self.judging_samples.labels(*key).set(record.judgments_sampled or 0)
            if record.judging_tokens is not None:
                self.judging_tokens.labels(*key).set(record.judging_tokens)
            if record.tokens_per_kept is not None:
                self.tokens_per_kept.labels(*key).set(record.tokens_per_kept)
        gains = [r for r in status.history if r.gpu_hours_per_point is not None]
        if gains:
            self.gpu_seconds_per_point.labels(*key).set(3600 * (gains[-1].gpu_hours_per_point or 0))

    def _observe_iterations(self, key: RunKey, status: RunStatus, series: _RunSeries) -> None:
        """Accuracy and GPU-seconds per iteration; series of rewound iterations are removed."""
        scores, gpu = iteration_values(status)
        for gone in series.iteration_scores - set(scores):
            _remove(self.iteration_accuracy, *key, *gone)
        for gone in series.iteration_gpu - set(gpu):
            _remove(self.iteration_gpu_seconds, *key, *gone)
        series.iteration_scores = set(scores)
        series.iteration_gpu = set(gpu)
        for labels, accuracy in scores.items():
            self.iteration_accuracy.labels(*key, *labels).set(accuracy)
        for labels, seconds in gpu.items():
            self.iteration_gpu_seconds.labels(*key, *labels).set(seconds)

    def observe_transition(self, run: SelfTaughtRun, new: RunStatus) -> None:
        """Count the stages that finished between ``run.status`` and ``new``."""
        key = (run.namespace, run.name)
        for stage, seconds in finished_stages(run.status, new):
            self.stage_duration.labels(stage=stage.value).observe(seconds)
            gpus = gpu_seconds(run.spec, stage, seconds)
            if gpus > 0:
                self.gpu_seconds.labels(*key, stage.value).inc(gpus)
                with self._lock:
                    self._series.setdefault(key, _RunSeries()).gpu_stages.add(stage.value)

    def forget_run(self, namespace: str, name: str) -> None:
        """Remove every series of a deleted run."""
        key = (namespace, name)
        with self._lock:
            series = self._series.pop(key, None)
            self._count_phases()
        if series is None:
            return
        if series.seed_model is not None:
            _remove(self.run_info, *key, series.seed_model)
        for phase in Phase:
            _remove(self.run_phase, *key, phase.value)
        for stage in Stage:
            _remove(self.run_stage, *key, stage.value)
        for gauge in (
            self.run_iteration,
            self.run_iterations_planned,
            self.stage_started,
            self.last_progress,
            self.kept_ratio,
            self.judging_samples,
            self.judging_tokens,
            self.tokens_per_kept,
            self.gpu_seconds_per_point,
            self.serving_ready_replicas,
            self.serving_iteration,
        ):
            _remove(gauge, *key)
        for eval_set in series.eval_sets:
            _remove(self.judge_accuracy, *key, eval_set)
            _remove(self.judge_best_accuracy, *key, eval_set)
        for stage_name in series.gpu_stages:
            _remove(self.gpu_seconds, *key, stage_name)
        for labels in series.iteration_scores:
            _remove(self.iteration_accuracy, *key, *labels)
        for labels in series.iteration_gpu:
            _remove(self.iteration_gpu_seconds, *key, *labels)

    def _count_phases(self) -> None:
        counts = dict.fromkeys((p.value for p in Phase), 0)
        for series in self._series.values():
            if series.phase is not None:
                counts[series.phase] += 1
        for phase, count in counts.items():
            self.runs.labels(phase=phase).set(count)

    # ---------------------------------------------------------------------- operator-wide

    def job_created(self, stage: Stage | str) -> None:
        self.jobs_created.labels(stage=Stage(stage).value).inc()

    def job_failed(self, stage: Stage | str, reason: str) -> None:
        self.jobs_failed.labels(stage=Stage(stage).value, reason=reason).inc()

    @contextmanager
    def reconcile(self) -> Iterator[None]:
        """Time one reconcile; count it as an error if it raises."""
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            self.reconcile_errors.inc()
            raise
        finally:
            self.reconcile_duration.observe(time.perf_counter() - start)

    def serve(self, port: int, addr: str = "0.0.0.0") -> WSGIServer:
        """Serve /metrics on its own port in a daemon thread; ``shutdown()`` the result to stop."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server


# ----------------------------------------------------------------------- pure derivations


def finished_stages(old: RunStatus, new: RunStatus) -> list[tuple[Stage, float]]:
    """Stages whose duration appears in ``new`` but not in ``old`` (per iteration record)."""
    before = {r.iteration: r.stage_seconds for r in old.history}
    done: list[tuple[Stage, float]] = []
    for record in new.history:
        previous = before.get(record.iteration, {})
        for stage, seconds in record.stage_seconds.items():
            if stage not in previous:
                done.append((Stage(stage), float(seconds)))
    return done


def iteration_values(
    status: RunStatus,
) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float]]:
    """``{(iteration, eval set): accuracy}`` and ``{(iteration, stage): GPU-seconds}`` of the
    history. Stages without GPU-seconds are left out (a CPU stage adds nothing to a cost
    panel but series), as ``selftaught_gpu_seconds_total`` leaves them out."""
    scores: dict[tuple[str, str], float] = {}
    gpu: dict[tuple[str, str], float] = {}
    for record in status.history:
        iteration = str(record.iteration)
        for name, set_scores in record.scores.items():
            scores[iteration, name] = set_scores.accuracy
        for stage, seconds in record.stage_gpu_seconds.items():
            if seconds > 0:
                gpu[iteration, stage] = seconds
    return scores, gpu


def gpu_seconds(spec: RunSpec, stage: Stage, seconds: float) -> float:
    """GPU-seconds of one finished stage: seconds x GPUs per pod x pods (as the planner counts)."""
    resources = spec.stages.of(stage)
    return seconds * resources.gpus * resources.pods(stage)


def last_progress(status: RunStatus) -> float:
    """The latest moment the run moved: a stage or iteration started or finished."""
    moments = [status.started_at, status.stage_started_at, status.completed_at]
    for record in status.history:
        moments += [record.started_at, record.completed_at]
    for condition in status.conditions:
        if condition.type == "Progressing":
            moments.append(condition.last_transition_time)
    return max((_timestamp(m) for m in moments), default=0.0)


def _timestamp(text: str | None) -> float:
    moment = parse_time(text)
    return moment.timestamp() if moment else 0.0


def _remove(metric: Gauge | Counter, *labels: str) -> None:
    with suppress(KeyError):
        metric.remove(*labels)
