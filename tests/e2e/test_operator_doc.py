"""docs/operator.md, steps 1 to 4, run literally: every ``bash`` block's commands, in order,
against the emulator with the real kubectl, the real operator, the real worker on the tiny judge
and a real S3 server (SeaweedFS on the port the doc names, with the doc's credentials).

The commands are parsed from the page, so the page and this test cannot drift: a flag renamed in
the doc, a manifest field the CRD refuses, a command the emulator cannot serve, each fails here.
``yaml`` blocks whose first line is ``# FILE.yaml`` are the files the commands apply. ``sh``
blocks (``pip install``) are not run; ``selftaught operator`` is started in the background (the
doc keeps it in its own terminal) and stopped at the end.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.cluster import Cluster
from tests.integration import seaweedfs

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operator.md"
#: What the doc's S3 endpoint and Secret name (a drift here fails the run, not this test).
S3_PORT = 8333
ACCESS_KEY, SECRET_KEY = "selftaught-demo", "selftaught-demo-secret-123"
LIVENESS = "http://127.0.0.1:8080/healthz"


@dataclass
class Walkthrough:
    commands: list[str]
    files: dict[str, str]


def parse(markdown: str, *, until: str = "## 5.") -> Walkthrough:
    """The ``bash`` commands (continuations joined) and named ``yaml`` files before ``until``."""
    text = markdown.split(until, 1)[0]
    commands: list[str] = []
    files: dict[str, str] = {}
    for lang, body in re.findall(r"^```(\w+)\n(.*?)^```", text, re.S | re.M):
        if lang == "yaml":
            first = body.split("\n", 1)[0]
            if re.fullmatch(r"# [\w.-]+\.yaml", first):
                files[first[2:]] = body
        elif lang == "bash":
            for line in body.replace("\\\n", " ").splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    commands.append(line.strip())
    return Walkthrough(commands, files)


def test_the_parser_reads_continuations_files_and_stops_at_step_5() -> None:
    doc = (
        "```bash\na --x \\\n    --y  # c\n```\n"
        "```yaml\n# f.yaml\nk: v\n```\n## 5. x\n```bash\nz\n```"
    )
    walk = parse(doc)
    assert walk.commands == ["a --x      --y  # c"]
    assert walk.files == {"f.yaml": "# f.yaml\nk: v\n"}


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT ok
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[seaweedfs.S3Endpoint]:
    for port in (S3_PORT, 9090, 8080):
        if not port_free(port):
            pytest.fail(f"port {port} (named in docs/operator.md) is in use on this machine")
    monkeypatch.setattr(seaweedfs, "ACCESS_KEY", ACCESS_KEY)
    monkeypatch.setattr(seaweedfs, "SECRET_KEY", SECRET_KEY)
    server = seaweedfs.SeaweedFS(data_dir=tmp_path / "weed", buckets=("artifacts",))
    server.ports["s3.port"], server.ports["s3.port.grpc"] = S3_PORT, S3_PORT + 10000
    server.endpoint = seaweedfs.S3Endpoint(f"http://127.0.0.1:{S3_PORT}", ACCESS_KEY, SECRET_KEY)
    with server as endpoint:
        yield endpoint


def start_operator(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(["bash", "-c", f"exec {command}"], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(LIVENESS, timeout=1) as answer:
                if answer.status == 200:
                    return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"operator not live after 60 s:\n{log.read_text()[-3000:]}")


def test_docs_operator_md_works_as_written(s3: seaweedfs.S3Endpoint, tmp_path: Path) -> None:
    walk = parse(DOC.read_text())
    assert any(c.startswith("kubectl create secret generic") for c in walk.commands)
    assert any(c.startswith("kubectl logs") for c in walk.commands)
    work = tmp_path / "work"
    work.mkdir()
    (work / "crds").symlink_to(ROOT / "crds")
    for name, body in walk.files.items():
        (work / name).write_text(body)
    cache = Path(os.environ["SELFTAUGHT_CACHE"])  # the session's built tiny judge, linked
    with Cluster(seed_cache=cache) as kube:
        env = dict(os.environ, KUBECONFIG=str(kube.kubeconfig), HOME=str(tmp_path))
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        outputs: dict[str, str] = {}
        operator = None
        try:
            for command in walk.commands:
                if command.startswith("selftaught operator"):
                    operator = start_operator(command, env, tmp_path / "operator.log")
                    continue
                done = subprocess.run(["bash", "-c", command], cwd=work, env=env,
                                      capture_output=True, text=True, timeout=1800)  # fmt: skip
                log = (tmp_path / "operator.log").read_text()[-4000:] if operator else ""
                assert done.returncode == 0, (
                    f"docs/operator.md: `{command}` exited {done.returncode}:\n"
                    f"{done.stderr}\n{done.stdout}\n--- operator log ---\n{log}"
                )
                outputs[command] = done.stdout
        finally:
            if operator is not None:
                os.killpg(operator.pid, signal.SIGTERM)
                operator.wait(timeout=30)
    by_start = {c.split(" --")[0].split(" -n")[0]: out for c, out in outputs.items()}
    assert "secret/s3-creds created" in by_start["kubectl create secret generic s3-creds"]
    logs = next(out for c, out in outputs.items() if c.startswith("kubectl logs"))
    assert '"stage":"train"' in logs, f"kubectl logs shows no train summary:\n{logs}"
    assert "s3://artifacts/runs/ml-team/judge-tiny/" in logs  # the model went to the doc's S3
    status = next(out for c, out in outputs.items() if c.startswith("selftaught status"))
    assert "phase: Succeeded" in status
    assert "best: iteration" in status
    print(f"--- kubectl logs (train) ---\n{logs}\n--- selftaught status ---\n{status}")
