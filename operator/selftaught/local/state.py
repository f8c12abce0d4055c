"""What a local run keeps on disk, so that running the same command again resumes it.

``<workdir>/<run>/status.yaml`` holds the status in exactly the CR's schema (a user can diff it
against ``kubectl get -o yaml``); ``jobs/<job>/result.json`` records each finished child Job the
way the controller would observe it on a cluster. Both are written atomically (temp file +
rename): a kill -9 at any moment leaves either the old or the new version, never half of one.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path

import yaml

from selftaught import names
from selftaught.api import RunStatus
from selftaught.plan import ObservedJob


class OutsideWorkdir(ValueError):
    """A run directory that would not lie directly inside the work directory."""


def run_root(workdir: Path, name: str) -> Path:
    """``<workdir>/<name>``, proven to lie directly inside ``workdir`` (symlinks resolved).

    The name comes from a user's manifest: it must be a DNS-1123 label (no '/', no '..'), and
    even then a symlink planted at ``<workdir>/<name>`` must not lead the run's files elsewhere.
    """
    if not names.is_dns1123_label(name):
        raise OutsideWorkdir(
            f"metadata.name: Invalid value: {name!r}: {names.DNS1123_LABEL_MESSAGE}"
        )
    base = workdir.resolve()
    root = (base / name).resolve()
    if root.parent != base:
        raise OutsideWorkdir(f"{base / name} leads outside the work directory {base} (to {root})")
    return root


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class RunDirectory:
    """The files of one local run."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def status_path(self) -> Path:
        return self.root / "status.yaml"

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    @property
    def lock_path(self) -> Path:
        """Held (``flock``, exclusive) by the runner for as long as it runs this directory."""
        return self.root / ".lock"

    def runner_alive(self) -> bool:
        """Whether a runner holds this directory's lock right now.

        The kernel drops an ``flock`` when its holder exits, however it exits (kill -9
        included), so a free lock on a run whose status says Running means the runner is dead.
        Taking a shared lock for an instant never disturbs a live runner (its exclusive lock
        refuses us); a runner starting in that instant sees the directory busy and says so.
        """
        if not self.lock_path.exists():
            return False
        with self.lock_path.open("r") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False

    @property
    def plot_path(self) -> Path:
        return self.root / "accuracy.png"

    def job_dir(self, name: str) -> Path:
        return self.jobs_dir / name

    def load_status(self) -> RunStatus | None:
        if not self.status_path.exists():
            return None
        data = yaml.safe_load(self.status_path.read_text()) or {}
        return RunStatus.model_validate(data.get("status", data))

    def save_status(self, status: RunStatus, *, name: str) -> None:
        document = {"name": name, "status": status.dump()}
        write_atomically(self.status_path, yaml.safe_dump(document, sort_keys=False))

    def load_jobs(self) -> list[ObservedJob]:
        jobs = []
        for result in sorted(self.jobs_dir.glob("*/result.json")):
            jobs.append(ObservedJob.model_validate_json(result.read_text()))
        return jobs

    def forget_job(self, name: str) -> None:
        """Delete a Job's record (its logs stay, renamed), as deleting the Job does on a cluster."""
        result = self.job_dir(name) / "result.json"
        if result.exists():
            result.rename(result.with_name(f"result.deleted-{time.time_ns()}.json"))

    def save_job(self, job: ObservedJob) -> None:
        write_atomically(self.job_dir(job.name) / "result.json", job.model_dump_json(indent=1))
