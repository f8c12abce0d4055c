"""Fully sharded training (FSDP2) in two ranks on CPU (gloo), measured inside the ranks.

The same judgments, seed model and seed are trained twice with ``selftaught worker train
--distributed`` and two processes: once with ``training.sharding.strategy: full`` and once with
``none`` (one replica per rank, DDP). Each rank prints what it holds (its local bytes of
parameters and of optimizer state) at the end of training; the test reads both ranks' lines.

What this shows:

* each sharded rank holds half the parameters and half the optimizer state of a replica (the
  tiny model's dimensions divide evenly, so "about half" is exactly half here), and only rank 0
  read the checkpoint (rank 1 built the model empty and got its shard by broadcast);
* the loss curve of the sharded run equals the replicated one step by step within
  ``LOSS_TOLERANCE`` (same data order, same seed: only the collectives differ);
* rank 0 gathers the full state dict and uploads a plain model with every weight.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from selftaught.artifacts import model_prefix, shard_prefix
from selftaught.phases import Stage
from selftaught.pod import CACHE_ENV, TASK_ENV, TERMINATION_LOG_ENV
from selftaught.storage import FileStorage
from tests.unit.stage_env import small_model, spec, task

#: fp32 on CPU: FSDP's reduce-scatter and DDP's all-reduce sum in a different order, nothing more.
LOSS_TOLERANCE = 1e-4
EXAMPLES = 8
JUDGMENTS = [
    {
        "prompt": [{"role": "user", "content": f"judge: add {i} 2 | A: 9 | B: {i + 2}"}],
        "completion": [{"role": "assistant", "content": "[[B]]"}],
    }
    for i in range(EXAMPLES)
]
MEMORY_LINE = "selftaught train rank memory: "


def train_in_two_ranks(tmp_path: Path, strategy: str, *, lora: bool = False) -> dict[str, Any]:
    """One two-rank train stage; its summary plus ``ranks``: each rank's memory report."""
    root = tmp_path / strategy / "artifacts"
    storage = FileStorage(root.as_uri())
    training = {
        "learningRate": 1e-3,
        "warmupSteps": 0,
        "epochs": 1,
        "batchSize": 2,
        "microBatchSize": 1,
        "maxLength": 96,
        "sharding": {"strategy": strategy},
        "lora": {"enabled": lora, "rank": 4, "alpha": 8, "dropout": 0.0},
    }
    run_spec = spec(storage={"uri": root.as_uri()}, training=training)
    with storage.output(shard_prefix("ns", "r", 1, Stage.JUDGE, 0)) as out:
        out.write_jsonl("judgments.jsonl", JUDGMENTS)
    train_task = task(Stage.TRAIN, run_spec, iteration=1, init_model=run_spec.seed_model)
    pod = tmp_path / strategy
    env = {
        **os.environ,
        TASK_ENV: train_task.to_env(),
        TERMINATION_LOG_ENV: str(pod / "termination-log"),
        CACHE_ENV: str(pod / "cache"),
        "OMP_NUM_THREADS": "1",
        "NPROC_PER_NODE": "2",
    }
    command = [sys.executable, "-m", "selftaught.cli", "worker", "train", "--distributed"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    (pod / "log").write_text(log)
    assert done.returncode == 0, log[-4000:]
    summary: dict[str, Any] = json.loads((pod / "termination-log").read_text())
    # Two processes share the pod's stderr: lines can interleave, so match the JSON, not lines.
    reports = [json.loads(found) for found in re.findall(MEMORY_LINE + r"(\{[^{}]*\})", log)]
    summary["ranks_memory"] = {report["rank"]: report for report in reports}
    summary["storage"] = storage
    return summary


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("sharded")
    return {strategy: train_in_two_ranks(tmp, strategy) for strategy in ("full", "none")}


def test_each_sharded_rank_holds_half_the_parameters_and_optimizer_state(
    runs: dict[str, dict[str, Any]],
) -> None:
    sharded, replicated = runs["full"], runs["none"]
    assert sharded["sharded"] is True
    assert replicated["sharded"] is False
    assert sorted(sharded["ranks_memory"]) == sorted(replicated["ranks_memory"]) == [0, 1]
    whole = replicated["ranks_memory"][0]
    for rank, held in sharded["ranks_memory"].items():
        # Report the measured figures in the assertion message: bytes per rank vs unsharded.
        figures = f"rank {rank}: {held} vs one replica {whole}"
        assert held["parameterBytes"] == pytest.approx(whole["parameterBytes"] / 2, rel=0.02), (
            figures
        )
        assert held["optimizerBytes"] == pytest.approx(whole["optimizerBytes"] / 2, rel=0.02), (
            figures
        )
    # Rank-0-only loading: rank 1 built the model empty and received its shard by broadcast.
    assert [sharded["ranks_memory"][r]["readCheckpoint"] for r in (0, 1)] == [True, False]
    assert [replicated["ranks_memory"][r]["readCheckpoint"] for r in (0, 1)] == [True, True]
    total = sum(held["parameterBytes"] for held in sharded["ranks_memory"].values())
    assert total == whole["parameterBytes"]  # every parameter lives on exactly one rank
    assert sharded["rankParameterBytes"] == sharded["ranks_memory"][0]["parameterBytes"]


def test_the_sharded_loss_curve_matches_the_replicated_one(
    runs: dict[str, dict[str, Any]],
) -> None:
    sharded = runs["full"]["ranks_memory"][0]["losses"]
    replicated = runs["none"]["ranks_memory"][0]["losses"]
    assert len(sharded) == len(replicated) == EXAMPLES // 2  # batch 2: 4 optimizer steps
    assert sharded == pytest.approx(replicated, abs=LOSS_TOLERANCE)
    assert sharded[-1] < sharded[0]  # it trained: lr 1e-3 on 4 repeated-shape examples


def test_rank_zero_uploads_the_full_model_gathered_from_the_shards(
    runs: dict[str, dict[str, Any]],
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    for strategy in ("full", "none"):
        storage = runs[strategy]["storage"]
        trained_dir = Path(storage.root) / model_prefix("ns", "r", 1)
        trained = AutoModelForCausalLM.from_pretrained(trained_dir).state_dict()
        runs[strategy]["weights"] = trained
    seed = AutoModelForCausalLM.from_pretrained(small_model()).state_dict()
    full, none = runs["full"]["weights"], runs["none"]["weights"]
    assert set(full) == set(none) == set(seed)
    assert all(not torch.equal(full[name], seed[name]) for name in seed)
    for name in seed:
        torch.testing.assert_close(full[name], none[name], atol=1e-5, rtol=1e-4)


def test_lora_trains_sharded_and_uploads_a_merged_plain_model(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    summary = train_in_two_ranks(tmp_path, "full", lora=True)
    assert summary["sharded"] is True
    trained_dir = Path(summary["storage"].root) / model_prefix("ns", "r", 1)
    trained = AutoModelForCausalLM.from_pretrained(trained_dir).state_dict()
    seed = AutoModelForCausalLM.from_pretrained(small_model()).state_dict()
    assert set(trained) == set(seed)  # merged: no lora_A / lora_B keys
    changed = [name for name in seed if not torch.equal(trained[name], seed[name])]
    assert any("proj" in name for name in changed)
