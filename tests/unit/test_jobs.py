"""The Job builder: one table of specs, every manifest checked field by field and by schema.

Each case names a spec variation and the checks that must hold for it; on top of that every
manifest (and Service) must pass the upstream OpenAPI schema of Kubernetes 1.29 and of the
newest release ``kubernetes-validate`` ships, in strict mode (unknown fields are errors).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest

from selftaught import names
from selftaught.jobs import (
    COMPLETION_INDEX_ANNOTATION,
    KUEUE_QUEUE_LABEL,
    JobSettings,
    build_job,
    build_service,
)
from selftaught.phases import Stage
from selftaught.plan import CreateJob
from selftaught.task import StageTask
from tests.unit.planning import make_run

NEWEST = kubernetes_validate.utils.latest_version()
VERSIONS = ["1.29.0", NEWEST]
GPU = "nvidia.com/gpu"

Manifest = dict[str, Any]


def create_for(
    stage: Stage = Stage.SELECT, *, iteration: int = 0, attempt: int = 0, **spec: Any
) -> tuple[Any, CreateJob]:
    run = make_run(**spec)
    resources = run.spec.stages.of(stage)
    task = StageTask(
        run=run.name,
        namespace=run.namespace,
        iteration=iteration,
        stage=stage,
        attempt=attempt,
        shards=resources.shards if stage.shardable else 1,
        model="builtin://tiny-judge",
        spec=run.spec,
    )
    return run, CreateJob(names.job_name(run.name, iteration, stage, attempt), task)


def pod(job: Manifest) -> Manifest:
    return job["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def container(job: Manifest) -> Manifest:
    return pod(job)["containers"][0]  # type: ignore[no-any-return]


def env(job: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(job)["env"]}


def mounts(job: Manifest) -> dict[str, str]:
    return {m["mountPath"]: m["name"] for m in container(job)["volumeMounts"]}


S3 = {
    "uri": "s3://bucket/runs",
    "s3": {
        "endpoint": "http://seaweed:8333",
        "region": "eu-west-1",
        "accessKeyId": {"name": "s3-creds", "key": "id"},
        "secretAccessKey": {"name": "s3-creds", "key": "secret"},
    },
}
GPU_TRAIN = {"train": {"gpus": 8, "cpu": "32", "memory": "512Gi"}}


def check_defaults(job: Manifest, service: Manifest | None) -> None:
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] == JobSettings().ttl_seconds_after_finished
    assert "completionMode" not in spec
    assert "suspend" not in spec
    assert "activeDeadlineSeconds" not in spec
    assert pod(job)["restartPolicy"] == "Never"
    assert container(job)["command"] == ["selftaught", "worker", "select"]
    assert container(job)["image"] == "ghcr.io/selftaught/worker:0.1.0"
    assert container(job)["terminationMessagePolicy"] == "FallbackToLogsOnError"
    resources = container(job)["resources"]
    assert resources["requests"] == {"cpu": "4", "memory": "32Gi", GPU: "1"}
    assert resources["limits"] == {"memory": "32Gi", GPU: "1"}
    assert service is None


def check_pod_failure_policy(job: Manifest, service: Manifest | None) -> None:
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    assert rules[1]["action"] == "FailJob"
    assert rules[1]["onExitCodes"] == {"containerName": "worker", "operator": "In", "values": [2]}


def check_task_env(job: Manifest, service: Manifest | None) -> None:
    values = env(job)
    task = StageTask.from_env(values["SELFTAUGHT_TASK"])
    assert (task.run, task.stage, task.iteration) == ("demo", Stage.SELECT, 0)
    assert values["SELFTAUGHT_CACHE"] == "/cache"
    assert values["HOME"] == "/tmp"


def check_restricted(job: Manifest, service: Manifest | None) -> None:
    spec = pod(job)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 1000
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    security = container(job)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    assert mounts(job) == {"/dev/shm": "dshm", "/tmp": "tmp", "/cache": "cache"}
    for volume in spec["volumes"]:  # restricted PSS: only these volume types
        assert set(volume) - {"name"} <= {"emptyDir", "persistentVolumeClaim", "configMap"}


def check_owner_and_labels(job: Manifest, service: Manifest | None) -> None:
    (owner,) = job["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "selftaught.dev/v1alpha1",
        "kind": "SelfTaughtRun",
        "name": "demo",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    labels = job["metadata"]["labels"]
    assert labels[names.LABEL_MANAGED_BY] == names.MANAGED_BY
    assert labels[names.LABEL_STAGE] == "select"
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    assert job["metadata"]["name"] == "demo-i0-sel-a0"


def check_cpu_only(job: Manifest, service: Manifest | None) -> None:
    resources = container(job)["resources"]
    assert resources == {
        "requests": {"cpu": "2", "memory": "2Gi"},
        "limits": {"memory": "2Gi"},
    }
    assert env(job)["OMP_NUM_THREADS"] == "2"


def check_s3_secret_refs(job: Manifest, service: Manifest | None) -> None:
    values = env(job)
    assert values["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "s3-creds", "key": "id"}}
    assert values["AWS_SECRET_ACCESS_KEY"] == {
        "secretKeyRef": {"name": "s3-creds", "key": "secret"}
    }
    assert values["AWS_ENDPOINT_URL_S3"] == "http://seaweed:8333"
    assert values["AWS_REGION"] == "eu-west-1"
    for item in container(job)["env"]:  # credentials never appear as literal values
        if item["name"].startswith("AWS_") and "KEY" in item["name"]:
            assert "value" not in item


def check_no_s3_env(job: Manifest, service: Manifest | None) -> None:
    assert not [k for k in env(job) if k.startswith("AWS_")]


def check_pvc(job: Manifest, service: Manifest | None) -> None:
    volumes = {v["name"]: v for v in pod(job)["volumes"]}
    assert volumes["artifacts"]["persistentVolumeClaim"] == {"claimName": "runs"}
    assert mounts(job)["/data"] == "artifacts"


def check_template_configmaps(job: Manifest, service: Manifest | None) -> None:
    """Each ConfigMap a template names is one read-only volume, whatever the keys or fields."""
    volumes = [v for v in pod(job)["volumes"] if "configMap" in v]
    assert volumes == [
        {"name": "templates-0", "configMap": {"name": "math-prompts"}},
        {"name": "templates-1", "configMap": {"name": "prompts"}},
    ]
    found = {m["mountPath"]: m for m in container(job)["volumeMounts"] if "templates" in m["name"]}
    assert found == {
        "/etc/selftaught/configmaps/math-prompts": {
            "name": "templates-0",
            "mountPath": "/etc/selftaught/configmaps/math-prompts",
            "readOnly": True,
        },
        "/etc/selftaught/configmaps/prompts": {
            "name": "templates-1",
            "mountPath": "/etc/selftaught/configmaps/prompts",
            "readOnly": True,
        },
    }


def check_no_configmaps(job: Manifest, service: Manifest | None) -> None:
    assert not [v for v in pod(job)["volumes"] if "configMap" in v]


def check_placement(job: Manifest, service: Manifest | None) -> None:
    spec = pod(job)
    assert spec["nodeSelector"] == {"gpu": "h100"}
    assert spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert spec["affinity"]["nodeAffinity"]
    assert spec["priorityClassName"] == "batch-low"
    assert spec["serviceAccountName"] == "judge-worker"
    assert spec["imagePullSecrets"] == [{"name": "ghcr"}]
    assert container(job)["image"] == "registry.local/worker:dev"
    assert container(job)["imagePullPolicy"] == "Always"
    assert job["spec"]["activeDeadlineSeconds"] == 3600


def check_kueue(job: Manifest, service: Manifest | None) -> None:
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "team-a"
    assert KUEUE_QUEUE_LABEL not in job["spec"]["template"]["metadata"]["labels"]


def check_sharded(job: Manifest, service: Manifest | None) -> None:
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 4, 4)
    assert StageTask.from_env(env(job)["SELFTAUGHT_TASK"]).shards == 4
    assert service is None


def check_multi_node(job: Manifest, service: Manifest | None) -> None:
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    values = env(job)
    assert values["MASTER_ADDR"] == "demo-i1-train-a0-0.demo-i1-train-a0"
    assert values["MASTER_PORT"] == "29500"
    assert values["NNODES"] == "2"
    assert values["NPROC_PER_NODE"] == "8"
    assert values["NODE_RANK"] == {
        "fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"}
    }
    assert container(job)["command"] == ["selftaught", "worker", "train", "--distributed"]
    assert pod(job)["subdomain"] == "demo-i1-train-a0"
    assert container(job)["resources"]["limits"][GPU] == "8"
    assert service is not None
    assert service["metadata"]["name"] == "demo-i1-train-a0"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    selector = service["spec"]["selector"]
    assert selector.items() <= job["spec"]["template"]["metadata"]["labels"].items()
    assert service["metadata"]["ownerReferences"] == job["metadata"]["ownerReferences"]


def check_multi_gpu_one_pod(job: Manifest, service: Manifest | None) -> None:
    """One pod with 8 GPUs trains in 8 processes: rendezvous on localhost, no Service."""
    assert "completionMode" not in job["spec"]
    values = env(job)
    assert (values["NNODES"], values["NPROC_PER_NODE"]) == ("1", "8")
    assert "MASTER_ADDR" not in values
    assert "NODE_RANK" not in values
    assert container(job)["command"] == ["selftaught", "worker", "train", "--distributed"]
    assert "subdomain" not in pod(job)
    assert service is None


def check_one_process(job: Manifest, service: Manifest | None) -> None:
    """Judging uses a pod's GPUs from one process (vLLM tensor parallelism)."""
    assert container(job)["command"] == ["selftaught", "worker", "judge"]
    assert "NPROC_PER_NODE" not in env(job)


