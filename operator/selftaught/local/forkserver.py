"""Start local stage processes as forks of a warm interpreter instead of fresh ones.

A stage process used to spend most of its fixed cost importing torch, transformers and TRL
before it touched the model (measured on 2 cores: torch 1.7 s, transformers 2.6 s, TRL's
trainer 5.9 s under load), and a quick start runs a dozen of them. The standard library's
``forkserver`` start method imports :mod:`selftaught.local.preload` once in a server process
and forks each stage from it (~0.03 s to a ready child, measured).

Each shard stays what a pod would be: its own process, the pod's environment (set before the
worker reads any of it), its own log file on stdout/stderr, the worker's exit code, and death
with the runner: the server exits when the runner's end of its pipe closes, and every child
asks for SIGKILL when the server goes (``PR_SET_PDEATHSIG``).

The import is not repeated per child, so settings that libraries read once at import time from
the environment come from the runner's environment, not the shard's. The stages read theirs
(task, shard, cache, paths, threads) at run time. ``SELFTAUGHT_FORKSERVER=0`` falls back to
one fresh interpreter per shard.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import subprocess
import sys
from multiprocessing import forkserver as stdlib_forkserver
from multiprocessing.context import ForkServerContext
from pathlib import Path

from selftaught import cpu

DISABLE_ENV = "SELFTAUGHT_FORKSERVER"
PRELOAD_MODULE = "selftaught.local.preload"
_PR_SET_PDEATHSIG = 1
_context: ForkServerContext | None = None


def enabled() -> bool:
    """Linux only (forkserver needs fork; PDEATHSIG is Linux), and not switched off."""
    return sys.platform == "linux" and os.environ.get(DISABLE_ENV, "1") != "0"


def die_with_parent() -> None:  # pragma: no cover - runs in a child
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def context() -> ForkServerContext:
    """The process-wide fork server context (started on the first fork, reused afterwards)."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload([PRELOAD_MODULE])
    return _context


def start() -> None:
    """Start the server's imports now, in the background, instead of at the first fork.

    They take seconds and the runner's own start (its imports, reading and validating the
    manifest) takes a few tenths more on another core: started first, the two overlap.
    """
    if enabled():
        # the server imports torch once for every stage: OpenMP's wait policy must be in its
        # environment before that import (selftaught.cpu explains why it is PASSIVE)
        os.environ.update(cpu.omp_env(os.environ))
        context()
        stdlib_forkserver.ensure_running()


class ForkedProcess:
    """A forked shard, with the part of ``subprocess.Popen``'s interface the runner uses."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self._process = context().Process(
            target=_run_worker, args=(argv, env, str(log)), name="selftaught-worker", daemon=False
        )
        self._process.start()
        self.pid = self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired("selftaught worker", timeout or 0.0)
        return self._process.exitcode

    def terminate(self) -> None:
        self._process.terminate()

    def kill(self) -> None:
        self._process.kill()


def _run_worker(argv: list[str], env: dict[str, str], log: str) -> None:  # pragma: no cover
    """The child: become the pod (environment, log on stdout/stderr), then run the worker."""
    die_with_parent()
    os.environ.clear()
    os.environ.update(env)
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    from selftaught.worker import command

    stage, distributed = worker_arguments(argv)
    raise SystemExit(command(stage, distributed=distributed))


def worker_arguments(argv: list[str]) -> tuple[str, bool]:
    """(stage, distributed) from ``worker <stage> [--distributed]`` (what
    :func:`selftaught.jobs.worker_command` builds, less the program name)."""
    if len(argv) < 2 or argv[0] != "worker" or any(a != "--distributed" for a in argv[2:]):
        raise ValueError(f"not a worker command: {argv}")
    return argv[1], "--distributed" in argv[2:]
