"""The metric names and labels the operator and the workers export: the contract.

The dashboard and the alert rules only use names from here, and a test proves it, so a renamed
metric shows up as a failing test instead of an empty panel. The operator's
``selftaught.metrics`` owns the collectors; this module owns nothing but the spelling.
"""

from __future__ import annotations

from dataclasses import dataclass

from selftaught.phases import Phase, Stage

#: The Prometheus ``job`` label of the operator's scrape target. The chart's ServiceMonitor sets
#: it through ``jobLabel``; a hand-written scrape config must use it as its ``job_name``.
OPERATOR_JOB = "selftaught-operator"
#: The Pushgateway job the workers push their progress under.
WORKER_JOB = "selftaught_worker"


@dataclass(frozen=True)
class Metric:
    """One exported metric family: its name, kind and label names (without job/instance)."""

    name: str
    kind: str  # gauge, counter, histogram
    labels: tuple[str, ...]
    help: str


_RUN = ("namespace", "run")

METRICS: tuple[Metric, ...] = (
    Metric("selftaught_run_info", "gauge", (*_RUN, "seed_model"), "Always 1; carries the seed."),
    Metric("selftaught_run_phase", "gauge", (*_RUN, "phase"), "1 for the current phase."),
    Metric("selftaught_run_stage", "gauge", (*_RUN, "stage"), "1 for the current stage."),
    Metric("selftaught_run_iteration", "gauge", _RUN, "Current iteration (0 = baseline)."),
    Metric("selftaught_run_iterations_planned", "gauge", _RUN, "Iterations in the spec."),
    Metric("selftaught_run_stage_started_timestamp_seconds", "gauge", _RUN, "Current stage start."),
    Metric(
        "selftaught_run_last_progress_timestamp_seconds", "gauge", _RUN, "Last observed progress."
    ),
    Metric("selftaught_judge_accuracy", "gauge", (*_RUN, "eval_set"), "Latest judge accuracy."),
    Metric("selftaught_judge_best_accuracy", "gauge", (*_RUN, "eval_set"), "Best accuracy."),
    Metric("selftaught_judgments_kept_ratio", "gauge", _RUN, "Kept / sampled judgments."),
    Metric("selftaught_judging_samples", "gauge", _RUN, "Judgments sampled (latest judge)."),
    Metric("selftaught_judging_generated_tokens", "gauge", _RUN, "Judging tokens generated."),
    Metric("selftaught_judging_tokens_per_kept", "gauge", _RUN, "Tokens per kept judgment."),
    Metric(
        "selftaught_gpu_seconds_per_accuracy_point",
        "gauge",
        _RUN,
        "GPU-seconds per accuracy point.",
    ),
    # The only ``iteration`` labels: at most spec.iterations + 1 values per run.
    Metric(
        "selftaught_iteration_accuracy",
        "gauge",
        (*_RUN, "iteration", "eval_set"),
        "Accuracy of each iteration's judge.",
    ),
    Metric(
        "selftaught_iteration_gpu_seconds",
        "gauge",
        (*_RUN, "iteration", "stage"),
        "GPU-seconds per iteration and stage.",
    ),
    Metric("selftaught_serving_ready_replicas", "gauge", _RUN, "Ready judge-server pods."),
    Metric("selftaught_serving_iteration", "gauge", _RUN, "Iteration the judge server serves."),
    Metric("selftaught_stage_duration_seconds", "histogram", ("stage",), "Finished stages."),
    Metric("selftaught_jobs_created_total", "counter", ("stage",), "Jobs created."),
    Metric("selftaught_jobs_failed_total", "counter", ("stage", "reason"), "Failed attempts."),
    Metric("selftaught_gpu_seconds_total", "counter", (*_RUN, "stage"), "GPU-seconds spent."),
    Metric("selftaught_reconcile_duration_seconds", "histogram", (), "Reconcile latency."),
    Metric("selftaught_reconcile_errors_total", "counter", (), "Reconciles that raised."),
    Metric("selftaught_runs", "gauge", ("phase",), "Runs by phase."),
    # Pushed by workers to the Pushgateway (job selftaught_worker, grouping key below).
    Metric("selftaught_worker_items_done", "gauge", (*_RUN, "stage", "shard"), "Items done."),
    Metric("selftaught_worker_items_total", "gauge", (*_RUN, "stage", "shard"), "Items planned."),
    Metric(
        "selftaught_worker_tokens_per_second", "gauge", (*_RUN, "stage", "shard"), "Throughput."
    ),
)

#: Every series name a PromQL expression may legally reference (histograms expand).
SERIES_NAMES: frozenset[str] = frozenset(
    name
    for metric in METRICS
    for name in (
        (f"{metric.name}_bucket", f"{metric.name}_sum", f"{metric.name}_count")
        if metric.kind == "histogram"
        else (metric.name,)
    )
)

#: Label values of ``phase`` and ``stage``: the same enums the planner uses.
PHASES: tuple[str, ...] = tuple(phase.value for phase in Phase)
STAGES: tuple[str, ...] = tuple(stage.value for stage in Stage)