def check_cache_in_tmp(job: Manifest, service: Manifest | None) -> None:
    assert mounts(job) == {"/dev/shm": "dshm", "/tmp": "tmp"}


CPU = {s: {"engine": "transformers", "gpus": 0, "cpu": "2", "memory": "2Gi"} for s in Stage}
PLACED = {
    "select": {
        "image": "registry.local/worker:dev",
        "nodeSelector": {"gpu": "h100"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                    ]
                }
            }
        },
        "priorityClassName": "batch-low",
        "activeDeadlineSeconds": 3600,
    }
}
WORKER = {
    "image": "ghcr.io/selftaught/worker:0.1.0",
    "imagePullPolicy": "Always",
    "imagePullSecrets": [{"name": "ghcr"}],
    "serviceAccountName": "judge-worker",
}

Check = Callable[[Manifest, Manifest | None], None]
CASES: list[Any] = [
    pytest.param(Stage.SELECT, 0, {}, [check_defaults, check_task_env], id="defaults"),
    pytest.param(Stage.SELECT, 0, {}, [check_pod_failure_policy], id="pod-failure-policy"),
    pytest.param(Stage.SELECT, 0, {}, [check_restricted], id="restricted-pss"),
    pytest.param(Stage.SELECT, 0, {}, [check_owner_and_labels, check_no_s3_env], id="owner"),
    pytest.param(Stage.SELECT, 0, {"stages": CPU}, [check_cpu_only], id="cpu-only"),
    pytest.param(Stage.SELECT, 0, {"storage": S3}, [check_s3_secret_refs], id="s3-secret-refs"),
    pytest.param(
        Stage.SELECT,
        0,
        {
            "storage": {
                "uri": "file:///data/runs",
                "volumeClaim": {"claimName": "runs", "mountPath": "/data"},
            }
        },
        [check_pvc, check_no_configmaps],
        id="pvc",
    ),
    pytest.param(
        Stage.PAIRS,
        0,
        {
            "pairs": {"template": "configmap://prompts/similar.yaml"},
            "judging": {
                "template": "configmap://prompts/judge.jsonl#pair-v2",
                "referenceTemplate": "configmap://math-prompts/judge.jsonl#pair-math-v1",
            },
            "instructions": {
                "source": "s3://bucket/x.jsonl",
                "labelTemplate": "s3://bucket/label.yaml",
            },
        },
        [check_template_configmaps],
        id="configmap-templates",
    ),
    pytest.param(
        Stage.SELECT, 0, {"stages": PLACED, "worker": WORKER}, [check_placement], id="placement"
    ),
    pytest.param(
        Stage.SELECT, 0, {"stages": {"select": {"queueName": "team-a"}}}, [check_kueue], id="kueue"
    ),
    pytest.param(
        Stage.JUDGE, 1, {"stages": {"judge": {"shards": 4}}}, [check_sharded], id="sharded-judge"
    ),
    pytest.param(
        Stage.TRAIN,
        1,
        {"stages": {"train": {**GPU_TRAIN["train"], "nodes": 2}}},
        [check_multi_node],
        id="multi-node-train",
    ),
    pytest.param(Stage.TRAIN, 1, {"stages": GPU_TRAIN}, [check_multi_gpu_one_pod], id="multi-gpu"),
    pytest.param(
        Stage.JUDGE,
        1,
        {"stages": {"judge": {"engine": "vllm", "gpus": 4, "tensorParallel": 4}}},
        [check_one_process],
        id="judge-one-process",
    ),
    pytest.param(
        Stage.SELECT,
        0,
        {"worker": {"modelCache": "/tmp/models"}},
        [check_cache_in_tmp],
        id="cache-inside-tmp",
    ),
]


