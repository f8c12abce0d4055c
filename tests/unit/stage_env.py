"""Shared by the stage tests: a very small warm-started tiny model, built once per session,
and StageTask factories. Sizes are tiny on purpose: the tests check mechanics, not accuracy."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

from selftaught.api import RunSpec
from selftaught.phases import Stage
from selftaught.task import StageTask
from selftaught.tiny import TinyShape, WarmStartPlan, build_tiny_model

SMALL = TinyShape(hidden=32, layers=1, heads=2, intermediate=64, vocab=300, max_positions=128)


@functools.cache
def small_model() -> Path:
    """A 1-layer model after a few warm-start steps: outputs the task's shapes, often wrong."""
    import torch

    torch.set_num_threads(1)
    out = Path(tempfile.mkdtemp(prefix="selftaught-small-model-"))
    plan = WarmStartPlan(skill_steps=40, judge_steps=30, batch_size=32, learning_rate=1e-2)
    return build_tiny_model(out, seed=0, shape=SMALL, plan=plan)


def spec(*, pairs_shards: int = 1, judge_shards: int = 1, **overrides: Any) -> RunSpec:
    cpu = {"engine": "transformers", "gpus": 0, "cpu": "1"}
    body: dict[str, Any] = {
        "seedModel": small_model().as_uri(),
        "storage": {"uri": "file:///unused"},
        "instructions": {
            "source": "builtin://arithmetic",
            "categories": ["math", "list", "other"],
            "maxInstructions": 60,
        },
        "pairs": {"temperature": 1.0, "maxNewTokens": 6},
        "judging": {"samplesPerPair": 3, "temperature": 1.0, "maxNewTokens": 24},
        "training": {
            "learningRate": 1e-3,
            "warmupSteps": 1,
            "epochs": 1,
            "batchSize": 8,
            "microBatchSize": 4,
            "maxLength": 96,
        },
        "evaluation": {"heldOutFraction": 0.25, "maxNewTokens": 24},
        "stages": {
            "select": cpu,
            "train": cpu,
            "evaluate": cpu,
            "pairs": {**cpu, "shards": pairs_shards},
            "judge": {**cpu, "shards": judge_shards},
        },
    }
    body.update(overrides)
    return RunSpec.model_validate(body)


def task(
    stage: Stage,
    run_spec: RunSpec,
    *,
    iteration: int = 0,
    shards: int = 1,
    model: str | None = None,
    init_model: str | None = None,
) -> StageTask:
    return StageTask(
        run="r",
        namespace="ns",
        iteration=iteration,
        stage=stage,
        shards=shards,
        model=model or run_spec.seed_model,
        init_model=init_model,
        spec=run_spec,
    )
