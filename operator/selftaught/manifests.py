"""Read a SelfTaughtRun manifest from a file, with errors that name the file, line and field.

The embedded runner accepts the very manifest a user would ``kubectl apply``. It is checked the
way the API server checks it (the CRD's structural schema and CEL rules, see
:mod:`selftaught.validation`) and then parsed into the pydantic types, so a mistake gets the same
message on a laptop as on a cluster, plus the line it is on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from selftaught import api, names
from selftaught.safeyaml import UnsafeYAML, decode, load_one
from selftaught.validation import FieldError


class ManifestError(ValueError):
    """A manifest that cannot be run; the message lists every problem found."""


def load_run(path: Path) -> api.SelfTaughtRun:
    """The one SelfTaughtRun in ``path``, checked as the API server checks it.

    The file is read as hostile input (:mod:`selftaught.safeyaml`: size, strict UTF-8, depth,
    aliases, duplicate keys bounded or refused) and must hold exactly one document: a second
    one is refused rather than silently ignored, so what runs is what the file says.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ManifestError(f"{path}: cannot read: {error.strerror}") from error
    try:
        document, node = load_one(decode(data))
    except UnsafeYAML as error:
        raise ManifestError(f"{path}: {error}") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ManifestError(f"{where}: not valid YAML: {error}") from error
    if not isinstance(document, dict) or document.get("kind") != api.KIND:
        raise ManifestError(f"{path}: not a {api.KIND} (the file must hold exactly one)")
    return parse_run(document, source=str(path), node=node)


def parse_run(
    document: dict[str, Any], *, source: str = "<manifest>", node: yaml.Node | None = None
) -> api.SelfTaughtRun:
    """``document`` as a SelfTaughtRun, or a :class:`ManifestError` naming every problem."""
    if document.get("apiVersion") != api.API_VERSION:
        raise ManifestError(
            f"{source}: apiVersion: must be {api.API_VERSION}, got {document.get('apiVersion')!r}"
        )
    check_run_name(document, source=source)
    from selftaught.validation import check_manifest

    problems = check_manifest(document)
    if problems:
        raise ManifestError(_describe(source, node, problems))
    try:
        return api.SelfTaughtRun.model_validate(document)
    except ValidationError as error:
        problems = [
            FieldError(".".join(str(part) for part in item["loc"]), item["msg"])
            for item in error.errors()
        ]
        raise ManifestError(_describe(source, node, problems)) from error


def check_run_name(document: dict[str, Any], *, source: str) -> str:
    """``metadata.name``, refused unless it is a DNS-1123 label (it names a directory and Jobs).

    Checked before anything else reads it: the embedded runner builds ``<workdir>/<name>`` from
    it, so ``../../x`` must never get that far.
    """
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not name:
        raise ManifestError(f"{source}: metadata.name: Required value")
    if not isinstance(name, str) or not names.is_dns1123_label(name):
        raise ManifestError(
            f"{source}: metadata.name: Invalid value: {name!r}: {names.DNS1123_LABEL_MESSAGE}"
        )
    return name


def _describe(source: str, node: yaml.Node | None, problems: list[FieldError]) -> str:
    lines = []
    for problem in problems:
        line = _line_of(node, problem.path.split(".")) if node is not None else None
        lines.append(f"{source}:{line}: {problem}" if line else f"{source}: {problem}")
    return "invalid SelfTaughtRun:\n  " + "\n  ".join(lines)


def _line_of(node: yaml.Node, path: list[str]) -> int | None:
    """The 1-based line of the deepest existing node along ``path``."""
    line = node.start_mark.line + 1
    for part in path:
        key = part.split("[", 1)[0]
        if isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if getattr(kv[0], "value", None) == key), None)
            if match is None:
                return line
            node, line = match[1], match[0].start_mark.line + 1
            if "[" in part and isinstance(node, yaml.SequenceNode):
                index = int(part.split("[", 1)[1].rstrip("]"))
                if index < len(node.value):
                    node = node.value[index]
                    line = node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and part.isdigit():
            if int(part) >= len(node.value):
                return line
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            return line
    return line
