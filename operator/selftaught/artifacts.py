"""Where each artifact lives, relative to the storage root. Pure: names only, no I/O.

Layout (DESIGN.md): ``<storage>/<namespace>/<run>/iteration-<i>/<stage>/``. Sharded stages
write one sub-prefix per shard (``shard-00003/``) so that a retried shard overwrites its own
output and never appends to another's.
"""

from __future__ import annotations

from selftaught.phases import Stage

#: The marker a committed output carries; written last, read first.
COMMIT_MARKER = "_COMMITTED"


def run_prefix(namespace: str, run: str) -> str:
    return f"{namespace}/{run}"


def stage_prefix(namespace: str, run: str, iteration: int, stage: Stage | str) -> str:
    return f"{run_prefix(namespace, run)}/iteration-{iteration}/{Stage(stage).value}"


def shard_prefix(namespace: str, run: str, iteration: int, stage: Stage | str, shard: int) -> str:
    return f"{stage_prefix(namespace, run, iteration, stage)}/shard-{shard:05d}"


def model_prefix(namespace: str, run: str, iteration: int) -> str:
    """The judge trained in ``iteration`` (iteration >= 1)."""
    return f"{stage_prefix(namespace, run, iteration, Stage.TRAIN)}/model"


def join_uri(root: str, key: str) -> str:
    """An absolute artifact URI from the storage root and a relative key."""
    return f"{root.rstrip('/')}/{key.lstrip('/')}"
