"""The plugin's only door to the API server: the kubernetes client, configured like kubectl.

kubectl hands a plugin its arguments but not its global flags' effect, so the plugin reads the
kubeconfig itself, with kubectl's rules: ``--kubeconfig``, else ``$KUBECONFIG``, else
``~/.kube/config``; ``--context``, else the current context; ``-n``, else the context's
namespace, else ``default``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from selftaught.api import GROUP, PLURAL, VERSION, SelfTaughtRun
from selftaught.plugin.requests import PluginError

#: Seconds one request through the Service proxy may take (a judgment by a large judge).
TIMEOUT = 300.0


class Cluster:
    """Reads and patches SelfTaughtRuns, lists pods, reads their logs in one namespace."""

    def __init__(
        self, *, kubeconfig: str | None, context: str | None, namespace: str | None
    ) -> None:
        import kubernetes
        from kubernetes.config import ConfigException

        try:
            contexts, active = kubernetes.config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
                kubeconfig
            )
            chosen = active
            if context is not None:
                chosen = next((c for c in contexts if c["name"] == context), None)
                if chosen is None:
                    raise PluginError(f"context '{context}' is not in the kubeconfig")
            self.client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context
            )
        except (ConfigException, OSError) as error:
            raise PluginError(f"cannot read the kubeconfig: {error}") from None
        self.namespace = namespace or chosen.get("context", {}).get("namespace") or "default"
        self.custom = kubernetes.client.CustomObjectsApi(self.client)
        self.core = kubernetes.client.CoreV1Api(self.client)

    def close(self) -> None:
        self.client.close()

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args)``, with API errors turned into one readable line."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, **kwargs)
        except ApiException as error:
            if error.status == 404:
                raise PluginError(f"{what} not found in namespace '{self.namespace}'") from None
            raise PluginError(f"{what}: {error.status} {error.reason}: {_message(error)}") from None
        except HTTPError as error:
            raise PluginError(f"cannot reach the API server: {error}") from None

    def run(self, name: str) -> SelfTaughtRun:
        body = self._call(
            f"selftaughtrun '{name}'", self.custom.get_namespaced_custom_object,
            GROUP, VERSION, self.namespace, PLURAL, name,
        )  # fmt: skip
        return SelfTaughtRun.model_validate(body)

    def patch_run(self, name: str, patch: dict[str, Any]) -> None:
        self._call(
            f"selftaughtrun '{name}'", self.custom.patch_namespaced_custom_object,
            GROUP, VERSION, self.namespace, PLURAL, name, patch,
        )  # fmt: skip

    def pods(self, selector: str) -> list[dict[str, Any]]:
        listed = self._call(
            "pods", self.core.list_namespaced_pod, self.namespace,
            label_selector=selector, _preload_content=False,
        )  # fmt: skip
        import json

        return list(json.loads(listed.data)["items"])

    def log_lines(self, pod: str, *, follow: bool) -> Iterator[str]:
        """The pod's log as it comes (``follow``: until the container ends)."""
        response = self._call(
            f"log of pod '{pod}'", self.core.read_namespaced_pod_log, pod, self.namespace,
            follow=follow, _preload_content=False,
        )  # fmt: skip
        try:
            for chunk in response.stream(4096):
                yield chunk.decode("utf-8", errors="replace")
        finally:
            response.release_conn()

    def proxy(self, service: str, port: int) -> Any:
        """A :data:`~selftaught.plugin.judging.Transport` to ``service:port`` through the API
        server's Service proxy, with the kubeconfig's credentials (what ``kubectl proxy`` and
        ``kubectl get --raw`` use): no port-forward, no in-cluster network needed."""
        import json
        from urllib.parse import quote

        from urllib3.exceptions import HTTPError

        base = f"/api/v1/namespaces/{quote(self.namespace)}/services/{quote(service)}:{port}/proxy"

        def call(path: str, body: dict[str, Any] | None) -> Any:
            method = "GET" if body is None else "POST"
            headers = {"Accept": "application/json", "Content-Type": "application/json"}
            verb, url, headers, payload, _ = self.client.param_serialize(
                method, base + path, header_params=headers, body=body,
                auth_settings=["BearerToken"],
            )  # fmt: skip
            try:
                response = self.client.call_api(
                    verb, url, header_params=headers, body=payload, _request_timeout=TIMEOUT
                )
                data = response.read()
            except HTTPError as error:
                raise PluginError(f"cannot reach the API server: {error}") from None
            if response.status == 503:
                raise PluginError(
                    f"the judge server {service} has no ready replica yet (503 from the "
                    "Service proxy): see the run's Serving condition"
                )
            if response.status >= 400:
                raise PluginError(
                    f"the judge server {service} answered {response.status} through the "
                    f"Service proxy: {data.decode(errors='replace')[:300]}"
                )
            try:
                return json.loads(data)
            except ValueError:
                raise PluginError(
                    f"the judge server {service} sent no JSON: {data[:200]!r}"
                ) from None

        return call


def _message(error: Any) -> str:
    import json

    try:
        return str(json.loads(error.body).get("message", error.body))
    except (TypeError, ValueError):
        return str(error.body)
