"""The Deployment + ReplicaSet controllers, for the emulator's kubelet (an API client like them).

For each ``apps/v1`` Deployment it keeps one ReplicaSet per pod template (``<name>-<hash>``,
labelled ``pod-template-hash``, owned by the Deployment, ``deployment.kubernetes.io/revision``
annotated on both) and ``spec.replicas`` Pods of the current one (owned by their ReplicaSet),
each run by a ``serving.ServingPod``. A template change rolls out as ``rollout.next_step``
says (RollingUpdate within maxSurge/maxUnavailable; Recreate). An old pod is deleted from the
API before its process is killed, so the service proxy never picks a dying pod. It writes the
ReplicaSets' and the Deployment's status (replicas, updated/ready/available, observedGeneration,
Available + Progressing). A deleted Deployment (the store cascades to its ReplicaSets and
Pods) or a deleted Pod stops its processes; the Deployment then replaces a deleted Pod.

Not emulated: ``paused``, ``minReadySeconds``, ``progressDeadlineSeconds`` (never exceeded),
``revisionHistoryLimit`` (old ReplicaSets stay, at 0 replicas), adopting pods after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp

from tests.harness import ports, rollout
from tests.harness.serving import ServingPod

if TYPE_CHECKING:
    from tests.harness.kubelet import Kubelet

_APPS = "/apis/apps/v1"
_log = logging.getLogger(__name__)
#: How long a pod the rollout retires keeps running after it left the API (in-flight requests).
DRAIN_SECONDS = 0.5
_MERGE = "application/merge-patch+json"


@dataclass
class _Managed:
    """The controller's memory of one Deployment."""

    deployment: dict[str, Any]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    pods: dict[str, ServingPod] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    replica_sets: dict[str, dict[str, Any]] = field(default_factory=dict)  # hash -> ReplicaSet
    rs_status: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)

    def views(self) -> list[rollout.PodView]:
        return [rollout.PodView(n, p.hash, p.ready) for n, p in self.pods.items()]


