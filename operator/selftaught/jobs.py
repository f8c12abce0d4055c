"""One planned stage attempt -> a batch/v1 Job manifest (and a headless Service). Pure.

The planner decides *which* Job must exist (:class:`selftaught.plan.CreateJob`); this module
decides *what it looks like*. It does no I/O and imports no Kubernetes library, so every manifest
is a table-driven test away and is validated offline against the upstream OpenAPI schemas.

Choices that matter, and why:

* ``backoffLimit: 0``: the planner owns retries (with its own backoff, retry budget and attempt
  fencing in the Job name). A Job that retried pods itself would hide failures from the status.
* ``podFailurePolicy`` (needs ``restartPolicy: Never``): a pod with the ``DisruptionTarget``
  condition (eviction, preemption, node drain, taint eviction) is ``Ignore``d, so the Job
  controller replaces *that pod only* without counting it against ``backoffLimit`` — the upstream
  example ``job-pod-failure-policy-ignore`` uses exactly ``backoffLimit: 0`` with this rule. For an
  Indexed Job this keeps the shards that already succeeded. Exit code 2 (bad input) is
  ``FailJob``: the Job fails at once with reason ``PodFailurePolicy`` and the controller
  classifies it as BadInput, which the planner never retries. Other failures use the default
  handling, which with ``backoffLimit: 0`` fails the Job and hands the retry to the planner.
* Workers never need the Kubernetes API: no service-account token is mounted.
* Storage credentials only ever appear as ``secretKeyRef``: the manifest (and so the operator,
  its logs and its events) never holds a secret value.
* Every pod satisfies the *restricted* Pod Security Standard; the root filesystem is read-only,
  so ``/tmp``, the model cache and ``/dev/shm`` are emptyDirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from selftaught import names
from selftaught.api import API_VERSION, KIND, Placement, SelfTaughtRun, StageResources
from selftaught.phases import EXIT_BAD_INPUT, Stage
from selftaught.plan import CreateJob
from selftaught.pod import CACHE_ENV, PUSHGATEWAY_ENV, TASK_ENV
from selftaught.task import StageTask
from selftaught.template_sources import MOUNT_ROOT, configmaps

#: Kueue's label that names the LocalQueue a Job is submitted to.
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
#: The pod annotation the Job controller sets on each pod of an Indexed Job.
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
CONTAINER_NAME = "worker"
#: The only writable scratch under a read-only root filesystem (an emptyDir).
TMP_PATH = "/tmp"
SHM_PATH = "/dev/shm"
GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_WORKER_IMAGE = "ghcr.io/selftaught/worker:0.1.0"


@dataclass(frozen=True)
class JobSettings:
    """Operator-wide knobs for the Jobs it builds (the run's spec decides everything else).

    Every field has a default that works on a plain cluster; the operator's command line can
    override them.
    """

    #: Seconds a finished Job (and its pods, with their termination messages) is kept before the
    #: TTL controller deletes it. The controller reads the summaries on the Job's completion
    #: event, usually within a second, but an operator that is down (upgrade, crash loop) must
    #: still find them when it returns: one day covers a night without an on-call engineer.
    ttl_seconds_after_finished: int = 86400
    #: UID and GID the workers run as (the restricted PSS forbids root).
    run_as_user: int = 1000
    #: Size limit of the /dev/shm emptyDir (medium Memory, counted against the memory limit).
    #: NCCL and PyTorch data loaders need far more than the container runtime's 64 MiB default.
    shm_size_limit: str | None = "8Gi"
    #: Size limit of the /tmp emptyDir.
    tmp_size_limit: str | None = "10Gi"
    #: Size limit of the model-cache emptyDir; None: the node's ephemeral storage decides.
    cache_size_limit: str | None = None
    #: Rendezvous port (on pod 0) for multi-node training.
    master_port: int = 29500
    #: Worker image for runs that name none (``spec.worker.image`` and the stage's ``image``
    #: win). The chart sets it (``SELFTAUGHT_WORKER_IMAGE``), so upgrading the chart upgrades
    #: the workers of runs that did not pin an image.
    worker_image: str = DEFAULT_WORKER_IMAGE
    #: Prometheus Pushgateway URL given to workers (``SELFTAUGHT_PUSHGATEWAY``) for live
    #: progress; None: workers push nothing.
    pushgateway: str | None = None


def build_job(
    run: SelfTaughtRun, create: CreateJob, *, operator_settings: JobSettings | None = None
) -> dict[str, Any]:
    """The batch/v1 Job manifest for one planned stage attempt."""
    settings = operator_settings or JobSettings()
    task = create.task
    resources = task.resources
    labels = _labels(run, task)
    pods = resources.pods(task.stage)
    multi_node = _multi_node(task)

    job_labels = dict(labels)
    if resources.queue_name:
        job_labels[KUEUE_QUEUE_LABEL] = resources.queue_name
    spec: dict[str, Any] = {
        "backoffLimit": 0,
        "podFailurePolicy": pod_failure_policy(),
        "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
        "template": {
            "metadata": {"labels": dict(labels)},
            "spec": _pod_spec(run, create, resources, settings, multi_node=multi_node),
        },
    }
    if resources.active_deadline_seconds:
        spec["activeDeadlineSeconds"] = resources.active_deadline_seconds
    if pods > 1:
        spec.update(completionMode="Indexed", completions=pods, parallelism=pods)
    if resources.queue_name:
        # Kueue admits a Job by unsuspending it; created unsuspended, it would start unadmitted.
        spec["suspend"] = True
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": create.name,
            "namespace": run.namespace,
            "labels": job_labels,
            "ownerReferences": [owner_reference(run)],
        },
        "spec": spec,
    }


def build_service(
    run: SelfTaughtRun, create: CreateJob, *, operator_settings: JobSettings | None = None
) -> dict[str, Any] | None:
    """The headless Service that gives multi-node training pods stable DNS names, or None.

    Pods of an Indexed Job get the hostname ``<job>-<index>``; with ``subdomain: <service>`` they
    resolve as ``<job>-<index>.<service>``, so rank 0 is reachable before any pod is Ready
    (``publishNotReadyAddresses``), which torchrun's rendezvous needs.
    """
    if not _multi_node(create.task):
        return None
    settings = operator_settings or JobSettings()
    task = create.task
    labels = _labels(run, task)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": _service(create),
            "namespace": run.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(run)],
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {
                k: labels[k]
                for k in (
                    names.LABEL_RUN_UID,
                    names.LABEL_ITERATION,
                    names.LABEL_STAGE,
                    names.LABEL_ATTEMPT,
                )
            },
            "ports": [
                {
                    "name": "rendezvous",
                    "port": settings.master_port,
                    "targetPort": settings.master_port,
                }
            ],
        },
    }


def owner_reference(run: SelfTaughtRun) -> dict[str, Any]:
    """The run owns its children: deleting it garbage-collects them (foreground-safe)."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": run.name,
        "uid": run.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_failure_policy() -> dict[str, Any]:
    """Disruptions are replaced by the Job controller; bad input fails the Job at once."""
    return {
        "rules": [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER_NAME,
                    "operator": "In",
                    "values": [EXIT_BAD_INPUT],
                },
            },
        ]
    }


