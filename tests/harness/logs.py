"""``GET /api/v1/namespaces/NS/pods/NAME/log``: what ``kubectl logs [-f]`` reads.

A real API server proxies this to the node's kubelet, which reads the container's log file. The
emulator's kubelet writes each pod's output to ``<log_root>/<namespace>.<pod>/container.log``
while the process runs (unbuffered), so the API server reads the same file: the whole of it, its
last ``tailLines`` lines, or with ``follow=true`` a chunked stream that sends new bytes as they
arrive and ends when the pod has finished (phase Succeeded or Failed) or is deleted.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp.web

from tests.harness.resources import ResourceType
from tests.harness.store import ApiError, Store

#: How often a follow stream looks for new output, seconds.
POLL_SECONDS = 0.2
_DONE = ("Succeeded", "Failed")


def log_file(log_root: Path, namespace: str, pod: str) -> Path:
    return log_root / f"{namespace}.{pod}" / "container.log"


def tail(data: bytes, lines: int | None) -> bytes:
    """The last ``lines`` lines of ``data`` (all for None), as the kubelet's ``tailLines``."""
    if lines is None:
        return data
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


def _waiting(pod: dict[str, Any]) -> ApiError:
    name = pod["metadata"]["name"]
    container = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name", "")
    return ApiError(
        400,
        "BadRequest",
        f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating',
    )


def _int_query(query: Any, key: str) -> int | None:
    raw = query.get(key)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, "BadRequest", f"{key}: invalid value {raw!r}: not an integer") from None


async def serve_log(
    request: aiohttp.web.Request,
    *,
    store: Store,
    rt: ResourceType,
    namespace: str,
    name: str,
    log_root: Path | None,
) -> aiohttp.web.StreamResponse:
    pod = store.get(rt, namespace, name)  # 404 NotFound for a pod that does not exist
    path = log_file(log_root, namespace, name) if log_root is not None else None
    if path is None or not path.exists():
        raise _waiting(pod)
    lines = _int_query(request.query, "tailLines")
    data = tail(path.read_bytes(), lines)
    if request.query.get("follow") not in ("true", "1"):
        return aiohttp.web.Response(body=data, content_type="text/plain")
    response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/plain"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(data)
    offset = path.stat().st_size if lines is not None else len(data)
    while True:
        finished = _finished(store, rt, namespace, name, uid=pod["metadata"].get("uid"))
        size = path.stat().st_size if path.exists() else offset
        if size > offset:
            with path.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read(size - offset)
            offset += len(chunk)
            await response.write(chunk)
            continue
        if finished:
            break
        await asyncio.sleep(POLL_SECONDS)
    await response.write_eof()
    return response


def _finished(store: Store, rt: ResourceType, namespace: str, name: str, *, uid: Any) -> bool:
    obj = store.objects.get(store.key(rt, namespace, name))
    if obj is None or obj["metadata"].get("uid") != uid:
        return True
    return (obj.get("status") or {}).get("phase") in _DONE
