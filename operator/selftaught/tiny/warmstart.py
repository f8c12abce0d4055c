"""The tiny seed judge's warm start: the sub-skills first, then judgments on part of the domain.

Why two phases (measured on a prototype): a tiny model trained on judgments directly learns to
guess the verdict from surface features and stays near chance. Taught first the pieces a
judgment is made of, across the whole domain (answer a problem, rewrite it into a similar one,
label its category, check one candidate, and *restate* a judging prompt: list the candidates
and copy the problem, with loss on that prefix only), it is then shown full judgments for the
operations in :data:`~selftaught.tiny.task.SEEN_OPS` only, some with no right candidate (the
judgment says "none" and gives no verdict).

Why the restating: without it the judging context had only ever seen ``add`` and ``max`` copied
after the candidate list, and the seed rewrote ``min`` as ``max`` there (copy accuracy ~50 %),
so its unseen judgments computed the wrong operation and were below chance. With it the copy is
~99 % right on every operation and what is left to learn on the unseen ones is the judgment's
own step (solving in context and naming the matching candidate), which the loop can teach.
Why the "none" judgments: without them a judge whose computed value matches neither candidate
still names one, and half of those guesses are right: "lucky" verdicts that contradict their
own reasoning, which rejection sampling would keep and SFT would then teach.

This is a plain torch loop rather than TRL: it runs at build time, has no checkpoints or
schedule worth configuring, and is 3-4x faster for ~0.5 M parameters.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selftaught import prompts
from selftaught.tiny.task import (
    OPS,
    SEEN_OPS,
    Problem,
    chat_instruction,
    check_text,
    judgment_text,
    random_problem,
    similar_problem,
)

#: A conversation, the assistant's text, and whether that text is whole (ends with the end
#: token). A partial one is a prefix of a longer completion: loss on it only, no end token.
Example = tuple[list[dict[str, str]], str, bool]


@dataclass(frozen=True)
class WarmStartPlan:
    """How long each phase trains. Defaults: ~30 s on 2 idle cores for the default shape."""

    skill_steps: int = 500
    judge_steps: int = 400
    batch_size: int = 64
    learning_rate: float = 3e-3
    #: Share of phase-2 batches that replay phase-1 sub-skills (so they are not forgotten).
    replay: float = 0.5
    #: Share of phase-1 examples that restate a pair in the judging context (partial loss).
    restate: float = 0.15
    #: Share of phase-2 judgments whose candidates are both wrong ("none", no verdict).
    neither: float = 0.15
    #: Share of phase-2 judgments whose wrong candidate is a random digit, not x's answer.
    random_loser: float = 0.0


def skill_example(rng: random.Random, restate: float = 0.0) -> Example:
    """One phase-1 example: answer, rewrite, label, check or restate, over the whole domain."""
    if rng.random() < restate:
        return restate_example(rng, random_problem(rng))
    kind = rng.random()
    if kind < 0.08:
        return prompts.category_prompt("compact", chat_instruction(rng)), "chat", True
    problem = random_problem(rng)
    if kind < 0.2:
        return prompts.category_prompt("compact", problem.text), OPS[problem.op], True
    if kind < 0.5:
        return prompts.answer_prompt("compact", problem.text), problem.answer, True
    if kind < 0.65:
        return prompts.similar_prompt("compact", problem.text), similar_problem(problem).text, True
    candidate = problem.answer if rng.random() < 0.5 else similar_problem(problem).answer
    return prompts.check_prompt(problem.text, candidate), check_text(problem, candidate), True


def restate_example(rng: random.Random, problem: Problem) -> Example:
    """The judging prompt with only the judgment's listing and problem copy as target."""
    conversation, text, _ = judgment_example(rng, problem)
    return conversation, text[: text.index(" = ")], False


def judgment_example(
    rng: random.Random, problem: Problem, neither: bool = False, random_loser: bool = False
) -> Example:
    """A labelled pairwise judgment, winner in A or B with equal odds."""
    loser = similar_problem(problem).answer
    winner = problem.answer
    if random_loser:
        loser = rng.choice([str(d) for d in range(10) if str(d) != problem.answer])
    if neither:
        wrong = [str(d) for d in range(10) if str(d) not in (problem.answer, loser)]
        winner = rng.choice(wrong)
    a, b = (winner, loser) if rng.random() < 0.5 else (loser, winner)
    return prompts.judge_prompt("compact", problem.text, a, b), judgment_text(problem, a, b), True


