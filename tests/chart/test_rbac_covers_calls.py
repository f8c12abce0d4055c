"""The chart's RBAC, derived from the operator's real API calls instead of from a hand-made list.

The real operator (real kopf, real kubernetes client) runs a short story against the emulator
as its own user (a bearer token only it holds): a run that succeeds after one retried Job and a
multi-node training stage (headless Service) and a judge server (``spec.serve``: created,
changed, removed), a run created suspended and resumed whose judging
template is a ConfigMap key (the operator reads the ConfigMap before its first Job), a
``resumeFrom`` that replaces an old Job, and the deletion of both runs. Every request that user
made is mapped to what the Kubernetes authorizer checks -- (verb, API group, resource
[/subresource], namespace) -- and must be allowed by the rules the chart binds to the operator's
ServiceAccount:

- ``watch.scope: cluster`` (defaults): the operator watches every namespace;
- ``watch.scope: namespaced``: a Role in the watched namespace plus the read-only "scan"
  ClusterRole (kopf's CRD and namespace observers).

Conversely the chart may grant nothing the operator never did, except :data:`UNUSED_ALLOWED`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import helm_python as helm
import pytest

from tests.chart.rendering import RELEASE, render
from tests.e2e.conftest import (  # noqa: F401 - fixtures
    E2E,
    SUMMARIES,
    cluster,
    run_manifest,
    start_operator,
    stop_operator,
)
from tests.e2e.test_operator import jobs_of, wait_until
from tests.e2e.test_serve_deployment import server_processes
from tests.harness.faults import RequestRecord
from tests.harness.fixtures import kube  # noqa: F401 - the emulator fixture
from tests.harness.kubeconfig import write_kubeconfig
from tests.harness.pod_faults import PodFault

pytestmark = pytest.mark.e2e

#: The operator's credential in these tests; the emulator logs it with every request.
OPERATOR_TOKEN = "selftaught-operator-sa"
#: Non-resource URLs every authenticated user may GET (Kubernetes' bootstrap ClusterRoles
#: system:discovery and system:public-info-viewer): kopf and the client discover APIs here.
DISCOVERY = ("/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz")
#: (verb, group, resource) the chart may grant although the story never used them, each with
#: its reason. Empty today: kopf's peering (``kopf.dev`` kopfpeerings) would go here if the chart
#: granted it for ``--peering`` replicas, and a handler that adds a finalizer would need
#: ``patch selftaughtruns`` in the story, not here.
UNUSED_ALLOWED: dict[tuple[str, str, str], str] = {}


@dataclass(frozen=True)
class Attributes:
    """What the authorizer decides on: Kubernetes' RequestInfo for a resource request."""

    verb: str
    group: str
    resource: str  # "jobs", "selftaughtruns/status"
    namespace: str  # "" for a cluster-scoped request (all namespaces, or a cluster resource)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.verb, self.group, self.resource)


def attributes(record: RequestRecord) -> Attributes | None:
    """RequestInfoFactory's reading of a request; None for a non-resource URL (discovery)."""
    parts = [part for part in record.path.split("/") if part]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest:  # /apis/<group>/<version>: discovery
        return None
    verb = {
        "GET": "get",
        "HEAD": "get",
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete",
    }[record.method]
    if rest[0] == "watch":  # the deprecated /watch/ prefix
        verb, rest = "watch", rest[1:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in ("status", "finalize"):
            rest = rest[2:]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) >= 3 else "")
    name = rest[1] if len(rest) >= 2 else ""
    query = parse_qs(record.query)
    if not name and verb == "get":
        watching = query.get("watch", ["false"])[-1].lower() in ("true", "1")
        verb = "watch" if watching else "list"
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(verb, group, resource, namespace)


@dataclass(frozen=True)
class Grant:
    """One bound PolicyRule, effective cluster-wide (namespace "") or in one namespace."""

    namespace: str
    groups: frozenset[str]
    resources: frozenset[str]
    verbs: frozenset[str]

    def allows(self, call: Attributes) -> bool:
        return (
            (not self.namespace or self.namespace == call.namespace)
            and call.group in self.groups
            and call.resource in self.resources
            and call.verb in self.verbs
        )

    def keys(self) -> set[tuple[str, str, str]]:
        return {(v, g, r) for v in self.verbs for g in self.groups for r in self.resources}


def bound_grants(docs: list[dict[str, Any]], service_account: str) -> list[Grant]:
    """The rules the chart's (Cluster)RoleBindings give ``service_account``, as RBAC reads
    them: a RoleBinding grants its role's rules in its own namespace only."""
    roles = {
        (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]): doc
        for doc in docs
        if doc["kind"] in ("Role", "ClusterRole")
    }
    grants: list[Grant] = []
    for binding in docs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(
            s["kind"] == "ServiceAccount" and s["name"] == service_account
            for s in binding["subjects"]
        ):
            continue
        namespace = binding["metadata"].get("namespace", "")
        ref = binding["roleRef"]
        role = roles[(ref["kind"], namespace if ref["kind"] == "Role" else "", ref["name"])]
        for rule in role["rules"]:
            grants.append(
                Grant(
                    namespace if binding["kind"] == "RoleBinding" else "",
                    frozenset(rule["apiGroups"]),
                    frozenset(rule["resources"]),
                    frozenset(rule["verbs"]),
                )
            )
    return grants


