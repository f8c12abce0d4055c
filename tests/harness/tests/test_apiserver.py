"""The emulator's REST semantics, checked over real HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from selftaught.crd import custom_resource_definition
from tests.harness.apiserver import ApiServer
from tests.harness.tests.conftest import Http

CMS = "/api/v1/namespaces/default/configmaps"
CRD = yaml.safe_load((Path(__file__).parent / "widgets-crd.yaml").read_text())
WIDGETS = "/apis/example.dev/v1/namespaces/default/widgets"


def cm(name: str, **labels: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"a": "1"},
    }


def test_discovery_lists_core_batch_and_crd_resources(http: Http) -> None:
    _, core = http("GET", "/api/v1")
    assert {"namespaces", "pods", "pods/status", "events", "secrets"} <= {
        r["name"] for r in core["resources"]
    }
    _, groups = http("GET", "/apis")
    assert {"batch", "apiextensions.k8s.io", "coordination.k8s.io", "events.k8s.io"} <= {
        g["name"] for g in groups["groups"]
    }
    assert http("GET", "/apis/example.dev/v1")[0] == 404
    assert http("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD)[0] == 201
    _, widgets = http("GET", "/apis/example.dev/v1")
    assert [r["name"] for r in widgets["resources"]] == ["widgets", "widgets/status"]


def test_create_get_list_and_conflicts(http: Http) -> None:
    status, created = http("POST", CMS, cm("one"))
    meta = created["metadata"]
    assert status == 201
    assert meta["uid"]
    assert meta["generation"] == 1
    assert meta["creationTimestamp"]
    status, again = http("POST", CMS, cm("one"))
    assert (status, again["kind"], again["reason"], again["code"]) == (
        409,
        "Status",
        "AlreadyExists",
        409,
    )
    _, listing = http("GET", CMS)
    assert listing["kind"] == "ConfigMapList"
    assert listing["apiVersion"] == "v1"
    assert int(listing["metadata"]["resourceVersion"]) >= int(meta["resourceVersion"])
    assert http("GET", f"{CMS}/nope")[0] == 404
    assert http("POST", "/api/v1/namespaces/ghost/configmaps", cm("x"))[0] == 404


def test_generate_name_never_collides(http: Http) -> None:
    names = {
        http(
            "POST",
            "/api/v1/namespaces/default/events",
            {"metadata": {"generateName": "w1."}, "reason": "R"},
        )[1]["metadata"]["name"]
        for _ in range(20)
    }
    assert len(names) == 20
    assert all(n.startswith("w1.") for n in names)


def test_resource_version_is_global_and_generation_tracks_spec_only(http: Http) -> None:
    http("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD)
    _, w = http(
        "POST",
        WIDGETS,
        {
            "apiVersion": "example.dev/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": 2},
        },
    )
    _, other = http("POST", CMS, cm("later"))
    assert int(other["metadata"]["resourceVersion"]) > int(w["metadata"]["resourceVersion"])
    merge = "application/merge-patch+json"
    _, labelled = http(
        "PATCH", f"{WIDGETS}/w", {"metadata": {"labels": {"a": "b"}}}, content_type=merge
    )
    assert labelled["metadata"]["generation"] == 1
    _, noop = http(
        "PATCH", f"{WIDGETS}/w", {"metadata": {"labels": {"a": "b"}}}, content_type=merge
    )
    assert noop["metadata"]["resourceVersion"] == labelled["metadata"]["resourceVersion"]
    _, resized = http("PATCH", f"{WIDGETS}/w", {"spec": {"size": 4}}, content_type=merge)
    assert resized["metadata"]["generation"] == 2
    _, stat = http(
        "PATCH", f"{WIDGETS}/w/status", {"status": {"phase": "Ready"}}, content_type=merge
    )
    assert stat["metadata"]["generation"] == 2
    assert stat["status"] == {"phase": "Ready"}


def test_status_subresource_is_isolated(http: Http) -> None:
    http("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD)
    _, w = http(
        "POST",
        WIDGETS,
        {"metadata": {"name": "w"}, "spec": {"size": 2}, "status": {"phase": "Sneaky"}},
    )
    assert "status" not in w
    merge = "application/merge-patch+json"
    _, w = http(
        "PATCH",
        f"{WIDGETS}/w",
        {"spec": {"size": 6}, "status": {"phase": "Ignored"}},
        content_type=merge,
    )
    assert w["spec"]["size"] == 6
    assert "status" not in w
    _, w = http(
        "PATCH",
        f"{WIDGETS}/w/status",
        {"spec": {"size": 8}, "status": {"phase": "Ready"}},
        content_type=merge,
    )
    assert w["spec"]["size"] == 6
    assert w["status"]["phase"] == "Ready"
    w["spec"]["size"] = 10
    w["status"]["phase"] = "Changed"
    _, put = http("PUT", f"{WIDGETS}/w", w)
    assert put["spec"]["size"] == 10
    assert put["status"]["phase"] == "Ready"


def test_replace_with_stale_resource_version_conflicts(http: Http) -> None:
    _, obj = http("POST", CMS, cm("c"))
    obj["data"] = {"a": "2"}
    status, fresh = http("PUT", f"{CMS}/c", obj)
    assert status == 200
    assert fresh["data"] == {"a": "2"}
    obj["data"] = {"a": "3"}
    status, body = http("PUT", f"{CMS}/c", obj)
    assert (status, body["reason"]) == (409, "Conflict")
    assert "the object has been modified" in body["message"]


def test_patch_content_types(http: Http) -> None:
    http("POST", CMS, cm("p"))
    _, merged = http(
        "PATCH",
        f"{CMS}/p",
        {"data": {"a": None, "b": "2"}},
        content_type="application/merge-patch+json",
    )
    assert merged["data"] == {"b": "2"}
    rv = merged["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]},
    ]
    status, patched = http("PATCH", f"{CMS}/p", ops, content_type="application/json-patch+json")
    assert status == 200
    assert patched["metadata"]["finalizers"] == ["x/y"]
    status, failed = http("PATCH", f"{CMS}/p", ops, content_type="application/json-patch+json")
    assert status == 422
    assert failed["kind"] == "Status"
    assert "testing value" in failed["message"]
    _, strategic = http(
        "PATCH",
        f"{CMS}/p",
        {"data": {"c": "3"}},
        content_type="application/strategic-merge-patch+json",
    )
    assert strategic["data"] == {"b": "2", "c": "3"}
    assert http("PATCH", f"{CMS}/p", {}, content_type="text/plain")[0] == 415


def test_finalizers_delay_deletion_until_removed(http: Http) -> None:
    http("POST", CMS, {**cm("f"), "metadata": {"name": "f", "finalizers": ["keep/me"]}})
    status, marked = http("DELETE", f"{CMS}/f")
    assert status == 200
    assert marked["metadata"]["deletionTimestamp"]
    assert http("GET", f"{CMS}/f")[0] == 200
    http(
        "PATCH",
        f"{CMS}/f",
        {"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )
    assert http("GET", f"{CMS}/f")[0] == 404


def test_owner_references_cascade(http: Http) -> None:
    _, root = http("POST", CMS, cm("root"))
    _, mid = http(
        "POST",
        CMS,
        {
            **cm("mid"),
            "metadata": {
                "name": "mid",
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": "root",
                        "uid": root["metadata"]["uid"],
                    }
                ],
            },
        },
    )
    http(
        "POST",
        CMS,
        {
            **cm("leaf"),
            "metadata": {
                "name": "leaf",
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": "mid",
                        "uid": mid["metadata"]["uid"],
                    }
                ],
            },
        },
    )
    http("POST", CMS, cm("bystander"))
    http("DELETE", f"{CMS}/root")
    _, listing = http("GET", CMS)
    assert [o["metadata"]["name"] for o in listing["items"]] == ["bystander"]


def test_label_and_field_selectors(http: Http) -> None:
    for name, labels in [
        ("a", {"app": "x", "tier": "web"}),
        ("b", {"app": "y"}),
        ("c", {"app": "z", "tier": "db"}),
    ]:
        http("POST", CMS, cm(name, **labels))

    def names(query: str) -> list[str]:
        status, listing = http("GET", f"{CMS}?{query}")
        assert status == 200, listing
        return [o["metadata"]["name"] for o in listing["items"]]

    assert names("labelSelector=app%3Dx") == ["a"]
    assert names("labelSelector=app!%3Dx") == ["b", "c"]
    assert names("labelSelector=app+in+(x,z)") == ["a", "c"]
    assert names("labelSelector=app+notin+(x,z)") == ["b"]
    assert names("labelSelector=tier") == ["a", "c"]
    assert names("labelSelector=!tier") == ["b"]
    assert names("labelSelector=app%3Dz,tier%3Ddb") == ["c"]
    assert names("fieldSelector=metadata.name%3Db") == ["b"]
    assert names("fieldSelector=metadata.namespace!%3Ddefault") == []
    status, _ = http("GET", "/api/v1/configmaps?labelSelector=app+in+x)")
    assert status == 400
    _, everywhere = http("GET", "/api/v1/configmaps")
    assert len(everywhere["items"]) == 3


def test_fault_injection_and_request_log(api: ApiServer, http: Http) -> None:
    api.faults.fail("POST", r"/configmaps$", status=503, times=2)
    assert [http("POST", CMS, cm(f"x{i}"))[0] for i in range(3)] == [503, 503, 201]
    api.faults.fail("*", r"/configmaps/x2$", status=409, times=None)
    assert http("GET", f"{CMS}/x2")[0] == 409
    assert http("GET", f"{CMS}/x2")[0] == 409
    api.faults.clear()
    assert http("GET", f"{CMS}/x2")[0] == 200
    assert api.requests.count(verb="create", resource="configmaps") == 3
    assert api.requests.count(verb="get", resource="configmaps", name="x2") == 3
    assert [r.status for r in api.requests.records() if r.verb == "create"] == [503, 503, 201]


def test_request_log_is_bounded() -> None:
    with ApiServer(request_log=5) as small:
        from tests.harness.tests.conftest import request

        for _ in range(12):
            request(small, "GET", "/version")
        assert len(small.requests.records()) == 5
        assert small.requests.total == 12


def test_crd_deletion_removes_its_objects_and_discovery(http: Http) -> None:
    http("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD)
    http("POST", WIDGETS, {"metadata": {"name": "w"}, "spec": {"size": 2}})
    http("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.dev")
    assert http("GET", "/apis/example.dev/v1")[0] == 404
    assert http("GET", f"{WIDGETS}/w")[0] == 404


def job(name: str) -> dict[str, object]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}
            }
        },
    }


NAMESPACES = "/api/v1/namespaces"
JOBS = "/apis/batch/v1/namespaces/default/jobs"
SERVICES = "/api/v1/namespaces/default/services"


@pytest.mark.parametrize(
    ("path", "body", "field", "words"),
    [
        pytest.param(CMS, cm("Bad_Name"), "metadata.name", "RFC 1123 subdomain", id="underscore"),
        pytest.param(CMS, cm("a" * 254), "metadata.name", "no more than 253", id="254-chars"),
        pytest.param(CMS, cm(".."), "metadata.name", "RFC 1123 subdomain", id="dot-dot"),
        pytest.param(JOBS, job("j" * 64), "metadata.name", "no more than 63", id="job-64"),
        pytest.param(
            NAMESPACES,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}},
            "metadata.name",
            "RFC 1123 label",
            id="namespace-dot",
        ),
        pytest.param(
            SERVICES,
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1svc"}, "spec": {}},
            "metadata.name",
            "DNS-1035 label",
            id="service-digit-first",
        ),
        pytest.param(
            CMS, cm("ok", **{"bad key": "v"}), "metadata.labels", "name part", id="label-key"
        ),
        pytest.param(CMS, cm("ok", k="a b"), "metadata.labels", "a valid label", id="label-value"),
        pytest.param(
            CMS,
            {"metadata": {"name": "ok", "annotations": {"a/b/c": "x"}}},
            "metadata.annotations",
            "name part",
            id="annotation-key",
        ),
        pytest.param(
            CMS,
            {"metadata": {"generateName": "Bad_"}},
            "metadata.name",
            "RFC 1123 subdomain",
            id="generate-name",
        ),
    ],
)
def test_object_meta_is_validated_as_kube_apiserver_does(
    http: Http, path: str, body: dict[str, object], field: str, words: str
) -> None:
    status, answer = http("POST", path, body)
    assert (status, answer["reason"]) == (422, "Invalid"), answer
    causes = answer["details"]["causes"]
    assert any(c["field"] == field and words in c["message"] for c in causes), causes
    assert words in answer["message"]


def test_valid_object_meta_is_admitted_and_generate_name_is_cut_to_fit(http: Http) -> None:
    assert http("POST", CMS, cm("a" * 253, **{"example.com/k": "V_1.x"}))[0] == 201
    assert http("POST", JOBS, job("j" * 63))[0] == 201
    status, made = http("POST", CMS, {"metadata": {"generateName": "g" * 100}})
    assert status == 201
    assert len(made["metadata"]["name"]) == 63


def test_a_label_update_is_validated_too(http: Http) -> None:
    _, made = http("POST", CMS, cm("upd"))
    made["metadata"]["labels"] = {"k": "not valid!"}
    status, answer = http("PUT", f"{CMS}/upd", made)
    assert status == 422, answer


RUNS = "/apis/selftaught.dev/v1alpha1/namespaces/default/selftaughtruns"


@pytest.mark.parametrize(
    ("name", "iterations", "field"),
    [
        pytest.param("ok", 1e20, "spec.iterations", id="float-1e20"),
        pytest.param("ok", 10**30, "spec.iterations", id="beyond-int64"),
        pytest.param("Bad_Name", 3, "metadata.name", id="run-name"),
        pytest.param("a" * 64, 3, "metadata.name", id="run-name-64"),
    ],
)
def test_a_hostile_run_is_a_422_never_a_500(
    http: Http, name: str, iterations: object, field: str
) -> None:
    assert http("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                custom_resource_definition())[0] == 201  # fmt: skip
    body = {
        "apiVersion": "selftaught.dev/v1alpha1",
        "kind": "SelfTaughtRun",
        "metadata": {"name": name},
        "spec": {
            "seedModel": "builtin://tiny-judge",
            "storage": {"uri": "s3://bucket/runs"},
            "instructions": {"source": "builtin://arithmetic"},
            "iterations": iterations,
        },
    }
    status, answer = http("POST", RUNS, body)
    assert status == 422, answer
    assert any(c["field"] == field for c in answer["details"]["causes"]), answer