def judge_phase_example(rng: random.Random, plan: WarmStartPlan) -> Example:
    if rng.random() < plan.replay:
        return skill_example(rng, plan.restate)
    problem = seen_problem(rng)
    return judgment_example(
        rng, problem, rng.random() < plan.neither, rng.random() < plan.random_loser
    )


def seen_problem(rng: random.Random) -> Problem:
    while True:
        problem = random_problem(rng)
        if problem.part == "seen":
            return problem


class Encoder:
    """Token ids and labels (-100 on the prompt), exactly as TRL masks prompt/completion data.

    The chat template is rendered once around placeholders and then filled in with plain
    string formatting, and each batch is tokenised in one call: rendering the Jinja template
    per example took a fifth of the warm start's time (the Rust tokenizer is called directly: the
    Python wrapper around it costs 4x the tokenisation itself).
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        user, reply = "\x00USER\x00", "\x00REPLY\x00"
        rendered: str = tokenizer.apply_chat_template(
            [{"role": "user", "content": user}, {"role": "assistant", "content": reply}],
            tokenize=False,
        )
        prompt: str = tokenizer.apply_chat_template(
            [{"role": "user", "content": user}], add_generation_prompt=True, tokenize=False
        )
        if not rendered.startswith(prompt):
            raise ValueError("the chat template does not render the prompt as a prefix")
        self.prompt_template = prompt.replace(user, "{user}")
        self.full_template = rendered.replace(user, "{user}").replace(reply, "{reply}")

    def __call__(self, examples: list[Example]) -> list[tuple[list[int], list[int]]]:
        prompts_ = [self.prompt_template.format(user=c[-1]["content"]) for c, _, _ in examples]
        fulls = [
            self.full_template.format(user=c[-1]["content"], reply=text) for c, text, _ in examples
        ]
        encoded = self.tokenizer.backend_tokenizer.encode_batch(
            prompts_ + fulls, add_special_tokens=False
        )
        ids = [e.ids for e in encoded]
        rows = []
        for (_, _, whole), prompt_ids, full in zip(
            examples, ids[: len(examples)], ids[len(examples) :], strict=True
        ):
            full = list(full) if whole else list(full[:-1])
            rows.append((full, [-100] * len(prompt_ids) + full[len(prompt_ids) :]))
        return rows


def batches(tokenizer: Any, examples: Iterator[Example], size: int) -> Iterator[dict[str, Any]]:
    import torch

    encode = Encoder(tokenizer)
    while True:
        rows = encode([next(examples) for _ in range(size)])
        width = max(len(ids) for ids, _ in rows)
        pad = tokenizer.pad_token_id
        yield {
            "input_ids": torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows]),
            "attention_mask": torch.tensor(
                [[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows]
            ),
            "labels": torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows]),
        }


def warm_start(model_dir: Path, *, seed: int, plan: WarmStartPlan | None = None) -> float:
    """Train the model in ``model_dir`` in place; returns the final phase's mean loss."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    plan = plan or WarmStartPlan()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.train()
    torch.manual_seed(seed)
    rng = random.Random(f"warm-start-{seed}")
    skills = iter(lambda: skill_example(rng, plan.restate), None)
    judged = iter(lambda: judge_phase_example(rng, plan), None)
    total = plan.skill_steps + plan.judge_steps
    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / 50) * max(0.05, 1 - step / total)
    )
    losses: list[float] = []
    phases = [(skills, plan.skill_steps), (judged, plan.judge_steps)]
    for examples, steps in phases:
        losses = []
        for _, batch in zip(
            range(steps), batches(tokenizer, examples, plan.batch_size), strict=False
        ):
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
    model.eval()  # type: ignore[no-untyped-call]
    model.save_pretrained(model_dir)
    return sum(losses[-20:]) / max(1, len(losses[-20:]))
