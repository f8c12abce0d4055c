"""Keeping a pod's files under the emulator's own directory.

A container sees its volumes at absolute paths (``/tmp``, the model cache ``/cache``,
``/dev/shm``); the emulator runs the container as a host process, so a worker that writes to
``/cache`` would create ``/cache`` on the host's filesystem root (the default ``modelCache``
did). Each volume mount instead gets a directory under the pod's own work dir, and every
environment value and argument that names a path inside a mount is rewritten to that directory,
longest mount first. The pod's volumes vanish with its work dir, like emptyDirs with the pod.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


def mount_dirs(
    container: dict[str, Any],
    pod_root: Path,
    shared: dict[str, Path] | None = None,
    *,
    volumes: list[dict[str, Any]] | None = None,
    node_root: Path | None = None,
) -> dict[str, Path]:
    """mountPath -> host directory (created) for each of the container's volume mounts.

    An emptyDir (or any volume of unknown kind) lives under the pod's work dir and goes with
    it. A ``persistentVolumeClaim`` is one directory per claim under ``node_root`` (every pod
    that mounts the claim sees the same files, as with a real PVC). A ``hostPath`` is the host's
    path itself. ``shared`` maps a volume name to one host directory for every pod (a
    node-local cache): tests share the session's built tiny judge through the ``cache`` volume.
    """
    by_name = {str(v.get("name")): v for v in volumes or []}
    found: dict[str, Path] = {}
    for mount in container.get("volumeMounts") or []:
        path = str(mount.get("mountPath", "")).rstrip("/")
        volume = by_name.get(str(mount.get("name")), {})
        if not path.startswith("/") or "hostPath" in volume:
            continue
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(mount.get("name") or path.strip("/")))
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if str(mount.get("name")) in (shared or {}):
            host = (shared or {})[str(mount.get("name"))]
        elif claim and node_root is not None:
            host = node_root / "pvc" / re.sub(r"[^A-Za-z0-9_.-]", "_", str(claim))
        else:
            host = pod_root / "volumes" / name
        host.mkdir(parents=True, exist_ok=True)
        found[path] = host
    return found


def rewrite(value: str, mounts: dict[str, Path]) -> str:
    """``value`` with a leading mount path replaced by its host directory (pure)."""
    for path in sorted(mounts, key=len, reverse=True):
        if value == path or value.startswith(path + "/"):
            return str(mounts[path]) + value[len(path) :]
    return value


def rewrite_env(
    env: dict[str, str], mounts: dict[str, Path], *, declared: set[str]
) -> dict[str, str]:
    """The container's own variables (``declared``, from its spec) rewritten; what the host
    passes through (PATH, the venv, the model cache of the test session) names host paths and
    stays as it is, even when it lies under a mount path such as ``/tmp``."""
    return {key: rewrite(value, mounts) if key in declared else value for key, value in env.items()}


def rewrite_args(argv: list[str], mounts: dict[str, Path]) -> list[str]:
    """Arguments too: ``--cache=/cache`` and ``/cache`` both map. Rewrite the container's
    command as written, before it is resolved to a host executable: a repository (and its venv)
    checked out under ``/tmp`` must not be mistaken for the pod's ``/tmp``."""
    out = []
    for arg in argv:
        flag, eq, value = arg.partition("=")
        if eq and flag.startswith("-"):
            out.append(f"{flag}={rewrite(value, mounts)}")
        else:
            out.append(rewrite(arg, mounts))
    return out
