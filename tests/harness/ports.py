"""Host ports for pod processes: every serving pod on this one host gets its own ports.

On a cluster each pod has its own IP, so two replicas both listen on ``containerPort`` 8000. The
emulator runs pods as processes on 127.0.0.1, so the kubelet gives each declared
``containerPort`` P of a pod a free local port H and rewrites what carries P to the process:

- an argument ``--<flag>=P`` or ``--<flag> P`` whose flag name contains ``port`` (``--port 8000``,
  ``--metrics-port=9090``);
- an environment variable of the container's own ``env`` whose name contains ``PORT``
  (any case) and whose value is P (``PORT=8000``).

Nothing else is rewritten (a port inside a URL or a ``--bind host:P`` stays), and only declared
``containerPorts`` are mapped. The mapping is recorded on the Pod as the annotation
``HOST_PORTS`` (JSON ``{"8000": 41234}``); probes, the service proxy and the pod proxy read it.
``status.podIP`` is 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
from typing import Any

#: The pod annotation that records containerPort -> host port (JSON object, string keys).
HOST_PORTS = "harness.selftaught.dev/host-ports"


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on now (the OS's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def declared_ports(container: dict[str, Any]) -> list[int]:
    """The container's ``ports[].containerPort`` numbers, in order."""
    found = []
    for entry in container.get("ports") or []:
        port = entry.get("containerPort")
        if isinstance(port, int) and port not in found:
            found.append(port)
    return found


def allocate(container: dict[str, Any]) -> dict[int, int]:
    """containerPort -> a fresh free host port, for each declared port."""
    return {port: free_port() for port in declared_ports(container)}


def annotate(ports: dict[int, int]) -> str:
    return json.dumps({str(k): v for k, v in ports.items()}, sort_keys=True)


def host_ports(pod: dict[str, Any]) -> dict[int, int]:
    """The mapping recorded on ``pod`` (empty when the kubelet mapped none)."""
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(HOST_PORTS)
    if not raw:
        return {}
    try:
        return {int(k): int(v) for k, v in json.loads(raw).items()}
    except (ValueError, AttributeError):
        return {}


def container_port(pod: dict[str, Any], port: int | str) -> int | None:
    """A port given by number or by the name of one of the pod's container ports."""
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for entry in container.get("ports") or []:
            if entry.get("name") == port and isinstance(entry.get("containerPort"), int):
                return int(entry["containerPort"])
    return None


def rewrite_args(argv: list[str], ports: dict[int, int]) -> list[str]:
    """``--port 8000`` / ``--port=8000`` -> the host port (see the module docstring)."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        flag, eq, value = arg.partition("=")
        if eq and _is_port_flag(flag) and value.isdigit() and int(value) in ports:
            out.append(f"{flag}={ports[int(value)]}")
        elif i > 0 and _is_port_flag(argv[i - 1]) and arg.isdigit() and int(arg) in ports:
            out.append(str(ports[int(arg)]))
        else:
            out.append(arg)
    return out


def rewrite_env(
    env: dict[str, str], ports: dict[int, int], *, declared: set[str]
) -> dict[str, str]:
    """The container's own ``*PORT*`` variables holding a container port -> its host port."""
    out = dict(env)
    for key, value in env.items():
        if key in declared and "PORT" in key.upper() and value.isdigit() and int(value) in ports:
            out[key] = str(ports[int(value)])
    return out


def _is_port_flag(arg: str) -> bool:
    return arg.startswith("-") and "=" not in arg and "port" in arg.lower()
