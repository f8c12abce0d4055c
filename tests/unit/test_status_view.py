"""``selftaught status``: what it prints for local and cluster runs, exit codes, no tracebacks."""

from __future__ import annotations

import fcntl
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from selftaught.api import RunStatus
from selftaught.cli import main
from selftaught.local.state import RunDirectory
from selftaught.phases import Stage
from selftaught.plan import ObservedJob
from selftaught.plan.suspend import paused_message, previous_stage
from selftaught.status_view import stage_text, summary_lines
from tests.harness.cluster import Cluster
from tests.harness.fixtures import kube  # noqa: F401 - the emulator fixture

ROOT = Path(__file__).resolve().parents[2]


def status(**fields: object) -> RunStatus:
    return RunStatus.model_validate(fields)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({"phase": "Running", "stage": "train", "iteration": 2}, "iteration 2 train",
                     id="running-shows-the-current-stage"),
        pytest.param({"phase": "Suspended", "stage": "train", "iteration": 2},
                     "paused after iteration 2 judge (next: iteration 2 train)",
                     id="suspended-mid-iteration"),
        pytest.param({"phase": "Suspended", "stage": "judge", "iteration": 2},
                     "paused after iteration 1 evaluate (next: iteration 2 judge)",
                     id="suspended-between-iterations"),
        pytest.param({"phase": "Suspended", "stage": "select", "iteration": 0},
                     "paused before the first stage (next: iteration 0 select)",
                     id="suspended-before-anything-ran"),
        pytest.param({"phase": "Pending"}, "-", id="no-stage-yet"),
    ],
)  # fmt: skip
def test_stage_while_suspended_names_where_it_paused(
    fields: dict[str, object], expected: str
) -> None:
    assert stage_text(status(**fields)) == expected


def test_previous_stage_of_iteration_1_judge_is_the_baseline_evaluate() -> None:
    assert previous_stage(1, Stage.JUDGE) == (0, Stage.EVALUATE)
    assert previous_stage(0, Stage.PAIRS) == (0, Stage.SELECT)


def test_a_suspended_run_says_where_it_paused_in_its_message() -> None:
    from tests.unit.planning import drive, make_run

    run, _, _ = drive(make_run(), steps=3)  # select and pairs done: evaluate is next
    spec = run.spec.model_copy(update={"suspend": True})
    paused, _, _ = drive(run.model_copy(update={"spec": spec}), steps=1)
    status = paused.status
    assert status.phase == "Suspended"
    assert status.message == paused_message(status.iteration, Stage(status.stage))
    assert paused.status.message.startswith("suspended after iteration 0 pairs")


def test_best_is_printed_only_when_there_is_one_with_3_decimals() -> None:
    none = "\n".join(summary_lines(status(phase="Running", stage="select")))
    assert "None" not in none
    assert "best" not in none
    best = summary_lines(status(phase="Succeeded", bestIteration=2, bestAccuracy=0.833333333))
    assert "best: iteration 2, accuracy 0.833" in best


def write_run(tmp_path: Path, phase: str) -> RunDirectory:
    directory = RunDirectory(tmp_path / "quickstart")
    directory.save_status(status(phase=phase, stage="judge", iteration=1), name="quickstart")
    return directory


def test_a_killed_local_run_shows_stopped_not_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = write_run(tmp_path, "Running")
    directory.lock_path.touch()  # a runner ran here once, and is gone (its flock with it)
    assert not directory.runner_alive()
    assert main(["status", str(directory.root)]) == 0
    out = capsys.readouterr().out
    assert "phase: Stopped" in out
    assert "resume it" in out


def test_a_live_local_run_shows_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = write_run(tmp_path, "Running")
    with directory.lock_path.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what LocalRunner.run holds
        assert directory.runner_alive()
        assert main(["status", str(directory.root)]) == 0
    out = capsys.readouterr().out
    assert "phase: Running" in out
    assert "Stopped" not in out


def test_a_path_without_status_is_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", str(tmp_path)]) == 2
    err = capsys.readouterr()
    assert "no status.yaml" in err.out
    assert "Traceback" not in err.out + err.err


def test_a_cluster_run_is_read_with_the_kubeconfig(
    kube: Cluster,  # noqa: F811 - the fixture imported above
    capsys: pytest.CaptureFixture[str],
) -> None:
    kube.kubectl("apply", "-f", str(ROOT / "crds" / "selftaughtrun.yaml"), check=True)
    kube.kubectl("create", "namespace", "ml-team", check=True)
    run = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    kube.kubectl("apply", "-n", "ml-team", "-f", "-", input=json.dumps(run), check=True)
    patch = {"status": {"phase": "Running", "stage": "judge", "iteration": 1, "progress": "1/3",
                        "bestIteration": 0, "bestAccuracy": 0.61234}}  # fmt: skip
    kube.kubectl("patch", "str", "quickstart", "-n", "ml-team", "--subresource=status",
                 "--type=merge", "-p", json.dumps(patch), check=True)  # fmt: skip
    code = main(["status", "quickstart", "-n", "ml-team", "--kubeconfig", str(kube.kubeconfig)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "selftaughtrun quickstart in namespace ml-team" in out
    assert "phase: Running" in out
    assert "best: iteration 0, accuracy 0.612" in out
    missing = main(["status", "quickstart", "--kubeconfig", str(kube.kubeconfig)])
    out = capsys.readouterr().out
    assert missing == 2
    assert "no selftaughtrun 'quickstart' in namespace 'default'" in out
    assert "Traceback" not in out


def test_no_kubeconfig_is_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["status", "quickstart", "--kubeconfig", str(tmp_path / "missing")])
    captured = capsys.readouterr()
    assert code == 2
    assert "not a local run directory and no kubeconfig is usable" in captured.out
    assert "Traceback" not in captured.out + captured.err


def test_best_accuracy_in_status_has_3_decimals_for_the_best_printer_column() -> None:
    from selftaught.plan import CreateJob
    from selftaught.summaries import EvaluateSummary, SetScores
    from tests.unit.planning import drive, make_run, observed

    def thirds(create: CreateJob) -> ObservedJob:
        job = observed(create)
        if create.task.stage is Stage.EVALUATE:
            heldout = SetScores(accuracy=2 / 3, examples=3)
            job = job.model_copy(
                update={"summaries": {0: EvaluateSummary(scores={"heldout": heldout})}}
            )
        return job

    run, _, _ = drive(make_run(), thirds)
    assert run.status.best_accuracy == 0.667
    assert run.status.history[1].scores["heldout"].accuracy == pytest.approx(2 / 3)


def test_a_corrupt_status_file_is_exit_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "status.yaml").write_text("status: {phase: Exploded}\n")
    assert main(["status", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "unreadable" in captured.out
    assert "Traceback" not in captured.out + captured.err


def test_a_runner_killed_with_sigkill_releases_the_lock_and_shows_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = write_run(tmp_path, "Running")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\n"
         "f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX)\n"
         "print('locked', flush=True); time.sleep(120)", str(directory.lock_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        assert main(["status", str(directory.root)]) == 0
        assert "phase: Running" in capsys.readouterr().out
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        assert main(["status", str(directory.root)]) == 0
        assert "phase: Stopped" in capsys.readouterr().out
    finally:
        holder.kill()
        holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()
