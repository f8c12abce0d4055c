"""Prompts as data: a user's (or the paper's) template instead of a built-in prompt.

Pure: text in, a validated template out; rendering fills named placeholders. A template has an
optional system part and a user part. Each :class:`Kind` of template has its own placeholders
(:data:`JUDGING`, :data:`PAIRS`, :data:`LABELLING`):

* judging (``judging.template``): ``{question}``, ``{answer_a}``, ``{answer_b}`` (all three
  required, in either part) and ``{reference}`` (optional: a template that uses it is
  reference-guided and needs a reference answer for every row it judges);
* pairs (``pairs.template``, the prompt that makes the similar-but-different instruction whose
  answer becomes the losing response): ``{instruction}`` (required);
* labelling (``instructions.labelTemplate``, select's category prompt): ``{instruction}``
  (required) and ``{categories}`` (the category names the reply is matched against, comma
  separated).

Literal braces are written ``{{`` and ``}}``, as in Python's ``str.format``.

Two file forms are read:

* YAML or JSON, a mapping with ``user`` and optionally ``system`` (nothing else), e.g.::

      system: You are a careful judge ...
      user: "[Question]\\n{question}\\n\\n[Answer A]\\n{answer_a}\\n\\n[Answer B]\\n{answer_b}"

* MT-Bench's ``judge_prompts.jsonl`` (FastChat), one prompt a line with ``name``,
  ``system_prompt`` and ``prompt_template``, chosen by the URI fragment (``...jsonl#pair-v2``,
  the prompt Meta's release used). Its ``{ref_answer_1}`` means ``{reference}``, so
  ``#pair-math-v1`` is a reference-guided template.

Every problem is a :class:`TemplateError` naming the spec field, the file and, where there is
one, the placeholder or line.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from typing import Any

import yaml

Message = dict[str, str]


@dataclass(frozen=True)
class Kind:
    """What one kind of template may say: the placeholders it may use and those it must."""

    name: str
    placeholders: tuple[str, ...]
    required: tuple[str, ...]


JUDGING = Kind(
    "judging",
    placeholders=("question", "answer_a", "answer_b", "reference"),
    required=("question", "answer_a", "answer_b"),
)
PAIRS = Kind("pairs", placeholders=("instruction",), required=("instruction",))
LABELLING = Kind("labelling", placeholders=("instruction", "categories"), required=("instruction",))
#: Placeholders a judging template may use; the first three must all appear.
PLACEHOLDERS: tuple[str, ...] = JUDGING.placeholders
REQUIRED: tuple[str, ...] = JUDGING.required
#: Other names for our placeholders in templates we read (MT-Bench's reference answer).
ALIASES: dict[str, str] = {"ref_answer_1": "reference"}
#: Largest template file read, in bytes: prompts are small; a huge file is a mistake.
MAX_BYTES = 256 * 1024


class TemplateError(ValueError):
    """A template that cannot be used; the message names the field and file."""


@dataclass(frozen=True)
class PromptTemplate:
    """A validated template of any kind (see module); :meth:`fill` renders it."""

    user: str
    system: str | None = None

    @property
    def placeholders(self) -> set[str]:
        """The placeholders the template uses, in either part."""
        return _names(self.system or "") | _names(self.user)

    def fill(self, values: dict[str, str]) -> list[Message]:
        """The chat messages with every placeholder replaced from ``values``."""
        messages = []
        if self.system:
            messages.append({"role": "system", "content": _fill(self.system, values)})
        messages.append({"role": "user", "content": _fill(self.user, values)})
        return messages


@dataclass(frozen=True)
class JudgeTemplate(PromptTemplate):
    """A validated pairwise judging template (see module)."""

    @property
    def uses_reference(self) -> bool:
        """Whether the template asks for a reference answer (reference-guided judging)."""
        return "reference" in self.placeholders

    def render(
        self, *, question: str, answer_a: str, answer_b: str, reference: str | None = None
    ) -> list[Message]:
        """The chat messages for one pair; a reference-guided template needs ``reference``."""
        if self.uses_reference and reference is None:
            raise TemplateError("this judging template needs a reference answer for every row")
        values = {
            "question": question,
            "answer_a": answer_a,
            "answer_b": answer_b,
            "reference": reference or "",
        }
        return self.fill(values)


def _canonical(text: str) -> str:
    """Rewrite aliased placeholders to ours (``{ref_answer_1}`` -> ``{reference}``)."""
    for alias, name in ALIASES.items():
        text = text.replace("{" + alias + "}", "{" + name + "}")
    return text


def _names(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def _fill(text: str, values: dict[str, str]) -> str:
    return text.format_map(values)


def check(system: str | None, user: str, *, where: str, kind: Kind = JUDGING) -> PromptTemplate:
    """Validate placeholders: none unknown, none malformed, all of ``kind``'s required ones
    present."""
    system, user = (_canonical(system) if system else None), _canonical(user)
    found: set[str] = set()
    for part, text in (("system", system), ("user", user)):
        if not text:
            continue
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as error:
            raise TemplateError(
                f"{where}: {part} part: {error} (write literal braces as {{{{ }}}})"
            ) from error
        for _, field, spec, conversion in parsed:
            if field is None:
                continue
            if field not in kind.placeholders:
                known = ", ".join("{" + p + "}" for p in kind.placeholders)
                raise TemplateError(
                    f"{where}: {part} part: unknown placeholder {{{field}}}; allowed: {known}"
                )
            if spec or conversion:
                raise TemplateError(
                    f"{where}: {part} part: {{{field}}} takes no format or !conversion"
                )
            found.add(field)
    missing = [name for name in kind.required if name not in found]
    if missing:
        raise TemplateError(
            f"{where}: missing placeholder(s) " + ", ".join("{" + m + "}" for m in missing)
        )
    return PromptTemplate(user=user, system=system)


def parse_template(data: bytes, *, where: str, name: str | None = None) -> JudgeTemplate:
    """A judging template from a file's bytes (see :func:`parse_prompt`)."""
    found = parse_prompt(data, where=where, name=name, kind=JUDGING)
    return JudgeTemplate(user=found.user, system=found.system)


