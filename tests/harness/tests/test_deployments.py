"""Deployments run long-lived pods that Services reach through the API server's proxy, roll to a
new template without downtime, follow their probes, restart and go away with their owner."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.harness.cluster import Cluster

SERVER = r"""
import json, os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port = int(sys.argv[sys.argv.index("--port") + 1])
started = time.time()
time.sleep(float(os.environ.get("SLOW_START", "0")))
print(f"listening on {port} as {os.environ.get('POD')}", flush=True)


class Handler(BaseHTTPRequestHandler):
    def send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Served-By", os.environ.get("POD", ""))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/ready":
            return self.send(200 if os.environ.get("READY", "yes") == "yes" else 503, {})
        if self.path == "/live":
            limit = float(os.environ.get("DIE_AFTER", "1e9"))
            return self.send(500 if time.time() - started > limit else 200, {})
        if self.path == "/stream":  # HTTP/1.0: the body ends when the connection closes
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for i, pause in enumerate((1.0, 0.0, 0.0)):
                self.wfile.write(f"data: {i}\n\n".encode())
                self.wfile.flush()
                time.sleep(pause)
            return
        if self.path == "/exit":
            self.send(200, {})
            threading.Thread(target=lambda: (time.sleep(0.1), os._exit(3))).start()
            return
        self.send(200, {"version": os.environ.get("VERSION"), "path": self.path,
                        "pid": os.getpid()})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send(int(self.headers.get("X-Status") or 201), {"echo": body.decode()})

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


@pytest.fixture
def server(tmp_path: Path) -> Path:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    return script


def deployment(
    script: Path,
    *,
    replicas: int = 1,
    liveness: bool = False,
    startup: dict[str, Any] | None = None,
    **env: str,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "web",
        "image": "web:1",
        "command": ["python", str(script), "--port", "8080"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
        + [{"name": k, "value": v} for k, v in env.items()],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1},
    }
    if liveness:
        container["livenessProbe"] = {
            "httpGet": {"path": "/live", "port": 8080},
            "periodSeconds": 1,
            "failureThreshold": 2,
        }
    if startup is not None:
        container["startupProbe"] = startup
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [container]},
            },
        },
    }


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web"},
    "spec": {
        "selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
    },
}


def apply(kube: Cluster, *objs: dict[str, Any]) -> None:
    for obj in objs:
        done = kube.kubectl("apply", "-f", "-", input=json.dumps(obj))
        assert done.returncode == 0, done.stderr


def call(kube: Cluster, path: str, body: bytes | None = None, **headers: str) -> tuple[int, Any]:
    req = urllib.request.Request(
        kube.api.url + path,
        data=body,
        method="POST" if body is not None else "GET",
        headers=headers,
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read() or b"null")


def get(kube: Cluster, *what: str) -> dict[str, Any]:
    done = kube.kubectl("get", *what, "-o", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what or check}")


def rollout_status(kube: Cluster) -> str:
    done = kube.kubectl("rollout", "status", "deployment/web", "--timeout=60s", timeout=90)
    assert done.returncode == 0, done.stderr
    return done.stdout


PROXY = "/api/v1/namespaces/default/services/web:http/proxy"


def test_deployment_becomes_ready_behind_its_service(kube: Cluster, server: Path) -> None:
    apply(kube, deployment(server, replicas=2, VERSION="v1"), SERVICE)
    assert "successfully rolled out" in rollout_status(kube)
    table = kube.kubectl("get", "deploy", "web").stdout.split("\n")
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:4] == ["web", "2/2", "2", "2"]
    pods = get(kube, "pods", "-l", "app=web")["items"]
    assert len(pods) == 2
    replica_set = get(kube, "rs")["items"]
    assert [rs["metadata"]["ownerReferences"][0]["kind"] for rs in replica_set] == ["Deployment"]
    for pod in pods:
        assert pod["metadata"]["labels"]["pod-template-hash"] in replica_set[0]["metadata"]["name"]
        assert pod["metadata"]["ownerReferences"][0]["name"] == replica_set[0]["metadata"]["name"]
        assert pod["status"]["podIP"] == "127.0.0.1"
        assert pod["status"]["containerStatuses"][0]["ready"] is True
    status = get(kube, "deploy", "web")["status"]
    assert (status["replicas"], status["readyReplicas"], status["observedGeneration"]) == (2, 2, 1)
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Available": "True",
        "Progressing": "True",
    }


