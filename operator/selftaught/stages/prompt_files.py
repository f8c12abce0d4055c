"""Reading a run's prompt templates when a stage starts (the last of their checks).

Every template a stage uses is read and checked before its model is loaded, so a bad
placeholder fails the stage in seconds with a BadInput naming the spec field, not after loading
a 70B model. ``s3://`` and ``file://`` templates come through storage; a ``configmap://name/key``
template is the file its Job mounted (:func:`selftaught.template_sources.mounted_path`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from selftaught import prompts
from selftaught.pod import BadInput
from selftaught.storage import StorageNotFound, open_object
from selftaught.task import StageTask
from selftaught.template_sources import MOUNT_ROOT, Source, mounted_path, parse, sources
from selftaught.templates import PromptTemplate, TemplateError

#: Where this process finds mounted ConfigMaps: the Job's mount path; tests point it elsewhere.
ROOT_ENV = "SELFTAUGHT_CONFIGMAP_ROOT"


def read_bytes(task: StageTask, source: Source) -> bytes:
    """The template file's bytes, from its mounted ConfigMap or from storage."""
    key = source.configmap
    if key is not None:
        path = Path(mounted_path(key, os.environ.get(ROOT_ENV, MOUNT_ROOT)))
        if not path.is_file():
            raise FileNotFoundError(f"{path} is not mounted (ConfigMap {key.name} key {key.key})")
        return path.read_bytes()
    store, name = open_object(source.location, storage_spec=task.spec.storage)
    return store.read_bytes(name)


def read_source(task: StageTask, source: Source) -> PromptTemplate:
    """Fetch and check one template; every problem is a BadInput naming the field."""
    try:
        return parse(source, read_bytes(task, source))
    except TemplateError as error:
        raise BadInput(str(error)) from error
    except (ValueError, StorageNotFound, OSError) as error:
        raise BadInput(f"{source.where}: cannot be read: {error}") from error


def read_field(task: StageTask, field: str) -> PromptTemplate | None:
    """The template at spec ``field`` (e.g. ``spec.pairs.template``), or None when unset."""
    for source in sources(task.spec):
        if source.field == field:
            return read_source(task, source)
    return None


def similar_prompt(
    style: prompts.Style, template: PromptTemplate | None, instruction: str
) -> list[prompts.Message]:
    """Pairs' request for x' (similar to x, a different question): ``pairs.template`` when
    set, else the built-in prompt of the model's style."""
    if template is None:
        return prompts.similar_prompt(style, instruction)
    return template.fill({"instruction": instruction})


def label_prompt(
    style: prompts.Style,
    template: PromptTemplate | None,
    instruction: str,
    known: Sequence[str],
) -> list[prompts.Message]:
    """Select's labelling request: ``instructions.labelTemplate`` (its ``{categories}`` are the
    names the reply is matched against, ``known``) when set, else the built-in prompt."""
    if template is None:
        return prompts.category_prompt(style, instruction)
    names = ", ".join(dict.fromkeys(known))
    return template.fill({"instruction": instruction, "categories": names})
