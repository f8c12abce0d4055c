"""What a worker pod's processes agree on: environment names, the termination log, bad input.

The Job builder (:mod:`selftaught.jobs`), the local runner, the worker shell
(:mod:`selftaught.worker`), the multi-process train launcher (:mod:`selftaught.launch`) and the
stages all speak this contract. It lives in one low module, below all of them, so none of them
has to import another for a name: the launcher and the worker used to import each other, and
the stages imported :class:`BadInput` from the shell that runs them.

Only the standard library is imported here; the one piece of I/O is
:func:`write_termination_log`, the file every process of a pod reports through.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

#: The stage task as JSON (:class:`selftaught.task.StageTask`), set by the Job builder.
TASK_ENV = "SELFTAUGHT_TASK"
#: This pod's shard: an Indexed Job's completion index (absent in a plain Job: shard 0).
SHARD_ENV = "JOB_COMPLETION_INDEX"
#: Where the summary goes when not ``/dev/termination-log`` (the local runner's shard files).
TERMINATION_LOG_ENV = "SELFTAUGHT_TERMINATION_LOG"
#: Kubernetes reads a container's termination message from here (at most 4096 bytes).
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
#: Where models are materialised; overrides the spec's ``worker.modelCache``.
CACHE_ENV = "SELFTAUGHT_CACHE"
#: The Pushgateway a worker pushes its live progress to (set from the operator's flag).
PUSHGATEWAY_ENV = "SELFTAUGHT_PUSHGATEWAY"
#: Set by the launcher for its ranks: the directory each rank writes ``rank-<local>.json`` into.
RANK_SUMMARIES_ENV = "SELFTAUGHT_RANK_SUMMARIES"


class BadInput(Exception):
    """The input cannot be used: a malformed dataset, a missing model, unparsable data.

    Raised by stages (and by the worker shell for a bad task); the worker exits with
    ``EXIT_BAD_INPUT`` and the controller does not retry, because the same input would fail the
    same way. The message reaches the user in a condition, so say what to fix.
    """


def rank_summary_path(directory: str, environ: Mapping[str, str]) -> Path:
    """Where one training rank writes its summary (the launcher reads it back by local rank)."""
    return Path(directory) / f"rank-{environ.get('LOCAL_RANK', '0')}.json"


def termination_log_path(environ: Mapping[str, str]) -> str:
    """The pod's termination log; under the multi-process launcher, this rank's own file, from
    which the launcher picks the pod's one message."""
    ranks = environ.get(RANK_SUMMARIES_ENV)
    if ranks:
        return str(rank_summary_path(ranks, environ))
    return environ.get(TERMINATION_LOG_ENV, DEFAULT_TERMINATION_LOG)


def write_termination_log(text: str, environ: Mapping[str, str], stderr: TextIO) -> None:
    """Write the pod's (or rank's) report; a missing log (outside a pod) is only a warning."""
    path = termination_log_path(environ)
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:  # outside a pod there may be no /dev/termination-log
        print(f"selftaught worker: cannot write termination log {path}: {error}", file=stderr)
