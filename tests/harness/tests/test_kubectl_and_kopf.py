"""The real kubectl and the real kopf against the emulator."""

from __future__ import annotations

import json
import time
from pathlib import Path

from kopf.testing import KopfRunner

from tests.harness.cluster import Cluster

HERE = Path(__file__).parent


def test_kubectl_apply_get_describe_patch_delete(kube: Cluster) -> None:
    assert kube.kubectl("apply", "-f", str(HERE / "widgets-crd.yaml")).returncode == 0
    assert (
        kube.kubectl("wait", "--for=condition=established", "crd/widgets.example.dev").returncode
        == 0
    )
    applied = kube.kubectl("apply", "-f", str(HERE / "widget.yaml"))
    assert applied.returncode == 0, applied.stderr
    table = kube.kubectl("get", "widgets").stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "PHASE", "AGE"]
    assert table[1].split()[:2] == [
        "w1",
        "3",
    ]
    assert kube.kubectl("get", "wd", "-o", "wide").stdout.split()[:5] == [
        "NAME",
        "SIZE",
        "PHASE",
        "COLOR",
        "AGE",
    ]
    bad = kube.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "example.dev/v1",
                "kind": "Widget",
                "metadata": {"name": "bad"},
                "spec": {"size": 0},
            }
        ),
    )
    assert bad.returncode != 0
    assert "spec.size" in bad.stderr
    assert "greater than or equal to 1" in bad.stderr
    unknown = kube.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "example.dev/v1",
                "kind": "Widget",
                "metadata": {"name": "u"},
                "spec": {"size": 2, "zz": 1},
            }
        ),
    )
    assert unknown.returncode != 0
    assert 'unknown field "spec.zz"' in unknown.stderr
    patched = kube.kubectl(
        "patch",
        "widget",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"phase": "Ready"}}',
    )
    assert patched.returncode == 0, patched.stderr
    assert "Ready" in kube.kubectl("get", "widget", "w1").stdout
    assert "Phase:  Ready" in kube.kubectl("describe", "widget", "w1").stdout
    immutable = kube.kubectl(
        "patch", "widget", "w1", "--type=merge", "-p", '{"spec": {"kind": "fancy"}}'
    )
    assert immutable.returncode != 0
    assert "kind is immutable" in immutable.stderr
    assert kube.kubectl("delete", "widget", "w1", "--timeout=10s").returncode == 0
    assert "No resources found" in kube.kubectl("get", "widgets").stderr


def test_kopf_operator_finalizer_child_status_and_clean_delete(kube: Cluster) -> None:
    kube.kubectl("apply", "-f", str(HERE / "widgets-crd.yaml"), check=True)
    argv = ["run", "-A", "--standalone", str(HERE / "toy_operator.py")]
    with KopfRunner(argv, timeout=60) as runner:
        kube.kubectl("apply", "-f", str(HERE / "widget.yaml"), check=True)
        for _ in range(100):
            got = json.loads(kube.kubectl("get", "widget", "w1", "-o", "json").stdout)
            if got.get("status", {}).get("phase") == "Ready":
                break
            time.sleep(0.1)
        assert got["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
        child = json.loads(
            kube.kubectl("get", "configmap", "w1-child", "-o", "json", check=True).stdout
        )
        assert child["metadata"]["ownerReferences"][0]["uid"] == got["metadata"]["uid"]
        events = kube.kubectl("get", "events", "-o", "json").stdout
        assert "ChildCreated" in events
        deleted = kube.kubectl("delete", "widget", "w1", "--timeout=20s")
        assert deleted.returncode == 0, deleted.stderr
        assert kube.kubectl("get", "configmap", "w1-child").returncode != 0
    assert runner.exit_code == 0, runner.output[-3000:]
    assert runner.exception is None
    assert kube.requests.count(verb="patch", resource="widgets/status") >= 1
