"""The operator's only door to the Kubernetes API (besides kopf's own watches).

A deliberately small adapter: plain JSON in and out over the official client's connection
handling and authentication (in-cluster service account or kubeconfig), no generated model
classes. Every call the controller makes is a method here, so the RBAC the chart grants is
exactly this list:

==========  ===========  ====================  =========================================
verb        group        resource              why
==========  ===========  ====================  =========================================
get         selftaught.dev  selftaughtruns     fresh status before each plan
patch       selftaught.dev  selftaughtruns/status  write the new status (merge patch)
list        batch        jobs                  the run's children when kopf's copy won't do
create      batch        jobs                  start a stage attempt
delete      batch        jobs                  stale or stuck attempts (background)
list        ""           pods                  the same, for exit codes and summaries
create      ""           services              multi-node training rendezvous (headless),
                                                 and the judge server's (spec.serve)
get         ""           services              the judge server's Service: is it as built?
patch       ""           services              ... replaced when spec.serve.port changed
delete      ""           services              ... removed with spec.serve
get         apps         deployments           the judge server: as built? rolled out?
create      apps         deployments           serve the best judge (spec.serve)
patch       apps         deployments           roll it to a new best judge (once per change)
delete      apps         deployments           spec.serve removed
create      ""           events                the run's story for ``kubectl describe``
==========  ===========  ====================  =========================================

(kopf itself lists and watches selftaughtruns, jobs, pods and deployments, and lists namespaces
and CRDs. The judge server's requests are in :mod:`.serving`, through :meth:`KubeApi.request`.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from selftaught import names
from selftaught.api import GROUP, PLURAL, VERSION

Object = dict[str, Any]


class ApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class Conflict(ApiError):
    """409 on a write guarded by resourceVersion: someone wrote first; plan again."""


class KubeApi:
    """JSON requests through a ``kubernetes.client.ApiClient``."""

    def __init__(self, client: Any, *, timeout: float = 30.0) -> None:
        self.client = client
        self.timeout = timeout

    @classmethod
    def from_environment(
        cls,
        *,
        timeout: float = 30.0,
        pool: int = 8,
        kubeconfig: str | Path | None = None,
        retries: bool | None = None,
    ) -> KubeApi:
        """In-cluster credentials when running in a pod, else ``kubeconfig`` (default:
        ``$KUBECONFIG``, ~/.kube/config). ``retries=False``: no urllib3 retries (and no log
        line for each), for a caller that retries itself."""
        import kubernetes

        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig) if kubeconfig else None,
                client_configuration=configuration,
            )
        configuration.connection_pool_maxsize = pool
        if retries is not None:
            configuration.retries = retries
        return cls(kubernetes.client.ApiClient(configuration), timeout=timeout)

    @property
    def host(self) -> str:
        return str(getattr(self.client.configuration, "host", "?"))

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------------- requests

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Object:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        verb, url, headers, payload, _ = self.client.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.client.call_api(
            verb, url, header_params=headers, body=payload, _request_timeout=self.timeout
        )
        data = response.read()
        parsed: Object = {}
        if data:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = {"message": data.decode(errors="replace")[:500]}
        if response.status >= 400:
            error = Conflict if response.status == 409 else ApiError
            raise error(response.status, parsed.get("reason", ""), parsed.get("message", ""))
        return parsed

    # ------------------------------------------------------------------------ resources

    @staticmethod
    def run_path(namespace: str, name: str) -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/{PLURAL}/{quote(name)}"

    def get_run(self, namespace: str, name: str) -> Object | None:
        try:
            return self.request("GET", self.run_path(namespace, name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def get_configmap(self, namespace: str, name: str) -> Object | None:
        """A ConfigMap (a run's prompt templates), or None when it does not exist."""
        try:
            return self.request(
                "GET", f"/api/v1/namespaces/{quote(namespace)}/configmaps/{quote(name)}"
            )
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def patch_run_status(self, namespace: str, name: str, patch: Object) -> Object:
        """JSON merge patch on the status subresource (a resourceVersion in it guards it)."""
        return self.request(
            "PATCH",
            self.run_path(namespace, name) + "/status",
            body=patch,
            content_type="application/merge-patch+json",
        )

    def list_children(self, namespace: str, run_uid: str, kind: str) -> list[Object]:
        """The run's Jobs (``kind="jobs"``) or pods (``"pods"``), by the run-uid label."""
        base = "/apis/batch/v1" if kind == "jobs" else "/api/v1"
        selector = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY},{names.LABEL_RUN_UID}={run_uid}"
        answer = self.request(
            "GET",
            f"{base}/namespaces/{quote(namespace)}/{kind}",
            query={"labelSelector": selector},
        )
        return list(answer.get("items") or [])

    def create(self, manifest: Object) -> Object | None:
        """Create a Job, Service or Event: the object as created, or None when it already
        existed (idempotent create)."""
        kind = manifest["kind"]
        namespace = quote(manifest["metadata"]["namespace"])
        base = "/apis/batch/v1" if kind == "Job" else "/api/v1"
        plural = {"Job": "jobs", "Service": "services", "Event": "events"}[kind]
        try:
            return self.request("POST", f"{base}/namespaces/{namespace}/{plural}", body=manifest)
        except Conflict:
            return None

    def delete_job(self, namespace: str, name: str) -> bool:
        """Delete with background propagation (its pods go too); False if already gone."""
        try:
            self.request(
                "DELETE",
                f"/apis/batch/v1/namespaces/{quote(namespace)}/jobs/{quote(name)}",
                body={"propagationPolicy": "Background"},
            )
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        return True
