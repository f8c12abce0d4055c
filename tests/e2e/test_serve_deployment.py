"""``spec.serve`` end to end: the real operator and real kubectl on the emulator, whose kubelet
runs the judge server (``selftaught serve-model``, transformers engine, the tiny judge) as the
Deployment's pods and whose API server proxies the Service to them.

The stages are instant (the kubelet reports their summaries at once); each iteration's
evaluation scores higher, so the best judge moves 0 -> 1 -> 2, and the trained judges of
iterations 1 and 2 are the suite's tiny judges of seeds 1 and 2, placed where the train stage
writes its model. Expected: one Deployment create and exactly one template patch per change of
best (two), the Service and Deployment owned by the run, Ready on iteration 2's judge,
answering a chat completion with a verdict through the Service proxy and through
``kubectl selftaught judge`` without ``--url``; deleting the run removes them and the pods.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from selftaught import artifacts
from selftaught.controller.kube import KubeApi
from selftaught.prompts import judge_prompt, parse_verdict
from selftaught.storage import materialize_model
from tests.e2e.conftest import E2E, SUMMARIES, Operator, run_manifest
from tests.e2e.test_kubectl_plugin import plugin, plugin_path  # noqa: F401 - fixture

pytestmark = pytest.mark.e2e

RUN = "served"
SERVER = "served-judge"
ACCURACY = {0: 0.55, 1: 0.7, 2: 0.85}  # a new best at every iteration


def wait_for(check: Callable[[], Any], *, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def place_trained_judges(storage: Path, namespace: str) -> None:
    """Iterations 1 and 2's "trained" judges where the train stage would have written them."""
    cache = Path(os.environ["SELFTAUGHT_CACHE"])
    for iteration in (1, 2):
        built = materialize_model(f"builtin://tiny-judge?seed={iteration}", cache)
        target = storage / artifacts.model_prefix(namespace, RUN, iteration)
        shutil.copytree(built, target)


def stage_results(cluster: E2E) -> None:
    cluster.instant({k: v for k, v in SUMMARIES.items() if k != "evaluate"})
    for iteration, accuracy in ACCURACY.items():
        cluster.kubelet.inject(
            "instant",
            labels={"selftaught.dev/stage": "evaluate", "selftaught.dev/iteration": str(iteration)},
            message=json.dumps({"scores": {"heldout": {"accuracy": accuracy, "examples": 24}}}),
        )


def server_processes(run: str) -> list[int]:
    """Pids of ``run``'s judge-server processes (the kubelet's pods), read from /proc."""
    marker = b"serve-model\0--model-uri\0", f"\0--name\0{run}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if all(part in argv for part in marker):
            found.append(int(entry.name))
    return found


def server_objects(cluster: E2E) -> tuple[Any, Any]:
    found = []
    for kind in ("deployment", "service"):
        shown = cluster.ns("get", kind, SERVER, "-o", "json", check=False)
        found.append(json.loads(shown.stdout) if shown.returncode == 0 else None)
    return found[0], found[1]


