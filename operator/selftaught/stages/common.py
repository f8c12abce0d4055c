"""What every stage shares: loading the stage's model into an engine, seeds, and reading the
committed outputs of earlier stages.

Kept apart from the stages so that each stage module reads as the method's step it implements.
Nothing here imports torch at module level; the engines do, inside :func:`open_engine`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selftaught.artifacts import shard_prefix, stage_prefix
from selftaught.engines import Engine, make_engine
from selftaught.phases import Stage
from selftaught.pod import CACHE_ENV, BadInput
from selftaught.prompts import Style, prompt_style
from selftaught.storage import Storage, UncommittedError, join_key, materialize_model
from selftaught.task import StageTask


@dataclass
class LoadedModel:
    """A model ready to generate with, and how to prompt it."""

    engine: Engine
    style: Style
    path: Path


def cache_dir(task: StageTask) -> Path:
    """Where models are materialised: ``$SELFTAUGHT_CACHE`` or the spec's ``worker.modelCache``."""
    return Path(os.environ.get(CACHE_ENV) or task.spec.worker.model_cache)


def model_path(task: StageTask, uri: str) -> Path:
    """A local directory for ``uri``; BadInput when the model cannot be found or loaded."""
    try:
        storage = task.spec.storage
        return materialize_model(uri, cache_dir(task), s3=storage.s3 if storage else None)
    except (FileNotFoundError, ValueError) as error:
        raise BadInput(f"model {uri} cannot be loaded: {error}") from error


def open_engine(task: StageTask, uri: str | None = None) -> LoadedModel:
    """The stage's model (``task.model`` unless ``uri``) in the engine its resources name."""
    path = model_path(task, uri or task.model)
    resources = task.resources
    engine = make_engine(
        resources.engine, path, tensor_parallel=resources.tensor_parallel, seed=seed_of(task)
    )
    return LoadedModel(engine=engine, style=prompt_style(path), path=path)


def seed_of(task: StageTask) -> int:
    return task.spec.worker.seed


def rng_for(task: StageTask, purpose: str, *extra: object) -> random.Random:
    """A random stream per (run seed, purpose, ...): independent of call order elsewhere."""
    return random.Random(f"{seed_of(task)}:{purpose}:{':'.join(map(str, extra))}")


def generation_seed(task: StageTask, shard: int) -> int:
    """Engine seed of one stage attempt's shard: differs per iteration, stage and shard."""
    return (seed_of(task) * 7919 + task.iteration * 104729 + shard * 31 + len(task.stage)) % 2**31


def read_rows(storage: Storage, prefix: str, name: str) -> list[dict[str, Any]]:
    """All rows of a committed JSONL artifact we wrote ourselves (a bad line there is a program
    error). Checked against the commit manifest: a truncated file raises StorageCorrupt instead
    of being read as a shorter, "finished" dataset."""
    rows = []
    for line_no, row in storage.read_committed_jsonl(prefix, name):
        if isinstance(row, Exception):
            raise ValueError(f"{storage.uri_for(join_key(prefix, name))} line {line_no}: {row}")
        rows.append(row)
    return rows


def read_shards(
    storage: Storage, task: StageTask, *, iteration: int, stage: Stage, name: str
) -> Iterator[dict[str, Any]]:
    """The rows of ``name`` in every shard of ``stage``, in shard order; each must be committed.

    The shard count is the one the spec gives that stage, so a missing shard is an error, not
    a silently smaller dataset.
    """
    shards = task.spec.stages.of(stage).shards
    for shard in range(shards):
        prefix = shard_prefix(task.namespace, task.run, iteration, stage, shard)
        if not storage.is_committed(prefix):
            raise UncommittedError(f"{storage.uri_for(prefix)} is not committed")
        yield from read_rows(storage, prefix, name)


def read_stage(
    storage: Storage, task: StageTask, *, iteration: int, stage: Stage, name: str
) -> list[dict[str, Any]]:
    """The rows of ``name`` in an unsharded stage's committed output."""
    prefix = stage_prefix(task.namespace, task.run, iteration, stage)
    if not storage.is_committed(prefix):
        raise UncommittedError(f"{storage.uri_for(prefix)} is not committed")
    return read_rows(storage, prefix, name)


def mine(index: int, shard: int, shards: int) -> bool:
    """Whether item ``index`` belongs to ``shard`` (round robin: shards stay balanced)."""
    return index % shards == shard
