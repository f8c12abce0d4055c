"""The worker shell: what ``selftaught worker <stage>`` runs inside a Job's pod.

It reads the task from the environment, opens the run's storage, sizes torch's thread pool, runs
the stage, and reports. The report is two things the controller relies on:

* the **exit code** (:mod:`selftaught.phases`): 0 done; 2 bad input (a malformed dataset, a
  missing model or bucket, refused credentials: retrying would fail the same way); 3 a transient
  storage fault (worth a retry); 1 anything else (a bug or a crash, with the traceback on stderr);
* a **JSON summary** on stdout and in the termination log (``/dev/termination-log``), which
  Kubernetes caps at 4096 bytes. The summary is compacted to fit: floats rounded first, then the
  largest detail fields dropped (their names listed under ``truncated``), then the error message
  shortened; it is always valid JSON and always keeps stage, iteration, shard, attempt, seconds
  and the error.

The stages themselves live in :mod:`selftaught.stages`, one module per stage with
``run(task, storage, shard) -> <Stage>Summary`` (:mod:`selftaught.summaries`); they are imported
only here, by name, so this shell stays importable without the ML stack.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from pydantic import ValidationError

from selftaught import cpu, progress
from selftaught.phases import EXIT_BAD_INPUT, EXIT_OK, EXIT_PROGRAM_ERROR, EXIT_TRANSIENT
from selftaught.pod import SHARD_ENV, TASK_ENV, BadInput, write_termination_log
from selftaught.storage import (
    Storage,
    StorageAuthError,
    StorageCorrupt,
    StorageNotFound,
    StorageUnavailable,
    UncommittedError,
    open_for_spec,
)
from selftaught.summaries import MODELS, Summary
from selftaught.task import StageTask

StageFn = Callable[[StageTask, Storage, int], Summary]

#: Kubernetes keeps at most 4096 bytes of a termination message; stay safely below.
SUMMARY_LIMIT = 4000
#: Keys that survive every compaction step.
CORE_KEYS = ("stage", "iteration", "shard", "attempt", "seconds", "error", "errorType")


# ------------------------------------------------------------------------------ inputs


def load_task(environ: Mapping[str, str]) -> StageTask:
    """The task from ``SELFTAUGHT_TASK``; :class:`BadInput` naming the variable if unusable."""
    raw = environ.get(TASK_ENV)
    if not raw:
        raise BadInput(
            f"environment variable {TASK_ENV} is missing or empty (want a StageTask JSON)"
        )
    try:
        return StageTask.from_env(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
            for e in error.errors()[:5]
        )
        raise BadInput(
            f"environment variable {TASK_ENV} is not a valid StageTask: {problems}"
        ) from error


def shard_index(environ: Mapping[str, str], shards: int) -> int:
    """This pod's shard from ``JOB_COMPLETION_INDEX`` (0 when absent, as in a plain Job)."""
    raw = environ.get(SHARD_ENV, "").strip()
    if not raw:
        return 0
    try:
        index = int(raw)
    except ValueError:
        raise BadInput(f"{SHARD_ENV}={raw!r} is not an integer") from None
    if not 0 <= index < shards:
        raise BadInput(f"{SHARD_ENV}={index} is outside the task's {shards} shard(s)")
    return index


def set_torch_threads(count: int) -> None:
    """Apply the thread count if torch is installed (the operator image has no torch).

    The request is capped by the CPUs this process may use and those idle right now
    (:func:`selftaught.cpu.choose_threads`): threads beyond the free cores only wait for each
    other on a busy machine.
    """
    if importlib.util.find_spec("torch") is None:
        return
    import torch

    torch.set_num_threads(cpu.choose_threads(count))


def quiet_model_loading() -> None:
    """No tqdm bars for loading and saving weights or mapping datasets: in a pod log (not a
    TTY) each is a line of carriage returns, and the stage's own progress already goes to
    Pushgateway."""
    if importlib.util.find_spec("datasets") is not None:
        import datasets

        datasets.disable_progress_bars()
    if importlib.util.find_spec("transformers") is None:
        return
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


# ------------------------------------------------------------------------------ summary


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _encode(summary: Mapping[str, Any]) -> str:
    return json.dumps(summary, separators=(",", ":"), ensure_ascii=False, default=str)


def _fits(text: str, limit: int) -> bool:
    return len(text.encode("utf-8")) < limit


def compact_summary(summary: Mapping[str, Any], limit: int = SUMMARY_LIMIT) -> str:
    """The summary as JSON shorter than ``limit`` bytes (see the module docstring for the order)."""
    text = _encode(summary)
    if _fits(text, limit):
        return text
    current: dict[str, Any] = _rounded(dict(summary))
    text = _encode(current)
    dropped: list[str] = []
    detail = sorted(
        (k for k in current if k not in CORE_KEYS), key=lambda k: -len(_encode({k: current[k]}))
    )
    for key in detail:
        if _fits(text, limit):
            break
        del current[key]
        dropped.append(key)
        current["truncated"] = dropped[:20]
        text = _encode(current)
    if not _fits(text, limit) and isinstance(current.get("error"), str):
        overflow = len(text.encode("utf-8")) - limit + 64
        message = current["error"].encode("utf-8")
        kept = message[: max(0, len(message) - overflow)].decode("utf-8", errors="ignore")
        current["error"] = kept + " [...]"
        text = _encode(current)
    if not _fits(text, limit):  # only absurd core values get here: keep the identity
        text = _encode({k: current[k] for k in CORE_KEYS[:5] if k in current} | {"truncated": True})
    return text


