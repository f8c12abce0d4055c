"""Running one pod's container as a local process, as a kubelet + container runtime would.

The container's ``command`` + ``args`` run in a fresh temp dir with the container's ``env``
(plain values, ``secretKeyRef``, ``configMapKeyRef``, ``fieldRef`` to name/namespace) plus
``JOB_COMPLETION_INDEX`` and ``SELFTAUGHT_TERMINATION_LOG``, which points at a temp file that
plays ``/dev/termination-log``. ``selftaught`` and ``python``/``python3`` resolve to the
virtualenv this harness runs in, so workers run the code under test. The image is ignored.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The kubelet truncates termination messages to 4096 bytes.
MESSAGE_LIMIT = 4096
#: Host variables a worker process may need; everything else comes from the pod spec.
_PASS_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "OMP_NUM_THREADS")


@dataclass
class ProcessResult:
    exit_code: int
    message: str


def resolve_command(argv: list[str]) -> list[str]:
    """Map the image's entrypoints onto this virtualenv's executables."""
    if not argv:
        raise ValueError("container has no command: the emulator runs no image entrypoint")
    head, bindir = argv[0], Path(sys.executable).parent
    if head in ("python", "python3"):
        return [sys.executable, *argv[1:]]
    if head == "selftaught":
        return [str(bindir / "selftaught"), *argv[1:]]
    return [
        shutil.which(head, path=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}") or head,
        *argv[1:],
    ]


def build_env(
    container: dict[str, Any],
    *,
    pod: dict[str, Any],
    lookup: dict[tuple[str, str], dict[str, Any]],
    extra: dict[str, str],
) -> dict[str, str]:
    """The process environment. ``lookup`` maps (kind, name) to fetched Secrets/ConfigMaps.

    Raises KeyError (the kubelet's CreateContainerConfigError) for a missing, non-optional ref.
    """
    env = {k: v for k, v in os.environ.items() if k in _PASS_ENV}
    env.update(extra)
    meta = pod["metadata"]
    for var in container.get("env") or []:
        name, source = var["name"], var.get("valueFrom")
        if source is None:
            env[name] = str(var.get("value", ""))
            continue
        if "fieldRef" in source:
            path = source["fieldRef"].get("fieldPath", "")
            env[name] = {
                "metadata.name": meta.get("name", ""),
                "metadata.namespace": meta.get("namespace", ""),
            }.get(
                path,
                (meta.get("annotations") or {}).get("batch.kubernetes.io/job-completion-index", "")
                if "job-completion-index" in path
                else "",
            )
            continue
        for ref_kind, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
            ref = source.get(ref_kind)
            if ref is None:
                continue
            obj = lookup.get((kind, ref["name"]))
            data = (obj or {}).get("data") or {}
            if ref["key"] not in data:
                if ref.get("optional"):
                    break
                raise KeyError(f'{kind.lower()} "{ref["name"]}" has no key "{ref["key"]}"')
            raw = data[ref["key"]]
            env[name] = base64.b64decode(raw).decode() if kind == "Secret" else str(raw)
    return env


async def fetch_references(
    namespace: str,
    container: dict[str, Any],
    request: Callable[[str, str], Awaitable[dict[str, Any]]],
) -> dict[tuple[str, str], dict[str, Any]]:
    """The Secrets and ConfigMaps the container's env refers to, (kind, name) -> object, fetched
    with ``request("GET", path)`` (LookupError: missing; ``build_env`` decides if that fails)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for var in container.get("env") or []:
        source = var.get("valueFrom") or {}
        for ref_kind, kind, plural in (
            ("secretKeyRef", "Secret", "secrets"),
            ("configMapKeyRef", "ConfigMap", "configmaps"),
        ):
            ref = source.get(ref_kind)
            if ref and (kind, ref["name"]) not in found:
                with contextlib.suppress(LookupError):
                    found[(kind, ref["name"])] = await request(
                        "GET", f"/api/v1/namespaces/{namespace}/{plural}/{ref['name']}"
                    )
    return found


def read_message(path: Path) -> str:
    """The termination message: the file's first 4096 bytes, as the kubelet reports it."""
    try:
        raw = path.read_bytes()[:MESSAGE_LIMIT]
    except OSError:
        return ""
    return raw.decode("utf-8", errors="replace")


async def run_process(argv: list[str], *, env: dict[str, str], workdir: Path) -> ProcessResult:
    """Run to completion; on cancellation, SIGTERM the process group, then SIGKILL after 2 s."""
    log = workdir / "container.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=out,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            code = await proc.wait()
        except asyncio.CancelledError:
            await _terminate(proc)
            raise
    message = read_message(Path(env["SELFTAUGHT_TERMINATION_LOG"]))
    return ProcessResult(code, message)


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), grace)
            return
        except TimeoutError:
            continue
