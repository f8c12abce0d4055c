"""The built-in task (``builtin://arithmetic``): small problems whose better answer is checkable.

Why this domain: the self-taught loop only works when the seed judge's reasoning actually drives
its verdict. A 2-layer model cannot follow an English argument, but it can compute ``max 3 4 1 0``
and look up which candidate holds the result. So each problem is a one-line instruction over
single-digit numbers, and a judgment is *list the candidates, restate the problem, solve, name
the matching candidate, verdict*: the reasoning decides the verdict in a way a tiny model can
learn and the loop can amplify.

The domain has four operations in two checkable categories (``math``: add, sub; ``list``: max,
min) plus a ``chat`` distractor that selection must filter out. The warm start labels judgments
only for the operations in :data:`SEEN_OPS`; on the others (:data:`UNSEEN_OPS`) it teaches the
sub-skills (answer, check one candidate, only on a corner of them, and judge from a *given*
value) but never solving them in a judgment nor which answer wins, so the loop's gain there is
measurable.

Why the benchmark selects only ``list``: ``math`` has 110 distinct problems (sums and differences
of two digits within 0-9), so after deduplication a 20 % held-out split holds ~20 of them, and
RewardBench-style scoring (the mean of per-section scores) would weigh those ~20 as much as the
~200 ``list`` examples: one example would move the headline number by 2-3 points. ``list`` has
10^4 problems per operation.

Everything is deterministic from a seed; nothing here imports torch.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Literal

from selftaught import builtin

#: Operations and the category the seed model learns to label them with.
OPS: dict[str, str] = {"add": "math", "sub": "math", "max": "list", "min": "list"}
#: Operations whose pairwise judgments the warm start labels.
SEEN_OPS: frozenset[str] = frozenset({"add", "max"})
#: Operations the warm start never judges: the loop has to teach itself these.
UNSEEN_OPS: frozenset[str] = frozenset(OPS) - SEEN_OPS
#: Every category label the seed model knows (chat is the distractor).
CATEGORIES: tuple[str, ...] = ("math", "list", "chat")
#: How many numbers each operation takes.
ARITY: dict[str, int] = {"add": 2, "sub": 2, "max": 4, "min": 4}

_NAMES = ("ada", "bob", "eve", "kim", "max", "sam", "zoe", "lee")
_WORDS = ("cat", "sun", "sea", "tree", "rain", "bird", "fish", "moon")
_CHAT_TEMPLATES = ("greet {name}", "say {word} to {name}", "tell {name} a {word} joke")

Part = Literal["seen", "unseen"]


@dataclass(frozen=True)
class Problem:
    """One instruction of the domain: an operation over single-digit numbers."""

    op: str
    args: tuple[int, ...]

    @property
    def text(self) -> str:
        return " ".join([self.op, *map(str, self.args)])

    @property
    def answer(self) -> str:
        return solve(self.op, self.args)

    @property
    def part(self) -> Part:
        return "seen" if self.op in SEEN_OPS else "unseen"


def solve(op: str, args: tuple[int, ...]) -> str:
    """The correct answer: always one number, so checking it is a one-token comparison."""
    if op == "add":
        return str(args[0] + args[1])
    if op == "sub":
        return str(args[0] - args[1])
    if op == "max":
        return str(max(args))
    if op == "min":
        return str(min(args))
    raise ValueError(f"unknown operation {op!r}")


def random_problem(rng: random.Random, op: str | None = None) -> Problem:
    op = op or rng.choice(sorted(OPS))
    args = tuple(rng.randint(0, 9) for _ in range(ARITY[op]))
    if op == "sub" and args[0] < args[1]:
        args = (args[1], args[0])
    if op == "add" and sum(args) > 9:
        args = (args[0], rng.randint(0, 9 - args[0]))
    return Problem(op, args)


def similar_problem(problem: Problem) -> Problem:
    """x': a close variant whose answer differs (for all but degenerate inputs).

    Deterministic, so a greedy generator can learn it: sums and differences move their last
    number by one, ``max`` and ``min`` swap into each other. The warm start teaches this
    rewrite; at run time the model itself writes x', and sometimes gets it wrong.
    """
    op, args = problem.op, problem.args
    if op in ("max", "min"):
        return Problem("min" if op == "max" else "max", args)
    a, b = args
    if op == "add":
        return Problem(op, (a, b + 1) if a + b < 9 else ((a, b - 1) if b else (a - 1, b)))
    return Problem(op, (a, b + 1) if b < a else ((a, b - 1) if b else (a + 1, b)))


def _valid(op: str, args: tuple[int, ...]) -> bool:
    """Every answer is one digit: sums stay below 10, differences are not negative."""
    return not (op == "sub" and args[0] < args[1]) and not (op == "add" and sum(args) > 9)


def chat_instruction(rng: random.Random) -> str:
    template = rng.choice(_CHAT_TEMPLATES)
    return template.format(name=rng.choice(_NAMES), word=rng.choice(_WORDS))


def parse_problem(text: str) -> Problem | None:
    """The problem an instruction states, or None (chat, garbled model output)."""
    parts = text.strip().split()
    if not parts or parts[0] not in OPS or len(parts) != ARITY[parts[0]] + 1:
        return None
    if not all(p.isdigit() and len(p) == 1 for p in parts[1:]):
        return None
    args = tuple(int(p) for p in parts[1:])
    if not _valid(parts[0], args):
        return None
    return Problem(parts[0], args)


def category_of(text: str) -> str:
    problem = parse_problem(text)
    return OPS[problem.op] if problem else "chat"


def part_of(instruction: str) -> Part | None:
    """Which side of the warm start's split an instruction falls on (None: not a problem)."""
    problem = parse_problem(instruction)
    return problem.part if problem else None