@pytest.mark.parametrize(("stage", "iteration", "spec", "checks"), CASES)
def test_job_manifest(
    stage: Stage, iteration: int, spec: dict[str, Any], checks: list[Check]
) -> None:
    run, create = create_for(stage, iteration=iteration, **spec)
    job = build_job(run, create, operator_settings=JobSettings())
    service = build_service(run, create)
    for check in checks:
        check(job, service)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("stage", "iteration", "spec", "checks"), CASES)
def test_manifest_passes_upstream_schema(
    stage: Stage, iteration: int, spec: dict[str, Any], checks: list[Check], version: str
) -> None:
    run, create = create_for(stage, iteration=iteration, **spec)
    kubernetes_validate.validate(build_job(run, create), version, strict=True)
    service = build_service(run, create)
    if service is not None:
        kubernetes_validate.validate(service, version, strict=True)


def test_schema_check_can_fail() -> None:
    """Guard: the schema check rejects an unknown field, so the test above means something."""
    run, create = create_for()
    job = build_job(run, create)
    job["spec"]["template"]["spec"]["containers"][0]["gpus"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, "1.29.0", strict=True)


def test_settings_are_applied() -> None:
    run, create = create_for()
    settings = JobSettings(
        ttl_seconds_after_finished=60,
        run_as_user=2000,
        shm_size_limit=None,
        worker_image="registry.local/worker:9",
        pushgateway="http://pushgateway:9091",
    )
    job = build_job(run, create, operator_settings=settings)
    assert container(job)["image"] == "registry.local/worker:9"
    assert env(job)["SELFTAUGHT_PUSHGATEWAY"] == "http://pushgateway:9091"
    assert job["spec"]["ttlSecondsAfterFinished"] == 60
    assert pod(job)["securityContext"]["runAsUser"] == 2000
    assert {v["name"]: v for v in pod(job)["volumes"]}["dshm"]["emptyDir"] == {"medium": "Memory"}


