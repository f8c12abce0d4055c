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


def test_a_bad_priority_is_refused_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["operator", "--priority", "highest"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "--priority" in error
    assert "'highest' is not a number or 'auto'" in error


def test_a_peering_lifetime_too_short_for_a_keepalive_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["operator", "--peering-lifetime", "1"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "--peering-lifetime" in error
    assert "too short" in error
