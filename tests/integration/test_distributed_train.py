"""The train stage in two processes (``selftaught worker train --distributed``), as a pod with
two GPUs runs it, here on CPU with torch's gloo backend and a real S3 (SeaweedFS).

What a single-process test cannot show: the two ranks rendezvous, read the same judgments and
seed model (both materialising it from S3 into one cache), train as one data-parallel job with
the global batch unchanged, and only rank 0 uploads; the pod reports one summary and the worker's
exit codes survive the launcher.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from selftaught.api import S3Settings
from selftaught.artifacts import model_prefix, shard_prefix, stage_prefix
from selftaught.local.processes import JobProcesses
from selftaught.phases import EXIT_BAD_INPUT, JobState, Stage
from selftaught.plan import CreateJob
from selftaught.pod import CACHE_ENV, TASK_ENV, TERMINATION_LOG_ENV
from selftaught.storage import S3Storage, materialize_model
from tests.integration.conftest import FAST_RETRY
from tests.integration.seaweedfs import S3Endpoint, free_ports
from tests.unit.stage_env import small_model, spec, task

EXAMPLES_PER_SHARD = 8
JUDGMENT = {
    "prompt": [{"role": "user", "content": "judge: add 1 2 | A: 9 | B: 3"}],
    "completion": [{"role": "assistant", "content": "[[B]]"}],
}


COMMAND = [sys.executable, "-m", "selftaught.cli", "worker", "train", "--distributed"]


def pod_env(task_json: str, pod: Path, endpoint: S3Endpoint, **rendezvous: str) -> dict[str, str]:
    """What the Job gives a train pod, with ``pod`` standing in for its own filesystem."""
    return {
        **os.environ,
        TASK_ENV: task_json,
        TERMINATION_LOG_ENV: str(pod / "termination-log"),
        CACHE_ENV: str(pod / "cache"),
        "OMP_NUM_THREADS": "1",
        "AWS_ACCESS_KEY_ID": endpoint.access_key,
        "AWS_SECRET_ACCESS_KEY": endpoint.secret_key,
        **rendezvous,
    }


def launch(task_json: str, tmp_path: Path, endpoint: S3Endpoint) -> tuple[int, str, str]:
    """``selftaught worker train --distributed`` with 2 processes; (exit code, log, summary)."""
    env = pod_env(task_json, tmp_path, endpoint, NPROC_PER_NODE="2")
    done = subprocess.run(COMMAND, env=env, capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    summary = tmp_path / "termination-log"
    return done.returncode, log, summary.read_text() if summary.exists() else ""


@pytest.fixture
def s3_run(s3_endpoint: S3Endpoint) -> tuple[Any, S3Storage]:
    """A run spec on a fresh S3 prefix, with the seed model and two judge shards committed."""
    root = f"s3://artifacts/ddp-{uuid.uuid4().hex[:8]}"
    storage = S3Storage(
        root,
        endpoint=s3_endpoint.url,
        region=s3_endpoint.region,
        addressing_style="path",
        credentials=s3_endpoint.credentials,
        retry=FAST_RETRY,
    )
    with storage.output("seed") as out:
        out.upload_dir(small_model(), "model")
    run_spec = spec(
        judge_shards=2,
        seedModel=f"{root}/seed/model",
        storage={"uri": root, "s3": {"endpoint": s3_endpoint.url, "addressingStyle": "path"}},
    )
    for shard in range(2):
        with storage.output(shard_prefix("ns", "r", 1, Stage.JUDGE, shard)) as out:
            out.write_jsonl("judgments.jsonl", [JUDGMENT] * EXAMPLES_PER_SHARD)
    return run_spec, storage


def test_two_ranks_train_one_model_and_rank_zero_uploads_it(
    s3_run: tuple[Any, S3Storage], s3_endpoint: S3Endpoint, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    run_spec, storage = s3_run
    train_task = task(Stage.TRAIN, run_spec, iteration=1, init_model=run_spec.seed_model)
    code, log, text = launch(train_task.to_env(), tmp_path, s3_endpoint)
    assert code == 0, log[-3000:]
    summary = json.loads(text)
    assert summary["ranks"] == 2
    assert summary["examples"] == 2 * EXAMPLES_PER_SHARD
    # The global batch stays training.batchSize: 16 examples / batch 8 = 2 steps, as in 1 process.
    assert summary["steps"] == 2 * EXAMPLES_PER_SHARD // run_spec.training.batch_size
    assert summary["model"] == storage.uri_for(model_prefix("ns", "r", 1))
    assert sum(line.startswith('{"stage":"train"') for line in log.splitlines()) == 1
    assert storage.is_committed(stage_prefix("ns", "r", 1, Stage.TRAIN))

    settings = S3Settings(endpoint=s3_endpoint.url, addressing_style="path")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", s3_endpoint.access_key)
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", s3_endpoint.secret_key)
    trained = materialize_model(summary["model"], tmp_path / "check", s3=settings)
    seed = AutoModelForCausalLM.from_pretrained(small_model()).state_dict()
    weights = AutoModelForCausalLM.from_pretrained(trained).state_dict()
    assert set(weights) == set(seed)
    assert any(not torch.equal(weights[name], seed[name]) for name in seed)


def test_bad_input_in_the_ranks_is_the_pods_exit_code(
    s3_run: tuple[Any, S3Storage], s3_endpoint: S3Endpoint, tmp_path: Path
) -> None:
    run_spec, storage = s3_run
    missing = (tmp_path / "no-such-model").as_uri()
    train_task = task(Stage.TRAIN, run_spec, iteration=1, init_model=missing)
    code, log, text = launch(train_task.to_env(), tmp_path, s3_endpoint)
    assert code == EXIT_BAD_INPUT, log[-3000:]
    summary = json.loads(text)
    assert summary["errorType"] == "ModelNotFound"
    assert "no-such-model" in summary["error"]
    assert not storage.is_committed(stage_prefix("ns", "r", 1, Stage.TRAIN))


def test_a_local_run_trains_on_every_gpu_of_the_machine(
    s3_run: tuple[Any, S3Storage], s3_endpoint: S3Endpoint, tmp_path: Path, monkeypatch: Any
) -> None:
    """``selftaught run`` executes the Job's command: with ``gpus: 2`` on train, two ranks (on
    CPU here), started through the fork server like every local stage."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_endpoint.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_endpoint.secret_key)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run_spec, _ = s3_run
    two = run_spec.stages.train.model_copy(update={"gpus": 2})
    run_spec = run_spec.model_copy(
        update={"stages": run_spec.stages.model_copy(update={"train": two})}
    )
    train_task = task(Stage.TRAIN, run_spec, iteration=1, init_model=run_spec.seed_model)
    processes = JobProcesses(
        CreateJob("r-i1-train-a0", train_task),
        tmp_path / "job",
        cache_dir=tmp_path / "cache",
        parallel=1,
    )
    assert processes.command()[-3:] == ["worker", "train", "--distributed"]
    observed = processes.run()
    assert observed.state is JobState.SUCCEEDED, (tmp_path / "job" / "shard-0.log").read_text()
    assert observed.summaries[0].ranks == 2


