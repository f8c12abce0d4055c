"""One long-running pod (a ReplicaSet's, ``restartPolicy: Always``) run as a local process.

What the kubelet does for such a pod: start the container (``Kubelet.prepare``: env, volumes,
container ports mapped to host ports), run its startup probe, then its readiness and liveness
probes (``probes``), keep the pod's ``Ready``/``ContainersReady`` conditions and
``containerStatuses[0].ready`` in line with the readiness probe (Ready as soon as it runs when
it has none), restart the container when it exits or fails its startup or liveness probe
(``restartCount`` + 1, ``lastState.terminated``, waiting ``CrashLoopBackOff`` for
``base * 2**(n-1)`` seconds, at most ``cap``: the real kubelet's 10 s / 300 s are scaled down so
tests stay fast). Cancelling ``run`` kills the process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tests.harness.job_status import condition
from tests.harness.pod_process import ProcessResult, run_process
from tests.harness.probes import Probe, run_probe, wait_started
from tests.harness.store import now

if TYPE_CHECKING:
    from tests.harness.kubelet import Kubelet


class ServingPod:
    """Runs ``pod`` until cancelled; ``ready`` follows its readiness probe."""

    def __init__(
        self,
        kubelet: Kubelet,
        pod: dict[str, Any],
        ports: dict[int, int],
        *,
        pod_hash: str,
        on_change: Callable[[], None],
        backoff: tuple[float, float] = (1.0, 20.0),
    ) -> None:
        self.kubelet, self.pod, self.ports = kubelet, pod, ports
        self.hash = pod_hash
        self.name: str = pod["metadata"]["name"]
        self.path = f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/{self.name}"
        self.ready = False
        self.restarts = 0
        self._on_change = on_change
        self._backoff = backoff
        self._first_start = ""
        self._last_state: dict[str, Any] = {}
        self._started = False  # the container's startup probe passed (or it has none)
        self._killed_by = ""

    async def run(self) -> None:
        while True:
            started = now()
            self._first_start = self._first_start or started
            try:
                result = await self._run_once(started)
            except (KeyError, ValueError) as exc:
                await self._publish(
                    {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
                )
                await asyncio.sleep(self._backoff[0])
                continue
            self.restarts += 1
            reason = "Completed" if result.exit_code == 0 else "Error"
            self._last_state = {
                "terminated": {
                    "exitCode": result.exit_code,
                    "reason": reason,
                    "message": result.message,
                    "startedAt": started,
                    "finishedAt": now(),
                }
            }
            delay = min(self._backoff[1], self._backoff[0] * 2 ** (self.restarts - 1))
            await self._set_ready(
                False,
                {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off {delay:g}s restarting failed container",
                    }
                },
            )
            await asyncio.sleep(delay)

    async def _run_once(self, started: str) -> ProcessResult:
        """Start the container, probe it, and return when it exits or a probe kills it."""
        argv, env, workdir = await self.kubelet.prepare(self.pod, ports=self.ports)
        container = self.pod["spec"]["containers"][0]
        startup, readiness, liveness = (
            Probe.from_spec(container.get(f"{kind}Probe"), pod=self.pod, ports=self.ports)
            for kind in ("startup", "readiness", "liveness")
        )
        process = asyncio.create_task(run_process(argv, env=env, workdir=workdir))
        prober = asyncio.create_task(
            self._probe(started, startup=startup, readiness=readiness, liveness=liveness)
        )
        try:  # from here on, leaving by any way (cancelled included) kills the process
            await asyncio.wait({process, prober}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            prober.cancel()
            process.cancel()  # a no-op when it has exited; kills it when a probe failed
            await asyncio.gather(process, prober, return_exceptions=True)
        if process.cancelled():
            return ProcessResult(137, self._killed_by)
        if isinstance(process.exception(), OSError):  # the container could not start
            return ProcessResult(128, str(process.exception()))
        return process.result()

    async def _probe(
        self,
        started: str,
        *,
        startup: Probe | None,
        readiness: Probe | None,
        liveness: Probe | None,
    ) -> None:
        """Run the probes as the kubelet does; return when the container must be killed.

        A startup probe runs first and alone (readiness and liveness start once it passed);
        ``failureThreshold`` failures of it, or of liveness later, kill the container."""
        running = {"running": {"startedAt": started}}
        self._started = startup is None
        await self._set_ready(self._started and readiness is None, running, force=True)
        if startup is not None:
            if not await wait_started(startup):
                self._killed_by = "Startup probe failed"
                return
            self._started = True
            await self._set_ready(readiness is None, running, force=True)
        dead = asyncio.Event()

        async def died(ok: bool) -> None:
            if not ok:
                dead.set()

        tasks = []
        if readiness is not None:
            tasks.append(
                asyncio.create_task(
                    run_probe(
                        readiness, initial=False, on_change=lambda ok: self._set_ready(ok, running)
                    )
                )
            )
        if liveness is not None:
            tasks.append(asyncio.create_task(run_probe(liveness, initial=True, on_change=died)))
        try:
            await dead.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._killed_by = "Liveness probe failed"

    async def _set_ready(self, ready: bool, state: dict[str, Any], *, force: bool = False) -> None:
        changed = ready != self.ready
        self.ready = ready
        if changed or force:
            await self._publish(state)
        if changed:
            self._on_change()  # after the API shows it: the rollout acts on what clients see

    async def _publish(self, state: dict[str, Any]) -> None:
        flag = "True" if self.ready else "False"
        reason = "" if self.ready else "ContainersNotReady"
        container = self.pod["spec"]["containers"][0]
        status: dict[str, Any] = {
            "phase": "Running" if "running" in state or self.restarts else "Pending",
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self._first_start,
            "conditions": [
                condition("PodScheduled", "", ""),
                condition("Initialized", "", ""),
                condition("ContainersReady", reason, "", flag),
                condition("Ready", reason, "", flag),
            ],
            "containerStatuses": [
                {
                    "name": container.get("name", "main"),
                    "ready": self.ready,
                    "started": "running" in state and self._started,
                    "restartCount": self.restarts,
                    "image": container.get("image", "emulated"),
                    "imageID": "",
                    "state": state,
                    "lastState": self._last_state,
                }
            ],
        }
        await self.kubelet.patch_status(self.path, status)