class DeploymentController:
    """Started by the kubelet in its event loop (``run``); ``backoff`` as in ``ServingPod``."""

    def __init__(self, kubelet: Kubelet, *, backoff: tuple[float, float] = (1.0, 20.0)) -> None:
        self.kubelet = kubelet
        self.backoff = backoff
        self._managed: dict[str, _Managed] = {}
        self._runs: dict[str, asyncio.Task[None]] = {}
        #: (namespace, pod) -> (deployment uid, the pod's resourceVersion at creation)
        self._owner_of_pod: dict[tuple[str, str], tuple[str, int]] = {}
        #: Tasks cancelled but maybe not finished yet: awaited at shutdown, so no coroutine is
        #: left for the garbage collector to close after the loop is gone.
        self._stopping: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        try:
            await asyncio.gather(
                self._watch(f"{_APPS}/deployments", self._on_deployment),
                self._watch("/api/v1/pods", self._on_pod),
            )
        finally:
            for task in self._runs.values():
                task.cancel()
            await asyncio.gather(*self._runs.values(), *self._stopping, return_exceptions=True)

    def _cancel(self, task: asyncio.Task[None]) -> None:
        task.cancel()
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _watch(self, path: str, handle: Callable[[str, dict[str, Any]], None]) -> None:
        """List, then watch from there; relist on 410 or a broken stream."""
        session = self.kubelet.session
        rv = ""
        while True:
            try:
                if not rv:
                    listing = await self.kubelet.request("GET", path)
                    rv = listing["metadata"]["resourceVersion"]
                    for obj in listing["items"]:
                        handle("ADDED", obj)
                    self._forget_missing(path, listing["items"], int(rv))
                url = (
                    f"{self.kubelet.api_url}{path}?watch=true&allowWatchBookmarks=true"
                    f"&timeoutSeconds=30&resourceVersion={rv}"
                )
                async with session.get(url) as resp:
                    async for line in resp.content:
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            rv = ""
                            break
                        rv = event["object"]["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            handle(event["type"], event["object"])
            except (aiohttp.ClientError, LookupError, ValueError):
                await asyncio.sleep(0.2)

    def _forget_missing(self, path: str, items: list[dict[str, Any]], rv: int) -> None:
        """After a relist: what was deleted while the watch was down is deleted here too."""
        if path.endswith("/deployments"):
            listed = {obj["metadata"]["uid"] for obj in items}
            for uid, managed in list(self._managed.items()):
                if uid not in listed:
                    self._on_deployment("DELETED", managed.deployment)
            return
        present = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in items}
        missing = [
            k for k, (_, made) in self._owner_of_pod.items() if k not in present and made <= rv
        ]
        for namespace, name in missing:
            self._on_pod("DELETED", {"metadata": {"namespace": namespace, "name": name}})

    def _on_deployment(self, kind: str, deployment: dict[str, Any]) -> None:
        uid = deployment["metadata"]["uid"]
        if kind == "DELETED":
            task = self._runs.pop(uid, None)
            if task is not None:
                self._cancel(task)
            return
        managed = self._managed.get(uid)
        if managed is None:
            managed = self._managed[uid] = _Managed(deployment)
            self._runs[uid] = asyncio.get_running_loop().create_task(self._manage(uid))
        managed.deployment = deployment
        managed.wake.set()

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        key = (pod["metadata"].get("namespace", ""), pod["metadata"]["name"])
        if kind != "DELETED" or key not in self._owner_of_pod:
            return
        uid, _ = self._owner_of_pod.pop(key)
        if uid not in self._managed:
            return
        managed = self._managed[uid]
        managed.pods.pop(key[1], None)
        task = managed.tasks.pop(key[1], None)
        if task is not None:
            self._cancel(task)
        managed.wake.set()

    async def _manage(self, uid: str) -> None:
        managed = self._managed[uid]
        try:
            while True:
                managed.wake.clear()
                try:
                    await self._reconcile(managed)
                except (LookupError, aiohttp.ClientError):
                    pass  # a conflict, a deleted object, a fault: the next round retries
                except Exception:  # a bug here must show, and not stop the Deployment for good
                    _log.exception("reconciling %s", managed.deployment["metadata"]["name"])
                # asyncio.timeout, not wait_for: on Python 3.11 a cancellation that meets
                # wait_for's own timeout can come out as TimeoutError, which the suppress would
                # swallow, leaving a "cancelled" task looping on forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await managed.wake.wait()
        finally:
            for task in managed.tasks.values():
                task.cancel()
            await asyncio.gather(*managed.tasks.values(), return_exceptions=True)
            self._managed.pop(uid, None)

    async def _reconcile(self, managed: _Managed) -> None:
        deployment = managed.deployment
        spec = deployment["spec"]
        current = rollout.template_hash(spec.get("template") or {})
        rs = await self._ensure_replica_set(managed, current)
        start, stop = rollout.next_step(spec, current, managed.views())
        for name in stop:
            await self._stop_pod(managed, name)
        if start and not await self._still_there(deployment):
            return  # deleted: its DELETED event is on its way (another stream than the pods')
        for _ in range(start):
            await self._start_pod(managed, rs, current)
        views = managed.views()
        for pod_hash, replica_set in list(managed.replica_sets.items()):
            mine = [v for v in views if v.hash == pod_hash]
            await self._sync_replica_set(
                managed,
                replica_set,
                mine,
                int(spec.get("replicas", 1)) if pod_hash == current else len(mine),
            )
        status = rollout.deployment_status(deployment, current, views, managed.status)
        if status != managed.status:
            await self.kubelet.patch_status(_path(deployment, "deployments"), status)
            managed.status = status

    async def _still_there(self, deployment: dict[str, Any]) -> bool:
        """Whether the Deployment exists now: a cascade deletes its pods, and their DELETED
        events may come before the Deployment's, which must not look like pods to replace."""
        try:
            found = await self.kubelet.request("GET", _path(deployment, "deployments"))
        except LookupError:
            return False
        return bool(found["metadata"]["uid"] == deployment["metadata"]["uid"])

    async def _ensure_replica_set(self, managed: _Managed, pod_hash: str) -> dict[str, Any]:
        if pod_hash in managed.replica_sets:
            return managed.replica_sets[pod_hash]
        deployment = managed.deployment
        revisions = [
            int((rs["metadata"].get("annotations") or {}).get(rollout.REVISION, "0"))
            for rs in managed.replica_sets.values()
        ]
        revision = max(revisions, default=0) + 1
        manifest = rollout.replica_set(deployment, pod_hash, revision)
        namespace = deployment["metadata"]["namespace"]
        try:
            rs = await self.kubelet.request(
                "POST", f"{_APPS}/namespaces/{namespace}/replicasets", manifest
            )
        except LookupError:  # exists already (this template ran before): adopt it
            rs = await self.kubelet.request(
                "GET", f"{_APPS}/namespaces/{namespace}/replicasets/{manifest['metadata']['name']}"
            )
        managed.replica_sets[pod_hash] = rs
        await self.kubelet.request(
            "PATCH",
            _path(deployment, "deployments"),
            {"metadata": {"annotations": {rollout.REVISION: str(revision)}}},
            content_type=_MERGE,
        )
        return rs

    async def _start_pod(self, managed: _Managed, rs: dict[str, Any], pod_hash: str) -> None:
        container = (rs["spec"]["template"].get("spec") or {}).get("containers") or [{}]
        mapped = ports.allocate(container[0])
        manifest = rollout.pod_manifest(
            rs, secrets.token_hex(3)[:5], ports.annotate(mapped) if mapped else ""
        )
        namespace = rs["metadata"]["namespace"]
        pod = await self.kubelet.request("POST", f"/api/v1/namespaces/{namespace}/pods", manifest)
        name = pod["metadata"]["name"]
        made = int(pod["metadata"]["resourceVersion"])
        self._owner_of_pod[(namespace, name)] = (managed.deployment["metadata"]["uid"], made)
        runner = ServingPod(
            self.kubelet,
            pod,
            mapped,
            pod_hash=pod_hash,
            on_change=managed.wake.set,
            backoff=self.backoff,
        )
        managed.pods[name] = runner
        managed.tasks[name] = asyncio.get_running_loop().create_task(runner.run())

    async def _stop_pod(self, managed: _Managed, name: str) -> None:
        """Delete the pod from the API first (clients stop picking it), then kill it once the
        requests already sent to it had ``DRAIN_SECONDS`` to finish: a real server drains on
        SIGTERM (uvicorn, vLLM), the stand-ins tests run (``http.server``) die mid-answer."""
        runner = managed.pods.pop(name)
        namespace = managed.deployment["metadata"]["namespace"]
        self._owner_of_pod.pop((namespace, name), None)  # its DELETED event is no news
        with contextlib.suppress(LookupError):
            await self.kubelet.request("DELETE", runner.path)
        task = managed.tasks.get(name)
        if task is not None:
            asyncio.get_running_loop().call_later(DRAIN_SECONDS, self._kill, managed, name)

    def _kill(self, managed: _Managed, name: str) -> None:
        task = managed.tasks.pop(name, None)
        if task is not None:
            self._cancel(task)

    async def _sync_replica_set(
        self, managed: _Managed, rs: dict[str, Any], pods: list[rollout.PodView], replicas: int
    ) -> None:
        pod_hash = rs["metadata"]["labels"][rollout.HASH_LABEL]
        if rs["spec"].get("replicas") != replicas:
            rs = await self.kubelet.request(
                "PATCH",
                _path(rs, "replicasets"),
                {"spec": {"replicas": replicas}},
                content_type=_MERGE,
            )
            managed.replica_sets[pod_hash] = rs
        status = rollout.replica_set_status(rs, pods)
        if status != managed.rs_status.get(pod_hash):
            await self.kubelet.patch_status(_path(rs, "replicasets"), status)
            managed.rs_status[pod_hash] = status


def _path(obj: dict[str, Any], plural: str) -> str:
    meta = obj["metadata"]
    return f"{_APPS}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"
