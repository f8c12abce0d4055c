"""The worker shell: task in, stage run, exit code and termination summary out."""

from __future__ import annotations

import io
import json
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

from selftaught.api import RunSpec
from selftaught.phases import EXIT_BAD_INPUT, EXIT_OK, EXIT_PROGRAM_ERROR, EXIT_TRANSIENT, Stage
from selftaught.pod import SHARD_ENV, TASK_ENV, TERMINATION_LOG_ENV, BadInput
from selftaught.storage import (
    FileStorage,
    MemoryStorage,
    Storage,
    StorageAuthError,
    StorageCorrupt,
    StorageNotFound,
    StorageUnavailable,
    UncommittedError,
)
from selftaught.summaries import JudgeSummary, PairsSummary
from selftaught.task import StageTask
from selftaught.worker import (
    SUMMARY_LIMIT,
    compact_summary,
    main,
    run_worker,
)


def make_task(tmp_path: Path, **overrides: Any) -> StageTask:
    spec = RunSpec.model_validate(
        {
            "seedModel": "builtin://tiny-judge",
            "storage": {"uri": f"file://{tmp_path}/artifacts"},
            "instructions": {"source": "builtin://arithmetic"},
            "stages": {"judge": {"cpu": "2500m", "shards": 3, "gpus": 0, "engine": "transformers"}},
        }
    )
    fields: dict[str, Any] = {
        "run": "demo",
        "namespace": "ns",
        "iteration": 2,
        "stage": Stage.JUDGE,
        "attempt": 1,
        "shards": 3,
        "model": "builtin://tiny-judge",
        "spec": spec,
    }
    fields.update(overrides)
    return StageTask(**fields)


class Harness:
    """Runs the shell with an injected environment, storage and stage; keeps what it printed."""

    def __init__(self, tmp_path: Path) -> None:
        self.log = tmp_path / "termination-log"
        self.env = {TERMINATION_LOG_ENV: str(self.log)}
        self.stdout, self.stderr = io.StringIO(), io.StringIO()
        self.threads: list[int] = []
        self.storage = MemoryStorage()

    def run(self, stage: str = "judge", stage_fn: Any = None, **kwargs: Any) -> int:
        return run_worker(
            stage,
            environ=self.env,
            stage_fn=stage_fn,
            storage=kwargs.pop("storage", self.storage),
            thread_setter=self.threads.append,
            stdout=self.stdout,
            stderr=self.stderr,
            **kwargs,
        )

    @property
    def summary(self) -> dict[str, Any]:
        printed = json.loads(self.stdout.getvalue())
        assert json.loads(self.log.read_text()) == printed
        return printed  # type: ignore[no-any-return]


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_success_reports_summary_and_passes_task_storage_shard(
    harness: Harness, tmp_path: Path
) -> None:
    task = make_task(tmp_path)
    harness.env |= {TASK_ENV: task.to_env(), SHARD_ENV: "2"}
    seen: list[tuple[StageTask, Storage, int]] = []

    def stage(task: StageTask, storage: Storage, shard: int) -> JudgeSummary:
        seen.append((task, storage, shard))
        # The shell's own fields win over whatever the stage put in them.
        return JudgeSummary(pairs=15, sampled=45, kept=12, invalid=2, iteration=99, seconds=1.0)

    clock = iter([100.0, 103.25])
    assert harness.run(stage_fn=stage, clock=lambda: next(clock)) == EXIT_OK
    assert seen == [(task, harness.storage, 2)]
    assert harness.summary == {
        "stage": "judge",
        "iteration": 2,
        "shard": 2,
        "attempt": 1,
        "seconds": 3.25,
        "computeSeconds": 0.0,  # the fake stage did no model work
        "pairs": 15,
        "sampled": 45,
        "generatedTokens": 0,
        "rounds": 0,
        "kept": 12,
        "invalid": 2,
        "bothMarkers": 0,
        "ties": 0,
        "wrong": 0,
        "keptWinnerA": 0,
        "keptWinnerB": 0,
        "droppedForBalance": 0,
        "skippedTooLong": 0,
        "droppedWithoutRejected": 0,
        "rejectedNotWrong": 0,
    }
    assert harness.threads == [3]  # 2500m rounds half-up to 3 threads