# ------------------------------------------------------------------------------- internals


def _multi_node(task: StageTask) -> bool:
    """Training over several pods (one per node), which need a rendezvous."""
    return Stage(task.stage) is Stage.TRAIN and task.resources.pods(task.stage) > 1


def distributed(task: StageTask) -> bool:
    """Training with more than one GPU runs one process per GPU (:mod:`selftaught.launch`);
    other stages use a pod's GPUs from one process (vLLM's tensor parallelism)."""
    return Stage(task.stage) is Stage.TRAIN and (_multi_node(task) or task.resources.gpus > 1)


def worker_command(task: StageTask) -> list[str]:
    """What a pod (or a local run) executes for ``task``."""
    command = task.command()
    return [*command, "--distributed"] if distributed(task) else command


def processes_per_pod(task: StageTask) -> int:
    return max(1, task.resources.gpus)


def _service(create: CreateJob) -> str:
    task = create.task
    return names.service_name(task.run, task.iteration, task.attempt)


def _labels(run: SelfTaughtRun, task: StageTask) -> dict[str, str]:
    return names.child_labels(
        run=run.name,
        run_uid=run.uid,
        iteration=task.iteration,
        stage=task.stage,
        attempt=task.attempt,
    )


def _pod_spec(
    run: SelfTaughtRun,
    create: CreateJob,
    resources: StageResources,
    settings: JobSettings,
    *,
    multi_node: bool,
) -> dict[str, Any]:
    container = _container(run, create, resources, settings, multi_node=multi_node)
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        **restricted_pod(run, resources, settings, container),
    }
    if multi_node:
        pod["subdomain"] = _service(create)
    return pod


def restricted_pod(
    run: SelfTaughtRun, placement: Placement, settings: JobSettings, container: dict[str, Any]
) -> dict[str, Any]:
    """The pod spec every pod of a run shares (stage Jobs and the judge server alike): the
    restricted Pod Security profile, no API token, the worker's service account and pull
    secrets, the run's volumes, and where the pods may be scheduled."""
    worker = run.spec.worker
    uid = settings.run_as_user
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": pod_volumes(run, settings),
    }
    if worker.service_account_name:
        pod["serviceAccountName"] = worker.service_account_name
    if worker.image_pull_secrets:
        pod["imagePullSecrets"] = [ref.dump() for ref in worker.image_pull_secrets]
    if placement.node_selector:
        pod["nodeSelector"] = dict(placement.node_selector)
    if placement.tolerations:
        pod["tolerations"] = [t.dump() for t in placement.tolerations]
    if placement.affinity:
        pod["affinity"] = placement.affinity
    if placement.priority_class_name:
        pod["priorityClassName"] = placement.priority_class_name
    return pod


