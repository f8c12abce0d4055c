"""Judging templates as data: the two file forms, placeholder checks, rendering (table-driven)."""

from __future__ import annotations

import json

import pytest

from selftaught.templates import (
    JUDGING,
    LABELLING,
    PAIRS,
    JudgeTemplate,
    Kind,
    TemplateError,
    parse_prompt,
    parse_template,
)

WHERE = "spec.judging.template (file:///t.yaml)"
GOOD_USER = "Q: {question}\nA: {answer_a}\nB: {answer_b}"


def test_mapping_form_renders_system_and_user() -> None:
    text = f"system: Judge carefully; say [[A]] or [[B]].\nuser: {json.dumps(GOOD_USER)}\n"
    template = parse_template(text.encode(), where=WHERE)
    assert template.render(question="q", answer_a="x", answer_b="y") == [
        {"role": "system", "content": "Judge carefully; say [[A]] or [[B]]."},
        {"role": "user", "content": "Q: q\nA: x\nB: y"},
    ]
    assert template.uses_reference is False


def test_literal_braces_are_doubled() -> None:
    template = parse_template(json.dumps({"user": "{{json}} " + GOOD_USER}).encode(), where=WHERE)
    assert template.render(question="q", answer_a="a", answer_b="b")[0]["content"].startswith(
        "{json} Q: q"
    )


MT_BENCH_LINES = [
    {"name": "single-v1", "type": "single", "system_prompt": "x", "prompt_template": "{answer}"},
    {
        "name": "pair-v2",
        "type": "pairwise",
        "system_prompt": "Please act as an impartial judge ... [[A]] ... [[B]]",
        "prompt_template": "[User Question]\n{question}\n\n[A]\n{answer_a}\n\n[B]\n{answer_b}",
    },
    {
        "name": "pair-math-v1",
        "type": "pairwise",
        "system_prompt": "Compare with the reference.",
        "prompt_template": "{question}\n[Ref]\n{ref_answer_1}\n[A]\n{answer_a}\n[B]\n{answer_b}",
    },
]
MT_BENCH = "\n".join(json.dumps(line) for line in MT_BENCH_LINES).encode()


def test_mt_bench_prompt_file_by_name() -> None:
    template = parse_template(MT_BENCH, where=WHERE, name="pair-v2")
    messages = template.render(question="q", answer_a="a", answer_b="b")
    assert messages[0]["role"] == "system"
    assert messages[1]["content"] == "[User Question]\nq\n\n[A]\na\n\n[B]\nb"


def test_mt_bench_reference_placeholder_is_our_reference() -> None:
    template = parse_template(MT_BENCH, where=WHERE, name="pair-math-v1")
    assert template.uses_reference
    text = template.render(question="q", answer_a="a", answer_b="b", reference="42")[1]["content"]
    assert "[Ref]\n42\n" in text
    with pytest.raises(TemplateError, match="needs a reference"):
        template.render(question="q", answer_a="a", answer_b="b")


BAD: list[tuple[str, bytes, str | None, str]] = [
    (
        "unknown-placeholder",
        json.dumps({"user": GOOD_USER + " {answer_c}"}).encode(),
        None,
        r"user part: unknown placeholder \{answer_c\}",
    ),
    (
        "unknown-in-system",
        json.dumps({"system": "{judge}", "user": GOOD_USER}).encode(),
        None,
        r"system part: unknown placeholder \{judge\}",
    ),
    (
        "missing-answer-b",
        json.dumps({"user": "{question} {answer_a}"}).encode(),
        None,
        r"missing placeholder\(s\) \{answer_b\}",
    ),
    (
        "format-spec",
        json.dumps({"user": GOOD_USER + " {question:>10}"}).encode(),
        None,
        "takes no format",
    ),
    ("unbalanced-brace", json.dumps({"user": GOOD_USER + " {"}).encode(), None, "literal braces"),
    ("not-a-mapping", b"- just\n- a list\n", None, "expected a mapping"),
    ("unknown-key", json.dumps({"user": GOOD_USER, "assistant": "x"}).encode(), None, "assistant"),
    ("empty-user", b"system: hi\nuser: ''\n", None, "'user' must be a non-empty string"),
    ("yaml-alias", b"system: &s hi\nuser: *s\n", None, "anchors and aliases"),
    ("bad-yaml", b"user: [unclosed\n", None, "not valid YAML/JSON"),
    ("mt-bench-name-absent", MT_BENCH, "pair-v9", "no prompt named 'pair-v9'"),
    ("mt-bench-single-prompt", MT_BENCH, "single-v1", r"line 1: .*unknown placeholder \{answer\}"),
    ("mt-bench-bad-line", b'{"name": "x"}\n{oops\n', "pair-v2", "line 2: not JSON"),
    ("too-large", b"x" * (256 * 1024 + 1), None, "larger than"),
]


@pytest.mark.parametrize(("data", "name", "message"), [pytest.param(*b[1:], id=b[0]) for b in BAD])
def test_bad_template_is_refused_naming_the_field(
    data: bytes, name: str | None, message: str
) -> None:
    with pytest.raises(TemplateError, match=message) as caught:
        parse_template(data, where=WHERE, name=name)
    assert str(caught.value).startswith("spec.judging.template (file:///t.yaml)")


def test_template_type_is_plain_data() -> None:
    assert JudgeTemplate(user=GOOD_USER).render(question="1", answer_a="2", answer_b="3") == [
        {"role": "user", "content": "Q: 1\nA: 2\nB: 3"}
    ]


KIND_CASES: list[tuple[str, Kind, str, str | None]] = [
    ("pairs-instruction", PAIRS, "Rewrite: {instruction}", None),
    ("pairs-judging-placeholder", PAIRS, "{instruction} {question}", "unknown placeholder"),
    ("pairs-missing-instruction", PAIRS, "Write a task.", r"missing placeholder\(s\)"),
    ("labelling-both", LABELLING, "{categories}: {instruction}", None),
    ("labelling-instruction-only", LABELLING, "Label: {instruction}", None),
    ("labelling-missing-instruction", LABELLING, "{categories}", r"\{instruction\}"),
    ("judging-instruction-placeholder", JUDGING, "{instruction}", "unknown placeholder"),
]


@pytest.mark.parametrize(
    ("kind", "user", "error"), [pytest.param(*c[1:], id=c[0]) for c in KIND_CASES]
)
def test_each_kind_has_its_own_placeholders(kind: Kind, user: str, error: str | None) -> None:
    data = json.dumps({"user": user}).encode()
    if error is None:
        assert parse_prompt(data, where=WHERE, kind=kind).user == user
        return
    with pytest.raises(TemplateError, match=error) as caught:
        parse_prompt(data, where=WHERE, kind=kind)
    allowed = ", ".join("{" + p + "}" for p in kind.placeholders)
    assert "unknown" not in str(caught.value) or str(caught.value).endswith(f"allowed: {allowed}")
