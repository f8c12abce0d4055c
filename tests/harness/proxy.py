"""The API server's proxy subresources: how a client outside a cluster reaches a Service or Pod.

``/api/v1/namespaces/NS/services/NAME[:PORT]/proxy/PATH`` (also ``http:NAME:PORT``; ``https:``
is accepted and spoken as plain HTTP) forwards the request -- any method, body, query string,
headers minus hop-by-hop ones -- to one Ready pod that the Service's ``selector`` matches, on the
host port the kubelet mapped the resolved ``targetPort`` to (``tests.harness.ports``), and
streams the answer back with its status code. PORT is a Service port's name or number; without
it the Service's unnamed (else first) port. ``targetPort`` by number or by container port name.
No Ready pod: 503 ``ServiceUnavailable`` "no endpoints available for service", as
kube-apiserver answers; a pod that refuses the connection: 503 "error trying to reach service".
``pods/NAME[:PORT]/proxy/PATH`` forwards to that pod (Ready or not) on PORT or its first port.
"""

from __future__ import annotations

import random
from typing import Any

import aiohttp
import aiohttp.web

from tests.harness import ports as host_ports
from tests.harness.resources import ResourceType
from tests.harness.store import ApiError, Store

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "authorization",
}


def split_name(raw: str) -> tuple[str, str]:
    """``name``, ``name:port``, ``http:name:port``, ``https:name:`` -> (name, port or "")."""
    parts = raw.split(":")
    if len(parts) == 3 and parts[0] in ("http", "https"):
        parts = parts[1:]
    if len(parts) > 2 or not parts[0]:
        raise ApiError(400, "BadRequest", f"invalid service request {raw!r}")
    return parts[0], parts[1] if len(parts) == 2 else ""


def is_ready(pod: dict[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def service_port(service: dict[str, Any], port: str) -> dict[str, Any]:
    """The Service port a proxy request names (by name or number; empty: unnamed or first)."""
    declared = (service.get("spec") or {}).get("ports") or []
    name = service["metadata"]["name"]
    for entry in declared:
        if port and (entry.get("name") == port or str(entry.get("port")) == port):
            return dict(entry)
    if not port and declared:
        unnamed = [e for e in declared if not e.get("name")]
        return dict((unnamed or declared)[0])
    raise ApiError(
        503,
        "ServiceUnavailable",
        f'no endpoints available for service "{name}"'
        if not declared
        else f'no port {port!r} on service "{name}"',
    )


def service_target(
    service: dict[str, Any], pods: list[dict[str, Any]], port: str
) -> tuple[str, int]:
    """(pod name, host port) of a Ready pod behind the Service, chosen at random (pure)."""
    entry = service_port(service, port)
    selector = (service.get("spec") or {}).get("selector") or {}
    name = service["metadata"]["name"]
    candidates = []
    for pod in pods:
        labels = pod["metadata"].get("labels") or {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            continue
        if not is_ready(pod):
            continue
        target = entry.get("targetPort", entry.get("port"))
        number = host_ports.container_port(pod, target) if target is not None else None
        mapped = host_ports.host_ports(pod).get(number) if number is not None else None
        if mapped is not None:
            candidates.append((pod["metadata"]["name"], mapped))
    if not candidates:
        raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
    return random.choice(candidates)


def pod_target(pod: dict[str, Any], port: str) -> int:
    mapped = host_ports.host_ports(pod)
    number = host_ports.container_port(pod, port) if port else next(iter(mapped), None)
    if number is None or number not in mapped:
        raise ApiError(
            503,
            "ServiceUnavailable",
            f'pod "{pod["metadata"]["name"]}" has no mapped port {port or "(none declared)"}',
        )
    return mapped[number]


class Proxy:
    """Forwards proxy subresource requests (one client session, opened on first use)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def serve(
        self,
        request: aiohttp.web.Request,
        *,
        store: Store,
        rt: ResourceType,
        namespace: str,
        raw_name: str,
    ) -> aiohttp.web.StreamResponse:
        name, port = split_name(raw_name)
        obj = store.get(rt, namespace, name)
        if rt.plural == "services":
            pods_rt = store.registry.get("", "v1", "pods")
            assert pods_rt is not None
            _, host_port = service_target(obj, store.list(pods_rt, namespace), port)
        else:
            host_port = pod_target(obj, port)
        marker = f"/{rt.plural}/{raw_name}/proxy"
        tail = request.raw_path.split(marker, 1)[1] if marker in request.raw_path else ""
        return await self._forward(request, f"http://127.0.0.1:{host_port}", tail or "/", name)

    async def _forward(
        self, request: aiohttp.web.Request, base: str, tail: str, name: str
    ) -> aiohttp.web.StreamResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
                auto_decompress=False,
            )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read()
        try:
            upstream = await self._session.request(
                request.method,
                base + tail,
                headers=headers,
                data=body or None,
                allow_redirects=False,
            )
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise ApiError(
                503, "ServiceUnavailable", f"error trying to reach service: {exc}"
            ) from None
        response = aiohttp.web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for key, value in upstream.headers.items():
            if key.lower() not in _HOP_BY_HOP:
                response.headers.add(key, value)
        try:
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():  # streamed: SSE answers pass through
                await response.write(chunk)
            await response.write_eof()
        except (aiohttp.ClientError, ConnectionResetError):
            pass  # the pod or the client went away mid-answer: the stream just ends
        finally:
            upstream.release()
        return response
