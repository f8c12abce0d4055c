"""The real operator, real kopf, real kubectl: a run from ``kubectl apply`` to ``Succeeded``."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from tests.e2e.conftest import E2E, SUMMARIES, Operator, run_manifest

pytestmark = pytest.mark.e2e


def jobs_of(cluster: E2E, run: str) -> list[str]:
    items = cluster.get("jobs")["items"]
    return sorted(
        j["metadata"]["name"]
        for j in items
        if j["metadata"].get("labels", {}).get("selftaught.dev/run") == run
    )


def wait_until(predicate: object, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_run_succeeds_with_its_story(cluster: E2E, operator: Operator) -> None:
    cluster.require_emulator()
    cluster.instant()
    cluster.apply(run_manifest("demo"))
    run = cluster.wait_phase("demo", "Succeeded", timeout=60)
    status = run["status"]

    assert status["progress"] == "1/1"
    assert [r["iteration"] for r in status["history"]] == [0, 1]
    baseline, first = status["history"]
    assert baseline["pairs"] == 96
    assert baseline["scores"]["heldout"]["accuracy"] == 0.75
    assert set(baseline["stageSeconds"]) == {"select", "pairs", "evaluate"}
    assert (first["judgmentsSampled"], first["judgmentsKept"]) == (384, 72)
    assert first["trainingLoss"] == 0.42
    assert set(first["stageSeconds"]) == {"judge", "train", "evaluate"}
    assert status["bestAccuracy"] == 0.75
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Succeeded"]["status"] == "True"
    assert conditions["Succeeded"]["reason"] == "Completed"
    assert conditions["Progressing"]["status"] == "False"
    assert jobs_of(cluster, "demo") == [
        "demo-i0-eval-a0", "demo-i0-pair-a0", "demo-i0-sel-a0",
        "demo-i1-eval-a0", "demo-i1-judge-a0", "demo-i1-train-a0",
    ]  # fmt: skip

    table = cluster.ns("get", "selftaughtruns").stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "STAGE", "ITERATION", "BEST", "AGE"]
    assert table[1].split()[:5] == ["demo", "Succeeded", "evaluate", "1/1", "0.75"]

    described = cluster.ns("describe", "selftaughtrun", "demo").stdout
    events = described[described.index("Events:") :]
    # One Event per transition: six stages started, then the completion; iteration ends and
    # acceptance are told inside those (see plan.coalesce_events).
    assert events.count("StageStarted") == 6, events
    assert events.count("Completed") == 1, events
    for story in ("run accepted", "iteration 0 done", "iteration 1 done"):
        assert story in " ".join(events.split()), events

    key = {"namespace": cluster.namespace, "run": "demo"}
    assert operator.sample("selftaught_run_phase", **key, phase="Succeeded") == 1
    assert operator.sample("selftaught_run_iteration", **key) == 1
    assert operator.sample("selftaught_judgments_kept_ratio", **key) == 0.75
    assert operator.sample("selftaught_jobs_created_total", stage="judge") == 1
    assert operator.sample("selftaught_runs", phase="Succeeded") == 1


def test_delete_garbage_collects_jobs_and_metrics(cluster: E2E, operator: Operator) -> None:
    cluster.require_emulator()
    cluster.instant()
    cluster.apply(run_manifest("gone"))
    cluster.wait_phase("gone", "Succeeded")
    assert jobs_of(cluster, "gone")
    cluster.ns("delete", "selftaughtrun", "gone", "--timeout=30s")
    wait_until(lambda: not jobs_of(cluster, "gone"), what="owner GC of the Jobs")
    wait_until(
        lambda: operator.sample("selftaught_run_info", run="gone") is None,
        what="metrics series removed",
    )
    assert operator.sample("selftaught_runs", phase="Succeeded") == 0


def test_suspend_then_resume(cluster: E2E, operator: Operator) -> None:
    cluster.require_emulator()
    cluster.instant()
    cluster.apply(run_manifest("paused", suspend=True))
    run = cluster.wait_phase("paused", "Suspended")
    conditions = {c["type"]: c for c in run["status"]["conditions"]}
    assert conditions["Suspended"]["status"] == "True"
    assert jobs_of(cluster, "paused") == []
    cluster.ns(
        "patch", "selftaughtrun", "paused", "--type=merge", "-p", '{"spec":{"suspend":false}}'
    )
    run = cluster.wait_phase("paused", "Succeeded")
    conditions = {c["type"]: c for c in run["status"]["conditions"]}
    assert conditions["Suspended"]["status"] == "False"
    assert "Resumed" in cluster.ns("describe", "selftaughtrun", "paused").stdout


def test_resume_from_reruns_a_stage(cluster: E2E, operator: Operator) -> None:
    """resumeFrom re-runs train (a fresh attempt) and evaluate (its old Job is replaced)."""
    cluster.require_emulator()
    cluster.instant()
    cluster.apply(run_manifest("again"))
    cluster.wait_phase("again", "Succeeded")
    old_eval = cluster.get("job", "again-i1-eval-a0")["metadata"]["uid"]
    patch = '{"spec":{"resumeFrom":{"iteration":1,"stage":"train"}}}'
    cluster.ns("patch", "selftaughtrun", "again", "--type=merge", "-p", patch)
    cluster.ns(
        "wait", "--for=jsonpath={.status.appliedResumeFrom}=1/train", "selftaughtrun/again",
        "--timeout=30s",
    )  # fmt: skip
    run = cluster.wait_phase("again", "Succeeded")
    assert run["status"]["history"][1]["trainingLoss"] == 0.42
    assert "again-i1-train-a1" in jobs_of(cluster, "again")
    assert cluster.get("job", "again-i1-eval-a0")["metadata"]["uid"] != old_eval
    described = cluster.ns("describe", "selftaughtrun", "again").stdout
    assert "ResumedFrom" in described
    assert described.count("iteration 1 done") == 2


def test_failing_stage_is_retried_then_fails(cluster: E2E, operator: Operator) -> None:
    """Exit 1 twice with maxRetries 1: one retry (10 s backoff), then Failed with the cause."""
    cluster.require_emulator()
    cluster.instant({k: v for k, v in SUMMARIES.items() if k != "train"})
    from tests.harness.pod_faults import PodFault

    cluster.kubelet.inject(
        PodFault.EXIT,
        labels={"selftaught.dev/stage": "train"},
        exit_code=1,
        message='{"error": "CUDA error: an illegal memory access was encountered"}',
    )
    manifest = run_manifest("flaky")
    manifest["spec"]["stages"]["train"]["maxRetries"] = 1
    cluster.apply(manifest)
    run = cluster.wait_phase("flaky", "Failed", timeout=60)
    status = run["status"]
    failed = {c["type"]: c for c in status["conditions"]}["Failed"]
    assert failed["status"] == "True"
    assert failed["reason"] == "RetriesExhausted"
    assert "illegal memory access" in failed["message"]
    assert "ProgramError" in failed["message"]
    assert {"flaky-i1-train-a0", "flaky-i1-train-a1"} <= set(jobs_of(cluster, "flaky"))
    assert "flaky-i1-train-a2" not in jobs_of(cluster, "flaky")
    events = cluster.ns("describe", "selftaughtrun", "flaky").stdout
    assert "StageRetrying" in events
    assert "RetriesExhausted" in events
    assert (
        operator.sample("selftaught_jobs_failed_total", stage="train", reason="ProgramError") == 2
    )
    assert operator.sample("selftaught_run_phase", run="flaky", phase="Failed") == 1


def test_bad_input_fails_at_once(cluster: E2E, operator: Operator) -> None:
    cluster.require_emulator()
    from tests.harness.pod_faults import PodFault

    cluster.kubelet.inject(
        PodFault.EXIT,
        labels={"selftaught.dev/stage": "select"},
        exit_code=2,
        message='{"error": "instructions: no line has the field \'instruction\'"}',
    )
    cluster.apply(run_manifest("bad"))
    run = cluster.wait_phase("bad", "Failed", timeout=30)
    failed = {c["type"]: c for c in run["status"]["conditions"]}["Failed"]
    assert failed["reason"] == "BadInput"
    assert "no line has the field" in failed["message"]
    assert jobs_of(cluster, "bad") == ["bad-i0-sel-a0"]


def test_a_run_without_storage_is_repaired_by_adding_it(cluster: E2E, operator: Operator) -> None:
    """A manifest without spec.storage (examples/quickstart.yaml on a cluster) fails at start
    naming the field; since no Job ran, adding storage starts it instead of being refused."""
    cluster.require_emulator()
    cluster.instant()
    manifest = run_manifest("nostore")
    storage = manifest["spec"].pop("storage")
    cluster.apply(manifest)
    run = cluster.wait_phase("nostore", "Failed", timeout=30)
    assert "spec.storage" in run["status"]["message"]
    assert jobs_of(cluster, "nostore") == []
    patch = json.dumps({"spec": {"storage": storage}})
    cluster.ns("patch", "selftaughtrun", "nostore", "--type=merge", "-p", patch)
    run = cluster.wait_phase("nostore", "Succeeded", timeout=60)
    conditions = {c["type"]: c for c in run["status"]["conditions"]}
    assert conditions["Failed"]["status"] == "False"
    assert conditions["SpecAccepted"]["status"] == "True"
    # Fenced from the first Job on, field by field (the CRD keeps the map: not pruned).
    assert set(run["status"]["specFingerprints"]) >= {"storage", "evaluation.heldOutFraction"}


def configmap(name: str, **data: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def test_configmap_templates_are_checked_before_the_first_job(
    cluster: E2E, operator: Operator
) -> None:
    """A malformed configmap:// URI is refused by the API server (the CRD's pattern); a missing
    ConfigMap or a bad placeholder fails the run at start naming the field, with no Job; once
    the ConfigMap exists (a resync later) the run starts and its Jobs mount it."""
    cluster.require_emulator()
    cluster.instant()
    malformed = run_manifest("tplbad", pairs={"template": "configmap://Bad_Name/k.yaml"})
    refused = cluster.ns("apply", "-f", "-", input=yaml.safe_dump(malformed), check=False)
    assert refused.returncode != 0
    assert "spec.pairs.template" in refused.stderr
    uri = "configmap://e2e-prompts/similar.yaml"
    cluster.apply(run_manifest("tplmiss", pairs={"template": uri}))
    run = cluster.wait_phase("tplmiss", "Failed", timeout=30)
    failed = {c["type"]: c for c in run["status"]["conditions"]}["Failed"]
    assert failed["reason"] == "BadInput"
    assert failed["message"] == (
        f"spec.pairs.template ({uri}): ConfigMap e2e-prompts not found in namespace "
        f"{cluster.namespace}"
    )
    cluster.apply(configmap("wrong-prompts", **{"judge.yaml": '{"user": "{question} {foo}"}'}))
    wrong = "configmap://wrong-prompts/judge.yaml"
    cluster.apply(run_manifest("tplwrong", judging={"template": wrong}))
    run = cluster.wait_phase("tplwrong", "Failed", timeout=30)
    assert (
        f"spec.judging.template ({wrong}): user part: unknown placeholder {{foo}}"
        in (run["status"]["message"])
    )
    assert jobs_of(cluster, "tplmiss") == jobs_of(cluster, "tplwrong") == []
    cluster.apply(configmap("e2e-prompts", **{"similar.yaml": '{"user": "Vary: {instruction}"}'}))
    cluster.wait_phase("tplmiss", "Succeeded", timeout=60)
    job = cluster.get("job", "tplmiss-i0-pair-a0")
    volumes = job["spec"]["template"]["spec"]["volumes"]
    assert {"name": "templates-0", "configMap": {"name": "e2e-prompts"}} in volumes


def test_operator_restart_converges_without_duplicates(cluster: E2E, tmp_path: object) -> None:
    """Stop the operator mid-run; a new one finishes the run from the status alone."""
    cluster.require_emulator()
    from pathlib import Path

    from tests.e2e.conftest import start_operator, stop_operator

    cluster.instant()
    log = Path(str(tmp_path)) / "operator.log"
    first = start_operator(cluster, log)
    cluster.apply(run_manifest("restart"))
    wait_until(lambda: jobs_of(cluster, "restart"), what="the first Job")
    assert stop_operator(first) == 0  # Jobs finish while no operator runs
    second = start_operator(cluster, log)
    try:
        cluster.wait_phase("restart", "Succeeded", timeout=60)
    finally:
        assert stop_operator(second) == 0
    jobs = jobs_of(cluster, "restart")
    assert len(jobs) == 6
    assert all(name.endswith("-a0") for name in jobs)
    described = cluster.ns("describe", "selftaughtrun", "restart").stdout
    assert described.count("StageStarted") == 6  # no transition told twice
