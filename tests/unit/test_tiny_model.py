"""The tiny model builder: HF format, chat template with its own end token, the resolver."""

from __future__ import annotations

from pathlib import Path

import pytest

from selftaught.prompts import prompt_style
from selftaught.tiny import RECIPE_VERSION, resolve_builtin
from selftaught.tiny.model import END, build_base_model
from tests.unit.stage_env import SMALL


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_base_model(tmp_path_factory.mktemp("base"), seed=0, shape=SMALL)


def test_loads_back_as_a_plain_hf_model(base_model: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    model = AutoModelForCausalLM.from_pretrained(base_model)
    assert model.config.model_type == "llama"
    assert tokenizer.eos_token == END
    assert tokenizer.padding_side == "left"
    assert prompt_style(base_model) == "compact"


def test_chat_template_ends_assistant_turns_itself(base_model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    prompt = [{"role": "user", "content": "answer: add 1 2"}]
    full = [*prompt, {"role": "assistant", "content": "3"}]
    prompt_ids = tokenizer.apply_chat_template(
        prompt, add_generation_prompt=True, return_dict=False
    )
    full_ids = tokenizer.apply_chat_template(full, return_dict=False)
    assert full_ids[: len(prompt_ids)] == prompt_ids  # completion-only loss needs a clean prefix
    assert full_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(full_ids[len(prompt_ids) :], skip_special_tokens=True).strip() == "3"


def test_task_numbers_are_single_tokens(base_model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    for digit in range(10):
        assert len(tokenizer.encode(f" {digit}", add_special_tokens=False)) == 1


def test_build_is_deterministic(tmp_path: Path, base_model: Path) -> None:
    again = build_base_model(tmp_path / "again", seed=0, shape=SMALL)
    assert (again / "model.safetensors").read_bytes() == (
        base_model / "model.safetensors"
    ).read_bytes()


def test_resolver_reuses_a_cached_build(tmp_path: Path) -> None:
    cached = tmp_path / f"tiny-judge-v{RECIPE_VERSION}-seed7"
    cached.mkdir()
    (cached / "config.json").write_text("{}")
    assert resolve_builtin("builtin://tiny-judge?seed=7", tmp_path) == cached


@pytest.mark.parametrize("uri", ["builtin://other", "file:///x", "builtin://tiny-judge?seed=x"])
def test_resolver_rejects_unknown_models(tmp_path: Path, uri: str) -> None:
    with pytest.raises(ValueError, match=r"tiny-judge|invalid literal"):
        resolve_builtin(uri, tmp_path)
