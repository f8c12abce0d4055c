"""The capacity check through the real operator: a run that cannot fit its GPUs is Failed with
a condition naming the stage, the estimate, the card and the fixes, and no Job is ever created."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import E2E, Operator, run_manifest
from tests.e2e.test_operator import jobs_of

pytestmark = pytest.mark.e2e

LLAMA3_70B = {
    "vocabSize": 128256,
    "hiddenSize": 8192,
    "intermediateSize": 28672,
    "numHiddenLayers": 80,
    "numAttentionHeads": 64,
    "numKeyValueHeads": 8,
}


def test_a_run_that_cannot_fit_fails_before_any_job(cluster: E2E, operator: Operator) -> None:
    manifest = run_manifest("too-big", modelArchitecture=LLAMA3_70B, training={"maxLength": 8192})
    manifest["spec"]["stages"]["train"] = {
        "gpus": 8,
        "nodes": 2,
        "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
    }
    cluster.apply(manifest)
    run = cluster.wait_phase("too-big", "Failed", timeout=30)
    failed = {c["type"]: c for c in run["status"]["conditions"]}["Failed"]
    assert failed["reason"] == "InsufficientGPUMemory"
    message = failed["message"]
    assert message.startswith("stage train does not fit its GPUs"), message
    for part in ("113.0 GiB", "NVIDIA-H100-80GB-HBM3's 79.6 GiB", "stages.train.nodes: 4"):
        assert part in message, (part, message)
    assert jobs_of(cluster, "too-big") == []
    assert cluster.get("jobs")["items"] == []
