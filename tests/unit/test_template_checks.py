"""Templates are checked before any stage runs where they are readable: the pure check
(:mod:`selftaught.template_sources`), ``selftaught plan`` and ``selftaught run`` on file://
templates, each message naming the spec field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from selftaught.api import RunSpec
from selftaught.cli import main
from selftaught.template_sources import (
    ConfigMapKey,
    Source,
    Unreadable,
    configmaps,
    mounted_path,
    problems,
    sources,
)

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"
JUDGING_OK = {"user": "{question} {answer_a} {answer_b}"}


def spec_with(**sections: dict[str, Any]) -> RunSpec:
    body: dict[str, Any] = {
        "seedModel": "builtin://tiny-judge",
        "instructions": {"source": "builtin://arithmetic"},
    }
    for section, fields in sections.items():
        body[section] = {**body.get(section, {}), **fields}
    return RunSpec.model_validate(body)


def test_sources_name_each_template_field_and_kind() -> None:
    spec = spec_with(
        instructions={"labelTemplate": "configmap://prompts/label.yaml"},
        pairs={"template": "s3://bucket/similar.yaml"},
        judging={
            "template": "configmap://prompts/judge.jsonl#pair-v2",
            "referenceTemplate": "configmap://math/judge.jsonl#pair-math-v1",
        },
    )
    found = [(s.field, s.kind.name, s.name, s.configmap) for s in sources(spec)]
    assert found == [
        (
            "spec.instructions.labelTemplate",
            "labelling",
            None,
            ConfigMapKey("prompts", "label.yaml"),
        ),
        ("spec.pairs.template", "pairs", None, None),
        ("spec.judging.template", "judging", "pair-v2", ConfigMapKey("prompts", "judge.jsonl")),
        (
            "spec.judging.referenceTemplate",
            "judging",
            "pair-math-v1",
            ConfigMapKey("math", "judge.jsonl"),
        ),
    ]
    assert configmaps(spec) == ["math", "prompts"]
    assert mounted_path(ConfigMapKey("prompts", "judge.jsonl")) == (
        "/etc/selftaught/configmaps/prompts/judge.jsonl"
    )


#: (id, spec section, field, file content or None for unreadable, expected message or None)
CHECKS: list[tuple[str, str, str, dict[str, str] | None, str | None]] = [
    ("judging-ok", "judging", "template", JUDGING_OK, None),
    (
        "judging-unknown",
        "judging",
        "template",
        {"user": "{question} {answer_a} {answer_b} {foo}"},
        "spec.judging.template (configmap://p/t.yaml): user part: unknown placeholder {foo}; "
        "allowed: {question}, {answer_a}, {answer_b}, {reference}",
    ),
    (
        "reference-without-reference",
        "judging",
        "referenceTemplate",
        JUDGING_OK,
        "spec.judging.referenceTemplate (configmap://p/t.yaml): missing placeholder {reference}",
    ),
    (
        "pairs-missing",
        "pairs",
        "template",
        {"user": "Write another task."},
        "spec.pairs.template (configmap://p/t.yaml): missing placeholder(s) {instruction}",
    ),
    ("label-ok", "instructions", "labelTemplate", {"user": "{instruction} {categories}"}, None),
    (
        "unreadable",
        "pairs",
        "template",
        None,
        "spec.pairs.template (configmap://p/t.yaml): ConfigMap p has no key t.yaml",
    ),
]


@pytest.mark.parametrize(
    ("section", "field", "content", "message"), [pytest.param(*c[1:], id=c[0]) for c in CHECKS]
)
def test_problems_name_the_field_and_source(
    section: str, field: str, content: dict[str, str] | None, message: str | None
) -> None:
    spec = spec_with(**{section: {field: "configmap://p/t.yaml"}})

    def read(source: Source) -> bytes:
        if content is None:
            raise Unreadable("ConfigMap p has no key t.yaml")
        return json.dumps(content).encode()

    assert problems(spec, read) == ([message] if message else [])


def test_sources_the_reader_cannot_reach_are_not_checked() -> None:
    spec = spec_with(pairs={"template": "s3://bucket/t.yaml"})
    assert problems(spec, lambda _source: None) == []


def manifest(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    document = yaml.safe_load(QUICKSTART.read_text())
    for section, fields in sections.items():
        document["spec"].setdefault(section, {}).update(fields)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def template_file(tmp_path: Path, document: dict[str, str]) -> str:
    path = tmp_path / "t.yaml"
    path.write_text(json.dumps(document))
    return path.as_uri()


def test_plan_refuses_a_bad_file_template_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = template_file(tmp_path, {"user": "{question} {answer_a} {answer_b} {foo}"})
    assert main(["plan", str(manifest(tmp_path, judging={"template": uri}))]) == 2
    err = capsys.readouterr().err
    assert (
        f"selftaught plan: spec.judging.template ({uri}): user part: unknown placeholder {{foo}}"
        in err
    )


def test_plan_accepts_a_good_template_and_skips_files_only_the_cluster_has(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = template_file(tmp_path, {"user": "Rewrite: {instruction}"})
    elsewhere = "file:///artifacts/prompts/label.yaml"  # on the cluster's volume, not here
    run = manifest(tmp_path, pairs={"template": uri}, instructions={"labelTemplate": elsewhere})
    assert main(["plan", str(run)]) == 0
    assert "builtin://tiny-judge" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("template", "message"),
    [
        pytest.param(
            {"user": "{instruction} {question}"},
            "spec.pairs.template ({uri}): user part: unknown placeholder {{question}}",
            id="unknown-placeholder",
        ),
        pytest.param(None, "spec.pairs.template ({uri}): cannot be read", id="absent-file"),
        pytest.param(
            "configmap://prompts/similar.yaml",
            "spec.pairs.template ({uri}): a ConfigMap key needs a cluster",
            id="configmap-without-cluster",
        ),
    ],
)
def test_run_refuses_a_bad_template_before_any_stage(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    template: dict[str, str] | str | None,
    message: str,
) -> None:
    if isinstance(template, dict):
        uri = template_file(tmp_path, template)
    else:
        uri = template or (tmp_path / "absent.yaml").as_uri()
    workdir = tmp_path / "runs"
    run = manifest(tmp_path, pairs={"template": uri})
    assert main(["run", str(run), "--workdir", str(workdir), "--no-progress"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert message.format(uri=uri) in out
    assert not workdir.exists()  # no state, no stage process
