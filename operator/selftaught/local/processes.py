"""Run one planned Job as local processes: one per shard, the same command a pod would run.

Each shard gets the environment its pod would get (``SELFTAUGHT_TASK``,
``JOB_COMPLETION_INDEX``, a termination-log path) and its own log file. The processes die with
the runner (``PR_SET_PDEATHSIG`` on Linux), so a killed runner never leaves an orphan writing
into a stage that the next run will redo. ``selftaught worker`` shards are forks of a warm
interpreter (:mod:`.forkserver`); any other command is started as it is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from selftaught import cpu, jobs, pod, progress
from selftaught.local import forkserver
from selftaught.phases import EXIT_BAD_INPUT, EXIT_OK, FailureClass, JobState
from selftaught.plan import CreateJob, ObservedJob
from selftaught.summaries import BadSummary, StageSummary
from selftaught.summaries import parse as parse_summary


class StageProcess(Protocol):
    """What the runner needs of a shard's process (``subprocess.Popen`` or a fork)."""

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


@dataclass
class Shard:
    index: int
    process: StageProcess
    summary_path: Path
    progress_path: Path
    log_path: Path


ProgressCallback = Callable[[list[dict[str, Any] | None]], None]


class JobProcesses:
    """The shards of one Job, launched together, at most ``parallel`` at a time."""

    def __init__(
        self,
        create: CreateJob,
        directory: Path,
        *,
        cache_dir: Path,
        parallel: int,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.create = create
        self.directory = directory
        self.cache_dir = cache_dir
        self.parallel = max(1, parallel)
        self.extra_env = extra_env or {}
        self.shards: list[Shard] = []
        self.started_at = datetime.now(UTC)

    def command(self) -> list[str]:
        command = jobs.worker_command(self.create.task)
        if command[0] == "selftaught":  # the console script of this very interpreter
            return [sys.executable, "-m", "selftaught.cli", *command[1:]]
        return command

    def launch(self, index: int) -> Shard:
        self.directory.mkdir(parents=True, exist_ok=True)
        summary = self.directory / f"shard-{index}.summary.json"
        progress_file = self.directory / f"shard-{index}.progress.json"
        log = self.directory / f"shard-{index}.log"
        for stale in (summary, progress_file):
            stale.unlink(missing_ok=True)
        env = {
            **cpu.omp_env(os.environ),  # a fresh interpreter loads OpenMP with these
            **os.environ,
            **self.extra_env,
            pod.TASK_ENV: self.create.task.to_env(),
            pod.SHARD_ENV: str(index),
            pod.TERMINATION_LOG_ENV: str(summary),
            pod.CACHE_ENV: str(self.cache_dir),
            progress.PROGRESS_FILE_ENV: str(progress_file),
        }
        if jobs.distributed(self.create.task):  # one machine: every GPU of it, no peers
            env.update(NNODES="1", NPROC_PER_NODE=str(jobs.processes_per_pod(self.create.task)))
        command = self.command()
        process: StageProcess
        if command[:3] == [sys.executable, "-m", "selftaught.cli"] and forkserver.enabled():
            process = forkserver.ForkedProcess(command[3:], env, log)
        else:
            with log.open("wb") as stream:
                process = subprocess.Popen(
                    command,
                    env=env,
                    stdout=stream,
                    stderr=subprocess.STDOUT,
                    preexec_fn=forkserver.die_with_parent if sys.platform == "linux" else None,
                )
        return Shard(index, process, summary, progress_file, log)

    def run(
        self,
        on_progress: ProgressCallback | None = None,
        poll: float = 0.02,
        progress_every: float = 0.25,
    ) -> ObservedJob:
        """Run every shard to completion; the first failure stops the others (backoffLimit 0).

        Exits are looked for every ``poll`` seconds (a stage of a small model takes well under
        a second, and the next one should not wait for a slower clock); progress files are
        read every ``progress_every``.
        """
        pending = list(range(self.create.task.shards))
        failed = False
        shown = 0.0
        while pending or any(s.process.poll() is None for s in self.shards):
            running = [s for s in self.shards if s.process.poll() is None]
            while pending and len(running) < self.parallel and not failed:
                shard = self.launch(pending.pop(0))
                self.shards.append(shard)
                running.append(shard)
            if any(s.process.poll() not in (None, EXIT_OK) for s in self.shards):
                failed = True
                pending.clear()
                self.terminate()
            if on_progress is not None and time.monotonic() - shown >= progress_every:
                shown = time.monotonic()
                on_progress([progress.read(s.progress_path) for s in self.shards])
            time.sleep(poll)
        if on_progress is not None:
            on_progress([progress.read(s.progress_path) for s in self.shards])
        return self.observe()

    def terminate(self) -> None:
        for shard in self.shards:
            if shard.process.poll() is None:
                shard.process.terminate()
        deadline = time.monotonic() + 10
        for shard in self.shards:
            try:
                shard.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                shard.process.kill()
                shard.process.wait()

    def observe(self) -> ObservedJob:
        """Reduce the finished shards to what the planner sees, as the controller does."""
        summaries: dict[int, StageSummary] = {}
        failure: FailureClass | None = None
        message: str | None = None
        unusable = "a shard ended without a summary"
        for shard in sorted(self.shards, key=lambda s: s.index):
            code = shard.process.returncode
            summary = _read_summary(shard.summary_path)
            if code == EXIT_OK and summary is not None:
                try:
                    summaries[shard.index] = parse_summary(self.create.task.stage, summary)
                    continue
                except BadSummary as error:  # a program error: the worker wrote it
                    unusable = f"shard {shard.index} wrote an unusable summary: {error}"
                    summary = None
            if code in (EXIT_OK, None) or failure is not None:
                continue
            failure = (
                FailureClass.BAD_INPUT if code == EXIT_BAD_INPUT else FailureClass.PROGRAM_ERROR
            )
            detail = (summary or {}).get("error") or _tail(shard.log_path)
            message = f"shard {shard.index} exited with {code}: {detail}"
        complete = failure is None and len(summaries) == self.create.task.shards
        if failure is None and not complete:
            failure, message = FailureClass.PROGRAM_ERROR, unusable
        task_ = self.create.task
        return ObservedJob(
            name=self.create.name,
            iteration=task_.iteration,
            stage=task_.stage,
            attempt=task_.attempt,
            state=JobState.SUCCEEDED if complete else JobState.FAILED,
            failure=failure,
            failure_message=message,
            summaries=summaries,
            started_at=self.started_at,
            completed_at=datetime.now(UTC),
        )


def _read_summary(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " | ".join(text[-lines:])[-600:]
