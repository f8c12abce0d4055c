"""GPU check: the sharded training path and the transformers judging engine on one GPU.

One script, under 8 minutes on one H100 or H200, needing only torch, transformers, peft,
accelerate and TRL (no vLLM). It builds a randomly initialised Llama of ~1.07 B parameters
(hidden 2048, 16 layers, 32 heads, MLP 8192; the built-in tokenizer) and measures:

* **training**: the train stage's own trainer (:func:`selftaught.stages.train.build_trainer`)
  with ``training.sharding.strategy: full`` on one rank -- FSDP2, fp32 master weights, bf16
  compute, activation checkpointing -- over sequences of ``--seq-len`` tokens. Reported:
  tokens/s after the warm-up steps and model FLOPs utilisation (MFU) against the card's dense
  bf16 peak (:data:`PEAK_BF16_TFLOPS`, matched on ``torch.cuda.get_device_name()``). Model
  FLOPs per token = 6 x parameters + 12 x layers x hidden x sequence (attention scores), the
  usual convention; activation checkpointing's recompute is not counted as useful work.
* **judging**: :class:`selftaught.engines.transformers.TransformersEngine` sampling N judgments
  per pairwise prompt, as the judge stage does: judgments/s and generated tokens/s.

Prints one JSON object (and writes it to ``--json``).

    python benchmarks/gpu_check.py                       # on the GPU machine
    python benchmarks/gpu_check.py --quick --device cpu  # seconds, a tiny model (smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

#: Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from NVIDIA's data sheets, keyed by a
#: substring of ``torch.cuda.get_device_name()``; the first match wins (most specific first).
PEAK_BF16_TFLOPS: list[tuple[str, float]] = [
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM5 (HBM3)
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
]

#: (hidden, layers, heads, intermediate): ~1.07 B parameters with the 400-token vocabulary.
FULL_SHAPE = (2048, 16, 32, 8192)
QUICK_SHAPE = (64, 2, 4, 128)


def peak_tflops(device_name: str) -> float | None:
    """The card's dense bf16 peak, or None for an unknown card (or a CPU)."""
    for key, peak in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return peak
    return None


def build_model(out: Path, shape: tuple[int, int, int, int], max_positions: int) -> Path:
    """A randomly initialised Llama with the built-in tokenizer and chat template."""
    from selftaught.tiny.model import TinyShape, build_base_model

    hidden, layers, heads, intermediate = shape
    tiny = TinyShape(
        hidden=hidden,
        layers=layers,
        heads=heads,
        intermediate=intermediate,
        vocab=400,
        max_positions=max_positions,
    )
    return build_base_model(out, seed=0, shape=tiny)


def training_rows(count: int, words: int) -> list[dict[str, Any]]:
    """Conversational prompt/completion rows long enough to be cut at ``--seq-len``: a short
    prompt and a long completion, so the cut keeps loss tokens in every row."""
    rng = random.Random(0)
    rows = []
    for _ in range(count):
        numbers = " ".join(str(rng.randint(0, 99)) for _ in range(words))
        rows.append(
            {
                "prompt": [{"role": "user", "content": "judge: add 1 2 | A: 3 | B: 4"}],
                "completion": [{"role": "assistant", "content": f"sum {numbers} [[A]]"}],
            }
        )
    return rows


def train_task(model: Path, *, seq_len: int, micro: int, steps: int, work: Path) -> Any:
    from selftaught.api import RunSpec
    from selftaught.task import StageTask

    spec = RunSpec.model_validate(
        {
            "seedModel": model.as_uri(),
            "storage": {"uri": (work / "artifacts").as_uri()},
            "instructions": {"source": "builtin://arithmetic", "categories": ["math"]},
            "training": {
                "learningRate": 1e-6,
                "lrScheduler": "constant",
                "warmupSteps": 0,
                "epochs": 1,
                "batchSize": micro,
                "microBatchSize": micro,
                "maxLength": seq_len,
                "sharding": {"strategy": "full"},
            },
        }
    )
    return StageTask(
        run="gpu-check", namespace="bench", iteration=1, stage="train", model=spec.seed_model,
        init_model=spec.seed_model, spec=spec,
    )  # fmt: skip


