"""Fixtures for the harness's own tests: the public ones plus a raw HTTP helper."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.harness.apiserver import ApiServer
from tests.harness.fixtures import kube, kube_client, kubectl  # noqa: F401

Http = Callable[..., tuple[int, Any]]


@pytest.fixture
def api() -> Iterator[ApiServer]:
    """The emulator alone (no kubelet), with fast bookmarks and a short watch history."""
    with ApiServer(bookmark_interval=0.2, history=50) as server:
        yield server


def request(
    api: ApiServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str = "application/json",
    accept: str = "application/json",
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        api.url + path,
        data=data,
        method=method,
        headers={"Content-Type": content_type, "Accept": accept},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
        err.close()
    text = raw.decode()
    if "watch=true" in path and status == 200:
        return status, [json.loads(line) for line in text.splitlines() if line.strip()]
    try:
        return status, json.loads(text)
    except ValueError:
        return status, [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def http(api: ApiServer) -> Http:
    """``http("GET", "/api/v1/namespaces")`` -> (status, decoded JSON or list of watch events)."""
    return lambda method, path, body=None, **kw: request(api, method, path, body, **kw)