def _container(
    run: SelfTaughtRun,
    create: CreateJob,
    resources: StageResources,
    settings: JobSettings,
    *,
    multi_node: bool,
) -> dict[str, Any]:
    task = create.task
    worker = run.spec.worker
    requests: dict[str, str] = {"cpu": resources.cpu, "memory": resources.memory}
    limits: dict[str, str] = {"memory": resources.memory}
    if resources.gpus > 0:
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(resources.gpus)
    env = _env(run, task, resources)
    if settings.pushgateway:
        env.append({"name": PUSHGATEWAY_ENV, "value": settings.pushgateway})
    command = worker_command(task)
    if distributed(task):
        env += _rendezvous_env(create, resources, settings, multi_node=multi_node)
    return {
        "name": CONTAINER_NAME,
        "image": resources.image or worker.image or settings.worker_image,
        "imagePullPolicy": worker.image_pull_policy,
        "command": command,
        "env": env,
        "resources": {"requests": requests, "limits": limits},
        "volumeMounts": pod_mounts(run),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def _env(run: SelfTaughtRun, task: StageTask, resources: StageResources) -> list[dict[str, Any]]:
    cache = run.spec.worker.model_cache
    threads = resources.torch_threads()
    env: list[dict[str, Any]] = [
        {"name": TASK_ENV, "value": task.to_env()},
        {"name": CACHE_ENV, "value": cache},
        {"name": "HOME", "value": TMP_PATH},
        {"name": "HF_HOME", "value": f"{cache.rstrip('/')}/huggingface"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "OMP_NUM_THREADS", "value": str(threads)},
    ]
    return env + storage_env(run)


def storage_env(run: SelfTaughtRun) -> list[dict[str, Any]]:
    """The S3 client's settings and credentials (as ``secretKeyRef`` only), for any pod that
    reads the run's artifacts: stage Jobs and the judge server (:mod:`.serving_manifests`)."""
    env: list[dict[str, Any]] = []
    s3 = run.spec.storage.s3 if run.spec.storage else None
    if s3 is not None:
        env.append({"name": "AWS_REGION", "value": s3.region})
        env.append({"name": "AWS_DEFAULT_REGION", "value": s3.region})
        if s3.endpoint:
            env.append({"name": "AWS_ENDPOINT_URL_S3", "value": s3.endpoint})
        for var, ref in (
            ("AWS_ACCESS_KEY_ID", s3.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", s3.secret_access_key),
        ):
            if ref is not None:
                env.append(
                    {
                        "name": var,
                        "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
                    }
                )
    return env


def _rendezvous_env(
    create: CreateJob, resources: StageResources, settings: JobSettings, *, multi_node: bool
) -> list[dict[str, Any]]:
    """What :mod:`selftaught.launch` reads: processes per pod, and across pods, who meets where."""
    sizes = [
        {"name": "NNODES", "value": str(resources.nodes if multi_node else 1)},
        {"name": "NPROC_PER_NODE", "value": str(processes_per_pod(create.task))},
    ]
    if not multi_node:
        return sizes
    master = f"{create.name}-0.{_service(create)}"
    return [
        {"name": "MASTER_ADDR", "value": master},
        {"name": "MASTER_PORT", "value": str(settings.master_port)},
        *sizes,
        {
            "name": "NODE_RANK",
            "valueFrom": {
                "fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"}
            },
        },
    ]


def _own_cache(run: SelfTaughtRun) -> bool:
    """The cache needs its own emptyDir unless it lies inside /tmp or /dev/shm already."""
    cache = run.spec.worker.model_cache.rstrip("/") + "/"
    return not any(cache.startswith(p + "/") for p in (TMP_PATH, SHM_PATH))


def pod_volumes(run: SelfTaughtRun, settings: JobSettings) -> list[dict[str, Any]]:
    def empty_dir(size: str | None, **extra: str) -> dict[str, Any]:
        spec: dict[str, Any] = dict(extra)
        if size:
            spec["sizeLimit"] = size
        return spec

    volumes: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": empty_dir(settings.shm_size_limit, medium="Memory")},
        {"name": "tmp", "emptyDir": empty_dir(settings.tmp_size_limit)},
    ]
    if _own_cache(run):
        volumes.append({"name": "cache", "emptyDir": empty_dir(settings.cache_size_limit)})
    claim = run.spec.storage.volume_claim if run.spec.storage else None
    if claim is not None:
        volumes.append(
            {"name": "artifacts", "persistentVolumeClaim": {"claimName": claim.claim_name}}
        )
    volumes.extend(
        {"name": f"templates-{i}", "configMap": {"name": name}}
        for i, name in enumerate(configmaps(run.spec))
    )
    return volumes


def pod_mounts(run: SelfTaughtRun) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"name": "dshm", "mountPath": SHM_PATH},
        {"name": "tmp", "mountPath": TMP_PATH},
    ]
    if _own_cache(run):
        mounts.append({"name": "cache", "mountPath": run.spec.worker.model_cache})
    claim = run.spec.storage.volume_claim if run.spec.storage else None
    if claim is not None:
        mounts.append({"name": "artifacts", "mountPath": claim.mount_path})
    # Each ConfigMap a template names, read-only where the stage reads its keys as files.
    mounts.extend(
        {"name": f"templates-{i}", "mountPath": f"{MOUNT_ROOT}/{name}", "readOnly": True}
        for i, name in enumerate(configmaps(run.spec))
    )
    return mounts
