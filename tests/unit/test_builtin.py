"""Built-in tasks reached by name: the stages never import the demo package themselves."""

from __future__ import annotations

import pytest

from selftaught import builtin
from selftaught.phases import Stage
from selftaught.pod import BadInput
from selftaught.stages import select
from selftaught.storage import MemoryStorage
from tests.unit.stage_env import spec, task


def test_arithmetic_is_registered_on_first_use() -> None:
    found = builtin.from_source("builtin://arithmetic")
    assert found.name == "arithmetic"
    assert "list" in found.categories
    pool = found.pool(seed=1, size=50)
    assert len(pool) == 50
    assert pool == found.pool(seed=1, size=50)  # deterministic for a seed


def test_an_unknown_task_names_the_known_ones() -> None:
    with pytest.raises(builtin.UnknownBuiltin, match=r"'nope'.*arithmetic"):
        builtin.lookup("nope")


def test_select_refuses_an_unknown_builtin_pool_as_bad_input() -> None:
    run_spec = spec(instructions={"source": "builtin://nope", "categories": ["list"]})
    with pytest.raises(BadInput, match=r"builtin://nope: unknown built-in pool \(try arithmetic\)"):
        select.read_pool(task(Stage.SELECT, run_spec), MemoryStorage())