def instruction_pool(*, seed: int, size: int, chat_fraction: float = 0.2) -> list[str]:
    """The built-in unlabeled pool: problems of every operation plus chat distractors.

    Duplicates are possible on purpose (the domain is small), so deduplication has work to do.
    """
    rng = random.Random(f"pool-{seed}")
    pool = []
    for _ in range(size):
        if rng.random() < chat_fraction:
            pool.append(chat_instruction(rng))
        else:
            pool.append(random_problem(rng).text)
    return pool


# ----------------------------------------------------------------------------- judgments
#
# A compact judgment lists the candidates as "value label", restates the problem, solves it,
# then names the label that follows the same value in the list ("= 10 A"), then the verdict:
#
#     10 A . 12 B . add 8 2 = 10 A . [[A]]
#
# Naming the label is a look-back for the earlier occurrence of the just-computed token, the
# one pattern a two-layer transformer learns reliably (an induction head). Comparing tokens
# directly ("A 10 ok") stayed near chance in a prototype. When no candidate holds the computed
# value the judgment says "none" and gives no verdict (an unparsable judgment is never kept),
# so a judge that solved a problem wrongly has no lucky guess to be rewarded for.
#
# Measured on seeds: a look-back taught only on ``max`` (where the winner is always the larger
# listed value) partly learns "name the larger value" instead of a match, and on ``min`` names
# the wrong label after computing the right answer; the warm start therefore practises the
# look-back on every operation, from a given value (see :mod:`selftaught.tiny.warmstart`).

_LISTED = re.compile(r"(\S+) ([AB]) \. (\S+) ([AB]) \.")
_SOLVED = re.compile(r"= (\S+) (A|B|none)\b")


def listing(answer_a: str, answer_b: str) -> str:
    return f"{answer_a.strip()} A . {answer_b.strip()} B ."


def match_label(problem: Problem, answer_a: str, answer_b: str) -> str:
    if answer_a.strip() == problem.answer:
        return "A"
    if answer_b.strip() == problem.answer:
        return "B"
    return "none"


def judgment_text(problem: Problem, answer_a: str, answer_b: str) -> str:
    """A correct compact judgment (the warm start's labelled part; later ones are sampled)."""
    label = match_label(problem, answer_a, answer_b)
    verdict = f" . [[{label}]]" if label != "none" else ""
    return f"{listing(answer_a, answer_b)} {problem.text} = {problem.answer} {label}{verdict}"


def check_text(problem: Problem, candidate: str) -> str:
    """The checking sub-skill: list one candidate, solve, name it if it matches (no verdict)."""
    label = "A" if candidate.strip() == problem.answer else "none"
    return f"{candidate.strip()} A . {problem.text} = {problem.answer} {label}"


def implied_verdict(judgment: str) -> Literal["A", "B"] | None:
    """The verdict a compact judgment's own reasoning implies, or None.

    It is the label whose listed value equals the judge's computed answer. Comparing it with
    the stated verdict measures whether the reasoning drives the verdict.
    """
    listed, solved = _LISTED.search(judgment), _SOLVED.search(judgment)
    if not listed or not solved:
        return None
    values = {listed.group(2): listed.group(1), listed.group(4): listed.group(3)}
    matches = [label for label, value in values.items() if value == solved.group(1)]
    if len(matches) != 1:
        return None
    return "A" if matches[0] == "A" else "B"


def corpus(*, seed: int, size: int = 3000) -> list[str]:
    """Text covering the domain's vocabulary, for training the tokenizer."""
    rng = random.Random(f"corpus-{seed}")
    texts = [" ".join(CATEGORIES), " ".join(OPS), "[[A]] [[B]] none . = | A: B:"]
    for _ in range(size):
        problem = random_problem(rng)
        other = similar_problem(problem)
        texts.append(f" judge: {problem.text} | A: {problem.answer} | B: {other.answer}")
        texts.append(" " + judgment_text(problem, problem.answer, other.answer))
        texts.append(f" answer: {problem.text} similar: {other.text} check: category: ")
        texts.append(f" {OPS[problem.op]} category: {chat_instruction(rng)} chat")
    return texts


builtin.register(
    builtin.BuiltinTask(
        name="arithmetic",
        pool=instruction_pool,
        categories=CATEGORIES,
        part_of=part_of,
        implied_verdict=implied_verdict,
    )
)