def test_two_pods_meet_at_pod_zero_and_train_together(
    s3_run: tuple[Any, S3Storage], s3_endpoint: S3Endpoint, tmp_path: Path
) -> None:
    """A ``nodes: 2`` Job: two pods (here two launchers on loopback), one process each; pod 1
    finds pod 0 at MASTER_ADDR:MASTER_PORT, as the headless Service lets it in a cluster."""
    run_spec, storage = s3_run
    train_task = task(Stage.TRAIN, run_spec, iteration=1, init_model=run_spec.seed_model)
    (port,) = free_ports(1)
    pods = []
    for rank in (0, 1):
        pod = tmp_path / f"pod-{rank}"
        pod.mkdir()
        env = pod_env(
            train_task.to_env(),
            pod,
            s3_endpoint,
            NNODES="2",
            NPROC_PER_NODE="1",
            NODE_RANK=str(rank),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
        log = (pod / "log").open("w")
        pods.append((pod, log, subprocess.Popen(COMMAND, env=env, stdout=log, stderr=log)))
    for pod, log, process in pods:
        code = process.wait(timeout=300)
        log.close()
        assert code == 0, (pod / "log").read_text()[-3000:]
    summaries = [json.loads((pod / "termination-log").read_text()) for pod, _, _ in pods]
    assert [s["ranks"] for s in summaries] == [2, 2]
    assert summaries[0]["steps"] == summaries[1]["steps"] == 2
    assert storage.is_committed(stage_prefix("ns", "r", 1, Stage.TRAIN))