# ------------------------------------------------------------------------------ the story


def delete_run(e2e: E2E, run: str) -> None:
    """Delete the run and wait for owner GC to remove its Jobs."""
    e2e.ns("delete", "selftaughtrun", run, "--timeout=30s")
    wait_until(lambda: not jobs_of(e2e, run), what=f"the Jobs of {run} garbage-collected")


def run_story(e2e: E2E, log: Path, *, cluster_wide: bool) -> list[RequestRecord]:
    """The operator's requests during the story, as the emulator logged them."""
    assert e2e.api is not None
    kubeconfig = write_kubeconfig(
        e2e.workdir / "operator.kubeconfig", e2e.api.url, token=OPERATOR_TOKEN
    )
    # The first train pod exits 1 (ProgramError): one retry after the 10 s backoff.
    e2e.kubelet.inject(
        PodFault.EXIT, labels={"selftaught.dev/stage": "train"}, exit_code=1, times=1,
        message='{"error": "NCCL timeout"}',
    )  # fmt: skip
    e2e.instant()
    operator = start_operator(e2e, log, cluster_wide=cluster_wide, kubeconfig=kubeconfig)
    try:
        story = run_manifest("story")
        story["spec"]["stages"]["train"].update(gpus=1, nodes=2, maxRetries=2)
        story["spec"]["serve"] = {"engine": "transformers", "gpus": 0, "cpu": "1", "memory": "1Gi"}
        e2e.apply(story)
        # A judging template from a ConfigMap key: the operator reads it before the first Job.
        e2e.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "story-prompts"},
                "data": {"judge.yaml": json.dumps({"user": "{question} {answer_a} {answer_b}"})},
            }
        )
        template = {"template": "configmap://story-prompts/judge.yaml"}
        e2e.apply(run_manifest("paused", suspend=True, judging=template))
        e2e.wait_phase("paused", "Suspended")
        e2e.ns(
            "patch", "selftaughtrun", "paused", "--type=merge", "-p", '{"spec":{"suspend":false}}'
        )
        e2e.wait_phase("paused", "Succeeded")
        run = e2e.wait_phase("story", "Succeeded", timeout=60)
        assert run["status"]["history"][1]["trainingLoss"] == 0.42
        assert "story-i1-train-a1" in {job["metadata"]["name"] for job in e2e.get("jobs")["items"]}
        # spec.serve: the judge server is created with the run's best, replaced when the
        # serve block changes (port: Deployment and Service), deleted when serve is removed.
        e2e.ns("wait", "--for=jsonpath={.spec.ports[0].port}=8000", "service/story-judge",
               "--timeout=30s")  # fmt: skip
        e2e.ns("patch", "selftaughtrun", "story", "--type=merge", "-p",
               '{"spec":{"serve":{"port":8001}}}')  # fmt: skip
        e2e.ns("wait", "--for=jsonpath={.spec.ports[0].port}=8001", "service/story-judge",
               "--timeout=30s")  # fmt: skip
        e2e.ns("patch", "selftaughtrun", "story", "--type=merge", "-p", '{"spec":{"serve":null}}')
        e2e.ns("wait", "--for=delete", "deployment/story-judge", "service/story-judge",
               "--timeout=30s")  # fmt: skip
        wait_until(lambda: not server_processes("story"), what="the judge server stopped")
        patch = '{"spec":{"resumeFrom":{"iteration":1,"stage":"train"}}}'
        e2e.ns("patch", "selftaughtrun", "story", "--type=merge", "-p", patch)
        e2e.ns(
            "wait", "--for=jsonpath={.status.appliedResumeFrom}=1/train", "selftaughtrun/story",
            "--timeout=30s",
        )  # fmt: skip
        e2e.wait_phase("story", "Succeeded")
        for name in ("story", "paused"):
            delete_run(e2e, name)
    finally:
        assert stop_operator(operator) == 0, log.read_text()[-3000:]
    return settled_requests(e2e)


def settled_requests(e2e: E2E) -> list[RequestRecord]:
    """The operator's logged requests once its watches have ended too (the emulator logs a
    request when it is answered, and a watch is answered when its stream closes)."""
    e2e.api.faults.close_watches()
    ours: list[RequestRecord] = []
    for _ in range(20):  # at most ~10 s; a closed stream is noticed within 0.25 s
        time.sleep(0.5)
        latest = [r for r in e2e.api.requests.records() if r.token == OPERATOR_TOKEN]
        if ours and len(latest) == len(ours):
            return latest
        ours = latest
    raise AssertionError("the operator's requests did not settle")


MODES = {
    "cluster": {},
    "namespaced": {"watch": {"scope": "namespaced", "namespaces": ["default"]}},
}


