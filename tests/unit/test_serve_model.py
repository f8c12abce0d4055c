"""``selftaught serve-model``: the Deployment's entrypoint. vLLM's command line is pinned (vLLM is
never installed here); the transformers path serves the suite's tiny judge for real."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from selftaught.plugin.judging import ask
from selftaught.serving.model import EXIT_BAD_INPUT, ServerOptions, run, vllm_argv

SEED = "builtin://tiny-judge?seed=0"


@pytest.mark.parametrize(
    ("options", "tail"),
    [
        pytest.param(ServerOptions(model_uri="s3://b/m", name="demo"), [], id="defaults"),
        pytest.param(
            ServerOptions(
                model_uri="s3://b/m",
                name="demo",
                tensor_parallel=4,
                max_model_len=4096,
                extra_args=["--gpu-memory-utilization", "0.85"],
            ),
            ["--max-model-len", "4096", "--gpu-memory-utilization", "0.85"],
            id="max-model-len-then-extra-args",
        ),
    ],
)
def test_vllm_serves_the_fetched_directory_under_the_runs_name(
    options: ServerOptions, tail: list[str]
) -> None:
    argv = vllm_argv(options, Path("/cache/m"))
    assert argv[:3] == ["vllm", "serve", "/cache/m"]
    assert argv[argv.index("--served-model-name") + 1] == "demo"
    assert argv[argv.index("--port") + 1] == "8000"
    assert argv[argv.index("--tensor-parallel-size") + 1] == str(options.tensor_parallel)
    assert argv[len(argv) - len(tail) :] == tail


def test_a_missing_model_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"file://{tmp_path}/nothing"
    assert (
        run(["--model-uri", missing, "--name", "demo", "--engine", "transformers"])
        == EXIT_BAD_INPUT
    )
    assert missing in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_transformers_engine_serves_the_tiny_judge_with_a_verdict(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "selftaught.cli", "serve-model", "--model-uri", SEED, "--name",
         "demo", "--engine", "transformers", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5) as answer:
                    assert json.load(answer)["model"] == "demo"
                    break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None, (tmp_path / "server.log").read_text()
                assert time.monotonic() < deadline, "no /health in 180 s"
                time.sleep(0.3)
        ruling = ask(base, model="demo", question="max 3 9 1 4", answer_a="9", answer_b="4",
                     samples=1)  # fmt: skip
        assert ruling.verdict in ("A", "B"), ruling.judgments
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def test_vllm_engine_execs_vllm_serve_on_the_fetched_judge(tmp_path: Path) -> None:
    """A stand-in ``vllm`` on the PATH records the command it was exec'd with."""
    fake = tmp_path / "bin" / "vllm"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path / "argv"}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [sys.executable, "-m", "selftaught.cli", "serve-model", "--model-uri", SEED, "--name",
         "demo", "--port", "8001", "--", "--enforce-eager"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    argv = (tmp_path / "argv").read_text().split("\n")[:-1]
    assert argv[0] == "serve"
    assert (Path(argv[1]) / "config.json").is_file()  # the judge, fetched into the cache
    assert argv[argv.index("--port") + 1] == "8001"
    assert argv[argv.index("--served-model-name") + 1] == "demo"
    assert argv[-1] == "--enforce-eager"


def test_vllm_missing_from_the_image_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert run(["--model-uri", SEED, "--name", "demo"]) == EXIT_BAD_INPUT
