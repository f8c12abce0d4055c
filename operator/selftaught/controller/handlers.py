"""The kopf handlers: each one only decides *which run* to reconcile and enqueues it.

==================  =====================================================================
handler             does
==================  =====================================================================
login               service account in a pod, else $KUBECONFIG
indexes             latest body of each Job and pod of ours, by run uid
                    (:mod:`.cache`: what a reconcile reads instead of list calls)
startup             apply :class:`.config.OperatorConfig` to kopf, start metrics + queue
cleanup             stop the queue (in-flight reconciles get ``shutdown_timeout``), metrics
run event           create / resume (initial listing) / spec change -> enqueue the run;
                    deleted or deleting -> tombstone its uid, drop its record and metrics
                    (owner GC removes its Jobs; :mod:`.runs`)
Job event           a child Job changed what a plan sees -> enqueue its owning run; a child
                    going away -> that reconcile reads the run fresh (is it still there?)
pod event           a child pod changed (started, stuck, finished) -> enqueue its run
Deployment event    the judge server's rollout moved (spec.serve) -> enqueue its run
==================  =====================================================================

Event handlers have no kopf retries by design: they cannot fail (they only enqueue), and the
queue retries a failing reconcile with its own backoff (0.5 s .. 60 s). The activity handlers
(startup, cleanup) set ``retries``, ``backoff`` and ``timeout`` explicitly.

No ``on.create/on.update/on.resume``, daemon or timer is used: those make kopf write its
bookkeeping into every run (annotations, a finalizer), so deleting a run would wait for the
operator. Watch events carry the same information: the initial listing covers resume, an event
whose ``metadata.generation`` moved covers update.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from selftaught import names
from selftaught.api import GROUP, KIND, PLURAL, VERSION
from selftaught.controller.cache import ChildCache
from selftaught.controller.config import OperatorConfig, configure_kopf
from selftaught.controller.kube import KubeApi
from selftaught.controller.observe import QUIET, essentials, signature
from selftaught.controller.queue import Key, WorkQueue
from selftaught.controller.reconcile import Reconciler
from selftaught.controller.runs import RunBook, Tombstones
from selftaught.metrics import Metrics

log = logging.getLogger(__name__)


class Controller:
    """The long-lived parts of one operator process, wired together at startup."""

    def __init__(self, config: OperatorConfig, *, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.reconciler: Reconciler | None = None
        self.queue: WorkQueue | None = None
        self.cache: ChildCache | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._server: Any = None
        #: Everything kept per run, added and dropped in one place (:class:`.runs.RunBook`).
        self.runs = RunBook()
        #: Uids of runs whose deletion was observed: nothing is created for them again.
        self.tombstones = Tombstones()
        #: Job or pod uid -> the :func:`.observe.signature` last reconciled for.
        self._signatures: dict[str, tuple[Any, ...]] = {}
        self._random = random.Random()

    async def start(self, cache: ChildCache | None = None) -> None:
        api = KubeApi.from_environment(
            timeout=self.config.request_timeout, kubeconfig=self.config.kubeconfig
        )
        self.cache = cache
        self.reconciler = Reconciler(
            api,
            self.metrics,
            job_settings=self.config.jobs,
            policy=self.config.policy,
            resync_seconds=self.config.resync_seconds,
            on_job_created=cache.job_created if cache is not None else None,
            buried=self.tombstones.__contains__,
        )
        self._executor = ThreadPoolExecutor(self.config.workers, "selftaught-reconcile")
        self.queue = WorkQueue(self._reconcile, workers=self.config.workers)
        self.queue.start()
        if self.config.metrics_port:
            self._server = self.metrics.serve(self.config.metrics_port, self.config.metrics_address)

    async def stop(self) -> None:
        if self.queue is not None:
            await self.queue.stop(self.config.shutdown_timeout)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self.reconciler is not None:
            self.reconciler.api.close()

    async def _reconcile(self, key: Key, fresh: bool, routine: bool) -> float | None:
        """Copy the cached children here, on the loop that updates them; plan in a thread.

        Every ``relist_seconds`` (jittered up to half as much again, so runs started together
        do not list together) a *routine* reconcile lists the run's children from the API: a
        silent watch cannot hide a change for longer. Never a triggered one: a stage hand-off
        must not wait for list calls (at 1,000 runs those relists coincided with a wave of
        stage ends and made the hand-offs wait tens of seconds).
        """
        assert self.reconciler is not None
        record = self.runs.get(key)
        now = time.monotonic()
        # A run not (or no longer) known here is read, with its children, from the API.
        if record is None or (routine and now >= (record.relist_due or now)):
            fresh = True
        cached = None
        if not fresh and record is not None and self.cache is not None:
            cached = self.cache.children(record.uid)
        if record is not None and (cached is None or record.relist_due is None):
            jitter = 1.0 + 0.5 * self._random.random()
            record.relist_due = now + self.config.relist_seconds * jitter
        watched = None if fresh or record is None else record.watched
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self.reconciler.reconcile, *key, cached, watched
        )

    # ----------------------------------------------------------------------- triggers

    def on_run(self, event_type: str | None, body: Any) -> None:
        meta = body.get("metadata", {})
        key = (meta.get("namespace", ""), meta.get("name", ""))
        uid = meta.get("uid", "")
        if self.queue is None:
            return
        if event_type == "DELETED" or meta.get("deletionTimestamp") or uid in self.tombstones:
            self.forget(key, uid)
            return
        record = self.runs.track(key, uid)
        record.watched = copy.deepcopy(dict(body))
        generation = int(meta.get("generation") or 0)
        if record.generation != generation:  # new, resumed, or its spec changed
            record.generation = generation
            self.queue.add(key)

    def forget(self, key: Key, uid: str) -> None:
        """A run is being deleted or is gone: bury its uid, drop everything kept about it."""
        self.tombstones.bury(uid)
        record = self.runs.get(key)
        if record is not None and record.uid == uid:
            self.runs.drop(key)
        assert self.queue is not None
        self.queue.forget(key)
        self.metrics.forget_run(*key)
        if self.cache is not None:
            self.cache.forget(uid)
        if self.reconciler is not None:
            self.reconciler.forget(uid)

    def on_child(self, event_type: str | None, body: Any) -> None:
        """A Job or pod of ours changed in a way a plan can see: reconcile the run it belongs
        to (by its uid label). Updates that change no :func:`.observe.signature` are skipped.

        A child that goes away (deleted, or deleting) may be the cascade of its run's deletion,
        whose own event has not arrived yet: that reconcile reads the run fresh from the API,
        so a create can only follow proof that the owner still exists.
        """
        meta = body.get("metadata", {})
        uid = meta.get("uid", "")
        run_uid = (meta.get("labels") or {}).get(names.LABEL_RUN_UID, "")
        going = event_type == "DELETED" or bool(meta.get("deletionTimestamp"))
        if event_type == "DELETED":
            self._signatures.pop(uid, None)
        else:
            seen = signature(body)
            if self._signatures.get(uid, QUIET) == seen and not going:  # e.g. our new Job
                log.debug(
                    "%s %s: %s, unchanged %s", body.get("kind"), meta.get("name"), event_type, seen
                )
                return
            self._signatures[uid] = seen
        if run_uid and run_uid in self.tombstones:
            return
        key = self.runs.key_of(run_uid)
        if key is None:  # a Job's owner reference also names it
            for owner in meta.get("ownerReferences") or []:
                if owner.get("kind") == KIND and owner.get("controller"):
                    if owner.get("uid") in self.tombstones:
                        return
                    key = (meta.get("namespace", ""), owner.get("name", ""))
        log.debug("%s %s: %s, now %s -> run %s", body.get("kind"), meta.get("name"), event_type,
                  self._signatures.get(uid), key)  # fmt: skip
        if key is not None and self.queue is not None:
            self.queue.add(key, fresh=going)

    def on_server(self, event_type: str | None, body: Any) -> None:
        """The judge server's Deployment (spec.serve) changed its rollout: reconcile its run,
        which reads it into status.serving. Updates that change nothing a status shows (and
        our own writes, whose counts are unchanged) are skipped."""
        meta = body.get("metadata", {})
        uid = meta.get("uid", "")
        status = body.get("status") or {}
        seen = (
            "server", meta.get("generation"), status.get("observedGeneration"),
            status.get("replicas"), status.get("updatedReplicas"), status.get("readyReplicas"),
        )  # fmt: skip
        if event_type == "DELETED":
            self._signatures.pop(uid, None)
        elif self._signatures.get(uid) == seen:
            return
        else:
            self._signatures[uid] = seen
        run_uid = (meta.get("labels") or {}).get(names.LABEL_RUN_UID, "")
        if not run_uid or run_uid in self.tombstones:
            return
        key = self.runs.key_of(run_uid)
        if key is not None and self.queue is not None:
            self.queue.add(key, fresh=event_type == "DELETED")


def build_registry(controller: Controller) -> kopf.OperatorRegistry:
    """A kopf registry with our handlers only (no module-level globals)."""
    registry = kopf.OperatorRegistry()
    config = controller.config

    @kopf.on.login(registry=registry, retries=3, backoff=2.0, timeout=30.0)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """In-cluster service account first, then $KUBECONFIG (kopf's own, no client library)."""
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    # The indexes hold only what the planner reads of each object (``essentials``: a Job without
    # its pod template is a tenth of its size; at 1,000 runs that is most of the operator's
    # memory). Async, so kopf runs them on its loop instead of handing each event to a thread.
    @kopf.index(
        "batch", "v1", "jobs", labels=names.CHILD_SELECTOR, id="selftaught_jobs", registry=registry
    )
    async def selftaught_jobs(labels: kopf.Labels, body: kopf.Body, **_: Any) -> Any:
        return {labels.get(names.LABEL_RUN_UID, ""): essentials(body)}

    @kopf.index("v1", "pods", labels=names.CHILD_SELECTOR, id="selftaught_pods", registry=registry)
    async def selftaught_pods(labels: kopf.Labels, body: kopf.Body, **_: Any) -> Any:
        return {labels.get(names.LABEL_RUN_UID, ""): essentials(body)}

    @kopf.on.startup(registry=registry, retries=3, backoff=2.0, timeout=30.0)
    async def startup(settings: kopf.OperatorSettings, **indexes: Any) -> None:
        """The indexes come as keyword arguments named after their handlers (kopf's way)."""
        configure_kopf(settings, config)
        await controller.start(ChildCache(indexes["selftaught_jobs"], indexes["selftaught_pods"]))
        log.info("selftaught operator started (namespaces: %s)", config.namespaces or "all")

    @kopf.on.cleanup(registry=registry, retries=1, backoff=1.0, timeout=config.shutdown_timeout)
    async def cleanup(**_: Any) -> None:
        await controller.stop()

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def run_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        controller.on_run(type, body)

    @kopf.on.event("batch", "v1", "jobs", labels=names.CHILD_SELECTOR, registry=registry)
    async def job_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        controller.on_child(type, body)

    @kopf.on.event("v1", "pods", labels=names.CHILD_SELECTOR, registry=registry)
    async def pod_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        controller.on_child(type, body)

    @kopf.on.event("apps", "v1", "deployments", labels=names.CHILD_SELECTOR, registry=registry)
    async def deployment_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        controller.on_server(type, body)

    return registry
