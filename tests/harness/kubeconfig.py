"""Kubeconfig files that point kubectl, kopf and the kubernetes client at the emulator."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_kubeconfig(
    path: str | Path, server_url: str, *, namespace: str = "default", token: str = "emulator-token"
) -> Path:
    """Write a kubeconfig with one context, ``emulator``, for ``server_url`` (plain HTTP, a token
    that the emulator accepts without checking but logs, so a test can tell clients apart) and
    return its path."""
    path = Path(path)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": server_url}}],
        "users": [{"name": "emulator", "user": {"token": token}}],
        "contexts": [
            {
                "name": "emulator",
                "context": {"cluster": "emulator", "user": "emulator", "namespace": namespace},
            }
        ],
        "current-context": "emulator",
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
