"""A tiny kubelet + Job controller: runs the emulator's Jobs as local processes.

It is just another API client (HTTP, like the real ones): it watches ``batch/v1`` Jobs in all
namespaces and, for each Job that is not suspended, creates the Pods the Job controller would
(Indexed Jobs: one per completion index, labelled and owned by the Job), runs each container
as a local process, and writes Pod and Job status the way the real controllers do: ``active``,
``succeeded``, ``failed``, ``completedIndexes``, ``startTime``, ``completionTime`` and the
conditions ``SuccessCriteriaMet`` + ``Complete`` or ``FailureTarget`` + ``Failed`` (reasons
``BackoffLimitExceeded``, ``DeadlineExceeded``). A failed pod is retried while failures stay
within ``backoffLimit``. Deleting a Job kills its processes.

Limits: a Job suspended after it started keeps running; a kubelet restart does not adopt Jobs
that already started. Each pod's output goes to ``<workdir>/<namespace>.<pod>/container.log``
as it is written (``kubelet.log_path()``); the API server serves it as ``pods/log``
(``tests/harness/logs.py``). Volume mounts live under the pod's work dir (``pod_paths``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import tempfile
import threading
from pathlib import Path
from typing import Any

import aiohttp

from tests.harness import job_status, pod_paths
from tests.harness import ports as host_ports
from tests.harness.deployments import DeploymentController
from tests.harness.pod_faults import PodFault, PodFaultRule, PodFaults
from tests.harness.pod_process import build_env, fetch_references, resolve_command, run_process
from tests.harness.store import now

_JOBS = "/apis/batch/v1"


class Kubelet:
    """Runs Jobs from the API at ``api_url`` with at most ``max_pods`` processes at once."""

    def __init__(
        self,
        api_url: str,
        *,
        max_pods: int = 4,
        workdir: str | Path | None = None,
        env: dict[str, str] | None = None,
        shared_volumes: dict[str, Path] | None = None,
        restart_backoff: tuple[float, float] = (1.0, 20.0),
    ) -> None:
        self.api_url = api_url.rstrip("/")
        #: volume name -> one host directory for all pods (see ``pod_paths.mount_dirs``)
        self.shared_volumes = dict(shared_volumes or {})
        self.max_pods = max_pods
        self.extra_env = dict(env or {})
        self.faults = PodFaults()
        self._tmp = tempfile.TemporaryDirectory(prefix="kubelet-") if workdir is None else None
        self.workdir = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._started: set[str] = set()  # uids of Jobs whose pods this kubelet ran
        self._logs: dict[str, Path] = {}
        #: Deployments -> ReplicaSets -> long-running pods (``deployments``), in this loop.
        self.deployments = DeploymentController(self, backoff=restart_backoff)
        self._controller: asyncio.Task[None] | None = None

    def inject(
        self,
        kind: PodFault | str,
        *,
        name: str | None = None,
        labels: dict[str, str] | None = None,
        indexes: set[int] | None = None,
        exit_code: int = 1,
        message: str = "",
        delay: float = 0.0,
        times: int | None = None,
    ) -> PodFaultRule:
        """Make matching pods fail or behave oddly (see ``pod_faults``)."""
        return self.faults.add(
            PodFaultRule(
                PodFault(kind),
                name,
                dict(labels or {}),
                frozenset(indexes) if indexes is not None else None,
                exit_code,
                message,
                delay,
                times,
            )
        )

    def log_path(self, pod_name: str) -> Path | None:
        """Where a pod's stdout+stderr went (the emulator serves no ``pods/log``)."""
        return self._logs.get(pod_name)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Kubelet:
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            watcher = loop.create_task(self._watch_jobs(ready))
            try:
                loop.run_forever()
            finally:
                watcher.cancel()
                controller = [self._controller] if self._controller is not None else []
                for task in [*self._runs.values(), *controller]:
                    task.cancel()
                loop.run_until_complete(
                    asyncio.gather(
                        watcher, *self._runs.values(), *controller, return_exceptions=True
                    )
                )
                if self._session is not None:
                    loop.run_until_complete(self._session.close())
                loop.close()

        self._thread = threading.Thread(target=main, name="kubelet", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("kubelet could not list Jobs")
        return self

    def stop(self) -> None:
        """Kill every running pod process and stop watching."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Kubelet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- API access ---------------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, body: Any = None, *, content_type: str = "application/json"
    ) -> dict[str, Any]:
        assert self._session is not None
        data = None if body is None else json.dumps(body)
        for attempt in range(5):  # injected 5xx are retried like client-go would
            async with self._session.request(
                method, self.api_url + path, data=data, headers={"Content-Type": content_type}
            ) as resp:
                payload: dict[str, Any] = await resp.json(content_type=None)
                if resp.status < 500 or attempt == 4:
                    if resp.status >= 400:
                        raise LookupError(
                            f"{method} {path}: {resp.status} {payload.get('message')}"
                        )
                    return payload
            await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None
        return self._session

    async def request(
        self, method: str, path: str, body: Any = None, *, content_type: str = "application/json"
    ) -> dict[str, Any]:
        """One API call from the kubelet's loop (5xx retried); LookupError for a 4xx."""
        return await self._request(method, path, body, content_type=content_type)

    async def patch_status(self, path: str, status: dict[str, Any]) -> None:
        """Merge ``status`` into the object's status subresource (gone objects: ignored)."""
        await self._patch_status(path, status)

    async def _patch_status(self, path: str, status: dict[str, Any]) -> None:
        with contextlib.suppress(LookupError):  # deleted meanwhile
            await self._request(
                "PATCH",
                f"{path}/status",
                {"status": status},
                content_type="application/merge-patch+json",
            )

    # --- watching -----------------------------------------------------------------------------

    async def _watch_jobs(self, ready: threading.Event) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None)
        )
        self._slots = asyncio.Semaphore(self.max_pods)
        self._controller = asyncio.get_running_loop().create_task(self.deployments.run())
        rv = ""
        while True:
            try:
                if not rv:
                    listing = await self._request("GET", f"{_JOBS}/jobs")
                    rv = listing["metadata"]["resourceVersion"]
                    for job in listing["items"]:
                        self._observe("ADDED", job, fresh=False)
                    ready.set()
                url = (
                    f"{self.api_url}{_JOBS}/jobs?watch=true&allowWatchBookmarks=true"
                    f"&timeoutSeconds=30&resourceVersion={rv}"
                )
                async with self._session.get(url) as resp:
                    async for line in resp.content:
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            rv = ""  # 410 Gone: relist
                            break
                        rv = event["object"]["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            self._observe(event["type"], event["object"], fresh=True)
            except (aiohttp.ClientError, LookupError, ValueError):
                await asyncio.sleep(0.2)

    def _observe(self, kind: str, job: dict[str, Any], *, fresh: bool) -> None:
        uid = job["metadata"]["uid"]
        task = self._runs.get(uid)
        if kind == "DELETED":
            if task is not None:
                task.cancel()
            return
        status = job.get("status") or {}
        finished = any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        if (
            task is not None
            or finished
            or uid in self._started
            or (not fresh and status.get("startTime"))
        ):
            return
        if job["spec"].get("suspend"):
            if not any(c.get("type") == "Suspended" for c in status.get("conditions") or []):
                self._runs[uid] = asyncio.get_running_loop().create_task(self._mark_suspended(job))
            return
        self._started.add(uid)
        self._runs[uid] = asyncio.get_running_loop().create_task(self._run_job(job))

    async def _mark_suspended(self, job: dict[str, Any]) -> None:
        uid = job["metadata"]["uid"]
        cond = job_status.condition("Suspended", "JobSuspended", "Job suspended")
        await self._patch_status(job_status.job_path(job), {"conditions": [cond], "active": 0})
        self._runs.pop(uid, None)

    # --- running a Job ------------------------------------------------------------------------

    async def _run_job(self, job: dict[str, Any]) -> None:
        uid, path = job["metadata"]["uid"], job_status.job_path(job)
        tracker = job_status.JobTracker(job, started=now())
        try:
            await self._patch_status(path, tracker.status())
            deadline = job["spec"].get("activeDeadlineSeconds")
            try:
                await asyncio.wait_for(self._run_pods(job, tracker), deadline)
            except TimeoutError:
                tracker.fail("DeadlineExceeded", "Job was active longer than specified deadline")
            tracker.finish(now())
            await self._patch_status(path, tracker.status())
        finally:
            self._runs.pop(uid, None)

    async def _run_pods(self, job: dict[str, Any], tracker: job_status.JobTracker) -> None:
        parallelism = max(1, int(job["spec"].get("parallelism") or 1))
        pending = list(tracker.indexes())
        running: set[asyncio.Task[None]] = set()
        path = job_status.job_path(job)
        try:
            while (pending or running) and not tracker.failed_reason:
                while pending and len(running) < parallelism:
                    running.add(asyncio.create_task(self._run_pod(job, pending.pop(0), tracker)))
                    await self._patch_status(path, tracker.status())
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
                pending.extend(tracker.retry_queue())
                await self._patch_status(path, tracker.status())
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _run_pod(
        self, job: dict[str, Any], index: int, tracker: job_status.JobTracker
    ) -> None:
        rule = self.faults.take(job, index)
        pod = await self._request(
            "POST",
            f"/api/v1/namespaces/{job['metadata']['namespace']}/pods",
            job_status.pod_manifest(job, index, secrets.token_hex(3)[:5]),
        )
        pod_path = (
            f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/{pod['metadata']['name']}"
        )
        tracker.started(index)
        try:
            status = await self._pod_lifecycle(job, pod, index, pod_path, rule)
        except asyncio.CancelledError:
            status = job_status.terminated(pod, 137, "Error", "", now(), now(), phase="Failed")
            await asyncio.shield(self._patch_status(pod_path, status))
            raise
        await self._patch_status(pod_path, status)
        tracker.ended(index, status["phase"] == "Succeeded")

    async def _pod_lifecycle(
        self,
        job: dict[str, Any],
        pod: dict[str, Any],
        index: int,
        pod_path: str,
        rule: PodFaultRule | None,
    ) -> dict[str, Any]:
        kind = rule.kind if rule else None
        if kind in (PodFault.UNSCHEDULABLE, PodFault.IMAGE_PULL_BACKOFF):
            await self._patch_status(pod_path, job_status.stuck_pending(pod, kind))
            await asyncio.Event().wait()  # until the Job is deleted or its deadline passes
        if kind == PodFault.SLOW_START and rule is not None:
            await asyncio.sleep(rule.delay)
        started = now()
        await self._patch_status(pod_path, job_status.running(pod, started))
        if rule is not None and kind == PodFault.INSTANT:
            if rule.delay:  # "runs" for `delay` seconds, so a stage has a middle
                await asyncio.sleep(rule.delay)
            return job_status.terminated(pod, 0, "Completed", rule.message, started, now())
        if rule is not None and kind == PodFault.EXIT:
            return job_status.terminated(pod, rule.exit_code, "Error", rule.message, started, now())
        if rule is not None and kind == PodFault.OOM_KILLED:
            return job_status.terminated(pod, 137, "OOMKilled", rule.message, started, now())
        if kind == PodFault.EVICTED:
            return job_status.evicted(pod, started)
        assert self._slots is not None
        async with self._slots:
            return await self._execute(pod, started)

    async def prepare(
        self, pod: dict[str, Any], *, ports: dict[int, int] | None = None
    ) -> tuple[list[str], dict[str, str], Path]:
        """argv, environment and work dir of the pod's (first) container, as the runtime would
        start it: volumes mapped (``pod_paths``), container ports mapped to ``ports``
        (``tests.harness.ports``). Raises KeyError/ValueError for a CreateContainerConfigError.
        """
        name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
        container = pod["spec"]["containers"][0]
        workdir = self.workdir / f"{namespace}.{name}"
        workdir.mkdir(parents=True, exist_ok=True)
        self._logs[name] = workdir / "container.log"
        lookup = await fetch_references(namespace, container, self._request)
        mounts = pod_paths.mount_dirs(
            container,
            workdir,
            self.shared_volumes,
            volumes=pod["spec"].get("volumes"),
            node_root=self.workdir,
        )
        declared = {str(var["name"]) for var in container.get("env") or []}
        env = build_env(container, pod=pod, lookup=lookup, extra=self.extra_env)
        written = [*(container.get("command") or []), *(container.get("args") or [])]
        written = host_ports.rewrite_args(written, ports or {})
        argv = resolve_command(pod_paths.rewrite_args(written, mounts))
        env = pod_paths.rewrite_env(env, mounts, declared=declared)
        env = host_ports.rewrite_env(env, ports or {}, declared=declared)
        index = (pod["metadata"].get("annotations") or {}).get(
            "batch.kubernetes.io/job-completion-index"
        )
        if index is not None:
            env["JOB_COMPLETION_INDEX"] = index
        env["SELFTAUGHT_TERMINATION_LOG"] = str(workdir / "termination-log")
        env.setdefault("HOME", str(workdir))
        env.setdefault("PYTHONUNBUFFERED", "1")  # `kubectl logs -f` shows output as it is written
        return argv, env, workdir

    async def _execute(self, pod: dict[str, Any], started: str) -> dict[str, Any]:
        container = pod["spec"]["containers"][0]
        try:
            argv, env, workdir = await self.prepare(pod)
        except (KeyError, ValueError) as exc:
            return job_status.terminated(
                pod, 1, "CreateContainerConfigError", str(exc), started, now()
            )
        try:
            result = await run_process(argv, env=env, workdir=workdir)
        except OSError as exc:  # as a real kubelet: the container could not start
            return job_status.terminated(pod, 128, "StartError", str(exc), started, now())
        reason = "Completed" if result.exit_code == 0 else "Error"
        message = result.message
        if (
            not message
            and result.exit_code
            and container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        ):
            message = (workdir / "container.log").read_bytes()[-2048:].decode(errors="replace")
        return job_status.terminated(pod, result.exit_code, reason, message, started, now())