def measure_training(
    model: Path, *, device: str, seq_len: int, micro: int, steps: int, warmup: int, work: Path
) -> dict[str, Any]:
    import torch
    from transformers import TrainerCallback

    from selftaught.stages import train

    task = train_task(model, seq_len=seq_len, micro=micro, steps=steps, work=work)
    rows = training_rows(micro * (steps + warmup), words=seq_len)
    gpu = device.startswith("cuda")
    trainer = train.build_trainer(task, rows, model, work=work, gpu=gpu, world=1)
    marks: dict[str, float] = {}

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            if gpu:
                torch.cuda.synchronize()
            if state.global_step == warmup:
                marks["start"] = time.perf_counter()
            marks["end"] = time.perf_counter()

    trainer.add_callback(Clock())
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    timed = trainer.state.global_step - warmup
    seconds = marks["end"] - marks["start"]
    tokens = timed * micro * seq_len  # every row is longer than seq_len: cut, never padded
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    config = unwrapped.config
    parameters = sum(
        (p.to_local() if hasattr(p, "to_local") else p).numel() for p in unwrapped.parameters()
    )
    flops_per_token = 6 * parameters + 12 * config.num_hidden_layers * config.hidden_size * seq_len
    achieved = flops_per_token * tokens / seconds / 1e12
    name = torch.cuda.get_device_name() if gpu else "cpu"
    peak = peak_tflops(name) if gpu else None
    return {
        "sharded": bool(trainer.is_fsdp_enabled),
        "parameters": parameters,
        "master_dtype": str(next(unwrapped.parameters()).dtype),
        "bf16_compute": bool(trainer.args.bf16),
        "seq_len": seq_len,
        "micro_batch": micro,
        "timed_steps": timed,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / seconds, 1),
        "model_tflops_per_s": round(achieved, 2),
        "peak_bf16_tflops": peak,
        "mfu": round(achieved / peak, 4) if peak else None,
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if gpu else None,
    }


def measure_judging(
    model: Path, *, device: str, prompts: int, samples: int, max_new_tokens: int
) -> dict[str, Any]:
    from selftaught.engines.transformers import TransformersEngine
    from selftaught.prompts import judge_prompt
    from selftaught.tiny.task import random_problem, similar_problem

    rng = random.Random(0)
    conversations = []
    for index in range(prompts):
        problem = random_problem(rng)
        good, bad = problem.answer, similar_problem(problem).answer
        a, b = (good, bad) if index % 2 == 0 else (bad, good)
        conversations.append(judge_prompt("compact", problem.text, a, b))
    engine = TransformersEngine(model, seed=0, device=device, batch_size=256)
    settings: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": max_new_tokens}
    engine.generate(conversations[:2], n=2, seed=99, **settings)  # warm-up
    started = time.perf_counter()
    out = engine.generate(conversations, n=samples, seed=0, **settings)
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    judgments = sum(len(s) for s in out)
    return {
        "prompts": prompts,
        "samples_per_prompt": samples,
        "max_new_tokens": max_new_tokens,
        "seconds": round(seconds, 3),
        "judgments_per_s": round(judgments / seconds, 1),
        "generated_tokens_per_s": round(engine.last_generated_tokens / seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny model, a few steps: seconds")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=8, help="judgments per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    shape = FULL_SHAPE
    if args.quick:
        shape, args.seq_len, args.micro_batch, args.steps, args.warmup = QUICK_SHAPE, 64, 2, 2, 1
        args.prompts, args.samples, args.max_new_tokens = 4, 2, 8
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="selftaught-gpu-check-") as tmp:
        work = Path(tmp)
        model = build_model(work / "model", shape, max_positions=max(args.seq_len, 1024))
        training = measure_training(
            model, device=device, seq_len=args.seq_len, micro=args.micro_batch,
            steps=args.steps, warmup=args.warmup, work=work,
        )  # fmt: skip
        judging = measure_judging(
            model, device=device, prompts=args.prompts, samples=args.samples,
            max_new_tokens=args.max_new_tokens,
        )  # fmt: skip
    report = {
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "versions": {"torch": torch.__version__, **_versions()},
        "quick": args.quick,
        "training": training,
        "judging": judging,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(report, indent=1)
    print(text, flush=True)
    if args.json:
        args.json.write_text(text)
    return 0


def _versions() -> dict[str, str]:
    import accelerate
    import peft
    import transformers
    import trl

    return {
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "accelerate": accelerate.__version__,
        "peft": peft.__version__,
    }


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
