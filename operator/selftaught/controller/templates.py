"""The operator's check of a run's ConfigMap templates, before the run starts.

A ``configmap://name/key`` template lives in the run's namespace. Before the first Job (while
the run has no position: Pending, or Failed by a refused start) the operator reads each named
ConfigMap through the API and checks the key's template like every other check of
:mod:`selftaught.template_sources`: a missing ConfigMap, a missing key or a bad placeholder
refuses the run with BadInput naming the spec field, instead of a pod that waits forever for a
volume (missing ConfigMap) or a stage that fails after its model loaded.

Other sources (s3://, file:// inside the pods) are not readable by the operator; their stage
checks them when it starts. If RBAC forbids reading ConfigMaps the check is skipped with a
warning (the stage still checks the mounted key).
"""

from __future__ import annotations

import base64
import binascii
import logging

from selftaught.api import SelfTaughtRun
from selftaught.controller.kube import ApiError, KubeApi, Object
from selftaught.phases import Phase
from selftaught.template_sources import Source, Unreadable, problems, sources

log = logging.getLogger(__name__)


def unstarted(run: SelfTaughtRun) -> bool:
    """Whether ``run`` has not created its first Job yet (the only time this check runs)."""
    return run.status.stage is None and run.status.phase in (Phase.PENDING, Phase.FAILED)


def template_problem(api: KubeApi, run: SelfTaughtRun) -> str | None:
    """What is wrong with ``run``'s configmap:// templates, one line, or None when nothing is
    (or nothing could be read: the stage checks again)."""
    if not unstarted(run) or not any(s.configmap for s in sources(run.spec)):
        return None
    found: dict[str, Object | None] = {}

    def read(source: Source) -> bytes | None:
        key = source.configmap
        if key is None:
            return None
        if key.name not in found:
            found[key.name] = api.get_configmap(run.namespace, key.name)
        configmap = found[key.name]
        if configmap is None:
            raise Unreadable(f"ConfigMap {key.name} not found in namespace {run.namespace}")
        return _value(configmap, key.name, key.key)

    try:
        wrong = problems(run.spec, read)
    except ApiError as error:
        log.warning(
            "run %s/%s: cannot read its template ConfigMaps (%s %s); the stages check them",
            run.namespace, run.name, error.status, error.reason,
        )  # fmt: skip
        return None
    return "; ".join(wrong) or None


def _value(configmap: Object, name: str, key: str) -> bytes:
    data = configmap.get("data") or {}
    if isinstance(data.get(key), str):
        return str(data[key]).encode()
    binary = configmap.get("binaryData") or {}
    if isinstance(binary.get(key), str):
        try:
            return base64.b64decode(binary[key], validate=True)
        except binascii.Error as error:
            raise Unreadable(f"ConfigMap {name} key {key}: not base64: {error}") from error
    keys = ", ".join(sorted([*data, *binary])) or "none"
    raise Unreadable(f"ConfigMap {name} has no key {key} (keys: {keys})")
