"""The judge server's Deployment and Service: one table of specs, checked field by field and
against the upstream OpenAPI schemas (strict), like the stage Jobs in test_jobs.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest

from selftaught import names, serving_manifests
from selftaught.serving_manifests import (
    ITERATION_ANNOTATION,
    MODEL_ANNOTATION,
    SPEC_HASH_ANNOTATION,
    build_deployment,
    build_service,
    endpoint,
    spec_hash,
)
from tests.unit.planning import make_run

NEWEST = kubernetes_validate.utils.latest_version()
MODEL = "s3://bucket/runs/ns/demo/iteration-2/train/model"
Manifest = dict[str, Any]
SERVE_CPU = {"engine": "transformers", "gpus": 0, "cpu": "2", "memory": "2Gi"}


def deployment_for(*, model: str = MODEL, iteration: int = 2, **spec: Any) -> Manifest:
    spec.setdefault("serve", {})
    return build_deployment(make_run(**spec), model_uri=model, iteration=iteration)


def pod(deployment: Manifest) -> Manifest:
    return deployment["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def container(deployment: Manifest) -> Manifest:
    return pod(deployment)["containers"][0]  # type: ignore[no-any-return]


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


CASES: list[tuple[str, dict[str, Any], Callable[[Manifest], None]]] = [
    (
        "defaults-one-vllm-replica-on-one-gpu",
        {},
        lambda d: (
            d["spec"]["replicas"] == 1
            and container(d)["resources"]["limits"]["nvidia.com/gpu"] == "1"
            and flag(container(d)["command"], "--engine") == "vllm"
            and flag(container(d)["command"], "--port") == "8000"
        ),
    ),
    (
        "rolling-update-never-drops-below-the-replicas",
        {"serve": {"replicas": 3}},
        lambda d: (
            d["spec"]["replicas"] == 3
            and d["spec"]["strategy"]
            == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
        ),
    ),
    (
        "cpu-transformers-server-requests-no-gpu",
        {"serve": SERVE_CPU},
        lambda d: (
            "nvidia.com/gpu" not in container(d)["resources"]["requests"]
            and container(d)["resources"]["requests"] == {"cpu": "2", "memory": "2Gi"}
            and {"name": "OMP_NUM_THREADS", "value": "2"} in container(d)["env"]
        ),
    ),
    (
        "tensor-parallel-and-gpus",
        {"serve": {"gpus": 4, "tensorParallel": 4}},
        lambda d: (
            container(d)["resources"]["limits"]["nvidia.com/gpu"] == "4"
            and flag(container(d)["command"], "--tensor-parallel") == "4"
        ),
    ),
    (
        "placement-node-selector-tolerations-priority",
        {
            "serve": {
                "nodeSelector": {"nvidia.com/gpu.product": "H100"},
                "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "priorityClassName": "serving",
            }
        },
        lambda d: (
            pod(d)["nodeSelector"] == {"nvidia.com/gpu.product": "H100"}
            and pod(d)["tolerations"]
            == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
            and pod(d)["priorityClassName"] == "serving"
        ),
    ),
    (
        "kueue-queue-label-on-deployment-and-pods",
        {"serve": {"queueName": "serving-queue"}},
        lambda d: (
            d["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "serving-queue"
            and d["spec"]["template"]["metadata"]["labels"]["kueue.x-k8s.io/queue-name"]
            == "serving-queue"
        ),
    ),
    (
        "server-args-max-model-len-and-extra-after-dashes",
        {"serve": {"maxModelLen": 4096, "extraArgs": ["--gpu-memory-utilization", "0.85"]}},
        lambda d: (
            flag(container(d)["command"], "--max-model-len") == "4096"
            and container(d)["command"][-3:] == ["--", "--gpu-memory-utilization", "0.85"]
        ),
    ),
    (
        "s3-settings-and-credentials-only-as-secret-refs",
        {
            "storage": {
                "uri": "s3://bucket/runs",
                "s3": {
                    "endpoint": "http://s3:8333",
                    "accessKeyId": {"name": "s3", "key": "id"},
                    "secretAccessKey": {"name": "s3", "key": "secret"},
                },
            }
        },
        lambda d: (
            json.loads(flag(container(d)["command"], "--s3-settings"))["endpoint"]
            == "http://s3:8333"
            and {"name": "AWS_ENDPOINT_URL_S3", "value": "http://s3:8333"} in container(d)["env"]
            and all(
                "value" not in e for e in container(d)["env"] if e["name"].startswith("AWS_SEC")
            )
        ),
    ),
    (
        "pvc-storage-is-mounted-for-file-models",
        {"storage": {"uri": "file:///artifacts", "volumeClaim": {"claimName": "runs"}}},
        lambda d: (
            {"name": "artifacts", "persistentVolumeClaim": {"claimName": "runs"}}
            in pod(d)["volumes"]
            and {"name": "artifacts", "mountPath": "/artifacts"} in container(d)["volumeMounts"]
        ),
    ),
    (
        "image-serve-over-worker",
        {"serve": {"image": "reg/judge:1"}, "worker": {"image": "reg/worker:1"}},
        lambda d: container(d)["image"] == "reg/judge:1",
    ),
]


@pytest.mark.parametrize(("spec", "check"), [pytest.param(s, c, id=i) for i, s, c in CASES])
def test_deployment_follows_the_serve_spec(spec: dict[str, Any], check: Any) -> None:
    assert check(deployment_for(**spec))


@pytest.mark.parametrize(("spec", "check"), [pytest.param(s, c, id=i) for i, s, c in CASES])
@pytest.mark.parametrize("version", ["1.29.0", NEWEST])
def test_manifests_pass_the_upstream_schema(spec: dict[str, Any], check: Any, version: str) -> None:
    spec.setdefault("serve", {})
    run = make_run(**spec)
    kubernetes_validate.validate(
        build_deployment(run, model_uri=MODEL, iteration=2), version, strict=True
    )
    kubernetes_validate.validate(build_service(run), version, strict=True)


def test_pods_are_restricted_and_probe_the_health_route() -> None:
    deployment = deployment_for()
    spec, server = pod(deployment), container(deployment)
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert server["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert server["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]


def test_owned_by_the_run_and_selected_without_the_stage_labels() -> None:
    """Deleting the run deletes both by owner reference; the pods lack the run-uid label the
    operator lists a run's stage pods by, so a server pod is never taken for a stage."""
    run = make_run(serve={})
    deployment = build_deployment(run, model_uri=MODEL, iteration=2)
    service = build_service(run)
    for made in (deployment, service):
        (owner,) = made["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "SelfTaughtRun",
            "uid-1",
            True,
        )
        assert made["metadata"]["name"] == "demo-judge"
        assert made["metadata"]["labels"][names.LABEL_RUN_UID] == "uid-1"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert (
        deployment["spec"]["selector"]["matchLabels"] == pod_labels == service["spec"]["selector"]
    )
    assert names.LABEL_RUN_UID not in pod_labels
    assert names.LABEL_MANAGED_BY not in pod_labels
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert endpoint(run, run.spec.serve) == "http://demo-judge.ns.svc:8000/v1"  # type: ignore[arg-type]