def test_storage_is_opened_from_the_task_spec(harness: Harness, tmp_path: Path) -> None:
    harness.env[TASK_ENV] = make_task(tmp_path).to_env()
    opened: list[Storage] = []

    def stage(task: StageTask, storage: Storage, shard: int) -> JudgeSummary:
        opened.append(storage)
        with storage.output("ns/demo/iteration-2/judge/shard-00000") as out:
            out.write_jsonl("judgments.jsonl", [{"ok": True}])
        return JudgeSummary()

    assert harness.run(stage_fn=stage, storage=None) == EXIT_OK
    assert isinstance(opened[0], FileStorage)
    assert opened[0].root == tmp_path / "artifacts"
    assert FileStorage(tmp_path / "artifacts").is_committed("ns/demo/iteration-2/judge/shard-00000")


@pytest.mark.parametrize(
    ("env", "match"),
    [
        pytest.param({}, f"{TASK_ENV} is missing", id="task-missing"),
        pytest.param(
            {TASK_ENV: "{not json"}, f"{TASK_ENV} is not a valid StageTask", id="bad-json"
        ),
        pytest.param({TASK_ENV: '{"run": "x"}'}, "namespace", id="fields-missing"),
    ],
)
def test_unusable_task_is_bad_input_naming_the_variable(
    harness: Harness, env: dict[str, str], match: str
) -> None:
    harness.env |= env
    assert harness.run(stage_fn=lambda *_: {}) == EXIT_BAD_INPUT
    assert match in harness.summary["error"]
    assert harness.summary["errorType"] == "BadInput"
    assert "Traceback" not in harness.stderr.getvalue()


@pytest.mark.parametrize(
    ("shard", "match"),
    [
        pytest.param("x", "is not an integer", id="not-a-number"),
        pytest.param("3", "outside the task's 3 shard", id="out-of-range"),
        pytest.param("-1", "outside", id="negative"),
    ],
)
def test_bad_shard_index(harness: Harness, tmp_path: Path, shard: str, match: str) -> None:
    harness.env |= {TASK_ENV: make_task(tmp_path).to_env(), SHARD_ENV: shard}
    assert harness.run(stage_fn=lambda *_: {}) == EXIT_BAD_INPUT
    assert match in harness.summary["error"]


def test_task_for_another_stage_is_refused(harness: Harness, tmp_path: Path) -> None:
    harness.env[TASK_ENV] = make_task(tmp_path).to_env()
    assert harness.run("train", stage_fn=lambda *_: {}) == EXIT_BAD_INPUT
    assert "task is for stage 'judge'" in harness.summary["error"]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        pytest.param(
            BadInput("line 7 of pairs.jsonl has no 'chosen'"), EXIT_BAD_INPUT, id="bad-input"
        ),
        pytest.param(StorageNotFound("no object at s3://b/x"), EXIT_BAD_INPUT, id="missing-data"),
        pytest.param(StorageAuthError("refused"), EXIT_BAD_INPUT, id="bad-credentials"),
        pytest.param(StorageUnavailable("endpoint down"), EXIT_TRANSIENT, id="store-down"),
        pytest.param(StorageCorrupt("s3://b/x has 3 bytes"), EXIT_BAD_INPUT, id="corrupt-input"),
        pytest.param(UncommittedError("not committed"), EXIT_PROGRAM_ERROR, id="uncommitted"),
        pytest.param(ZeroDivisionError("division by zero"), EXIT_PROGRAM_ERROR, id="bug"),
    ],
)
def test_failures_map_to_exit_codes(
    harness: Harness, tmp_path: Path, error: Exception, code: int
) -> None:
    harness.env[TASK_ENV] = make_task(tmp_path).to_env()

    def stage(*_: Any) -> dict[str, Any]:
        raise error

    assert harness.run(stage_fn=stage) == code
    summary = harness.summary
    assert summary["error"] == str(error)
    assert summary["errorType"] == type(error).__name__
    assert (summary["iteration"], summary["shard"], summary["attempt"]) == (2, 0, 1)
    assert isinstance(summary["seconds"], float)
    has_traceback = "Traceback" in harness.stderr.getvalue()
    assert has_traceback == (code == EXIT_PROGRAM_ERROR)


