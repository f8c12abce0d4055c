"""Bounded retries of whole storage operations."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from selftaught.storage import (
    RetryPolicy,
    StorageAuthError,
    StorageUnavailable,
    call_with_retry,
)


class FakeClock:
    """A clock that advances only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def policy(clock: FakeClock, **overrides: float) -> RetryPolicy:
    settings = {"attempts": 4, "base_delay": 1.0, "max_delay": 3.0, "deadline": 100.0}
    settings.update(overrides)
    return RetryPolicy(sleep=clock.sleep, clock=clock, **settings)  # type: ignore[arg-type]


def flaky(failures: int, result: str = "ok") -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def operation() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise StorageUnavailable("endpoint down", uri="s3://b/k")
        return result

    return calls, operation


def test_transient_failures_are_retried_with_growing_delays() -> None:
    clock = FakeClock()
    calls, operation = flaky(3)
    assert call_with_retry(operation, policy(clock), "reading") == "ok"
    assert len(calls) == 4
    assert len(clock.sleeps) == 3
    # 1, 2, then capped at 3 seconds, each with +-25 % jitter.
    for pause, nominal in zip(clock.sleeps, (1.0, 2.0, 3.0), strict=True):
        assert nominal * 0.75 <= pause <= nominal * 1.25


def test_gives_up_after_the_attempts_and_says_so() -> None:
    clock = FakeClock()
    calls, operation = flaky(10)
    with pytest.raises(StorageUnavailable, match=r"gave up on reading after 4 attempt") as error:
        call_with_retry(operation, policy(clock), "reading")
    assert len(calls) == 4
    assert error.value.uri == "s3://b/k"


def test_gives_up_at_the_deadline_before_the_attempts_run_out() -> None:
    clock = FakeClock()
    calls, operation = flaky(10)
    with pytest.raises(StorageUnavailable, match="after 2 attempt"):
        call_with_retry(
            operation,
            policy(clock, attempts=50, base_delay=2.0, max_delay=2.0, deadline=3.0),
            "reading",
        )
    assert len(calls) == 2
    assert clock.now <= 3.0


def test_permanent_errors_are_not_retried() -> None:
    clock = FakeClock()
    calls: list[int] = []

    def operation() -> None:
        calls.append(1)
        raise StorageAuthError("bad key", uri="s3://b")

    with pytest.raises(StorageAuthError):
        call_with_retry(operation, policy(clock), "writing")
    assert calls == [1]
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"attempts": 0}, id="zero-attempts"),
        pytest.param({"client_attempts": 0}, id="zero-client-attempts"),
        pytest.param({"deadline": 0.0}, id="zero-deadline"),
        pytest.param({"base_delay": -1.0}, id="negative-delay"),
    ],
)
def test_policy_rejects_nonsense(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        RetryPolicy(**settings)  # type: ignore[arg-type]
