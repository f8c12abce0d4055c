"""Storage faults seen by a real worker (``selftaught worker <stage>`` with ``SELFTAUGHT_TASK``)
against a real SeaweedFS: the store stopped in the middle of a stage and restarted, refused
credentials, a missing bucket, a truncated upstream artifact.

Storage-level behaviour (atomic commit, retries, error classes) is already proven in
``tests/integration/test_s3_seaweedfs.py`` and ``tests/unit/test_storage*.py``; this module adds
what only the stage and the worker shell decide: the exit code, the summary, what gets committed,
and that the planner turns "transient" into a retry that then succeeds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from selftaught import names
from selftaught.artifacts import stage_prefix
from selftaught.controller.observe import observe_job
from selftaught.jobs import CONTAINER_NAME
from selftaught.phases import EXIT_BAD_INPUT, EXIT_OK, EXIT_TRANSIENT, JobState, Stage
from selftaught.plan import CreateJob
from selftaught.storage import S3Storage
from selftaught.task import StageTask
from tests.integration.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedFS
from tests.unit import planning, stage_env

pytestmark = pytest.mark.slow

SELFTAUGHT = str(Path(sys.executable).parent / "selftaught")


@pytest.fixture(scope="module")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS for the module, restartable on the same data and ports."""
    server = SeaweedFS(data_dir=tmp_path_factory.mktemp("weed"), buckets=("artifacts",))
    with server:
        yield server


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from selftaught.tiny.task import instruction_pool

    path = tmp_path_factory.mktemp("pool") / "pool.jsonl"
    lines = [json.dumps({"instruction": text}) for text in instruction_pool(seed=0, size=30)]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Result:
    code: int
    summary: dict[str, Any]
    stderr: str


def s3_task(weed: SeaweedFS, pool: Path, stage: Stage, *, bucket: str = "artifacts") -> StageTask:
    spec = stage_env.spec(
        storage={
            "uri": f"s3://{bucket}/runs",
            "s3": {"endpoint": weed.endpoint.url, "addressingStyle": "path"},
        },
        instructions={
            "source": pool.as_uri(),
            "categories": ["math", "list", "other"],
            "maxInstructions": 30,
        },
    )
    return stage_env.task(stage, spec)


def start_worker(
    task: StageTask, tmp: Path, *, credentials: tuple[str, str] = (ACCESS_KEY, SECRET_KEY)
) -> tuple[subprocess.Popen[str], Path]:
    """``selftaught worker <stage>`` as a pod would run it (env in; exit code + summary out)."""
    log = tmp / f"termination-{time.monotonic_ns()}"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp),
        "SELFTAUGHT_TASK": task.to_env(),
        "SELFTAUGHT_TERMINATION_LOG": str(log),
        "SELFTAUGHT_CACHE": str(tmp / "cache"),
        "AWS_ACCESS_KEY_ID": credentials[0],
        "AWS_SECRET_ACCESS_KEY": credentials[1],
        "AWS_DEFAULT_REGION": "us-east-1",
        "OMP_NUM_THREADS": "1",
    }
    process = subprocess.Popen(
        [SELFTAUGHT, "worker", task.stage.value],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return process, log


def finish_worker(process: subprocess.Popen[str], log: Path) -> Result:
    try:
        _, stderr = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    return Result(process.returncode, json.loads(log.read_text()), stderr)


def run_worker(
    task: StageTask, tmp: Path, *, credentials: tuple[str, str] = (ACCESS_KEY, SECRET_KEY)
) -> Result:
    return finish_worker(*start_worker(task, tmp, credentials=credentials))


def storage(weed: SeaweedFS) -> S3Storage:
    return S3Storage(
        "s3://artifacts/runs",
        endpoint=weed.endpoint.url,
        region="us-east-1",
        addressing_style="path",
        credentials=weed.endpoint.credentials,
    )


def failed_job(task: StageTask, exit_code: int, message: str) -> dict[str, Any]:
    """The Job + pod a kubelet reports for a worker that exited ``exit_code``."""
    name = names.job_name(task.run, task.iteration, task.stage, task.attempt)
    labels = names.child_labels(
        run=task.run,
        run_uid="uid-1",
        iteration=task.iteration,
        stage=task.stage,
        attempt=task.attempt,
    )
    job = {
        "metadata": {"name": name, "labels": labels},
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "Backoff"}]},
    }
    terminated = {"exitCode": exit_code, "reason": "Error", "message": message}
    pod = {
        "metadata": {"name": f"{name}-abcde", "labels": labels},
        "status": {
            "phase": "Failed",
            "containerStatuses": [{"name": CONTAINER_NAME, "state": {"terminated": terminated}}],
        },
    }
    return {"job": job, "pod": pod}