@pytest.mark.parametrize(
    ("returned", "named"),
    [
        pytest.param([1, 2], "returned list, not a JudgeSummary", id="not-a-summary"),
        pytest.param({"kept": 1}, "returned dict, not a JudgeSummary", id="untyped-dict"),
        pytest.param(PairsSummary(pairs=3), "returned PairsSummary", id="another-stage"),
    ],
)
def test_stage_returning_anything_but_its_summary_is_a_program_error(
    harness: Harness, tmp_path: Path, returned: Any, named: str
) -> None:
    harness.env[TASK_ENV] = make_task(tmp_path).to_env()
    assert harness.run(stage_fn=lambda *_: returned) == EXIT_PROGRAM_ERROR
    assert named in harness.summary["error"]


def test_unwritable_termination_log_does_not_fail_the_stage(
    harness: Harness, tmp_path: Path
) -> None:
    harness.env |= {
        TASK_ENV: make_task(tmp_path).to_env(),
        TERMINATION_LOG_ENV: str(tmp_path / "no" / "such" / "dir" / "log"),
    }
    assert harness.run(stage_fn=lambda *_: JudgeSummary(kept=1)) == EXIT_OK
    assert "cannot write termination log" in harness.stderr.getvalue()
    assert json.loads(harness.stdout.getvalue())["kept"] == 1


def test_main_imports_the_stage_module_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = types.ModuleType("selftaught.stages.judge")
    fake.run = lambda task, storage, shard: JudgeSummary(kept=isinstance(storage, FileStorage))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "selftaught.stages.judge", fake)
    monkeypatch.setenv(TASK_ENV, make_task(tmp_path, spec=make_task(tmp_path).spec).to_env())
    monkeypatch.setenv(TERMINATION_LOG_ENV, str(tmp_path / "log"))
    monkeypatch.delenv(SHARD_ENV, raising=False)
    monkeypatch.setattr("selftaught.worker.set_torch_threads", lambda n: None)
    assert main("judge") == EXIT_OK
    assert json.loads((tmp_path / "log").read_text())["kept"] == 1  # it got a FileStorage
    assert '"kept":1' in capsys.readouterr().out


# ------------------------------------------------------------------ pure helpers


def test_small_summary_is_unchanged() -> None:
    summary = {"stage": "judge", "seconds": 1.23456789, "kept": 3}
    assert json.loads(compact_summary(summary)) == summary


def test_large_summary_drops_detail_first_and_stays_valid() -> None:
    summary = {
        "stage": "evaluate",
        "iteration": 3,
        "shard": 0,
        "attempt": 0,
        "seconds": 12.345678912,
        "scores": {"heldout": {"accuracy": 0.123456789, "examples": 100}},
        "perExample": [{"i": i, "score": 0.5} for i in range(500)],
        "badLines": list(range(1000)),
    }
    text = compact_summary(summary)
    assert len(text.encode()) < SUMMARY_LIMIT
    parsed = json.loads(text)
    assert parsed["truncated"] == ["perExample", "badLines"]
    assert parsed["scores"] == {"heldout": {"accuracy": 0.1235, "examples": 100}}
    assert parsed["seconds"] == 12.35
    assert (parsed["stage"], parsed["iteration"]) == ("evaluate", 3)


def test_huge_error_message_is_shortened_not_dropped() -> None:
    summary = {"stage": "pairs", "seconds": 1.0, "error": "é" * 10_000, "errorType": "BadInput"}
    text = compact_summary(summary)
    assert len(text.encode()) < SUMMARY_LIMIT
    parsed = json.loads(text)
    assert parsed["error"].endswith("[...]")
    assert parsed["error"].startswith("éé")
    assert parsed["errorType"] == "BadInput"


def test_model_compute_time_and_progress_reach_the_summary_and_the_progress_file(
    harness: Harness, tmp_path: Path
) -> None:
    from selftaught import progress

    task = make_task(tmp_path)
    progress_file = tmp_path / "progress.json"
    harness.env |= {TASK_ENV: task.to_env(), progress.PROGRESS_FILE_ENV: str(progress_file)}

    def stage(task: StageTask, storage: Storage, shard: int) -> JudgeSummary:
        reporter = progress.current()
        reporter.expect(4)
        with progress.compute():
            time.sleep(0.05)
        reporter.advance(4, tokens=100)
        return JudgeSummary()

    assert harness.run(stage_fn=stage) == EXIT_OK
    assert harness.summary["computeSeconds"] >= 0.05
    shown = progress.read(progress_file)
    assert shown is not None
    assert (shown["done"], shown["total"]) == (4, 4)
