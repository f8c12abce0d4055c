"""What a new user types in the first hour, against the emulator with the real kubectl:
server-side apply, ``kubectl create secret generic``, ``kubectl logs [-f]``, an unknown kind,
orphaned children, and pods that keep their files under the emulator's directory."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.harness import apply, pod_paths, protobuf
from tests.harness.cluster import Cluster
from tests.harness.pod_process import resolve_command
from tests.harness.tests.conftest import Http

ROOT = Path(__file__).resolve().parents[3]
CRD = ROOT / "crds" / "selftaughtrun.yaml"


def ok(kube: Cluster, *args: str, input: str | None = None) -> str:
    result = kube.kubectl(*args, input=input)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_server_side_apply_installs_the_crd_and_a_run_then_updates_and_prunes(
    kube: Cluster,
) -> None:
    assert "serverside-applied" in ok(kube, "apply", "--server-side", "-f", str(CRD))
    ok(kube, "apply", "--server-side", "-f", str(CRD))  # a second apply is an update
    ok(kube, "wait", "--for=condition=Established", "crd/selftaughtruns.selftaught.dev")
    run = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    run["metadata"]["labels"] = {"team": "ml", "tier": "try"}
    ok(kube, "apply", "--server-side", "-f", "-", input=yaml.safe_dump(run))
    del run["metadata"]["labels"]["tier"]
    run["spec"]["iterations"] += 1
    ok(kube, "apply", "--server-side", "-f", "-", input=yaml.safe_dump(run))
    got = json.loads(
        ok(kube, "get", "str", run["metadata"]["name"], "-o", "json", "--show-managed-fields")
    )
    assert got["spec"]["iterations"] == run["spec"]["iterations"]
    assert got["metadata"]["labels"] == {"team": "ml"}  # no longer applied: removed
    managers = {e["manager"]: e for e in got["metadata"]["managedFields"]}
    assert managers["kubectl"]["operation"] == "Apply"
    assert "f:iterations" in managers["kubectl"]["fieldsV1"]["f:spec"]


def test_apply_patch_without_field_manager_is_refused(http: Http) -> None:
    status, body = http(
        "PATCH",
        "/api/v1/namespaces/default/configmaps/c",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
        content_type="application/apply-patch+yaml",
    )
    assert status == 422
    assert "fieldManager: Required value" in body["message"]


@pytest.mark.parametrize(
    ("owned", "applied", "expected"),
    [
        pytest.param({"a": 1, "b": 2}, {"a": 1}, {"a": 1}, id="dropped-field-removed"),
        pytest.param({"a": {"x": 1, "y": 2}}, {"a": {"x": 1}}, {"a": {"x": 1}}, id="nested"),
        pytest.param({"a": [1, 2]}, {"a": [3]}, {"a": [3]}, id="lists-are-atomic"),
    ],
)
def test_merge_applied_removes_only_what_the_manager_stopped_applying(
    owned: dict[str, object], applied: dict[str, object], expected: dict[str, object]
) -> None:
    first = apply.merge_applied(
        {"spec": {"other": 0}}, {"spec": owned}, manager="m", strategic=False
    )
    second = apply.merge_applied(first, {"spec": applied}, manager="m", strategic=False)
    assert second["spec"] == {"other": 0, **expected}  # "other" belongs to nobody: kept


def test_kubectl_create_secret_generic_and_configmap_decode_protobuf(kube: Cluster) -> None:
    ok(
        kube,
        "create",
        "secret",
        "generic",
        "s3-creds",
        "--from-literal=id=AK",
        "--from-literal=secret=SK",
    )
    secret = json.loads(ok(kube, "get", "secret", "s3-creds", "-o", "json"))
    assert secret["data"] == {"id": "QUs=", "secret": "U0s="}
    assert secret["type"] == "Opaque"
    ok(kube, "create", "configmap", "cfg", "--from-literal=a=b")
    assert json.loads(ok(kube, "get", "cm", "cfg", "-o", "json"))["data"] == {"a": "b"}
    ok(kube, "create", "namespace", "ml-team")
    assert "ml-team" in ok(kube, "get", "ns")


def test_protobuf_of_another_kind_gets_a_415_naming_it() -> None:
    envelope = b"\x0a" + bytes([12]) + b"\x0a\x02v1\x12\x06Widget"  # typeMeta only
    with pytest.raises(protobuf.ProtobufError, match="not 'Widget'"):
        protobuf.decode(protobuf.MAGIC + envelope)


def test_unknown_kind_gets_kubectls_no_matches_message(kube: Cluster) -> None:
    doc = {
        "apiVersion": "selftaught.dev/v1alpha1",
        "kind": "SelfTaughtRun",
        "metadata": {"name": "x"},
    }
    result = kube.kubectl("apply", "-f", "-", input=json.dumps(doc))
    assert result.returncode != 0
    assert 'no matches for kind "SelfTaughtRun"' in result.stderr, result.stderr
    assert "ensure CRDs are installed first" in result.stderr
    assert "openapi" not in result.stderr


JOB = """
apiVersion: batch/v1
kind: Job
metadata: {name: talk}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: worker
        image: any
        command: [python, -c, "import os, time\\nfor i in range(3):\\n print('line', i,
          os.environ['CACHE']); time.sleep(0.4)\\nopen(os.environ['CACHE'] + '/made', 'w')"]
        env: [{name: CACHE, value: /cache-fh-test}]
        volumeMounts: [{name: scratch, mountPath: /cache-fh-test}]
      volumes: [{name: scratch, emptyDir: {}}]
