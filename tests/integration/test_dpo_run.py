"""`selftaught run` with ``training.method: dpo`` end to end on the tiny judge: one iteration.

The judge stage writes preference rows (a correct judgment chosen over an incorrect one for the
same prompt), the train stage trains with TRL's DPOTrainer and uploads a plain model that the
evaluate stage loads, and the status and the table show the method per iteration.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from selftaught.rejection import classify
from tests.integration.test_local_run import command, environment

pytestmark = pytest.mark.slow

MANIFEST = """\
apiVersion: selftaught.dev/v1alpha1
kind: SelfTaughtRun
metadata:
  name: dpo
spec:
  seedModel: builtin://tiny-judge?seed=0
  instructions:
    source: builtin://arithmetic
    categories: [list]
    maxInstructions: 160
  pairs: {temperature: 0.0, maxNewTokens: 8}
  judging: {samplesPerPair: 4, temperature: 1.5, topP: 1.0, maxNewTokens: 32}
  training:
    method: dpo
    dpo: {beta: 0.1, lossType: sigmoid}
    initFrom: seed
    learningRate: 0.001
    warmupSteps: 0
    epochs: 1
    batchSize: 4
    microBatchSize: 4
    maxLength: 128
  evaluation: {heldOutFraction: 0.25, maxNewTokens: 32}
  iterations: 1
  worker: {seed: 0}
  stages:
    select: {engine: transformers, gpus: 0, cpu: "1"}
    pairs: {engine: transformers, gpus: 0, cpu: "1"}
    judge: {engine: transformers, gpus: 0, cpu: "1"}
    train: {engine: transformers, gpus: 0, cpu: "1"}
    evaluate: {engine: transformers, gpus: 0, cpu: "1"}
"""


def test_one_dpo_iteration_trains_on_preferences_and_reports_the_method(
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "dpo.yaml"
    manifest.write_text(MANIFEST)
    done = subprocess.run(
        command(manifest, tmp_path / "runs"),
        env=environment(Path(os.environ["SELFTAUGHT_CACHE"])),  # the session's model cache
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = tmp_path / "runs" / "dpo"
    status = yaml.safe_load((run_dir / "status.yaml").read_text())["status"]
    assert status["phase"] == "Succeeded"
    first = status["history"][1]
    assert first["method"] == "dpo"
    assert 0 < first["judgmentsKept"] <= first["pairs"]
    assert 0.0 <= first["rewardAccuracy"] <= 1.0
    assert isinstance(first["rewardMargin"], float)
    assert 0.0 <= first["scores"]["heldout"]["accuracy"] <= 1.0
    artifacts = run_dir / "artifacts" / "default" / "dpo" / "iteration-1"
    rows = [
        json.loads(line)
        for line in (artifacts / "judge" / "shard-00000" / "judgments.jsonl")
        .read_text()
        .splitlines()
    ]
    assert len(rows) == first["judgmentsKept"]
    for row in rows:  # the rejection rules, on what the tiny judge really wrote
        chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
        assert classify(chosen, row["winner"]) == "kept"
        assert classify(rejected, row["winner"]) == row["rejectedReason"] != "kept"
    model = artifacts / "train" / "model"
    assert (model / "config.json").is_file()
    assert not (model / "adapter_config.json").exists()  # a plain model: evaluate loaded it
    assert "dpo acc" in done.stdout  # the table's method column
