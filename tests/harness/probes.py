"""Startup, readiness and liveness probes, as the kubelet's prober runs them against a pod.

``httpGet`` (path, port by number or name, scheme HTTP, httpHeaders) and ``tcpSocket`` probes
are run against 127.0.0.1 on the pod's mapped host port (``ports``); an HTTP status in
[200, 400) passes. Timing follows the pod spec with the API's defaults: ``initialDelaySeconds``
0, ``periodSeconds`` 10, ``timeoutSeconds`` 1, ``failureThreshold`` 3, ``successThreshold`` 1.
``exec`` and ``grpc`` probes are not run: they count as passing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests.harness import ports as host_ports


@dataclass(frozen=True)
class Probe:
    """One probe of one container, resolved to the host port it checks."""

    kind: str  # "httpGet", "tcpSocket" or "none" (exec/grpc: always passes)
    port: int  # host port
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1

    @classmethod
    def from_spec(
        cls, spec: dict[str, Any] | None, *, pod: dict[str, Any], ports: dict[int, int]
    ) -> Probe | None:
        """The probe ``spec`` declares (None when the container has none).

        Raises ValueError naming the port when it is neither a number nor a declared port name,
        or was not mapped (not a declared containerPort).
        """
        if not spec:
            return None
        timing = Probe(
            "none",
            0,
            initial_delay=float(spec.get("initialDelaySeconds") or 0),
            period=float(spec.get("periodSeconds") or 10),
            timeout=float(spec.get("timeoutSeconds") or 1),
            failure_threshold=int(spec.get("failureThreshold") or 3),
            success_threshold=int(spec.get("successThreshold") or 1),
        )
        for kind in ("httpGet", "tcpSocket"):
            action = spec.get(kind)
            if action is None:
                continue
            number = host_ports.container_port(pod, action.get("port", ""))
            if number is None or number not in ports:
                raise ValueError(
                    f"{kind}.port {action.get('port')!r}: not a declared containerPort of the pod"
                )
            headers = tuple(
                (str(h.get("name")), str(h.get("value", "")))
                for h in action.get("httpHeaders") or []
            )
            return dataclasses.replace(
                timing,
                kind=kind,
                port=ports[number],
                path=str(action.get("path") or "/"),
                headers=headers,
            )
        return timing

    async def check(self) -> bool:
        """One attempt: True on success."""
        if self.kind == "none":
            return True
        try:
            if self.kind == "tcpSocket":
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.port), self.timeout
                )
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return True
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                url = f"http://127.0.0.1:{self.port}{self.path}"
                async with session.get(url, headers=dict(self.headers)) as resp:
                    return 200 <= resp.status < 400
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False


class Threshold:
    """Consecutive results -> the probe's verdict, as the prober counts them (pure)."""

    def __init__(self, probe: Probe, *, initial: bool) -> None:
        self.probe = probe
        self.result = initial
        self._run = 0  # consecutive results that disagree with ``result``

    def record(self, ok: bool) -> bool:
        """Add one attempt; return the (possibly flipped) verdict."""
        if ok == self.result:
            self._run = 0
            return self.result
        self._run += 1
        needed = self.probe.success_threshold if ok else self.probe.failure_threshold
        if self._run >= needed:
            self.result, self._run = ok, 0
        return self.result


async def run_probe(
    probe: Probe, *, initial: bool, on_change: Callable[[bool], Awaitable[None]]
) -> None:
    """Probe forever (until cancelled), calling ``on_change`` each time the verdict flips."""
    counter = Threshold(probe, initial=initial)
    await asyncio.sleep(probe.initial_delay)
    while True:
        before = counter.result
        if counter.record(await probe.check()) != before:
            await on_change(counter.result)
        await asyncio.sleep(probe.period)


async def wait_started(probe: Probe) -> bool:
    """A startup probe: True once it passes, False after ``failureThreshold`` failures."""
    await asyncio.sleep(probe.initial_delay)
    failures = 0
    while True:
        if await probe.check():
            return True
        failures += 1
        if failures >= probe.failure_threshold:
            return False
        await asyncio.sleep(probe.period)
