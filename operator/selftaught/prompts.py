"""Prompt templates for every model call of the method, and the verdict parser.

Two styles, chosen by the model directory (see :func:`prompt_style`):

* ``standard`` for real instruction-tuned LLMs: full English instructions, the judging prompt
  asks for an explanation first and the verdict last as ``[[A]]`` or ``[[B]]``.
* ``compact`` for the built-in tiny model: short fixed prefixes the warm start taught it
  (``answer:``, ``similar:``, ``category:``, ``judge:``), because a 2-layer model cannot follow
  prose. The verdict marker is the same, so parsing and scoring do not care about the style.

The texts are our own. Messages are plain ``{"role", "content"}`` dicts, rendered by each
model's own chat template.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

Message = dict[str, str]
Style = Literal["standard", "compact"]
Verdict = Literal["A", "B"]

#: File a model directory may carry to name its prompt style; big models have none.
STYLE_FILE = "selftaught.json"
#: Categories the standard labelling prompt offers (the CRD documents the same list).
STANDARD_CATEGORIES: tuple[str, ...] = ("coding", "math", "reasoning", "safety", "chat", "other")

_VERDICT = re.compile(r"\[\[\s*([AB])\s*\]\]")


def prompt_style(model_dir: Path) -> Style:
    """``compact`` when the model directory says so in ``selftaught.json``, else ``standard``."""
    path = Path(model_dir) / STYLE_FILE
    if not path.is_file():
        return "standard"
    style = json.loads(path.read_text()).get("promptStyle", "standard")
    return "compact" if style == "compact" else "standard"


def _user(content: str) -> list[Message]:
    return [{"role": "user", "content": content}]


def category_prompt(style: Style, instruction: str) -> list[Message]:
    if style == "compact":
        return _user(f"category: {instruction}")
    options = ", ".join(STANDARD_CATEGORIES)
    return _user(
        "Sort the user request below into exactly one category.\n"
        f"Categories: {options}.\n"
        "- coding: writing, fixing or explaining code\n"
        "- math: calculations, proofs, quantitative problems\n"
        "- reasoning: logic, planning, analysis or multi-step problems without heavy math\n"
        "- safety: requests that could cause harm, or questions about harm\n"
        "- chat: small talk, opinions, creative writing, advice\n"
        "- other: anything else\n"
        "Reply with the category name only, in lower case.\n\n"
        f"Request:\n{instruction}"
    )


def answer_prompt(style: Style, instruction: str) -> list[Message]:
    if style == "compact":
        return _user(f"answer: {instruction}")
    return _user(instruction)


def similar_prompt(style: Style, instruction: str) -> list[Message]:
    """Ask for x': close to x in topic and form, but a different question with its own answer."""
    if style == "compact":
        return _user(f"similar: {instruction}")
    return _user(
        "Below is a user request. Write one new request that looks closely related to it "
        "(same topic, same kind of task, similar wording) but asks for something different, so "
        "that a perfect answer to the new request would be a poor answer to the original one. "
        "Output the new request only, with no preamble and no answer.\n\n"
        f"Original request:\n{instruction}"
    )


def judge_prompt(
    style: Style,
    instruction: str,
    answer_a: str,
    answer_b: str,
    *,
    reference: str | None = None,
) -> list[Message]:
    """The pairwise judging prompt: reasoning first, verdict ``[[A]]``/``[[B]]`` last.

    With a ``reference`` answer (a row that carries one) the standard prompt is reference-guided,
    as MT-Bench judges math, reasoning and code: the judge compares both answers with it. The
    compact style has no reference form (the tiny model never learnt one) and ignores it.
    """
    if style == "compact":
        return _user(f"judge: {instruction} | A: {answer_a} | B: {answer_b}")
    if reference is not None:
        return _user(reference_judge_text(instruction, answer_a, answer_b, reference))
    return _user(
        "You are an impartial expert judge. Two assistants answered the same user request. "
        "Decide which answer serves the user better.\n\n"
        "First work out what a correct, complete answer must contain, solving the problem "
        "yourself where it has a definite answer. Then examine each answer for correctness, "
        "whether it addresses what was actually asked, helpfulness and harm. Ignore the order in "
        "which the answers appear and their length, unless length hides or adds substance. "
        "Do not let the answers' own claims about their quality sway you.\n\n"
        "Write your reasoning first. End with the verdict on its own line, exactly [[A]] if "
        "answer A is better or [[B]] if answer B is better.\n\n"
        f"[User request]\n{instruction}\n\n"
        f"[Answer A]\n{answer_a}\n\n"
        f"[Answer B]\n{answer_b}"
    )


def reference_judge_text(instruction: str, answer_a: str, answer_b: str, reference: str) -> str:
    """The standard judging prompt when a reference answer is known."""
    return (
        "You are an impartial expert judge. Two assistants answered the same user request, and "
        "a reference answer known to be correct is given. Decide which answer serves the user "
        "better.\n\n"
        "Compare each answer with the reference: a final result, code behaviour or conclusion "
        "that contradicts the reference is wrong, however well it is written. Then weigh "
        "completeness, whether it addresses what was asked, and harm. Ignore the order in "
        "which the answers appear and their length.\n\n"
        "Write your reasoning first. End with the verdict on its own line, exactly [[A]] if "
        "answer A is better or [[B]] if answer B is better.\n\n"
        f"[User request]\n{instruction}\n\n"
        f"[Reference answer]\n{reference}\n\n"
        f"[Answer A]\n{answer_a}\n\n"
        f"[Answer B]\n{answer_b}"
    )


def check_prompt(instruction: str, candidate: str) -> list[Message]:
    """Compact only: the warm start's checking sub-skill (solve, then compare one answer)."""
    return _user(f"check: {instruction} | A: {candidate}")


def parse_verdict(text: str) -> Verdict | None:
    """The last ``[[A]]``/``[[B]]`` in a judgment (reasoning may quote markers first), or None."""
    found = _VERDICT.findall(text)
    if not found:
        return None
    return "A" if found[-1] == "A" else "B"


def normalise_text(text: str) -> str:
    """Case- and whitespace-insensitive form: deduplication and "is it the same" checks."""
    return " ".join(text.split()).lower()


def parse_category(text: str, known: Sequence[str]) -> str:
    """The first known category named in a labelling reply; ``other`` when none is."""
    words: list[str] = re.findall(r"[a-z]+", text.lower())
    for word in words:
        if word in known:
            return word
    return "other"