@pytest.mark.parametrize(
    "name", ["web", "web:http", "web:80", "http:web:80", "https:web:http"], ids=lambda n: n
)
def test_service_proxy_get_forwards_path_and_query(kube: Cluster, server: Path, name: str) -> None:
    apply(kube, deployment(server, VERSION="v1"), SERVICE)
    rollout_status(kube)
    raw = kube.kubectl(
        "get", "--raw", f"/api/v1/namespaces/default/services/{name}/proxy/hello/x?q=1"
    )
    assert raw.returncode == 0, raw.stderr
    assert json.loads(raw.stdout)["path"] == "/hello/x?q=1"


def test_service_proxy_post_passes_body_and_status(kube: Cluster, server: Path) -> None:
    apply(kube, deployment(server), SERVICE)
    rollout_status(kube)
    assert call(kube, f"{PROXY}/v1/echo", b'{"a": 1}') == (201, {"echo": '{"a": 1}'})
    assert call(kube, f"{PROXY}/v1/echo", b"no", **{"X-Status": "418"}) == (418, {"echo": "no"})
    posted = kube.kubectl("create", "--raw", f"{PROXY}/v1/echo", "-f", "-", input='{"b": 2}')
    assert posted.returncode == 0, posted.stderr
    assert json.loads(posted.stdout) == {"echo": '{"b": 2}'}


def test_service_proxy_with_the_kubernetes_client(
    kube: Cluster, server: Path, kube_client: Any
) -> None:
    import kubernetes

    apply(kube, deployment(server, VERSION="v7"), SERVICE)
    rollout_status(kube)
    core = kubernetes.client.CoreV1Api(kube_client)
    answer: Any = core.connect_get_namespaced_service_proxy_with_path(
        "web:http", "default", "some/path", _preload_content=False
    )
    assert json.loads(answer.data)["version"] == "v7"


