"""Rules that live on the API types themselves, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from selftaught import api
from selftaught.api import StageResources
from selftaught.phases import Stage

# (stage, resources) -> pods per attempt
PODS: list[Any] = [
    pytest.param(Stage.SELECT, {"shards": 1, "nodes": 1}, 1, id="select-one"),
    pytest.param(Stage.PAIRS, {"shards": 3}, 3, id="pairs-shards"),
    pytest.param(Stage.JUDGE, {"shards": 8, "nodes": 4}, 8, id="judge-shards-not-nodes"),
    pytest.param(Stage.TRAIN, {"nodes": 4}, 4, id="train-nodes"),
    pytest.param(Stage.TRAIN, {"shards": 5, "nodes": 1}, 1, id="train-ignores-shards"),
    pytest.param(Stage.EVALUATE, {"shards": 6, "nodes": 2}, 1, id="evaluate-one"),
    pytest.param("judge", {"shards": 2}, 2, id="stage-by-name"),
]


@pytest.mark.parametrize(("stage", "resources", "pods"), PODS)
def test_pods_per_stage(stage: Stage | str, resources: dict[str, Any], pods: int) -> None:
    assert StageResources.model_validate(resources).pods(stage) == pods


def test_serve_is_optional_and_defaults_to_one_vllm_replica_on_port_8000() -> None:
    """spec.serve unset serves nothing; an empty serve block gets the documented defaults."""
    without = api.RunSpec.model_validate(
        {"seedModel": "builtin://tiny-judge", "instructions": {"source": "builtin://arithmetic"}}
    )
    assert without.serve is None
    served = api.ServeSpec.model_validate({"engine": "transformers", "gpus": 0, "cpu": "2500m"})
    assert (served.replicas, served.port, served.tensor_parallel) == (1, 8000, 1)
    assert served.torch_threads() == 3
    assert api.ServeSpec().engine == "vllm"