# ------------------------------------------------------------------------------ running


def exit_code_for(error: BaseException) -> int:
    """The exit code a failure maps to (the controller's failure classes depend on it)."""
    if isinstance(error, BadInput):
        return EXIT_BAD_INPUT
    if isinstance(error, StorageUnavailable):
        return EXIT_TRANSIENT
    if isinstance(error, UncommittedError):
        return EXIT_PROGRAM_ERROR  # the planner started a stage before its input existed
    # A missing dataset, model or bucket; refused credentials; a committed input that no longer
    # matches its manifest (a retry reads the same bytes; only re-running the stage that wrote
    # it, spec.resumeFrom, helps).
    if isinstance(error, (StorageNotFound, StorageAuthError, StorageCorrupt)):
        return EXIT_BAD_INPUT
    return EXIT_PROGRAM_ERROR


def _open_storage(task: StageTask) -> Storage:
    if task.spec.storage is None:
        raise BadInput("the task has no spec.storage: a worker needs somewhere to write")
    try:
        return open_for_spec(task.spec.storage)
    except ValueError as error:
        raise BadInput(f"spec.storage: {error}") from error


def load_stage(stage: str) -> StageFn:
    module = importlib.import_module(f"selftaught.stages.{stage}")
    function: StageFn = module.run
    return function


def run_worker(
    stage: str,
    *,
    environ: Mapping[str, str],
    stage_fn: StageFn | None = None,
    storage: Storage | None = None,
    thread_setter: Callable[[int], None] = set_torch_threads,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Run one stage attempt and report it; return the exit code. Everything is injectable."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    started = clock()
    who: dict[str, Any] = {}  # the attempt's identity, once the task is known
    summary: dict[str, Any]
    code = EXIT_OK
    # One process reports a pod's progress and success: under a multi-process launch, rank 0.
    lead = environ.get("RANK", "0") == "0"
    try:
        task = load_task(environ)
        if str(task.stage) != stage:
            raise BadInput(f"task is for stage '{task.stage}' but the worker runs '{stage}'")
        shard = shard_index(environ, task.shards)
        who = {"iteration": task.iteration, "shard": shard, "attempt": task.attempt}
        thread_setter(task.resources.torch_threads())
        reporter = progress.activate(
            progress.reporter(
                stage,
                shard,
                namespace=task.namespace,
                run=task.run,
                environ=environ if lead else {},
            )
        )
        store = storage if storage is not None else _open_storage(task)
        run = stage_fn if stage_fn is not None else load_stage(stage)
        result = run(task, store, shard)
        expected = MODELS[task.stage]
        if type(result) is not expected:
            raise TypeError(
                f"stage {stage} returned {type(result).__name__}, not a {expected.__name__}"
            )
        reporter.finish()
        # The shell's fields win over anything the stage set in them.
        timing = {
            "seconds": round(clock() - started, 3),
            "compute_seconds": round(reporter.compute_seconds, 3),
        }
        summary = result.model_copy(update=who | timing).to_wire()
    except Exception as error:
        code = exit_code_for(error)
        summary = {"stage": stage, **who, "seconds": round(clock() - started, 3)}
        summary["error"] = str(error) or type(error).__name__
        summary["errorType"] = type(error).__name__
        if code == EXIT_PROGRAM_ERROR:
            traceback.print_exc(file=err)
        else:
            print(f"selftaught worker {stage}: {type(error).__name__}: {error}", file=err)
    if progress.current().stage == stage:
        progress.current().close()
    text = compact_summary(summary)
    if lead or code != EXIT_OK:  # one success line per pod, every failure
        print(text, file=out, flush=True)
    write_termination_log(text, environ, err)
    return code


def main(stage: str) -> int:
    """Entry point of ``selftaught worker <stage>``: the real environment, the real stage."""
    os.environ.update(cpu.omp_env(os.environ))  # before torch loads OpenMP (selftaught.cpu)
    quiet_model_loading()
    return run_worker(stage, environ=os.environ)


def command(stage: str, *, distributed: bool = False) -> int:
    """``selftaught worker <stage> [--distributed]``: what a pod and a local shard both run.

    Here, not in the CLI, so the local fork server's children enter the worker directly (a
    child going back through ``selftaught.cli`` closed an import loop cli -> local -> cli).
    ``distributed`` (train only) starts one process per GPU under torch elastic; the ranks
    inherit this process's environment, so the OpenMP wait policy is set here, before either
    path imports torch (:mod:`selftaught.cpu`).
    """
    os.environ.update(cpu.omp_env(os.environ))
    if distributed:
        if stage != "train":
            print("selftaught worker: --distributed is for the train stage only", file=sys.stderr)
            return 2
        from selftaught.launch import launch

        return launch()
    return main(stage)
