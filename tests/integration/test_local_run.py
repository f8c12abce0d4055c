"""`selftaught run` end to end on the tiny model: a whole run, and a killed run resumed.

These run the real CLI as a subprocess (the way a person does), each stage as its own worker
process, on the built-in task at sizes that keep a run around a minute on 2 cores.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.slow

MANIFEST = """\
apiVersion: selftaught.dev/v1alpha1
kind: SelfTaughtRun
metadata:
  name: {name}
spec:
  seedModel: builtin://tiny-judge?seed=0
  instructions:
    source: builtin://arithmetic
    categories: [math, list]
    maxInstructions: 160
  pairs: {{temperature: 0.0, maxNewTokens: 8}}
  judging: {{samplesPerPair: 2, temperature: 1.0, topP: 1.0, maxNewTokens: 32}}
  training:
    initFrom: seed
    learningRate: 0.001
    warmupSteps: 0
    epochs: 1
    batchSize: 16
    microBatchSize: 16
    maxLength: 128
  evaluation: {{heldOutFraction: 0.25, maxNewTokens: 32}}
  iterations: 1
  worker: {{seed: 0}}
  stages:
    select: {{engine: transformers, gpus: 0, cpu: "1"}}
    pairs: {{engine: transformers, gpus: 0, cpu: "1", shards: 2}}
    judge: {{engine: transformers, gpus: 0, cpu: "1", shards: 2}}
    train: {{engine: transformers, gpus: 0, cpu: "1"}}
    evaluate: {{engine: transformers, gpus: 0, cpu: "1"}}
"""


@pytest.fixture(scope="module")
def cache() -> Path:
    """The session's model cache (tests/conftest.py): the tiny judge is built once."""
    return Path(os.environ["SELFTAUGHT_CACHE"])


def command(manifest: Path, workdir: Path) -> list[str]:
    return [
        sys.executable, "-m", "selftaught.cli", "run", str(manifest),
        "--workdir", str(workdir), "--no-progress", "--parallel", "2",
    ]  # fmt: skip


def environment(cache: Path) -> dict[str, str]:
    return {**os.environ, "SELFTAUGHT_CACHE": str(cache), "COLUMNS": "200"}


def write_manifest(directory: Path, name: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(MANIFEST.format(name=name))
    return path


def load_status(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text())["status"])


def comparable(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The history without wall-clock facts and artifact paths, which differ between two runs."""
    records = []
    for record in status["history"]:
        kept = {k: v for k, v in record.items() if k not in ("startedAt", "completedAt", "model")}
        kept.pop("stageSeconds", None)
        kept.pop("gpuSeconds", None)
        records.append(kept)
    return records


@dataclass
class Finished:
    workdir: Path
    manifest: Path
    stdout: str


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> Finished:
    """One whole, undisturbed run: checked by the first test, the reference of the second."""
    tmp_path = tmp_path_factory.mktemp("whole")
    manifest = write_manifest(tmp_path, "steady")
    done = subprocess.run(
        command(manifest, tmp_path / "runs"),
        env=environment(cache),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return Finished(tmp_path / "runs", manifest, done.stdout)


def test_a_local_run_completes_with_status_artifacts_table_and_plot(
    finished: Finished, cache: Path
) -> None:
    run_dir = finished.workdir / "steady"
    status = load_status(run_dir / "status.yaml")
    assert status["phase"] == "Succeeded"
    assert [r["iteration"] for r in status["history"]] == [0, 1]
    assert status["history"][0]["instructions"] > 0
    first = status["history"][1]
    assert first["judgmentsSampled"] > 0
    assert 0 < first["judgmentsKept"] <= first["pairs"]
    assert 0.0 <= first["scores"]["heldout"]["accuracy"] <= 1.0
    assert set(first["stageSeconds"]) == {"judge", "train", "evaluate"}
    artifacts = run_dir / "artifacts" / "default" / "steady"
    assert (artifacts / "iteration-1" / "train" / "_COMMITTED").is_file()
    assert (artifacts / "iteration-1" / "train" / "model" / "config.json").is_file()
    assert (artifacts / "iteration-0" / "pairs" / "shard-00001" / "_COMMITTED").is_file()
    assert (run_dir / "accuracy.png").stat().st_size > 1000
    assert "kept/sampled" in finished.stdout
    assert "heldout" in finished.stdout
    assert f"serve the best judge: selftaught serve {run_dir}" in finished.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "selftaught.cli", "status", str(run_dir)],
        env=environment(cache),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "Succeeded" in shown.stdout
    assert "heldout" in shown.stdout


def test_a_killed_run_resumes_to_the_same_result_without_redoing_finished_stages(
    tmp_path: Path, cache: Path, finished: Finished
) -> None:
    reference = load_status(finished.workdir / "steady" / "status.yaml")
    manifest = finished.manifest
    workdir = tmp_path / "killed"
    process = subprocess.Popen(
        command(manifest, workdir), env=environment(cache), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    judge_log = workdir / "steady" / "jobs" / "steady-i1-judge-a0" / "shard-0.log"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if judge_log.exists():  # a judging process has started
            break
        time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("the run never reached the judge stage")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    finished = sorted(p.parent.name for p in (workdir / "steady" / "jobs").glob("*/result.json"))
    assert finished == ["steady-i0-eval-a0", "steady-i0-pair-a0", "steady-i0-sel-a0"]
    before = {name: (workdir / "steady" / "jobs" / name / "result.json").stat().st_mtime_ns
              for name in finished}  # fmt: skip

    resumed = subprocess.run(
        command(manifest, workdir),
        env=environment(cache),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming steady at iteration 1, judge" in resumed.stdout
    after = load_status(workdir / "steady" / "status.yaml")
    assert after["phase"] == "Succeeded"
    assert comparable(after) == comparable(reference)
    for name, mtime in before.items():
        assert (workdir / "steady" / "jobs" / name / "result.json").stat().st_mtime_ns == mtime


def test_the_finished_runs_best_judge_is_served_and_answers_with_a_verdict(
    finished: Finished,
) -> None:
    """The quick start ends with ``selftaught serve``: the trained best judge behind the API."""
    from selftaught.prompts import parse_verdict
    from tests.integration.serving import call, served

    run_dir = finished.workdir / "steady"
    best = load_status(run_dir / "status.yaml")["bestModel"]
    with served(run_dir) as url:
        status, models = call("GET", f"{url}/v1/models")
        assert status == 200
        assert [(m["id"], m["root"]) for m in models["data"]] == [("steady", best)]
        question = {"role": "user", "content": "judge: max 3 9 1 4 | A: 9 | B: 4"}
        body = {"model": "steady", "messages": [question], "temperature": 0, "max_tokens": 48}
        status, answer = call("POST", f"{url}/v1/chat/completions", body)
    assert status == 200, answer
    assert parse_verdict(answer["choices"][0]["message"]["content"]) in ("A", "B"), answer