def test_rollout_keeps_a_ready_pod_at_every_moment(kube: Cluster, server: Path) -> None:
    apply(kube, deployment(server, VERSION="v1", SLOW_START="1"), SERVICE)
    rollout_status(kube)
    seen: list[tuple[int, Any]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            seen.append(call(kube, f"{PROXY}/"))

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        time.sleep(0.5)
        apply(kube, deployment(server, VERSION="v2", SLOW_START="1"))
        rollout_status(kube)
        wait_for(lambda: seen and seen[-1][1].get("version") == "v2", what="v2 answers")
    finally:
        stop.set()
        poller.join()
    codes = {code for code, _ in seen}
    assert codes == {200}, [answer for answer in seen if answer[0] != 200][:3]
    versions = [body["version"] for _, body in seen]
    assert versions[0] == "v1"
    assert versions[-1] == "v2"
    assert kube.requests.count(verb="create", resource="replicasets") == 2
    assert kube.requests.count(verb="create", resource="pods") == 2  # one new pod, once
    wait_for(lambda: len(processes_of(server)) == 1, timeout=10, what="the old pod killed")
    deploy = get(kube, "deploy", "web")
    assert deploy["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert deploy["status"]["updatedReplicas"] == 1
    assert [p["spec"]["containers"][0]["env"][-2]["value"] for p in get(kube, "pods")["items"]] == [
        "v2"
    ]


def test_failing_readiness_keeps_the_pod_unready(kube: Cluster, server: Path) -> None:
    apply(kube, deployment(server, READY="no"), SERVICE)
    pod = wait_for(
        lambda: next(
            (p for p in get(kube, "pods")["items"] if p["status"].get("phase") == "Running"), None
        ),
        what="a running pod",
    )
    time.sleep(2)  # several probe periods
    pod = get(kube, "pod", pod["metadata"]["name"])
    assert pod["status"]["containerStatuses"][0]["ready"] is False
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "False"
    assert get(kube, "deploy", "web")["status"].get("readyReplicas", 0) == 0
    code, body = call(kube, f"{PROXY}/")
    assert (code, body["reason"]) == (503, "ServiceUnavailable")
    assert body["message"] == 'no endpoints available for service "web"'


def test_an_exiting_container_is_restarted(kube: Cluster, server: Path) -> None:
    apply(kube, deployment(server), SERVICE)
    rollout_status(kube)
    (pod,) = get(kube, "pods")["items"]
    name = pod["metadata"]["name"]
    first = call(kube, f"/api/v1/namespaces/default/pods/{name}:8080/proxy/")[1]["pid"]
    assert call(kube, f"/api/v1/namespaces/default/pods/{name}/proxy/exit")[0] == 200

    def restarted() -> dict[str, Any] | None:
        status = get(kube, "pod", name)["status"]["containerStatuses"][0]
        return status if status["restartCount"] == 1 and status["ready"] else None

    status = wait_for(restarted, what="a restart")
    assert status["lastState"]["terminated"]["exitCode"] == 3
    second = call(kube, f"{PROXY}/")[1]["pid"]
    assert second != first
    assert get(kube, "pods")["items"][0]["metadata"]["name"] == name  # same pod, new container


def test_a_failing_liveness_probe_restarts_the_container(kube: Cluster, server: Path) -> None:
    apply(kube, deployment(server, liveness=True, DIE_AFTER="1"))

    def restarted() -> dict[str, Any] | None:
        pods = get(kube, "pods")["items"]
        statuses = pods[0]["status"].get("containerStatuses") if pods else None
        return statuses[0] if statuses and statuses[0]["restartCount"] >= 1 else None

    status = wait_for(restarted, what="a liveness restart")
    assert status["lastState"]["terminated"]["exitCode"] == 137
    assert status["lastState"]["terminated"]["message"] == "Liveness probe failed"


def test_deleting_the_deployment_deletes_its_pods_and_processes(
    kube: Cluster, server: Path
) -> None:
    apply(kube, deployment(server, replicas=2), SERVICE)
    rollout_status(kube)
    assert len(processes_of(server)) == 2
    assert kube.kubectl("delete", "deployment", "web").returncode == 0
    wait_for(lambda: not get(kube, "pods")["items"] and not get(kube, "rs")["items"], what="gone")
    wait_for(lambda: not processes_of(server), timeout=10, what="processes killed")
    time.sleep(1)
    assert not processes_of(server)  # and none started for the pods the cascade deleted
    assert kube.requests.count(verb="create", resource="pods") == 2
    code, _ = call(kube, f"{PROXY}/")
    assert code == 503


def test_a_deleted_pod_is_replaced(kube: Cluster, server: Path) -> None:
    apply(kube, deployment(server))
    rollout_status(kube)
    (pod,) = get(kube, "pods")["items"]
    assert kube.kubectl("delete", "pod", pod["metadata"]["name"]).returncode == 0
    wait_for(
        lambda: [
            p for p in get(kube, "pods")["items"] if p["metadata"]["uid"] != pod["metadata"]["uid"]
        ],
        what="a new pod",
    )
    assert "successfully rolled out" in rollout_status(kube)


def processes_of(script: Path) -> list[int]:
    """Live processes running ``script`` (this test's own: its path is unique)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(script).encode() in cmdline:
            found.append(int(entry.name))
    return found


def test_a_deployment_without_a_matching_selector_is_refused(kube: Cluster, server: Path) -> None:
    bad = deployment(server)
    bad["spec"]["selector"] = {"matchLabels": {"app": "api"}}
    done = kube.kubectl("apply", "-f", "-", input=json.dumps(bad))
    assert done.returncode == 1
    assert 'The Deployment "web" is invalid: spec.template.metadata.labels' in done.stderr
    assert "`selector` does not match template `labels`" in done.stderr


def test_kubectl_get_all_lists_deployments_and_replica_sets(kube: Cluster, server: Path) -> None:
    apply(kube, deployment(server))
    rollout_status(kube)
    listed = kube.kubectl("get", "all", "-o", "name").stdout.split()
    assert "deployment.apps/web" in listed
    assert sum(name.startswith("replicaset.apps/web-") for name in listed) == 1
    assert sum(name.startswith("pod/web-") for name in listed) == 1


def test_kubectl_logs_and_rollout_restart_of_a_deployment(kube: Cluster, server: Path) -> None:
    apply(kube, deployment(server))
    rollout_status(kube)
    (pod,) = get(kube, "pods")["items"]
    mapped = json.loads(pod["metadata"]["annotations"]["harness.selftaught.dev/host-ports"])
    logs = kube.kubectl("logs", "deployment/web")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == f"listening on {mapped['8080']} as {pod['metadata']['name']}\n"
    restarted = kube.kubectl("rollout", "restart", "deployment/web")
    assert restarted.returncode == 0, restarted.stderr
    assert "successfully rolled out" in rollout_status(kube)
    (new,) = get(kube, "pods")["items"]
    assert new["metadata"]["name"] != pod["metadata"]["name"]
    assert len(get(kube, "rs")["items"]) == 2


def test_deleting_the_deployments_owner_stops_its_pods(kube: Cluster, server: Path) -> None:
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}
    apply(kube, owner)
    uid = get(kube, "configmap", "owner")["metadata"]["uid"]
    owned = deployment(server)
    owned["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid, "controller": True}
    ]
    apply(kube, owned)
    rollout_status(kube)
    assert len(processes_of(server)) == 1
    assert kube.kubectl("delete", "configmap", "owner").returncode == 0
    wait_for(lambda: not get(kube, "deploy")["items"] and not get(kube, "pods")["items"])
    wait_for(lambda: not processes_of(server), timeout=10, what="processes killed")


def test_kubectl_scale_changes_the_running_replicas(kube: Cluster, server: Path) -> None:
    apply(kube, deployment(server))
    rollout_status(kube)
    scaled = kube.kubectl("scale", "deployment/web", "--replicas=2")
    assert scaled.returncode == 0, scaled.stderr
    rollout_status(kube)
    assert len(get(kube, "pods")["items"]) == 2
    assert len(processes_of(server)) == 2
    assert get(kube, "deploy", "web")["metadata"]["generation"] == 2
    assert len(get(kube, "rs")["items"]) == 1  # scaling is no new template
    refused = kube.kubectl("scale", "deployment/web", "--replicas=-1")
    assert refused.returncode != 0
    status, scale = _raw_get(kube, "/apis/apps/v1/namespaces/default/deployments/web/scale")
    assert (status, scale["spec"], scale["status"]) == (
        200,
        {"replicas": 2},
        {"replicas": 2, "selector": "app=web"},
    )


def _raw_get(kube: Cluster, path: str) -> tuple[int, Any]:
    done = kube.kubectl("get", "--raw", path)
    return (200 if done.returncode == 0 else 1), json.loads(done.stdout or "{}")


def test_a_failing_startup_probe_restarts_before_readiness_is_asked(
    kube: Cluster, server: Path
) -> None:
    startup = {"httpGet": {"path": "/live", "port": "http"}, "periodSeconds": 1}
    apply(kube, deployment(server, startup={**startup, "failureThreshold": 2}, DIE_AFTER="0"))

    def restarted() -> dict[str, Any] | None:
        pods = get(kube, "pods")["items"]
        statuses = pods[0]["status"].get("containerStatuses") if pods else None
        return statuses[0] if statuses and statuses[0]["restartCount"] >= 1 else None

    status = wait_for(restarted, what="a startup-probe restart")
    assert status["lastState"]["terminated"]["message"] == "Startup probe failed"
    assert status["started"] is False
    assert status["ready"] is False


def test_a_passing_startup_probe_hands_over_to_readiness(kube: Cluster, server: Path) -> None:
    startup = {"httpGet": {"path": "/live", "port": "http"}, "periodSeconds": 1}
    apply(kube, deployment(server, startup=startup), SERVICE)
    rollout_status(kube)
    (pod,) = get(kube, "pods")["items"]
    status = pod["status"]["containerStatuses"][0]
    assert (status["started"], status["ready"], status["restartCount"]) == (True, True, 0)


def test_the_proxy_streams_an_answer_as_it_is_written(kube: Cluster, server: Path) -> None:
    apply(kube, deployment(server), SERVICE)
    rollout_status(kube)
    asked = time.monotonic()
    with urllib.request.urlopen(f"{kube.api.url}{PROXY}/stream", timeout=10) as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        first = resp.readline()
        first_at = time.monotonic() - asked
        rest = resp.read()
    assert first == b"data: 0\n"
    assert rest == b"\ndata: 1\n\ndata: 2\n\n"
    assert first_at < 0.8  # the server paused 1 s after it: not buffered until the end