@pytest.mark.parametrize(
    ("resources", "threads"),
    [
        pytest.param({"cpu": "4"}, 4, id="whole-cores"),
        pytest.param({"cpu": "500m"}, 1, id="half-core-at-least-one"),
        pytest.param({"cpu": "2500m"}, 3, id="rounds-half-up"),
        pytest.param({"cpu": "1.4"}, 1, id="rounds-down"),
        pytest.param({"cpu": "8", "threads": 2}, 2, id="explicit-threads-win"),
        pytest.param({"cpu": "1E400"}, 1, id="unreadably-large-request"),
    ],
)
def test_the_pod_and_its_worker_use_the_same_thread_count(
    resources: dict[str, Any], threads: int
) -> None:
    """OMP_NUM_THREADS in the Job and the worker's torch threads come from one rule."""
    run, create = create_for(
        Stage.SELECT, stages={"select": {"gpus": 0, "engine": "transformers", **resources}}
    )
    assert create.task.resources.torch_threads() == threads
    assert env(build_job(run, create))["OMP_NUM_THREADS"] == str(threads)


def test_build_is_deterministic() -> None:
    run, create = create_for(stages={"judge": {"shards": 3}}, stage=Stage.JUDGE, iteration=1)
    first = json.dumps(build_job(run, create), sort_keys=True)
    assert first == json.dumps(build_job(run, create), sort_keys=True)


def test_no_secret_material_in_manifest() -> None:
    """Only Secret names and keys appear: nothing the operator could leak."""
    run, create = create_for(storage=S3)
    text = json.dumps(build_job(run, create))
    assert "secretKeyRef" in text
    for item in container(build_job(run, create))["env"]:
        assert set(item) in ({"name", "value"}, {"name", "valueFrom"})
