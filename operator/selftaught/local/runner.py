"""``selftaught run``: the operator's loop on one machine.

The same :func:`selftaught.plan.plan` decides every step; instead of creating Jobs, the runner
starts each planned Job's shards as local processes running the very command a pod would run,
and observes them the way the controller observes Jobs. The status is written after every
transition, so an interrupted run (Ctrl-C, kill -9, a reboot) resumes where it was when the same
command runs again, without redoing finished stages.
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from selftaught.api import RunStatus, SelfTaughtRun, StorageSpec
from selftaught.local.display import Display, plot_accuracy, prepare_plotting
from selftaught.local.processes import JobProcesses
from selftaught.local.state import RunDirectory, run_root
from selftaught.manifests import load_run
from selftaught.phases import ConditionType, Phase
from selftaught.plan import CreateJob, DeleteJob, ObservedJob, plan

#: Longest single sleep while a retry backs off; the loop re-plans after it.
MAX_WAIT_SECONDS = 60.0


class RunInterrupted(Exception):
    """Ctrl-C: the status on disk is consistent; run the same command again to resume."""


class RunBusy(Exception):
    """Another ``selftaught run`` holds this run's directory."""


def _now() -> datetime:
    return datetime.now(UTC)


class LocalRunner:
    def __init__(
        self,
        manifest: Path | SelfTaughtRun,
        workdir: Path,
        *,
        display: Display | None = None,
        parallel: int | None = None,
        clock: Callable[[], datetime] = _now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.run_spec = manifest if isinstance(manifest, SelfTaughtRun) else load_run(manifest)
        self.workdir = workdir.resolve()
        self.directory = RunDirectory(run_root(self.workdir, self.run_spec.name))
        self.display = display or Display()
        self.parallel = parallel or max(1, os.cpu_count() or 1)
        self.clock = clock
        self.sleep = sleep
        self.cache_dir = Path(os.environ.get("SELFTAUGHT_CACHE", self.workdir / ".cache"))

    def prepared(self) -> SelfTaughtRun:
        """The run as the planner sees it: local defaults filled in, status from disk."""
        run = self.run_spec.model_copy(deep=True)
        if run.spec.storage is None:
            artifacts = self.directory.root / "artifacts"
            run.spec.storage = StorageSpec(uri=f"file://{artifacts}")
        metadata = dict(run.metadata)
        metadata.setdefault("namespace", "default")
        metadata.setdefault("uid", str(uuid.uuid5(uuid.NAMESPACE_URL, str(self.directory.root))))
        metadata.setdefault("generation", 1)
        run.metadata = metadata
        run.status = self.directory.load_status() or RunStatus()
        return run

    def run(self) -> RunStatus:
        self.directory.root.mkdir(parents=True, exist_ok=True)
        with self.directory.lock_path.open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as error:
                raise RunBusy(f"{self.directory.root} is used by another selftaught run") from error
            prepare_plotting()
            status = self._loop()
        plot = plot_accuracy(status, self.directory.plot_path)
        self.display.summary(status, plot)
        return status

    def _loop(self) -> RunStatus:
        run = self.prepared()
        jobs = {job.name: job for job in self.directory.load_jobs()}
        if run.status.phase != Phase.PENDING:
            self.display.console.print(
                f"resuming {run.name} at iteration {run.status.iteration}, {run.status.stage}"
            )
        for _ in range(10_000):  # bounded: every pass either runs a Job, waits, or stops
            result = plan(run, list(jobs.values()), self.clock())
            if result.status != run.status:
                self.directory.save_status(result.status, name=run.name)
            for event in result.events:
                self.display.event(event)
            run = run.model_copy(update={"status": result.status})
            if Phase(result.status.phase).is_terminal() or self._blocked(run):
                return run.status
            for action in result.actions:
                if isinstance(action, DeleteJob):  # nothing runs between passes locally
                    jobs.pop(action.name, None)
                    self.directory.forget_job(action.name)
            if not result.creates:
                if result.requeue_after is None:
                    return run.status
                self.sleep(min(MAX_WAIT_SECONDS, max(0.1, result.requeue_after)))
                continue
            for create in result.creates:
                jobs[create.name] = self._execute(create)
        raise RuntimeError("the local run did not settle; this is a bug in the planner")

    def _blocked(self, run: SelfTaughtRun) -> bool:
        refused = any(
            c.type == ConditionType.SPEC_ACCEPTED and c.status == "False"
            for c in run.status.conditions
        )
        return refused or run.status.phase == Phase.SUSPENDED

    def _execute(self, create: CreateJob) -> ObservedJob:
        processes = JobProcesses(
            create,
            self.directory.job_dir(create.name),
            cache_dir=self.cache_dir,
            parallel=self.parallel,
        )
        self.display.begin(create)
        try:
            observed = processes.run(self.display.update)
        except KeyboardInterrupt:
            processes.terminate()
            raise RunInterrupted(
                f"interrupted during {create.name}; run the same command again to resume"
            ) from None
        finally:
            self.display.end()
        self.directory.save_job(observed)
        return observed
