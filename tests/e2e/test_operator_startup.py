"""``selftaught operator`` before it watches anything: one clear line, never a traceback.

* no usable credentials (a missing or broken kubeconfig): exit 1 with one line on stderr;
* the API server unreachable: one warning per attempt, the wait doubling, until it answers;
* a watched namespace that does not exist: one warning, and the operator runs on.

(Issue 21: with a bad kubeconfig the operator retried every 2 s with full tracebacks, forever;
started with ``--namespace ml-team`` while the run went to ``default``, it said nothing.)
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import E2E, SELFTAUGHT, free_port, start_operator, stop_operator
from tests.harness.kubeconfig import write_kubeconfig

pytestmark = pytest.mark.e2e


def operator_env(**extra: str) -> dict[str, str]:
    """The environment of an operator outside any cluster (no service account to fall back on)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env.pop("KUBECONFIG", None)
    env["HOME"] = extra.pop("HOME", env.get("HOME", "/nonexistent"))
    env.update(extra)
    return env


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        pytest.param(
            lambda tmp: (["--kubeconfig", str(tmp / "missing.yaml")], {}),
            r"^selftaught operator: --kubeconfig \S+missing\.yaml: no such file$",
            id="flag-missing-file",
        ),
        pytest.param(
            lambda tmp: (
                ["--kubeconfig", str(_write(tmp / "broken.yaml", "clusters: [oops\n"))],
                {},
            ),
            r"^selftaught operator: no usable credentials: kubeconfig \S+broken\.yaml: .+$",
            id="flag-broken-yaml",
        ),
        pytest.param(
            lambda tmp: ([], {"KUBECONFIG": str(_write(tmp / "empty.yaml", ""))}),
            r"^selftaught operator: no usable credentials: kubeconfig .+$",
            id="env-empty-file",
        ),
    ],
)
def test_no_usable_credentials_is_one_line_and_exit_1(
    tmp_path: Path, setup: object, message: str
) -> None:
    argv, env = setup(tmp_path)  # type: ignore[operator]
    started = time.monotonic()
    result = subprocess.run(
        [SELFTAUGHT, "operator", "--metrics-port", "0", *argv],
        env=operator_env(HOME=str(tmp_path), **env),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.match(message, lines[0]), lines[0]
    assert time.monotonic() - started < 30  # no retry loop


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_an_unreachable_api_server_is_retried_one_line_per_attempt(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{free_port()}")
    log = tmp_path / "operator.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [SELFTAUGHT, "operator", "--kubeconfig", str(kubeconfig), "--metrics-port", "0"],
            env=operator_env(HOME=str(tmp_path)), stdout=handle, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "(attempt 3)" not in log.read_text():
            assert process.poll() is None, log.read_text()
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=20)
    text = log.read_text()
    assert "Traceback" not in text
    attempts = [line for line in text.splitlines() if "unreachable" in line]
    assert len(attempts) >= 3, text
    assert len(attempts) == len(text.strip().splitlines()), text  # nothing else, one line each
    assert "(attempt 1)" in attempts[0]
    assert "retrying in 1s" in attempts[0]
    assert "retrying in 2s" in attempts[1]  # the wait doubles
    assert "retrying in 4s" in attempts[2]


def test_a_watched_namespace_that_does_not_exist_is_warned_about_once(
    cluster: E2E, tmp_path: Path
) -> None:
    cluster.require_emulator()
    log = tmp_path / "operator.log"
    operator = start_operator(cluster, log, "--namespace", "ml-team")  # and default
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "ml-team" not in log.read_text():
            time.sleep(0.1)
    finally:
        assert stop_operator(operator) == 0
    text = log.read_text()
    warned = [line for line in text.splitlines() if "does not exist" in line]
    assert len(warned) == 1, text
    assert "namespace ml-team does not exist" in warned[0]
    assert "Traceback" not in text
