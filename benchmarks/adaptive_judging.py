"""Adaptive against fixed rejection sampling: same pairs, same judge, same N, one run.

Both modes drive the judge stage's own code path: :func:`selftaught.rounds.sample_in_rounds`
over the transformers engine, with :func:`selftaught.rejection.classify` as the stop rule and
the keep rule, so "kept" means exactly what the judge stage keeps. ``fixed`` is one call with
``n = N`` (``round_size = N``); ``adaptive k`` draws rounds of k for the prompts still without a
keepable judgment. The prompts are judging_throughput's (the built-in task, winner in position A
for even indices, B for odd).

Reported per mode: samples drawn, generated tokens, wall seconds, rounds, pairs kept, tokens and
milliseconds per kept judgment, the kept set's winner-position split, and against fixed:

* the **same kept pairs** check: McNemar's exact test on the per-pair outcome (kept by fixed,
  kept by adaptive): under "same kept set in distribution" the discordant pairs split 50/50, and
  the two-sided binomial p-value says how surprising the split is;
* the **position balance** check: a two-proportion z-test of the kept A-share (fixed vs
  adaptive).

Models: ``tiny`` (the warm-started tiny judge) and ``wide`` (judging_throughput's random
Llama: it never writes a verdict, so nothing is kept and adaptive must draw the full N: the
budget check, and the price of rounds in wall time where sampling is not instant).

    python benchmarks/adaptive_judging.py --models tiny wide --json out.json
    python benchmarks/adaptive_judging.py --models ARTIFACTS/.../iteration-3/train/model

A model directory (e.g. a judge that loop_accuracy.py trained) is measured as it is: a later
iteration's judge is right more often, which is where adaptive sampling saves most.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from judging_throughput import judging_prompts, model_dir
from selftaught import rejection
from selftaught.rounds import sample_in_rounds


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value: discordant pairs ~ Binomial(b + c, 1/2)."""
    total = only_first + only_second
    if total == 0:
        return 1.0
    low = min(only_first, only_second)
    tail = sum(math.comb(total, i) for i in range(low + 1)) / 2**total
    return min(1.0, 2 * tail)