def test_store_down_mid_stage_is_transient_and_the_retry_succeeds(
    weed: SeaweedFS, pool: Path, tmp_path: Path
) -> None:
    """The store stops while select labels; the commit finds it gone: exit 3, nothing
    committed. The planner retries exit 3; with the store back, attempt 1 commits."""
    task = s3_task(weed, pool, Stage.SELECT)
    prefix = stage_prefix(task.namespace, task.run, 0, Stage.SELECT)
    process, log = start_worker(task, tmp_path)  # reads the pool, loads the model, labels...
    time.sleep(1.0)
    weed.stop()  # ...while the store goes away; the worker only meets it at the commit
    try:
        down = finish_worker(process, log)
    finally:
        weed.start()  # same data and ports
    assert down.code == EXIT_TRANSIENT, down.stderr[-2000:]
    assert down.summary["errorType"] == "StorageUnavailable"
    assert "s3://artifacts/runs/" in down.summary["error"]
    assert not storage(weed).is_committed(prefix), "a failed stage must not look finished"

    # The planner: the pod that exited 3 is a retryable failure -> attempt 1 after a backoff.
    observed = failed_job(task, down.code, json.dumps(down.summary))
    failure = observe_job(observed["job"], [observed["pod"]])
    assert failure is not None
    assert failure.state is JobState.FAILED

    def outcome(create: CreateJob) -> Any:
        if create.task.stage is Stage.SELECT and create.task.attempt == 0:
            return failure.model_copy(update={"name": create.name})
        return planning.observed(create)

    run, jobs, plans = planning.drive(planning.make_run(iterations=1), outcome)
    assert run.status.phase == "Succeeded"
    assert names.job_name("demo", 0, Stage.SELECT, 1) in jobs
    retry = next(e for p in plans for e in p.events if e.reason == "StageRetrying")
    assert "exited 3" in retry.message
    assert "s3://artifacts/runs/" in retry.message

    again = run_worker(task.model_copy(update={"attempt": 1}), tmp_path)
    assert again.code == EXIT_OK, again.stderr[-2000:]
    assert storage(weed).is_committed(prefix)
    rows = list(storage(weed).read_committed_jsonl(prefix, "instructions.jsonl"))
    assert len(rows) == again.summary["instructions"] > 0


@pytest.mark.parametrize(
    ("case", "make", "where"),
    [
        (
            "bad-credentials",
            lambda weed, pool, tmp: run_worker(
                s3_task(weed, pool, Stage.SELECT), tmp, credentials=("AKIAWRONG", "wrong")
            ),
            "s3://artifacts/runs/",
        ),
        (
            "missing-bucket",
            lambda weed, pool, tmp: run_worker(
                s3_task(weed, pool, Stage.SELECT, bucket="no-such-bucket"), tmp
            ),
            "s3://no-such-bucket/runs",
        ),
    ],
    ids=["bad-credentials", "missing-bucket"],
)
def test_permanent_storage_errors_are_bad_input_naming_the_uri(
    weed: SeaweedFS,
    pool: Path,
    tmp_path: Path,
    case: str,
    make: Callable[[SeaweedFS, Path, Path], Result],
    where: str,
) -> None:
    result = make(weed, pool, tmp_path)
    assert result.code == EXIT_BAD_INPUT, result.stderr[-2000:]
    assert where in result.summary["error"], result.summary
    assert "wrong" not in json.dumps(result.summary) + result.stderr  # no secret echoed


def test_truncated_artifact_is_never_taken_as_finished(
    weed: SeaweedFS, pool: Path, tmp_path: Path
) -> None:
    """select commits; its file then loses its last line (a clean line boundary, so the JSONL
    still parses). pairs must refuse it, naming the file, instead of working on less data."""
    select = s3_task(weed, pool, Stage.SELECT)
    assert run_worker(select, tmp_path).code == EXIT_OK
    store = storage(weed)
    prefix = stage_prefix(select.namespace, select.run, 0, Stage.SELECT)
    key = f"{prefix}/instructions.jsonl"
    lines = store.read_bytes(key).splitlines(keepends=True)
    store.write_bytes(key, b"".join(lines[:-1]))
    result = run_worker(s3_task(weed, pool, Stage.PAIRS), tmp_path)
    assert result.code != EXIT_OK, "a truncated artifact was taken as finished"
    assert result.code == EXIT_BAD_INPUT  # retrying pairs would read the same bytes again
    assert "truncated" in result.summary["error"]
    assert store.uri_for(key) in result.summary["error"]
