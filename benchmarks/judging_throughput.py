"""Judging throughput: batched N-sampling against a naive one-prompt-one-sample loop.

Both sides use the same model, the same judging prompts (the built-in task's pairs, rendered by
:func:`selftaught.prompts.judge_prompt`) and the same sampling settings; only the way the engine
is driven differs:

* batched: one :meth:`TransformersEngine.generate` call for all prompts, ``n`` samples each
  (left-padded batches sorted by length, KV cache, ``num_return_sequences=n``), as the judge
  stage runs it;
* naive: for each prompt, ``n`` separate calls with one prompt and one sample (batch size 1).

Models: the warm-started tiny judge (``tiny``) and a larger random-weight Llama with the same
tokenizer (``wide``: hidden 512, 8 layers, ~26 M parameters; random weights generate until
``max_new_tokens``, so its token counts are fixed and its throughput comparable). On a GPU
(``--device cuda``) the script adds ``gpu-1b`` (hidden 2048, 16 layers, ~0.9 B parameters).

    python benchmarks/judging_throughput.py                  # CPU, the README's table
    python benchmarks/judging_throughput.py --device cuda    # the H200 row
    python benchmarks/judging_throughput.py --quick          # smoke test

Target (issue "Benchmarks"): batched >= 10x the naive loop in judgments per second.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selftaught.prompts import judge_prompt
from selftaught.tiny import resolve_builtin
from selftaught.tiny.task import random_problem, similar_problem

#: name -> (hidden, layers, heads, intermediate); None = the warm-started tiny judge.
SHAPES: dict[str, tuple[int, int, int, int] | None] = {
    "tiny": None,
    "wide": (512, 8, 8, 1536),
    "gpu-1b": (2048, 16, 16, 5632),
}


@dataclass
class Measurement:
    model: str
    mode: str
    prompts: int
    samples: int
    seconds: float
    tokens: int

    def row(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "mode": self.mode,
            "judgments": self.prompts * self.samples,
            "seconds": round(self.seconds, 2),
            "tokens_per_s": round(self.tokens / self.seconds),
            "judgments_per_s": round(self.prompts * self.samples / self.seconds, 1),
        }


def judging_prompts(count: int, seed: int = 0) -> list[list[dict[str, str]]]:
    rng = random.Random(seed)
    prompts = []
    for index in range(count):
        problem = random_problem(rng)
        good, bad = problem.answer, similar_problem(problem).answer
        a, b = (good, bad) if index % 2 == 0 else (bad, good)
        prompts.append(judge_prompt("compact", problem.text, a, b))
    return prompts


def model_dir(name: str, cache: Path) -> Path:
    """The tiny judge from the built-in resolver, or a random Llama of a bigger shape."""
    tiny = resolve_builtin("builtin://tiny-judge?seed=0", cache)
    shape = SHAPES[name]
    if shape is None:
        return tiny
    target = cache / f"throughput-{name}"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    hidden, layers, heads, intermediate = shape
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    for extra in ("selftaught.json",):
        (target / extra).write_text((tiny / extra).read_text())
    return target


def measure(
    name: str,
    mode: str,
    *,
    prompts: int,
    samples: int,
    max_new_tokens: int,
    device: str,
    cache: Path,
) -> Measurement:
    from selftaught.engines.transformers import TransformersEngine

    engine = TransformersEngine(
        model_dir(name, cache), seed=0, device=device, batch_size=1 if mode == "naive" else 256
    )
    conversations = judging_prompts(prompts)
    settings: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": max_new_tokens}
    engine.generate(conversations[:2], n=2, seed=99, **settings)  # warm-up (allocations, caches)
    tokens = 0
    started = time.perf_counter()
    if mode == "batched":
        engine.generate(conversations, n=samples, seed=0, **settings)
        tokens = engine.last_generated_tokens
    else:
        for index, conversation in enumerate(conversations):
            for sample in range(samples):
                engine.generate([conversation], n=1, seed=index * 1000 + sample, **settings)
                tokens += engine.last_generated_tokens
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    return Measurement(name, mode, prompts, samples, time.perf_counter() - started, tokens)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=4, help="N judgments per pair")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="medians over repeats")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="tiny model, 8 prompts, once")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    models = args.models or (
        ["tiny", "wide", "gpu-1b"] if args.device != "cpu" else ["tiny", "wide"]
    )
    if args.quick:
        models, args.prompts, args.repeats = ["tiny"], 8, 1
    cache = args.cache or Path(
        os.environ.get("SELFTAUGHT_CACHE") or Path(tempfile.gettempdir()) / "selftaught-bench-cache"
    )
    rows = []
    for name in models:
        pair = {}
        for mode in ("batched", "naive"):
            runs = [
                measure(name, mode, prompts=args.prompts, samples=args.samples,
                        max_new_tokens=args.max_new_tokens, device=args.device, cache=cache).row()
                for _ in range(args.repeats)
            ]  # fmt: skip
            row = dict(runs[0])
            for key in ("seconds", "tokens_per_s", "judgments_per_s"):
                row[key] = statistics.median(r[key] for r in runs)
            row["device"], row["threads"] = args.device, torch.get_num_threads()
            pair[mode] = row
            rows.append(row)
            print(json.dumps(row), flush=True)
        speedup = pair["batched"]["judgments_per_s"] / pair["naive"]["judgments_per_s"]
        print(json.dumps({"model": name, "speedup": round(speedup, 1)}), flush=True)
        rows.append({"model": name, "speedup": round(speedup, 1)})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