@pytest.fixture(params=list(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def story_calls(cluster: E2E, mode: str, tmp_path: Path) -> list[RequestRecord]:  # noqa: F811
    cluster.require_emulator()
    assert cluster.namespace == "default"
    return run_story(cluster, tmp_path / "operator.log", cluster_wide=mode == "cluster")


def test_chart_rbac_allows_every_real_call_and_grants_nothing_unused(
    chart: helm.Chart, mode: str, story_calls: list[RequestRecord]
) -> None:
    rendered = render(chart, MODES[mode])
    args = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    watched = [arg.removeprefix("--namespace=") for arg in args if arg.startswith("--namespace=")]
    assert watched == ([] if mode == "cluster" else ["default"]), "the story runs the chart's args"
    grants = bound_grants(rendered.docs, RELEASE)

    calls: list[Attributes] = []
    for record in story_calls:
        found = attributes(record)
        if found is None:
            assert record.method == "GET", record
            assert record.path.startswith(DISCOVERY), f"non-resource URL {record.path}"
            continue
        calls.append(found)
    used = {call.key for call in calls}
    # The story really ran through the operator's own credential (the test cannot pass empty).
    for needed in (
        ("watch", "selftaught.dev", "selftaughtruns"),
        ("patch", "selftaught.dev", "selftaughtruns/status"),
        ("create", "batch", "jobs"),
        ("delete", "batch", "jobs"),
        ("create", "", "services"),
        ("patch", "", "services"),
        ("delete", "", "services"),
        ("create", "apps", "deployments"),
        ("patch", "apps", "deployments"),
        ("delete", "apps", "deployments"),
        ("watch", "apps", "deployments"),
        ("create", "", "events"),
        ("get", "", "configmaps"),
        *([("watch", "", "namespaces")] if watched else []),
    ):
        assert needed in used, f"the story never made {needed}: {sorted(used)}"

    denied = sorted(
        {
            f"{c.verb} {c.group or 'core'}/{c.resource} in {c.namespace or '(cluster)'}"
            for c in calls
            if not any(grant.allows(c) for grant in grants)
        }
    )
    assert not denied, f"the chart's RBAC ({mode}) forbids calls the operator makes: {denied}"

    granted = set().union(*(grant.keys() for grant in grants))
    unused = sorted(granted - used - set(UNUSED_ALLOWED))
    assert not unused, f"the chart ({mode}) grants what the operator never uses: {unused}"


JOBS = "/apis/batch/v1/namespaces/ml/jobs"
RUNS = "/apis/selftaught.dev/v1alpha1/namespaces/ml/selftaughtruns"


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", JOBS, "labelSelector=a%3Db", ("list", "batch", "jobs", "ml")),
        ("GET", JOBS, "watch=true&resourceVersion=5", ("watch", "batch", "jobs", "ml")),
        ("GET", "/apis/batch/v1/jobs", "watch=1", ("watch", "batch", "jobs", "")),
        ("GET", "/apis/batch/v1/watch/namespaces/ml/jobs", "", ("watch", "batch", "jobs", "ml")),
        ("GET", JOBS + "/j", "", ("get", "batch", "jobs", "ml")),
        ("POST", JOBS, "", ("create", "batch", "jobs", "ml")),
        (
            "PATCH",
            RUNS + "/r/status",
            "",
            ("patch", "selftaught.dev", "selftaughtruns/status", "ml"),
        ),
        ("PUT", RUNS + "/r", "", ("update", "selftaught.dev", "selftaughtruns", "ml")),
        ("DELETE", "/api/v1/namespaces/ml/pods", "", ("deletecollection", "", "pods", "ml")),
        ("DELETE", "/api/v1/namespaces/ml/pods/p", "", ("delete", "", "pods", "ml")),
        ("GET", "/api/v1/namespaces", "", ("list", "", "namespaces", "")),
        ("GET", "/api/v1/namespaces/ml", "", ("get", "", "namespaces", "ml")),
        ("GET", "/apis/batch/v1", "", None),
        ("GET", "/openapi/v3", "", None),
    ],
)
def test_requests_map_to_authorizer_attributes(
    method: str, path: str, query: str, expected: tuple[str, str, str, str] | None
) -> None:
    record = RequestRecord(method, path, "", "", "", "", 200, 0.0, query=query)
    found = attributes(record)
    assert (None if found is None else dataclasses.astuple(found)) == expected


def test_a_role_grants_only_in_its_namespace() -> None:
    docs = [
        {"kind": "Role", "metadata": {"name": "r", "namespace": "a"},
         "rules": [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list"]}]},
        {"kind": "RoleBinding", "metadata": {"name": "r", "namespace": "a"},
         "roleRef": {"kind": "Role", "name": "r"},
         "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "x"}]},
    ]  # fmt: skip
    grants = bound_grants(docs, "sa")
    assert any(g.allows(Attributes("list", "batch", "jobs", "a")) for g in grants)
    assert not any(g.allows(Attributes("list", "batch", "jobs", "b")) for g in grants)
    assert not any(g.allows(Attributes("list", "batch", "jobs", "")) for g in grants)
    assert not any(g.allows(Attributes("watch", "batch", "jobs", "a")) for g in grants)
    assert not bound_grants(docs, "someone-else")