"""


def _pod(kube: Cluster) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        names = ok(kube, "get", "pods", "-l", "job-name=talk", "-o", "name").split()
        if names:
            return names[0]
        time.sleep(0.1)
    raise AssertionError("no pod")


def test_kubectl_logs_follows_a_pod_as_it_writes_and_volumes_stay_in_the_emulator(
    kube: Cluster,
) -> None:
    ok(kube, "apply", "-f", "-", input=JOB)
    pod = _pod(kube)
    started = time.monotonic()
    followed = ok(kube, "logs", "-f", pod)
    lines = followed.splitlines()
    assert [line.split()[:2] for line in lines] == [["line", "0"], ["line", "1"], ["line", "2"]]
    assert time.monotonic() - started >= 0.5  # it streamed while the pod ran
    cache = Path(lines[0].split()[2])
    assert cache.is_relative_to(kube.dir)
    assert (cache / "made").exists()
    assert not Path("/cache-fh-test").exists()
    assert ok(kube, "logs", pod, "--tail=1").split()[:2] == ["line", "2"]
    missing = kube.kubectl("logs", "pod/nope")
    assert missing.returncode != 0
    assert 'pods "nope" not found' in missing.stderr


def test_a_child_whose_owner_is_gone_is_garbage_collected(kube: Cluster) -> None:
    ok(kube, "create", "configmap", "owner", "--from-literal=a=b")
    uid = json.loads(ok(kube, "get", "cm", "owner", "-o", "json"))["metadata"]["uid"]
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "child", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
        ]},
    }  # fmt: skip
    ok(kube, "apply", "-f", "-", input=json.dumps(child))
    assert "child" in ok(kube, "get", "cm")  # its owner exists: kept
    ok(kube, "delete", "cm", "owner")
    assert "child" not in ok(kube, "get", "cm")  # cascaded
    ok(kube, "apply", "-f", "-", input=json.dumps(child))  # created after its owner went
    assert "child" not in ok(kube, "get", "cm", "-o", "name")


@pytest.mark.parametrize(
    ("volume", "expected"),
    [
        pytest.param({"name": "v", "emptyDir": {}}, "pod/volumes/v", id="emptydir-per-pod"),
        pytest.param({"name": "v", "persistentVolumeClaim": {"claimName": "data"}}, "node/pvc/data",
                     id="pvc-shared-by-claim"),
        pytest.param({"name": "cache", "emptyDir": {}}, "shared-cache", id="shared-volume"),
    ],
)  # fmt: skip
def test_mounts_map_under_the_emulators_directory(
    tmp_path: Path, volume: dict[str, object], expected: str
) -> None:
    container = {"volumeMounts": [{"name": volume["name"], "mountPath": "/data"}]}
    mounts = pod_paths.mount_dirs(
        container,
        tmp_path / "pod",
        {"cache": tmp_path / "shared-cache"},
        volumes=[volume],
        node_root=tmp_path / "node",
    )
    assert mounts == {"/data": tmp_path / expected}
    assert pod_paths.rewrite("/data/x", mounts) == str(tmp_path / expected / "x")
    assert pod_paths.rewrite("/database", mounts) == "/database"  # a prefix, not a mount
    assert pod_paths.rewrite_args(["--out=/data/y"], mounts) == [f"--out={tmp_path / expected}/y"]


def test_host_paths_under_a_mount_path_are_not_rewritten(tmp_path: Path) -> None:
    """A checkout (and its venv) under /tmp: the host's PATH and the resolved interpreter are
    host paths; only what the container spec itself writes maps into the pod's /tmp."""
    mounts = {"/tmp": tmp_path / "pod-tmp"}
    env = {"PATH": "/tmp/ci/.venv/bin:/usr/bin", "SCRATCH": "/tmp/work"}
    assert pod_paths.rewrite_env(env, mounts, declared={"SCRATCH"}) == {
        "PATH": "/tmp/ci/.venv/bin:/usr/bin",
        "SCRATCH": f"{tmp_path / 'pod-tmp'}/work",
    }
    command = resolve_command(pod_paths.rewrite_args(["selftaught", "worker", "select"], mounts))
    assert command[0] == str(Path(sys.executable).parent / "selftaught")  # never under pod-tmp
