"""Metrics: exact names, values derived from the status, no leaked series, promtool-clean."""

from __future__ import annotations

import shutil
import socket
import subprocess
import urllib.request
from datetime import timedelta

import pytest
from prometheus_client import generate_latest

from selftaught.api import IterationRecord, RunStatus, SelfTaughtRun, ServingStatus
from selftaught.metrics import (
    Metrics,
    finished_stages,
    gpu_seconds,
    iteration_values,
    last_progress,
)
from selftaught.observability.catalog import METRICS
from selftaught.phases import Phase, Stage
from selftaught.summaries import SetScores
from tests.unit.planning import T0, drive, make_run

#: The names the dashboards and alerts rely on (as exposed, counters with ``_total``).
CONTRACT = {
    "selftaught_run_info",
    "selftaught_run_phase",
    "selftaught_run_stage",
    "selftaught_run_iteration",
    "selftaught_run_iterations_planned",
    "selftaught_run_stage_started_timestamp_seconds",
    "selftaught_run_last_progress_timestamp_seconds",
    "selftaught_judge_accuracy",
    "selftaught_judge_best_accuracy",
    "selftaught_judgments_kept_ratio",
    "selftaught_stage_duration_seconds_bucket",
    "selftaught_jobs_created_total",
    "selftaught_jobs_failed_total",
    "selftaught_gpu_seconds_total",
    "selftaught_reconcile_duration_seconds_bucket",
    "selftaught_reconcile_errors_total",
    "selftaught_runs",
    "selftaught_iteration_accuracy",
    "selftaught_iteration_gpu_seconds",
}


def finished_run(**spec: object) -> SelfTaughtRun:
    run, _, _ = drive(make_run(**spec))
    assert run.status.phase == Phase.SUCCEEDED
    return run


