"""The serving shell against a recording fake API: create once, patch only on a new judge,
leave alone otherwise, delete on removal, create nothing for a buried run."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from selftaught.controller.kube import ApiError
from selftaught.controller.serving import deployment_view, sync_serving
from selftaught.jobs import JobSettings
from selftaught.plan import Plan
from selftaught.serving_manifests import SPEC_HASH_ANNOTATION
from tests.unit.planning import make_run

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
Object = dict[str, Any]


class FakeApi:
    """Objects by path; every write is recorded as (method, path)."""

    def __init__(self) -> None:
        self.objects: dict[str, Object] = {}
        self.writes: list[tuple[str, str]] = []

    def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Object:
        if method == "GET":
            if path not in self.objects:
                raise ApiError(404, "NotFound", path)
            return copy.deepcopy(self.objects[path])
        self.writes.append((method, path))
        if method == "POST":
            made = copy.deepcopy(body)
            made["metadata"]["generation"] = 1
            self.objects[f"{path}/{body['metadata']['name']}"] = made
            return copy.deepcopy(made)
        if method == "PATCH":
            current = self.objects[path]
            current["metadata"].update(body["metadata"])
            current["spec"] = body["spec"]
            current["metadata"]["generation"] += 1
            return copy.deepcopy(current)
        if method == "DELETE":
            if self.objects.pop(path, None) is None:
                raise ApiError(404, "NotFound", path)
            return {}
        raise AssertionError(method)


DEPLOYMENT = "/apis/apps/v1/namespaces/ns/deployments/demo-judge"
SERVICE = "/api/v1/namespaces/ns/services/demo-judge"


def sync(api: FakeApi, *, best: int | None, serve: bool = True, **kwargs: Any) -> Plan:
    run = make_run(serve={"engine": "transformers", "gpus": 0}) if serve else make_run()
    result = Plan(status=run.status.model_copy(deep=True))
    if best is not None:
        result.status.best_iteration = best
        result.status.best_model = f"s3://b/iteration-{best}/train/model"
    result.status.serving = kwargs.pop("serving", None)
    sync_serving(api, run, result, job_settings=JobSettings(), now=NOW, **kwargs)  # type: ignore[arg-type]
    return result


def test_one_create_then_nothing_then_one_patch_per_new_best() -> None:
    api = FakeApi()
    sync(api, best=None)
    assert api.writes == []  # no best yet: nothing to serve
    sync(api, best=1)
    assert api.writes == [
        ("POST", DEPLOYMENT.rsplit("/", 1)[0]),
        ("POST", SERVICE.rsplit("/", 1)[0]),
    ]
    for _ in range(3):
        sync(api, best=1)
    assert len(api.writes) == 2  # the same judge: no write at all
    result = sync(api, best=2)
    assert api.writes[2:] == [("PATCH", DEPLOYMENT)]  # the Service did not change
    template = api.objects[DEPLOYMENT]["spec"]["template"]
    assert template["metadata"]["annotations"]["selftaught.dev/iteration"] == "2"
    assert result.status.serving is not None
    assert result.status.serving.iteration == 2


def test_removing_serve_deletes_both_and_is_then_idle() -> None:
    api = FakeApi()
    first = sync(api, best=1)
    result = sync(api, best=1, serve=False, serving=first.status.serving)
    assert api.writes[-2:] == [("DELETE", DEPLOYMENT), ("DELETE", SERVICE)]
    assert result.status.serving is None
    assert DEPLOYMENT not in api.objects


def test_a_buried_run_gets_no_server() -> None:
    api = FakeApi()
    sync(api, best=1, may_create=lambda: False)
    assert api.writes == []


def test_deployment_view_reads_the_rollout() -> None:
    api = FakeApi()
    sync(api, best=3)
    deployment = api.objects[DEPLOYMENT]
    assert SPEC_HASH_ANNOTATION in deployment["metadata"]["annotations"]
    deployment["status"] = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                            "readyReplicas": 1}  # fmt: skip
    seen = deployment_view(deployment)
    assert seen.serves is not None
    assert (seen.serves.iteration, seen.rolled_out) == (3, True)
    deployment["metadata"]["generation"] = 2
    assert deployment_view(deployment).rolled_out is False