def test_a_new_best_changes_the_template_and_the_hash_nothing_else_does() -> None:
    """One rollout per change of best: the same judge builds the same object (same hash), a new
    one changes the pod template (annotations + command) and so the hash."""
    first = deployment_for(model=MODEL, iteration=2)
    again = deployment_for(model=MODEL, iteration=2)
    other = deployment_for(model=MODEL.replace("iteration-2", "iteration-3"), iteration=3)
    assert first == again
    assert first["metadata"]["annotations"][SPEC_HASH_ANNOTATION] == spec_hash(first)
    assert spec_hash(first) != spec_hash(other)
    annotations = other["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {MODEL_ANNOTATION: MODEL.replace("iteration-2", "iteration-3"),
                           ITERATION_ANNOTATION: "3"}  # fmt: skip
    assert "iteration-3" in flag(container(other)["command"], "--model-uri")


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        pytest.param("demo", "demo-judge", id="plain"),
        pytest.param("7up", "s-7up-judge", id="leading-digit-gets-a-letter"),
        pytest.param("r" * 63, None, id="long-name-is-cut-to-63"),
    ],
)
def test_serving_name_is_a_dns1035_label(run: str, expected: str | None) -> None:
    made = names.serving_name(run)
    assert len(made) <= 63
    assert made[0].isalpha()
    assert made.endswith("-judge")
    if expected is not None:
        assert made == expected


def test_building_without_serve_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"no spec\.serve"):
        serving_manifests.build_service(make_run())


def test_update_patch_nulls_optional_fields_the_spec_no_longer_sets() -> None:
    """Removing serve.tolerations, nodeSelector or the queue must reach the Deployment: a merge
    patch keeps what it does not mention, so the patch names them with null."""
    placed = {
        "nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "gpu", "operator": "Exists"}],
        "queueName": "serving",
    }
    current = deployment_for(serve=placed)
    current["spec"]["template"]["spec"]["dnsPolicy"] = "ClusterFirst"  # a server default
    desired = deployment_for(serve={})
    patch = serving_manifests.update_patch(current, desired)
    pod_patch = patch["spec"]["template"]["spec"]
    assert pod_patch["nodeSelector"] is None
    assert pod_patch["tolerations"] is None
    assert "dnsPolicy" not in pod_patch  # left as the server defaulted it
    assert patch["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] is None
    assert patch["spec"]["template"]["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] is None
    unchanged = serving_manifests.update_patch(desired, desired)
    assert "nodeSelector" not in unchanged["spec"]["template"]["spec"]
    assert unchanged["spec"] == desired["spec"]
