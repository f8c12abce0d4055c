"""Several training processes per pod: ``selftaught worker train --distributed``.

A train Job with several GPUs per pod, or several pods, runs one process per GPU under torch's
elastic launcher (the library behind ``torchrun``: rendezvous, process start, failure detection).
Why not ``torchrun`` itself as the container command? Two parts of the worker contract would
break (:mod:`selftaught.worker`):

* **the exit code**: torchrun exits 1 for any failed rank, so a bad input (2, never retried) or a
  storage fault (3, retried) would reach the controller as a program error. Here the pod exits
  with the first failed rank's code when it is one of ours, else 1.
* **the termination message**: every rank would write the pod's one termination log, the last
  writer winning. Here each rank writes its summary to its own file in a directory this launcher
  makes (:data:`RANK_SUMMARIES_ENV`), and the pod's message is rank 0's summary on success, the
  first failed rank's on failure (or a summary naming the rank when it died without one).

Rendezvous comes from the environment the Job sets (:func:`selftaught.jobs.build_job`):
``NPROC_PER_NODE`` processes on each of ``NNODES`` pods; with more than one pod, ``NODE_RANK``
(the completion index) and ``MASTER_ADDR``/``MASTER_PORT`` (pod 0 behind the headless Service).
One pod needs none of those and rendezvous on localhost (``--standalone``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from selftaught.phases import EXIT_BAD_INPUT, EXIT_OK, EXIT_PROGRAM_ERROR, EXIT_TRANSIENT, Stage
from selftaught.pod import RANK_SUMMARIES_ENV, TASK_ENV, write_termination_log

#: Exit codes a rank may pass through to the pod unchanged (the controller's failure classes).
PASSED_THROUGH = frozenset({EXIT_BAD_INPUT, EXIT_TRANSIENT})
#: torch's rendezvous default is 900 s; a peer pod still pulling a large image can need more.
RENDEZVOUS_TIMEOUT_SECONDS = 1800


class LaunchError(ValueError):
    """The rendezvous environment is unusable; the message names the variable."""


def _integer(environ: Mapping[str, str], name: str, default: int | None, minimum: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        if default is None:
            raise LaunchError(f"environment variable {name} is missing (needed with NNODES > 1)")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise LaunchError(f"environment variable {name}={raw!r} is not an integer") from None
    if value < minimum:
        raise LaunchError(f"environment variable {name}={value} is below {minimum}")
    return value


def torchrun_arguments(environ: Mapping[str, str]) -> list[str]:
    """The ``torchrun`` arguments for this pod (pure: the environment in, a list out)."""
    nodes = _integer(environ, "NNODES", 1, 1)
    processes = _integer(environ, "NPROC_PER_NODE", 1, 1)
    arguments = [
        f"--nnodes={nodes}",
        f"--nproc-per-node={processes}",
        "--max-restarts=0",  # the controller owns retries (with its budget and backoff)
    ]
    if nodes == 1:
        arguments.append("--standalone")
    else:
        rank = _integer(environ, "NODE_RANK", None, 0)
        if rank >= nodes:
            raise LaunchError(f"environment variable NODE_RANK={rank} is not below NNODES={nodes}")
        address = environ.get("MASTER_ADDR", "").strip()
        if not address:
            raise LaunchError(
                "environment variable MASTER_ADDR is missing (needed with NNODES > 1)"
            )
        port = _integer(environ, "MASTER_PORT", 29500, 1)
        arguments += [
            f"--node-rank={rank}",
            f"--master-addr={address}",
            f"--master-port={port}",
            f"--rdzv-conf=timeout={RENDEZVOUS_TIMEOUT_SECONDS}",
        ]
    return [*arguments, "-m", "selftaught.cli", "worker", Stage.TRAIN.value]


def failure_summary(message: str, error_type: str, task_env: str | None) -> str:
    """A summary for a failure no rank described (a crash, a rendezvous that never formed)."""
    summary: dict[str, Any] = {"stage": Stage.TRAIN.value}
    if task_env:
        try:
            task = json.loads(task_env)
            summary.update(iteration=task.get("iteration"), shard=0, attempt=task.get("attempt"))
        except (ValueError, AttributeError):
            pass
    summary.update(error=message, errorType=error_type)
    return json.dumps(summary, separators=(",", ":"))


def outcome(
    code_and_rank: tuple[int, int] | None, summaries: Path, task_env: str | None
) -> tuple[int, str]:
    """(exit code, termination message) from the ranks' result.

    ``code_and_rank``: None when every rank succeeded, else the first failed rank's exit code
    and local rank.
    """
    if code_and_rank is None:
        code, local = EXIT_OK, 0
    else:
        code, local = code_and_rank
    try:
        text = (summaries / f"rank-{local}.json").read_text(encoding="utf-8")
    except OSError:
        text = ""
    if code == EXIT_OK:
        return EXIT_OK, text or failure_summary("rank 0 wrote no summary", "NoSummary", task_env)
    if code not in PASSED_THROUGH:
        code = EXIT_PROGRAM_ERROR
    if not text:
        reason = _death(code_and_rank[0]) if code_and_rank else "no exit code"
        text = failure_summary(
            f"training process (local rank {local}) died without a summary ({reason}); see the "
            "pod log",
            "RankFailed",
            task_env,
        )
    return code, text


def _death(code: int) -> str:
    """How a rank ended, in words: torch reports a rank killed by a signal as minus its number.

    A rank the kernel's OOM killer took is SIGKILLed alone: unless the runtime kills the whole
    container with it (cgroup v2 with ``memory.oom.group``, which kubelet sets since 1.28), the
    pod is not marked OOMKilled, so this message is the only hint the run's status gets.
    """
    if code >= 0:
        return f"exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    hint = ": out of memory?" if -code == signal.SIGKILL else ""
    return f"exit code {code}, killed by {name}{hint}"


def launch(environ: Mapping[str, str] | None = None, stderr: TextIO | None = None) -> int:
    """Start this pod's training processes, wait for them, report like a single worker."""
    environ = dict(os.environ if environ is None else environ)
    err = stderr or sys.stderr
    task_env = environ.get(TASK_ENV)
    try:
        arguments = torchrun_arguments(environ)
    except LaunchError as error:
        text = failure_summary(str(error), "BadInput", task_env)
        print(text, flush=True)
        write_termination_log(text, environ, err)
        return EXIT_BAD_INPUT

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError
    from torch.distributed.run import parse_args, run

    with tempfile.TemporaryDirectory(prefix="selftaught-ranks-") as directory:
        os.environ[RANK_SUMMARIES_ENV] = directory  # the ranks inherit our environment
        failed: tuple[int, int] | None = None
        try:
            run(parse_args(arguments))  # type: ignore[no-untyped-call]
        except ChildFailedError as error:
            _, failure = error.get_first_failure()
            failed = (failure.exitcode, failure.local_rank)
        except RendezvousError as error:  # a peer pod not up in time: worth another attempt
            text = failure_summary(f"rendezvous failed: {error}", type(error).__name__, task_env)
            write_termination_log(text, environ, err)
            return EXIT_TRANSIENT
        finally:
            os.environ.pop(RANK_SUMMARIES_ENV, None)
        code, text = outcome(failed, Path(directory), task_env)
    write_termination_log(text, environ, err)
    return code
