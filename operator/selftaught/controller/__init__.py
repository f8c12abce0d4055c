"""The kopf operator: the thin shell that turns SelfTaughtRuns into Jobs.

Modules, in the order a change flows through them:

* :mod:`.handlers` -- kopf handlers; they only enqueue the affected run;
* :mod:`.queue` -- one reconcile per run at a time, delayed requeues, bounded workers;
* :mod:`.reconcile` -- observe (:mod:`.observe`), plan (:mod:`selftaught.plan`), apply;
* :mod:`.apply` -- Jobs, one status write, then Events;
* :mod:`.kube` -- the only module that talks to the API server (besides kopf's watches);
* :mod:`.config` -- operator settings (flags and env vars) and their mapping onto kopf's;
* :mod:`.preflight` -- credentials, API server and namespaces checked before watching;
* :mod:`.runs` -- what is kept per run, and the tombstones of deleted runs.

:func:`run` is what ``selftaught operator`` calls.
"""

from __future__ import annotations

import logging
import os
import threading

from selftaught.controller.config import OperatorConfig
from selftaught.controller.preflight import StartupError

__all__ = ["OperatorConfig", "StartupError", "run"]


def run(
    config: OperatorConfig,
    *,
    verbose: bool = False,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
) -> None:
    """Run the operator until SIGTERM/SIGINT (or ``stop_flag``); blocks.

    Standalone by default: one replica, no peering objects needed. With ``config.peering``
    set, replicas use kopf peering (a KopfPeering resource named by it) and only the one with
    the highest ``priority`` acts; give replicas distinct priorities, as equal ones freeze.
    """
    import kopf

    from selftaught.controller.handlers import Controller, build_registry
    from selftaught.controller.preflight import preflight

    if config.kubeconfig is not None:  # kopf's login reads $KUBECONFIG at login time
        os.environ["KUBECONFIG"] = str(config.kubeconfig)
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.PLAIN)
    if not verbose:  # kopf logs each handler call ("Handler 'pod_event' succeeded.") at INFO:
        # with 1,000 runs, thousands of lines a minute that say nothing; failures still show.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if not preflight(config, stop=stop_flag):  # raises StartupError: no usable credentials
        return
    controller = Controller(config)
    kopf.run(
        registry=build_registry(controller),
        standalone=config.standalone,
        peering_name=config.peering,
        priority=config.priority,
        liveness_endpoint=config.liveness,
        clusterwide=not config.namespaces,
        namespaces=list(config.namespaces),
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )
