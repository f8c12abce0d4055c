"""Checks before the operator starts watching: credentials, the API server, the namespaces.

kopf on its own retries a bad kubeconfig every few seconds with a full traceback, forever, and
watches a namespace that does not exist in silence (a run applied elsewhere then sits with a
blank phase). So, first, one line each:

* no usable credentials (no service account, the kubeconfig missing or unreadable, the server
  refusing them with 401) -> :class:`StartupError`: the CLI prints it and exits 1;
* the API server unreachable -> one warning per attempt, with a doubling backoff (1 s .. 30 s),
  until it answers (an operator outlives an API server restart; Kubernetes restarts the pod
  anyway if its liveness probe says so);
* a watched namespace that does not exist -> one warning each (the operator still watches it:
  it may be created later).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from selftaught.controller.config import OperatorConfig
from selftaught.controller.kube import ApiError, KubeApi

log = logging.getLogger(__name__)

#: Seconds between attempts to reach the API server: doubling, capped.
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


class StartupError(Exception):
    """The operator cannot start; the message is the one line a user reads."""


def connect(config: OperatorConfig) -> KubeApi:
    """An API client from the service account, else the kubeconfig; StartupError if neither."""
    path = config.kubeconfig
    if path is not None and not Path(path).is_file():
        raise StartupError(f"--kubeconfig {path}: no such file")
    try:
        return KubeApi.from_environment(
            timeout=config.connect_timeout, kubeconfig=path, retries=False
        )
    except Exception as error:  # the client raises ConfigException, yaml and OS errors alike
        where = path or "$KUBECONFIG / ~/.kube/config"
        reason = " ".join(str(error).split()) or type(error).__name__
        raise StartupError(f"no usable credentials: kubeconfig {where}: {reason}") from None


def delays() -> Iterator[float]:
    yield from RETRY_DELAYS
    while True:
        yield RETRY_DELAYS[-1]


def wait_for_api(
    api: KubeApi,
    *,
    stop: threading.Event | None = None,
    sleep: Callable[[float], object] | None = None,
) -> bool:
    """Until ``GET /version`` answers: True; False if ``stop`` was set meanwhile."""
    stop = stop or threading.Event()
    wait = sleep or stop.wait
    for attempt, delay in enumerate(delays(), start=1):
        try:
            api.request("GET", "/version")
            return True
        except ApiError as error:
            if error.status == 401:
                raise StartupError(
                    f"the API server refused our credentials: {error.status} {error.reason} "
                    f"{error.message}".strip()
                ) from None
            if error.status < 500:
                return True  # it answered: reachable (what it allows is RBAC's business)
            reason = f"{error.status} {error.reason}"
        except Exception as error:  # connection refused, DNS, TLS, timeouts
            reason = " ".join(str(error).split())[:300] or type(error).__name__
        log.warning(
            "API server %s unreachable (attempt %d): %s; retrying in %.0fs",
            api.host, attempt, reason, delay,
        )  # fmt: skip
        wait(delay)
        if stop.is_set():
            return False
    return False  # pragma: no cover - the generator never ends


def missing_namespaces(api: KubeApi, namespaces: tuple[str, ...]) -> list[str]:
    """The watched namespaces that do not exist. One list call, the verb kopf's namespace
    observer holds anyway (RBAC); if it is refused, nothing is reported."""
    if not namespaces:
        return []
    try:
        answer = api.request("GET", "/api/v1/namespaces")
    except ApiError:
        return []
    existing = {(item.get("metadata") or {}).get("name") for item in answer.get("items") or []}
    return [namespace for namespace in namespaces if namespace not in existing]


def preflight(config: OperatorConfig, *, stop: threading.Event | None = None) -> bool:
    """Run the checks; False if ``stop`` ended the wait for the API server."""
    api = connect(config)
    try:
        if not wait_for_api(api, stop=stop):
            return False
        for namespace in missing_namespaces(api, config.namespaces):
            log.warning(
                "namespace %s does not exist: runs there are seen once it is created",
                namespace,
            )
    finally:
        api.close()
    return True