def exposed(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_every_contract_name_is_exposed() -> None:
    metrics = Metrics()
    run = finished_run()
    metrics.observe_run(run)
    metrics.observe_transition(run.model_copy(update={"status": RunStatus()}), run.status)
    metrics.job_created(Stage.SELECT)
    metrics.job_failed(Stage.TRAIN, "OOMKilled")
    with metrics.reconcile():
        pass
    names = {line.split("{")[0].split(" ")[0] for line in exposed(metrics).splitlines()}
    assert names >= CONTRACT


def test_run_gauges_follow_the_status() -> None:
    metrics = Metrics()
    run = finished_run()
    metrics.observe_run(run)
    key = {"namespace": "ns", "run": "demo"}
    assert value(metrics, "selftaught_run_info", **key, seed_model="builtin://tiny-judge") == 1
    assert value(metrics, "selftaught_run_phase", **key, phase="Succeeded") == 1
    assert value(metrics, "selftaught_run_phase", **key, phase="Running") == 0
    assert value(metrics, "selftaught_run_stage", **key, stage="evaluate") == 1
    assert value(metrics, "selftaught_run_stage", **key, stage="judge") == 0
    assert value(metrics, "selftaught_run_iteration", **key) == 2
    assert value(metrics, "selftaught_run_iterations_planned", **key) == 2
    # planning.summary_for: accuracy 0.6 + 0.1 * iteration; kept 30 of 40 pairs.
    assert value(metrics, "selftaught_judge_accuracy", **key, eval_set="heldout") == 0.8
    assert value(metrics, "selftaught_judge_best_accuracy", **key, eval_set="heldout") == 0.8
    assert value(metrics, "selftaught_judgments_kept_ratio", **key) == 0.75
    assert value(metrics, "selftaught_runs", phase="Succeeded") == 1
    assert value(metrics, "selftaught_runs", phase="Running") == 0
    progress = value(metrics, "selftaught_run_last_progress_timestamp_seconds", **key)
    assert progress is not None
    assert progress >= T0.timestamp()


def test_best_accuracy_keeps_the_maximum() -> None:
    status = RunStatus(
        history=[
            IterationRecord(iteration=0, scores={"heldout": SetScores(accuracy=0.7)}),
            IterationRecord(iteration=1, scores={"heldout": SetScores(accuracy=0.9)}),
            IterationRecord(iteration=2, scores={"heldout": SetScores(accuracy=0.8)}),
        ]
    )
    metrics = Metrics()
    metrics.observe_run(make_run().model_copy(update={"status": status}))
    key = {"namespace": "ns", "run": "demo", "eval_set": "heldout"}
    assert value(metrics, "selftaught_judge_accuracy", **key) == 0.8
    assert value(metrics, "selftaught_judge_best_accuracy", **key) == 0.9


def test_judging_cost_follows_the_latest_judge_and_the_latest_gain() -> None:
    status = RunStatus(
        history=[
            IterationRecord(iteration=0, gpu_seconds=3600),
            IterationRecord(
                iteration=1,
                judgments_sampled=900,
                judging_tokens=18_000,
                judgments_kept=300,
                tokens_per_kept=60.0,
                gpu_hours_per_point=0.5,
            ),
            IterationRecord(iteration=2, judgments_sampled=600, judging_tokens=9_000,
                            judgments_kept=300, tokens_per_kept=30.0),
        ]
    )  # fmt: skip
    metrics = Metrics()
    metrics.observe_run(make_run().model_copy(update={"status": status}))
    key = {"namespace": "ns", "run": "demo"}
    assert value(metrics, "selftaught_judging_samples", **key) == 600
    assert value(metrics, "selftaught_judging_generated_tokens", **key) == 9_000
    assert value(metrics, "selftaught_judging_tokens_per_kept", **key) == 30.0
    assert value(metrics, "selftaught_gpu_seconds_per_accuracy_point", **key) == 1800
    metrics.forget_run("ns", "demo")
    assert 'run="demo"' not in exposed(metrics)


def test_transition_counts_each_stage_once() -> None:
    gpu_spec = {"stages": {"train": {"gpus": 4, "nodes": 2}, "judge": {"gpus": 1, "shards": 3}}}
    run = finished_run(**gpu_spec)
    metrics = Metrics()
    empty = run.model_copy(update={"status": RunStatus()})
    metrics.observe_transition(empty, run.status)
    metrics.observe_transition(run, run.status)  # no change: nothing more counted
    count = value(metrics, "selftaught_stage_duration_seconds_count", stage="train")
    assert count == 2  # iterations 1 and 2
    key = {"namespace": "ns", "run": "demo"}
    # planning.observed: every Job takes 4 s.
    assert value(metrics, "selftaught_gpu_seconds_total", **key, stage="train") == 2 * 4 * 4 * 2
    assert value(metrics, "selftaught_gpu_seconds_total", **key, stage="judge") == 2 * 4 * 1 * 3


def test_forget_run_removes_every_series() -> None:
    metrics = Metrics()
    run = finished_run(stages={"train": {"gpus": 1}})
    metrics.observe_run(run)
    metrics.observe_transition(run.model_copy(update={"status": RunStatus()}), run.status)
    assert 'run="demo"' in exposed(metrics)
    metrics.forget_run("ns", "demo")
    assert 'run="demo"' not in exposed(metrics)
    assert value(metrics, "selftaught_runs", phase="Succeeded") == 0
    metrics.forget_run("ns", "demo")  # twice is harmless


def test_no_unbounded_labels() -> None:
    """Job and pod names never become label values; iteration numbers only on the two
    ``selftaught_iteration_*`` families, and only 0..spec.iterations (bounded per run)."""
    metrics = Metrics()
    run = finished_run(stages={"train": {"gpus": 1}})
    metrics.observe_run(run)
    metrics.observe_transition(run.model_copy(update={"status": RunStatus()}), run.status)
    text = exposed(metrics)
    with_iteration = {line.split("{")[0] for line in text.splitlines() if "iteration=" in line}
    assert with_iteration == {"selftaught_iteration_accuracy", "selftaught_iteration_gpu_seconds"}
    iterations = {
        sample.labels["iteration"]
        for family in metrics.registry.collect()
        for sample in family.samples
        if "iteration" in sample.labels
    }
    assert iterations == {str(i) for i in range(run.spec.iterations + 1)}
    assert "demo-i" not in text  # a Job name
    assert "pod=" not in text


def _history(*gpu_by_iteration: dict[str, float]) -> RunStatus:
    """A status whose iteration i scores 0.6 + 0.1 i on heldout and 0.5 + 0.1 i on rewardbench
    (iteration 0 has only heldout) and spent ``gpu_by_iteration[i]`` GPU-seconds by stage."""
    records = []
    for iteration, gpu in enumerate(gpu_by_iteration):
        scores = {"heldout": SetScores(accuracy=round(0.6 + 0.1 * iteration, 3))}
        if iteration:
            scores["rewardbench"] = SetScores(accuracy=round(0.5 + 0.1 * iteration, 3))
        records.append(IterationRecord(iteration=iteration, scores=scores, stage_gpu_seconds=gpu))
    return RunStatus(history=records)


THREE_ITERATIONS = _history(
    {"select": 0.0, "pairs": 0.0, "evaluate": 30.0},
    {"judge": 7200.0, "train": 3600.0, "evaluate": 30.0},
    {"judge": 5400.0, "train": 3600.0},  # evaluate still running: no score, no cost yet
)


def _iteration_series(metrics: Metrics, name: str, label: str) -> dict[tuple[str, str], float]:
    return {
        (sample.labels["iteration"], sample.labels[label]): sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == name
    }


def test_accuracy_by_iteration_follows_the_history() -> None:
    metrics = Metrics()
    status = THREE_ITERATIONS.model_copy(deep=True)
    status.history[2].scores = {}
    metrics.observe_run(make_run().model_copy(update={"status": status}))
    assert _iteration_series(metrics, "selftaught_iteration_accuracy", "eval_set") == {
        ("0", "heldout"): 0.6,
        ("1", "heldout"): 0.7,
        ("1", "rewardbench"): 0.6,
    }
    key = {"namespace": "ns", "run": "demo"}
    assert value(metrics, "selftaught_iteration_accuracy", **key, iteration="1",
                 eval_set="heldout") == 0.7  # fmt: skip


def test_gpu_seconds_by_iteration_leave_cpu_stages_out() -> None:
    metrics = Metrics()
    metrics.observe_run(make_run().model_copy(update={"status": THREE_ITERATIONS}))
    assert _iteration_series(metrics, "selftaught_iteration_gpu_seconds", "stage") == {
        ("0", "evaluate"): 30.0,
        ("1", "judge"): 7200.0,
        ("1", "train"): 3600.0,
        ("1", "evaluate"): 30.0,
        ("2", "judge"): 5400.0,
        ("2", "train"): 3600.0,
    }


@pytest.mark.parametrize(
    ("kept", "remaining"),
    [
        pytest.param(3, {"0", "1", "2"}, id="unchanged-history-keeps-all"),
        pytest.param(2, {"0", "1"}, id="resume-from-iteration-1-drops-2"),
        pytest.param(1, {"0"}, id="resume-from-iteration-0-drops-1-and-2"),
    ],
)
def test_a_rewound_iteration_loses_its_series(kept: int, remaining: set[str]) -> None:
    """``resumeFrom`` deletes later records from the history: their series must go too."""
    metrics = Metrics()
    run = make_run().model_copy(update={"status": THREE_ITERATIONS})
    metrics.observe_run(run)
    rewound = RunStatus(history=THREE_ITERATIONS.history[:kept])
    metrics.observe_run(run.model_copy(update={"status": rewound}))
    for name, label in (
        ("selftaught_iteration_accuracy", "eval_set"),
        ("selftaught_iteration_gpu_seconds", "stage"),
    ):
        assert {i for i, _ in _iteration_series(metrics, name, label)} == remaining, name


def test_forget_run_removes_the_per_iteration_series() -> None:
    metrics = Metrics()
    metrics.observe_run(make_run().model_copy(update={"status": THREE_ITERATIONS}))
    other = make_run().model_copy(update={"status": THREE_ITERATIONS})
    other.metadata["name"] = "other"
    metrics.observe_run(other)
    metrics.forget_run("ns", "demo")
    text = exposed(metrics)
    assert "iteration=" in text  # the other run keeps its series
    assert not [line for line in text.splitlines() if 'run="demo"' in line]


def test_iteration_values_are_pure() -> None:
    scores, gpu = iteration_values(RunStatus())
    assert (scores, gpu) == ({}, {})
    scores, gpu = iteration_values(THREE_ITERATIONS)
    assert scores["2", "rewardbench"] == 0.7
    assert ("0", "select") not in gpu


def test_the_catalog_lists_every_exported_family_with_its_labels() -> None:
    """The dashboard and alerts are checked against the catalog; the catalog against this."""
    metrics = Metrics()
    run = finished_run(stages={"train": {"gpus": 1}})
    run.status.serving = ServingStatus(iteration=2, ready_replicas=1)  # a served judge too
    metrics.observe_run(run)
    metrics.observe_transition(run.model_copy(update={"status": RunStatus()}), run.status)
    metrics.job_failed(Stage.TRAIN, "OOMKilled")
    with metrics.reconcile():
        pass
    catalog = {m.name: set(m.labels) for m in METRICS}
    for family in metrics.registry.collect():
        name = f"{family.name}_total" if family.type == "counter" else family.name
        assert name in catalog, name
        labels = {label for s in family.samples for label in s.labels if label != "le"}
        assert labels == catalog[name], name


def test_reconcile_errors_counted() -> None:
    metrics = Metrics()
    with pytest.raises(RuntimeError), metrics.reconcile():
        raise RuntimeError("boom")
    assert value(metrics, "selftaught_reconcile_errors_total") == 1
    assert value(metrics, "selftaught_reconcile_duration_seconds_count") == 1


def test_pure_helpers() -> None:
    old = RunStatus(history=[IterationRecord(iteration=0, stage_seconds={"select": 5.0})])
    new = RunStatus(
        history=[
            IterationRecord(iteration=0, stage_seconds={"select": 5.0, "pairs": 7.0}),
            IterationRecord(iteration=1, stage_seconds={"judge": 3.0}),
        ]
    )
    assert finished_stages(old, new) == [(Stage.PAIRS, 7.0), (Stage.JUDGE, 3.0)]
    spec = make_run(stages={"judge": {"gpus": 2, "shards": 4}}).spec
    assert gpu_seconds(spec, Stage.JUDGE, 10.0) == 80.0
    assert last_progress(RunStatus()) == 0.0
    later = T0 + timedelta(hours=1)
    status = RunStatus(started_at="2026-01-01T00:00:00Z", stage_started_at="2026-01-01T01:00:00Z")
    assert last_progress(status) == later.timestamp()


def test_served_on_its_own_port() -> None:
    metrics = Metrics()
    metrics.job_created("judge")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = metrics.serve(port, "127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert 'selftaught_jobs_created_total{stage="judge"} 1.0' in body


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_check_metrics() -> None:
    metrics = Metrics()
    run = finished_run(stages={"train": {"gpus": 1}})
    metrics.observe_run(run)
    metrics.observe_transition(run.model_copy(update={"status": RunStatus()}), run.status)
    metrics.job_created(Stage.SELECT)
    metrics.job_failed(Stage.TRAIN, "OOMKilled")
    with metrics.reconcile():
        pass
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=generate_latest(metrics.registry),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == "", result.stdout.decode()
