"""The multi-process train launcher's pure parts: torchrun arguments and the pod's report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from selftaught.launch import (
    LaunchError,
    outcome,
    torchrun_arguments,
)
from selftaught.phases import EXIT_BAD_INPUT, EXIT_OK, EXIT_PROGRAM_ERROR, EXIT_TRANSIENT
from selftaught.pod import RANK_SUMMARIES_ENV, termination_log_path

WORKER = ["-m", "selftaught.cli", "worker", "train"]


def test_one_pod_meets_on_localhost() -> None:
    assert torchrun_arguments({"NPROC_PER_NODE": "8"}) == [
        "--nnodes=1",
        "--nproc-per-node=8",
        "--max-restarts=0",
        "--standalone",
        *WORKER,
    ]


def test_several_pods_meet_at_pod_zero() -> None:
    environ = {
        "NNODES": "2",
        "NPROC_PER_NODE": "8",
        "NODE_RANK": "1",
        "MASTER_ADDR": "demo-i1-train-a0-0.demo-i1-train-a0",
        "MASTER_PORT": "29500",
    }
    arguments = torchrun_arguments(environ)
    assert arguments[:3] == ["--nnodes=2", "--nproc-per-node=8", "--max-restarts=0"]
    assert "--node-rank=1" in arguments
    assert "--master-addr=demo-i1-train-a0-0.demo-i1-train-a0" in arguments
    assert "--master-port=29500" in arguments
    assert "--standalone" not in arguments
    assert arguments[-4:] == WORKER


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"NPROC_PER_NODE": "eight"}, "NPROC_PER_NODE='eight'"),
        ({"NPROC_PER_NODE": "0"}, "NPROC_PER_NODE=0"),
        ({"NNODES": "2", "MASTER_ADDR": "a"}, "NODE_RANK is missing"),
        ({"NNODES": "2", "NODE_RANK": "2", "MASTER_ADDR": "a"}, "NODE_RANK=2"),
        ({"NNODES": "2", "NODE_RANK": "0"}, "MASTER_ADDR is missing"),
    ],
)
def test_bad_rendezvous_environment_names_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(LaunchError, match=named):
        torchrun_arguments(environ)


def write_rank(directory: Path, local: int, summary: dict[str, object]) -> None:
    (directory / f"rank-{local}.json").write_text(json.dumps(summary))


def test_success_reports_rank_zero(tmp_path: Path) -> None:
    write_rank(tmp_path, 0, {"stage": "train", "steps": 4, "ranks": 2})
    write_rank(tmp_path, 1, {"stage": "train", "steps": 4, "ranks": 2, "other": True})
    code, text = outcome(None, tmp_path, None)
    assert code == EXIT_OK
    assert json.loads(text) == {"stage": "train", "steps": 4, "ranks": 2}


@pytest.mark.parametrize("exit_code", [EXIT_BAD_INPUT, EXIT_TRANSIENT])
def test_failure_classes_pass_through_with_the_failed_rank_summary(
    tmp_path: Path, exit_code: int
) -> None:
    write_rank(tmp_path, 0, {"stage": "train", "error": "killed by the launcher"})
    write_rank(tmp_path, 1, {"stage": "train", "error": "bucket missing"})
    code, text = outcome((exit_code, 1), tmp_path, None)
    assert code == exit_code
    assert json.loads(text)["error"] == "bucket missing"


def test_a_rank_that_died_without_a_summary_is_a_program_error(tmp_path: Path) -> None:
    task = json.dumps({"iteration": 3, "attempt": 1})
    code, text = outcome((-9, 1), tmp_path, task)
    assert code == EXIT_PROGRAM_ERROR
    summary = json.loads(text)
    assert (summary["iteration"], summary["attempt"], summary["errorType"]) == (3, 1, "RankFailed")
    assert "local rank 1" in summary["error"]
    assert "exit code -9, killed by SIGKILL: out of memory?" in summary["error"]
    assert "killed by SIGSEGV" in json.loads(outcome((-11, 0), tmp_path, task)[1])["error"]
    assert "(exit code 7)" in json.loads(outcome((7, 0), tmp_path, task)[1])["error"]


def test_each_rank_writes_its_own_summary_file(tmp_path: Path) -> None:
    environ = {RANK_SUMMARIES_ENV: str(tmp_path), "LOCAL_RANK": "3"}
    assert termination_log_path(environ) == str(tmp_path / "rank-3.json")
    assert termination_log_path({"SELFTAUGHT_TERMINATION_LOG": "/x"}) == "/x"


def test_distributed_worker_sets_the_passive_wait_policy_its_ranks_inherit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ranks are children of this process: the OpenMP policy must be in os.environ first."""
    import selftaught.launch
    from selftaught import cpu, worker

    for key in cpu.OMP_DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    seen: dict[str, str | None] = {}

    def fake_launch() -> int:
        seen.update({key: os.environ.get(key) for key in cpu.OMP_DEFAULTS})
        return EXIT_OK

    monkeypatch.setattr(selftaught.launch, "launch", fake_launch)
    assert worker.command("train", distributed=True) == EXIT_OK
    assert seen == cpu.OMP_DEFAULTS
