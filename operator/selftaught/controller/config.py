"""Operator configuration, and how it maps onto kopf's settings.

Every field documents its unit, its default and why; ``selftaught operator --help`` exposes
them. :func:`configure_kopf` is called from the startup handler, so the same values apply
whether the operator runs from the CLI, ``kopf run`` or a test's ``KopfRunner``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from selftaught import names
from selftaught.jobs import JobSettings
from selftaught.policy import WorkloadPolicy

#: kopf's own annotations (there is no progress to store: only event handlers are used).
ANNOTATION_PREFIX = "selftaught.dev"


#: The ``--priority`` value that derives a replica's priority from its host (pod) name.
AUTO_PRIORITY = "auto"


def peering_priority(value: str, hostname: str) -> int:
    """The kopf peering priority ``--priority`` asks for: a number, or ``auto``.

    kopf freezes replicas of equal priority, and the replicas of one Deployment share their
    arguments: ``auto`` turns each pod's own name into a priority (1..1,000,000; two pods
    collide with odds of one in a million, and a rollout renames them). Which replica is active
    does not matter, only that exactly one is. Raises ValueError for anything else.
    """
    if value.strip().lower() == AUTO_PRIORITY:
        digest = hashlib.sha256(hostname.encode("utf-8")).digest()
        return 1 + int.from_bytes(digest[:4], "big") % 1_000_000
    return int(value)


@dataclass(frozen=True)
class OperatorConfig:
    """How one operator process runs."""

    #: Namespaces to watch; empty means the whole cluster (needs cluster-wide RBAC).
    namespaces: tuple[str, ...] = ()
    #: Port of the Prometheus endpoint (/metrics); 0 disables it.
    metrics_port: int = 9090
    #: Address the metrics endpoint binds to.
    metrics_address: str = "0.0.0.0"
    #: kopf's liveness endpoint, e.g. http://0.0.0.0:8080/healthz; None disables it.
    liveness: str | None = None
    #: Run without peering (one replica). With ``peering`` set, replicas coordinate through a
    #: KopfPeering object and only the highest ``priority`` one acts.
    standalone: bool = True
    peering: str | None = None
    priority: int = 0
    #: Seconds a replica's peering entry stays valid without a keep-alive (kopf's default, 60).
    #: A standby takes over this long after the active replica died without leaving the record
    #: (kill -9, node loss); a clean stop hands over at once. Keep-alives come every
    #: ``lifetime - 5..10`` s (at least 1 s), so a short lifetime costs API writes.
    peering_lifetime: int = 60
    #: Concurrent reconciles (threads doing API calls); per run there is never more than one.
    workers: int = 4
    #: Seconds between re-observations of a run whose stage is running (stuck pods, lost events).
    resync_seconds: float = 60.0
    #: A reconcile takes a run's Jobs and pods from kopf's watch caches; the first resync after
    #: this long (jittered up to 1.5x per run) lists them from the API instead, as does any retry
    #: after a failed reconcile: the bound on how long a silent watch can hide a change.
    relist_seconds: float = 300.0
    #: Seconds a watch request asks the server to keep the stream open (then kopf re-watches).
    #: Below the API server's own 30-60 min limits, so a silently stuck stream is replaced.
    watch_server_timeout: float = 300.0
    #: Client-side limit for one watch stream; a bit above the server timeout.
    watch_client_timeout: float = 330.0
    #: Seconds to connect to the API server.
    connect_timeout: float = 10.0
    #: Seconds for one ordinary API request of the controller.
    request_timeout: float = 30.0
    #: Seconds given to in-flight reconciles at shutdown before they are cancelled.
    shutdown_timeout: float = 10.0
    #: The Jobs' operator-wide settings (TTL, security context, shm size).
    jobs: JobSettings = field(default_factory=JobSettings)
    #: Images and ServiceAccounts runs may ask for (``--allowed-image-prefix``,
    #: ``--allowed-service-account``); empty allows any. A run that breaks it fails with
    #: ``PolicyDenied`` before any Job is created (see :mod:`selftaught.policy`).
    policy: WorkloadPolicy = field(default_factory=WorkloadPolicy)


def configure_kopf(settings: Any, config: OperatorConfig) -> None:
    """Apply ``config`` to a ``kopf.OperatorSettings`` (inside the startup handler)."""
    import kopf

    settings.watching.server_timeout = config.watch_server_timeout
    settings.watching.client_timeout = config.watch_client_timeout
    settings.watching.connect_timeout = config.connect_timeout
    settings.watching.reconnect_backoff = 1.0
    # Server-side filtering: the operator never streams every Job and pod of the cluster.
    selector = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}"
    settings.watching.label_selectors["batch", "jobs"] = selector
    settings.watching.label_selectors["v1", "pods"] = selector
    settings.networking.request_timeout = config.request_timeout
    settings.networking.connect_timeout = config.connect_timeout
    # kopf's own k8s Events: only warnings and errors (the run's story is our Events).
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "selftaught-operator"
    settings.persistence.finalizer = f"{ANNOTATION_PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.peering.lifetime = config.peering_lifetime
    settings.process.ultimate_exiting_timeout = config.shutdown_timeout + 20.0
    settings.background.cancellation_polling = 5.0
