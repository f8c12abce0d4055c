"""One run through the real worker: the kubelet executes ``selftaught worker <stage>`` for every
Job, on the tiny built-in judge and the built-in arithmetic task (CPU, no downloads)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from tests.e2e.conftest import E2E, Operator, run_manifest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STAGES_MISSING = any(
    importlib.util.find_spec(m) is None
    for m in ("selftaught.worker", "selftaught.stages.select", "selftaught.stages.evaluate")
)


@pytest.mark.skipif(STAGES_MISSING, reason="selftaught.worker / selftaught.stages not there yet")
def test_tiny_run_with_the_real_worker(cluster: E2E, operator: Operator, tmp_path: Path) -> None:
    cluster.require_emulator()  # file:// storage in a temp dir only works where pods run locally
    small = {"engine": "transformers", "gpus": 0, "cpu": "1", "memory": "2Gi", "threads": 1}
    manifest = run_manifest(
        "tiny",
        storage={"uri": f"file://{tmp_path / 'artifacts'}"},
        instructions={"source": "builtin://arithmetic", "categories": ["math"],
                      "maxInstructions": 48},
        pairs={"maxNewTokens": 48, "temperature": 0.0},
        judging={"samplesPerPair": 2, "temperature": 0.9, "topP": 1.0, "maxNewTokens": 96},
        training={"learningRate": 0.001, "lrScheduler": "constant", "warmupSteps": 0,
                  "epochs": 1, "batchSize": 8, "microBatchSize": 8, "maxLength": 256},
        evaluation={"heldOutFraction": 0.25, "maxNewTokens": 96},
        # The session's model cache (tests/conftest.py): the tiny judge is built once per run
        # of the suite, not once per test.
        worker={"modelCache": os.environ["SELFTAUGHT_CACHE"]},
        stages={s: dict(small) for s in ("select", "pairs", "judge", "train", "evaluate")},
    )  # fmt: skip
    cluster.apply(manifest)
    run = cluster.wait_phase("tiny", "Succeeded", timeout=900)
    history = run["status"]["history"]
    assert len(history) == 2
    assert 0.0 <= history[1]["scores"]["heldout"]["accuracy"] <= 1.0
    assert history[1]["judgmentsSampled"] > 0
    assert history[1]["trainingLoss"] is not None
    assert (tmp_path / "artifacts").exists()
