"""The plugin's Service-proxy transport: the path it asks the API server for, and one readable
line for each way it can fail (no ready replica, an error answer, no JSON)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from selftaught.plugin.kube import Cluster
from selftaught.plugin.requests import PluginError


class Answer:
    def __init__(self, status: int, data: bytes) -> None:
        self.status, self.data = status, data

    def read(self) -> bytes:
        return self.data


class FakeClient:
    """The two calls of ``kubernetes.client.ApiClient`` the transport makes."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.sent: list[tuple[str, str, Any]] = []

    def param_serialize(self, method: str, path: str, **kwargs: Any) -> tuple[Any, ...]:
        return method, path, kwargs["header_params"], kwargs["body"], None

    def call_api(self, method: str, url: str, **kwargs: Any) -> Answer:
        self.sent.append((method, url, kwargs["body"]))
        return self.answer


def transport(answer: Answer) -> tuple[Any, FakeClient]:
    cluster = Cluster.__new__(Cluster)
    cluster.client = FakeClient(answer)
    cluster.namespace = "ml"
    return cluster.proxy("demo-judge", 8000), cluster.client


def test_requests_go_to_the_service_proxy_path() -> None:
    call, client = transport(Answer(200, json.dumps({"data": []}).encode()))
    assert call("/v1/models", None) == {"data": []}
    assert call("/v1/chat/completions", {"n": 1}) == {"data": []}
    assert client.sent == [
        ("GET", "/api/v1/namespaces/ml/services/demo-judge:8000/proxy/v1/models", None),
        ("POST", "/api/v1/namespaces/ml/services/demo-judge:8000/proxy/v1/chat/completions",
         {"n": 1}),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        pytest.param(Answer(503, b'{"reason": "ServiceUnavailable"}'), "no ready replica",
                     id="no-ready-replica"),
        pytest.param(Answer(400, b'{"error": {"message": "too long"}}'), "answered 400",
                     id="error-answer"),
        pytest.param(Answer(200, b"<html>"), "sent no JSON", id="not-json"),
    ],
)  # fmt: skip
def test_failures_are_one_line(answer: Answer, message: str) -> None:
    call, _ = transport(answer)
    with pytest.raises(PluginError, match=message):
        call("/v1/models", None)