def test_serve_rolls_once_per_new_best_answers_and_goes_with_the_run(
    cluster: E2E,
    operator: Operator,
    tmp_path: Path,
    plugin_path: str,  # noqa: F811
) -> None:
    cluster.require_emulator()
    started = time.monotonic()
    storage = tmp_path / "artifacts"
    place_trained_judges(storage, cluster.namespace)
    stage_results(cluster)
    small = {"engine": "transformers", "gpus": 0, "cpu": "1", "memory": "1Gi", "threads": 1}
    cluster.apply(
        run_manifest(
            RUN, iterations=2, storage={"uri": f"file://{storage}"},
            worker={"modelCache": os.environ["SELFTAUGHT_CACHE"]}, serve=small,
        )
    )  # fmt: skip
    run = cluster.wait_phase(RUN, "Succeeded", timeout=60)
    assert run["status"]["bestIteration"] == 2
    cluster.ns("wait", "--for=condition=Serving", f"selftaughtrun/{RUN}", "--timeout=90s",
               timeout=100)  # fmt: skip
    run = cluster.get("selftaughtrun", RUN)
    serving = run["status"]["serving"]
    best_uri = f"file://{storage}/{artifacts.model_prefix(cluster.namespace, RUN, 2)}"
    assert serving["iteration"] == 2
    assert serving["modelUri"] == best_uri
    assert serving["endpoint"] == f"http://{SERVER}.{cluster.namespace}.svc:8000/v1"
    assert serving["readyReplicas"] == 1
    wide = cluster.ns("get", "selftaughtrun", RUN, "-o", "wide").stdout
    assert "SERVING" in wide
    assert serving["endpoint"] in wide

    # Owned by the run, Ready, on the best judge.
    deployment, service = server_objects(cluster)
    for made in (deployment, service):
        (owner,) = made["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"]) == ("SelfTaughtRun", run["metadata"]["uid"])
    assert deployment["status"]["readyReplicas"] == 1
    template = deployment["spec"]["template"]["metadata"]["annotations"]
    assert template["selftaught.dev/model-uri"] == best_uri

    # Exactly one template change per change of best (0 -> 1 -> 2), none afterwards
    # (the operator resyncs every 5 s: wait out two resyncs).
    time.sleep(11)
    assert cluster.get("deployment", SERVER)["metadata"]["generation"] == 3
    assert cluster.api is not None
    writes = [  # by clients (the operator); the emulator's own controllers send no token
        (r.verb, r.resource) for r in cluster.api.requests.records()
        if r.name == SERVER and r.token and r.verb in ("create", "patch", "update")
    ]  # fmt: skip
    assert sorted(writes) == [
        ("create", "deployments"), ("create", "services"),
        ("patch", "deployments"), ("patch", "deployments"),
    ]  # fmt: skip

    # A chat completion through the API server's Service proxy, with the kubeconfig's user.
    api = KubeApi.from_environment(kubeconfig=cluster.kubeconfig, timeout=120)
    proxy = f"/api/v1/namespaces/{cluster.namespace}/services/{SERVER}:8000/proxy"
    try:
        (card,) = api.request("GET", f"{proxy}/v1/models")["data"]
        assert (card["id"], card["root"]) == (RUN, best_uri)
        style = card.get("prompt_style", "standard")  # the tiny judge's is compact
        answer = api.request("POST", f"{proxy}/v1/chat/completions", body={
            "model": RUN, "messages": judge_prompt(style, "max 3 9 1 4", "9", "4"),
            "temperature": 0.0, "seed": 0,
        })  # fmt: skip
    finally:
        api.close()
    text = answer["choices"][0]["message"]["content"]
    assert parse_verdict(text) in ("A", "B"), text

    # The plugin finds the judge from the run's status, no --url.
    (tmp_path / "a.txt").write_text("9")
    (tmp_path / "b.txt").write_text("4")
    shown = plugin(
        cluster, plugin_path, "judge", RUN, "--question", "max 3 9 1 4",
        "--a", str(tmp_path / "a.txt"), "--b", str(tmp_path / "b.txt"),
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[-1] in ("verdict: A is better", "verdict: B is better")

    # Deleting the run removes the Deployment, the Service and the server pods.
    cluster.ns("delete", "selftaughtrun", RUN, "--timeout=30s")
    wait_for(lambda: server_objects(cluster) == (None, None), what="server objects collected")

    def server_pods() -> list[str]:
        return [
            pod["metadata"]["name"] for pod in cluster.get("pods")["items"]
            if (pod["metadata"].get("labels") or {}).get("selftaught.dev/serving") == RUN
        ]  # fmt: skip

    wait_for(lambda: not server_pods(), what="the server pods deleted", timeout=30)
    # ... and their processes (before the emulator stops: it reaps what it killed)
    wait_for(lambda: not server_processes(RUN), what="server processes gone", timeout=15)
    time.sleep(0.5)
    assert time.monotonic() - started < 150
