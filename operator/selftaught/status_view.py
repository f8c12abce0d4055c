"""``selftaught status NAME``: one run's story, from a local run directory or from a cluster.

NAME is a local run directory (``WORKDIR/<run>``, holding ``status.yaml``) when one exists;
otherwise it is the name of a ``SelfTaughtRun`` in the current kubeconfig context's namespace
(``-n`` picks another), read with the kubernetes client. Both print the same lines, computed
here from a ``RunStatus`` by pure functions:

* ``best`` only when there is one (never "best: None"), accuracies with 3 decimals;
* while Suspended, the stage it paused *after*, with the next one in brackets (``status.stage``
  already names the stage that will start on resume);
* a local run whose status says Running but whose runner no longer holds the directory's lock
  (killed, crashed) shows ``Stopped`` and how to resume it, instead of a Running that never ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selftaught.api import RunStatus
from selftaught.phases import Phase, Stage
from selftaught.plan.suspend import previous_stage

GROUP, VERSION, PLURAL = "selftaught.dev", "v1alpha1", "selftaughtruns"


class StatusError(Exception):
    """A run that cannot be shown: the message is the one line the user sees (exit code 2)."""


def accuracy(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def stage_text(status: RunStatus) -> str:
    if status.stage is None:
        return "-"
    stage = Stage(status.stage)
    if Phase(status.phase) is Phase.SUSPENDED:
        before = previous_stage(status.iteration, stage)
        nxt = f"next: iteration {status.iteration} {stage.value}"
        if before is None:
            return f"paused before the first stage ({nxt})"
        return f"paused after iteration {before[0]} {before[1].value} ({nxt})"
    return f"iteration {status.iteration} {stage.value}"


def phase_text(status: RunStatus, *, runner_alive: bool | None) -> str:
    """The phase; a local run marked active whose runner is gone is shown as Stopped."""
    phase = Phase(status.phase)
    if runner_alive is False and phase in (Phase.PENDING, Phase.RUNNING):
        return f"Stopped (status says {phase.value}, but no runner holds the run directory)"
    return phase.value


def summary_lines(status: RunStatus, *, runner_alive: bool | None = None) -> list[str]:
    """The lines under the iterations table (pure; ``runner_alive`` None: a cluster run)."""
    lines = [
        f"phase: {phase_text(status, runner_alive=runner_alive)}",
        f"progress: {status.progress or '-'}, stage: {stage_text(status)}",
    ]
    if status.best_iteration is not None:
        lines.append(
            f"best: iteration {status.best_iteration}, accuracy {accuracy(status.best_accuracy)}"
        )
    if status.message:
        lines.append(f"message: {status.message}")
    if runner_alive is False and Phase(status.phase) in (Phase.PENDING, Phase.RUNNING):
        lines.append("resume it with the same `selftaught run MANIFEST --workdir ...` command")
    return lines


@dataclass(frozen=True)
class ClusterRun:
    status: RunStatus
    namespace: str
    context: str


def read_cluster_run(
    name: str, *, namespace: str | None, kubeconfig: str | None, context: str | None = None
) -> ClusterRun:
    """Read a SelfTaughtRun's status with the current (or given) kubeconfig context."""
    import urllib3
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    try:
        contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        chosen = next((c for c in contexts if c["name"] == context), active) if context else active
        config.load_kube_config(config_file=kubeconfig, context=chosen["name"])  # type: ignore[no-untyped-call]
    except (ConfigException, OSError, TypeError) as error:
        raise StatusError(
            f"{name!r} is not a local run directory and no kubeconfig is usable: {error}"
        ) from None
    namespace = namespace or chosen.get("context", {}).get("namespace") or "default"
    api = client.CustomObjectsApi()
    try:
        obj: dict[str, Any] = api.get_namespaced_custom_object(  # type: ignore[no-untyped-call,assignment]
            GROUP, VERSION, namespace, PLURAL, name, _request_timeout=15
        )
    except ApiException as error:
        if error.status == 404:
            raise StatusError(
                f"no local run directory {name!r} and no selftaughtrun {name!r} in namespace"
                f" {namespace!r} (context {chosen['name']!r}); -n picks another namespace"
            ) from None
        message = f"reading selftaughtrun {name!r}: {error.status} {error.reason}"
        raise StatusError(message) from None
    except (OSError, urllib3.exceptions.HTTPError) as error:
        message = f"cannot reach the cluster of context {chosen['name']!r}: {error}"
        raise StatusError(message) from None
    status = RunStatus.model_validate(obj.get("status") or {})
    return ClusterRun(status, namespace, chosen["name"])


def is_local(path: Path) -> bool:
    return (path / "status.yaml").is_file()
