"""The tiny judge: a byte-level BPE tokenizer and a small Llama, saved in Hugging Face format.

Why a real architecture and a real tokenizer: every stage loads the tiny model exactly the way it
loads a big one (``AutoTokenizer``/``AutoModelForCausalLM.from_pretrained`` on a directory), so
tests exercise the production code paths, chat template included. The tokenizer is trained
offline on the built-in task's text; nothing is downloaded.

The chat template emits ``<|end|>`` after every assistant turn itself: TRL does not append EOS to
conversational prompt/completion data, so a template without it would train a judge that never
stops. It puts one space between a role marker and the content, so numbers are tokenised the
same way (``Ġ7``) in prompts, answers and reasoning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from selftaught.prompts import STYLE_FILE
from selftaught.tiny.task import corpus

PAD, END, USER, ASSISTANT, SYSTEM = "<|pad|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"
SPECIAL_TOKENS = [PAD, END, USER, ASSISTANT, SYSTEM]

CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}<|user|> {{ m['content'] }}"
    "{% elif m['role'] == 'system' %}<|system|> {{ m['content'] }}"
    "{% else %}<|assistant|> {{ m['content'] }}<|end|>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@dataclass(frozen=True)
class TinyShape:
    """Size of the tiny Llama. The defaults fit the built-in task; tests pass smaller ones.

    hidden 128 / 2 layers is ~0.6 M parameters: the largest that still samples >10k tokens/s
    and fine-tunes in seconds on 2 CPU cores.
    """

    hidden: int = 128
    layers: int = 2
    heads: int = 4
    intermediate: int = 384
    vocab: int = 400
    max_positions: int = 256


def train_tokenizer(*, seed: int, vocab: int) -> object:
    """A byte-level BPE tokenizer fitted to the built-in task's text, as a transformers object."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(corpus(seed=seed), trainer=trainer)
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=core,
        pad_token=PAD,
        eos_token=END,
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
        model_max_length=1024,
    )


def build_base_model(out_dir: Path, *, seed: int = 0, shape: TinyShape | None = None) -> Path:
    """Write a freshly initialised tiny Llama + tokenizer (no warm start) into ``out_dir``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = shape or TinyShape()
    tokenizer = train_tokenizer(seed=seed, vocab=shape.vocab)
    vocab_size = len(tokenizer)  # type: ignore[arg-type]
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        max_position_embeddings=shape.max_positions,
        pad_token_id=tokenizer.pad_token_id,  # type: ignore[attr-defined]
        eos_token_id=tokenizer.eos_token_id,  # type: ignore[attr-defined]
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.eos_token_id = config.eos_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)  # type: ignore[attr-defined]
    (out_dir / STYLE_FILE).write_text(json.dumps({"promptStyle": "compact", "seed": seed}))
    return out_dir
