"""Where a run's prompt templates come from, and their check before any stage runs. Pure.

A run names up to four templates (:func:`sources`): ``judging.template``,
``judging.referenceTemplate``, ``pairs.template`` and ``instructions.labelTemplate``. Each is a
URI: ``s3://``, ``file://`` or ``configmap://<ConfigMap name>/<key>``, optionally with
``#<name>`` (a prompt of MT-Bench's JSONL). A ConfigMap is read from the run's namespace: the
operator reads it through the API to check it before the first Job, and every Job mounts it
read-only under :data:`MOUNT_ROOT` (:func:`mounted_path`), where the stage reads the key as a
plain file.

:func:`problems` checks every template the caller can read -- the caller passes a reader that
answers bytes, or None for a source it cannot reach from where it runs (``selftaught plan``
reads file://, the operator configmap://; the stage reads all of them when it starts). Every
message names the spec field and the URI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urldefrag

from selftaught.api import RunSpec
from selftaught.templates import (
    JUDGING,
    LABELLING,
    PAIRS,
    Kind,
    PromptTemplate,
    TemplateError,
    parse_prompt,
)

#: Where Jobs mount each ConfigMap a template names: ``<root>/<ConfigMap name>/<key>``.
MOUNT_ROOT = "/etc/selftaught/configmaps"
CONFIGMAP_SCHEME = "configmap://"


@dataclass(frozen=True)
class ConfigMapKey:
    """One key of a ConfigMap in the run's namespace."""

    name: str
    key: str


@dataclass(frozen=True)
class Source:
    """One template a run names: its spec field, URI and kind of template."""

    field: str
    uri: str
    kind: Kind
    #: The template must use {reference} (judging.referenceTemplate).
    needs_reference: bool = False

    @property
    def location(self) -> str:
        """The URI without its ``#name``."""
        return urldefrag(self.uri)[0]

    @property
    def name(self) -> str | None:
        """The ``#name`` of an MT-Bench JSONL prompt, or None."""
        return urldefrag(self.uri)[1] or None

    @property
    def where(self) -> str:
        """How messages name it: ``spec.judging.template (configmap://p/judge.yaml)``."""
        return f"{self.field} ({self.uri})"

    @property
    def configmap(self) -> ConfigMapKey | None:
        """The ConfigMap key a ``configmap://`` source names, else None."""
        return configmap_key(self.location)


def configmap_key(location: str) -> ConfigMapKey | None:
    """``configmap://name/key`` -> its ConfigMap key; None for any other URI (the CRD's
    pattern has checked the name and key grammar)."""
    if not location.startswith(CONFIGMAP_SCHEME):
        return None
    name, _, key = location[len(CONFIGMAP_SCHEME) :].partition("/")
    return ConfigMapKey(name=name, key=key)


def sources(spec: RunSpec) -> list[Source]:
    """The templates ``spec`` names, in stage order."""
    found: list[Source] = []
    if spec.instructions.label_template:
        found.append(
            Source("spec.instructions.labelTemplate", spec.instructions.label_template, LABELLING)
        )
    if spec.pairs.template:
        found.append(Source("spec.pairs.template", spec.pairs.template, PAIRS))
    if spec.judging.template:
        found.append(Source("spec.judging.template", spec.judging.template, JUDGING))
    if spec.judging.reference_template:
        found.append(
            Source(
                "spec.judging.referenceTemplate",
                spec.judging.reference_template,
                JUDGING,
                needs_reference=True,
            )
        )
    return found


def configmaps(spec: RunSpec) -> list[str]:
    """Names of the ConfigMaps the run's templates live in, sorted, each once (the volumes)."""
    return sorted({s.configmap.name for s in sources(spec) if s.configmap is not None})


def mounted_path(key: ConfigMapKey, root: str = MOUNT_ROOT) -> str:
    """Where a Job's pod finds a ConfigMap key (see :func:`configmaps` for the volumes)."""
    return f"{root.rstrip('/')}/{key.name}/{key.key}"


def parse(source: Source, data: bytes) -> PromptTemplate:
    """The template ``data`` holds, checked for ``source``'s kind; TemplateError naming the
    field otherwise."""
    template = parse_prompt(data, where=source.where, kind=source.kind, name=source.name)
    if source.needs_reference and "reference" not in template.placeholders:
        raise TemplateError(f"{source.where}: missing placeholder {{reference}}")
    return template


class Unreadable(Exception):
    """A reader's answer: the source exists in the spec but cannot be read (the message says
    why, e.g. ``ConfigMap prompts has no key judge.yaml``)."""


def problems(spec: RunSpec, read: Callable[[Source], bytes | None]) -> list[str]:
    """What is wrong with each template ``read`` can reach (None: not from here; raising
    :class:`Unreadable`: it should be readable and is not), one message per template."""
    found: list[str] = []
    for source in sources(spec):
        try:
            data = read(source)
            if data is not None:
                parse(source, data)
        except Unreadable as error:
            found.append(f"{source.where}: {error}")
        except TemplateError as error:
            found.append(str(error))
    return found