def two_proportion_p(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """Two-sided p-value of a pooled two-proportion z-test (1.0 when undefined)."""
    if n_a == 0 or n_b == 0:
        return 1.0
    pooled = (hits_a + hits_b) / (n_a + n_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if spread == 0:
        return 1.0
    z = abs(hits_a / n_a - hits_b / n_b) / spread
    return math.erfc(z / math.sqrt(2))


def judge_once(
    engine: Any, conversations: list[Any], winners: list[str], *, n: int, k: int, tokens: int
) -> dict[str, Any]:
    """One judging pass: samples, tokens, wall time, and which pairs were kept (and where)."""
    settings = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": tokens}

    def generate(batch: list[int], size: int, seed: int) -> tuple[list[list[str]], int]:
        out = engine.generate([conversations[i] for i in batch], n=size, seed=seed, **settings)
        return out, engine.last_generated_tokens

    def keepable(index: int, texts: list[str]) -> bool:
        position: rejection.Position = "A" if winners[index] == "A" else "B"
        return any(rejection.classify(t, position) == "kept" for t in texts)

    started = time.perf_counter()
    drawn = sample_in_rounds(
        list(range(len(conversations))),
        generate=generate,
        done=keepable,
        budget=n,
        round_size=k,
        seed=0,
    )
    seconds = time.perf_counter() - started
    kept = [i for i, texts in enumerate(drawn.samples) if keepable(i, texts)]
    counts = [
        sum(rejection.classify(t, "A" if winners[i] == "A" else "B") == "kept" for t in texts)
        for i, texts in enumerate(drawn.samples)
    ]
    return {
        "keepable_counts": counts,
        "drawn": drawn.drawn,
        "tokens": drawn.tokens,
        "rounds": drawn.rounds,
        "seconds": round(seconds, 2),
        "kept": kept,
    }


def cap_tradeoff(counts: list[int], n: int) -> list[dict[str, float]]:
    """What giving up on a pair after ``cap`` draws would save and lose (expected values).

    ``counts`` is each pair's number of keepable judgments among ``n`` fixed draws, so
    ``counts[i] / n`` is a plug-in estimate of pair i's chance per draw. Adaptive sampling with a
    cap keeps pair i with probability ``1 - (1-p)^cap`` at ``sum_{j<cap} (1-p)^j`` expected
    draws; fixed sampling keeps it with ``1 - (1-p)^n`` at n draws. The pairs a cap loses are
    all lost the same way (kept by fixed, not by the capped run), so McNemar's exact p for
    ``lost`` discordant pairs is ``2 * 0.5^lost``: how detectable the change of kept set is.
    """
    fixed_kept = sum(1 - (1 - c / n) ** n for c in counts)
    rows = []
    for cap in range(1, n + 1):
        draws = sum(sum((1 - c / n) ** j for j in range(cap)) for c in counts)
        kept = sum(1 - (1 - c / n) ** cap for c in counts)
        lost = fixed_kept - kept
        rows.append(
            {
                "cap": cap,
                "saving": round((len(counts) * n / fixed_kept) / (draws / kept), 2),
                "expected_kept": round(kept, 1),
                "expected_lost": round(lost, 1),
                "mcnemar_p_if_lost": round(min(1.0, 2 * 0.5 ** round(lost)), 6),
            }
        )
    return rows


def compare(name: str, args: argparse.Namespace, cache: Path) -> list[dict[str, Any]]:
    from selftaught.engines.transformers import TransformersEngine

    path = Path(name) if Path(name).is_dir() else model_dir(name, cache)
    engine = TransformersEngine(path, seed=0, device=args.device)
    conversations = judging_prompts(args.prompts)
    winners = ["A" if i % 2 == 0 else "B" for i in range(len(conversations))]
    settings = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": args.max_new_tokens}
    engine.generate(conversations[:2], n=2, seed=99, **settings)  # warm-up
    modes = [("fixed", args.samples)] + [(f"adaptive k={k}", k) for k in args.round_sizes]
    rows, baseline = [], None
    for mode, k in modes:
        result = judge_once(
            engine, conversations, winners, n=args.samples, k=k, tokens=args.max_new_tokens
        )
        kept = set(result.pop("kept"))
        counts = result.pop("keepable_counts")
        if mode == "fixed" and args.cap_curve:
            hist = {c: counts.count(c) for c in sorted(set(counts))}
            print(json.dumps({"model": name, "keepable_per_pair": hist}), flush=True)
            for cap_row in cap_tradeoff(counts, args.samples):
                print(json.dumps({"model": name, **cap_row}), flush=True)
        kept_a = sum(1 for i in kept if winners[i] == "A")
        row: dict[str, Any] = {"model": name, "mode": mode, "pairs": len(conversations)}
        row.update(result)
        row["pairs_kept"] = len(kept)
        row["kept_winner_a"], row["kept_winner_b"] = kept_a, len(kept) - kept_a
        row["tokens_per_kept"] = round(result["tokens"] / len(kept), 1) if kept else None
        row["ms_per_kept"] = round(1000 * result["seconds"] / len(kept), 2) if kept else None
        if baseline is None:
            baseline = (kept, kept_a, result["tokens"])
        else:
            base_kept, base_a, base_tokens = baseline
            row["mcnemar_p"] = round(mcnemar_exact(len(base_kept - kept), len(kept - base_kept)), 4)
            row["position_p"] = round(
                two_proportion_p(base_a, len(base_kept), kept_a, len(kept)), 4
            )
            if kept and base_kept:
                base_per_kept = base_tokens / len(base_kept)
                row["token_saving"] = round(base_per_kept / (result["tokens"] / len(kept)), 2)
        row["load_average"] = round(os.getloadavg()[0], 2)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--models", nargs="+", default=["tiny", "wide"], help="tiny, wide or a model directory"
    )
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--samples", type=int, default=15, help="N judgments per pair")
    parser.add_argument("--round-sizes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="tiny model, 16 prompts, N=4")
    parser.add_argument(
        "--cap-curve",
        action="store_true",
        help="also print what giving up on a pair after c draws would save and lose",
    )
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.quick:
        args.models, args.prompts, args.samples, args.round_sizes = ["tiny"], 16, 4, [1]
    cache = args.cache or Path(
        os.environ.get("SELFTAUGHT_CACHE") or Path(tempfile.gettempdir()) / "selftaught-bench-cache"
    )
    rows = [row for name in args.models for row in compare(name, args, cache)]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
