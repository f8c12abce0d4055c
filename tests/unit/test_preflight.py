"""The operator's checks before it watches: what each answer of the API server leads to."""

from __future__ import annotations

from typing import Any

import pytest

from selftaught.controller.kube import ApiError
from selftaught.controller.preflight import (
    StartupError,
    missing_namespaces,
    wait_for_api,
)


class ScriptedApi:
    """Answers ``request`` from a script: an exception to raise or a body to return."""

    host = "https://api.example:6443"

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def request(self, method: str, path: str, **_: Any) -> Any:
        self.calls.append(path)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_unreachable_then_up_waits_with_doubling_delays() -> None:
    api = ScriptedApi(OSError("refused"), ApiError(503, "ServiceUnavailable", ""), {})
    slept: list[float] = []
    assert wait_for_api(api, sleep=slept.append)  # type: ignore[arg-type]
    assert slept == [1.0, 2.0]


@pytest.mark.parametrize(
    ("answer", "up"),
    [
        pytest.param({}, True, id="200"),
        pytest.param(ApiError(403, "Forbidden", "no /version for you"), True, id="403-answered"),
    ],
)
def test_an_answer_means_reachable(answer: Any, up: bool) -> None:
    assert wait_for_api(ScriptedApi(answer), sleep=lambda _: None) is up  # type: ignore[arg-type]


def test_refused_credentials_stop_the_start() -> None:
    api = ScriptedApi(ApiError(401, "Unauthorized", "token expired"))
    with pytest.raises(StartupError, match="refused our credentials: 401 Unauthorized"):
        wait_for_api(api, sleep=lambda _: None)  # type: ignore[arg-type]


def test_missing_namespaces_come_from_one_list() -> None:
    api = ScriptedApi({"items": [{"metadata": {"name": "default"}}, {"metadata": {"name": "a"}}]})
    assert missing_namespaces(api, ("default", "ml-team")) == ["ml-team"]  # type: ignore[arg-type]
    assert api.calls == ["/api/v1/namespaces"]


def test_no_namespace_check_when_watching_all_or_when_listing_is_forbidden() -> None:
    assert missing_namespaces(ScriptedApi(), ()) == []  # type: ignore[arg-type]
    forbidden = ScriptedApi(ApiError(403, "Forbidden", "cannot list namespaces"))
    assert missing_namespaces(forbidden, ("ml-team",)) == []  # type: ignore[arg-type]
