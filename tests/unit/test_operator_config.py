"""Operator settings that are not kopf's: the peering priority a replica runs with."""

from __future__ import annotations

import pytest

from selftaught.cli import main
from selftaught.controller.config import peering_priority


def test_auto_priority_is_stable_per_pod_and_differs_between_pods() -> None:
    """Replicas of one Deployment share '--priority auto' but not their pod names."""
    pods = [f"selftaught-7c9f8d6b5-{suffix}" for suffix in ("x2kqp", "m8rtz", "b4w9n", "q7d2c")]
    priorities = [peering_priority("auto", pod) for pod in pods]
    assert priorities == [peering_priority("AUTO", pod) for pod in pods]  # deterministic
    assert len(set(priorities)) == len(pods)
    assert all(1 <= p <= 1_000_000 for p in priorities)


def test_a_number_is_taken_as_it_is() -> None:
    assert peering_priority("100", "any") == 100
    assert peering_priority("-5", "any") == -5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["--priority", "highest"], "'highest' is not a number or 'auto'", id="priority"
        ),
        pytest.param(["--peering-lifetime", "1"], "too short", id="lifetime-too-short"),
    ],
)
def test_a_bad_peering_flag_is_refused_naming_it(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["operator", *argv])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert argv[0] in error
    assert message in error