def parse_prompt(data: bytes, *, where: str, kind: Kind, name: str | None = None) -> PromptTemplate:
    """Read a template file's bytes: the mapping form, or the MT-Bench JSONL line ``name``,
    checked against ``kind``'s placeholders.

    ``where`` names the spec field and file in every message (e.g. ``spec.judging.template
    (file:///t.yaml)``).
    """
    if len(data) > MAX_BYTES:
        raise TemplateError(f"{where}: larger than {MAX_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TemplateError(f"{where}: not UTF-8 text: {error}") from error
    if name is not None:
        return _from_jsonl(text, where=where, name=name, kind=kind)
    return _from_mapping(text, where=where, kind=kind)


def _from_jsonl(text: str, *, where: str, name: str, kind: Kind) -> PromptTemplate:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise TemplateError(f"{where}: line {number}: not JSON: {error.msg}") from error
        if isinstance(row, dict) and row.get("name") == name:
            system, user = row.get("system_prompt"), row.get("prompt_template")
            if not isinstance(user, str) or not isinstance(system, str | None):
                raise TemplateError(
                    f"{where}: line {number}: needs string fields system_prompt, prompt_template"
                )
            return check(system, user, where=f"{where} line {number}", kind=kind)
    raise TemplateError(f"{where}: no prompt named {name!r}")


def _from_mapping(text: str, *, where: str, kind: Kind) -> PromptTemplate:
    try:
        if any(isinstance(t, yaml.AliasToken | yaml.AnchorToken) for t in yaml.scan(text)):
            raise TemplateError(f"{where}: YAML anchors and aliases are not allowed")
        document: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise TemplateError(f"{where}{line}: not valid YAML/JSON: {error}") from error
    if not isinstance(document, dict):
        raise TemplateError(f"{where}: expected a mapping with 'user' and optionally 'system'")
    unknown = sorted(set(document) - {"system", "user"})
    if unknown:
        raise TemplateError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}")
    system, user = document.get("system"), document.get("user")
    if not isinstance(user, str) or not user.strip():
        raise TemplateError(f"{where}: 'user' must be a non-empty string")
    if system is not None and not isinstance(system, str):
        raise TemplateError(f"{where}: 'system' must be a string")
    return check(system, user, where=where, kind=kind)
