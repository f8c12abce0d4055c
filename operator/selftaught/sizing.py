"""Does each stage of a run fit its GPUs? The capacity check, from a spec. Pure, no I/O.

:mod:`selftaught.capacity` does the arithmetic on small dataclasses; this module reads a
:class:`~selftaught.api.RunSpec` into them, compares each estimate with the stage's card
(:mod:`selftaught.gpus`) and, for a stage that does not fit, re-runs the estimate with the knobs
a user would turn (more nodes, offload, LoRA, tensor parallel) to name the ones that would fix it.

It runs in two places: ``selftaught plan MANIFEST`` (which reads config.json) and the planner,
before the first Job, when the spec carries ``modelArchitecture`` (the operator never reads
model storage).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from selftaught import capacity
from selftaught.api import RunSpec, StageResources
from selftaught.capacity import Architecture, Estimate, GenerateSetup, TrainSetup
from selftaught.gpus import GIB, PRODUCT_LABEL, Card, card_of, parse_quantity
from selftaught.phases import Stage

#: Tokens allowed for an instruction in a prompt, with the chat template around it. Longer
#: prompts are skipped and counted by the prompt-length budget, so they do not size the cache.
INSTRUCTION_TOKENS = 512
#: Tokens the select stage generates per instruction (a category label; stages/select.py).
SELECT_NEW_TOKENS = 8
#: The LoRA rank a fix suggestion assumes (the spec's default).
SUGGESTED_LORA_RANK = 16
#: Largest tensor-parallel degree suggested: one node's NVLink domain.
MAX_TENSOR_PARALLEL = 8
#: Largest node count suggested for training.
MAX_NODES = 64

FITS, DOES_NOT_FIT, UNKNOWN_CARD, NOT_CHECKED = "fits", "does not fit", "unknown card", "CPU"


@dataclass
class StageFit:
    """One stage's verdict: the estimate, the card, and what would fix a misfit."""

    stage: Stage
    gpus: int
    setup: str
    estimate: Estimate
    card: Card | None
    verdict: str
    why: str
    fixes: list[str] = field(default_factory=list)

    @property
    def budget_bytes(self) -> int | None:
        if self.card is None:
            return None
        return int(self.card.memory_bytes * self.estimate.budget_share)

    def as_dict(self) -> dict[str, Any]:
        """The machine-readable row (``selftaught plan --json``); bytes, not rounded GiB."""
        return {
            "stage": self.stage.value,
            "gpus": self.gpus,
            "setup": self.setup,
            "estimateBytes": self.estimate.total,
            "parts": dict(self.estimate.parts),
            "hostBytes": self.estimate.host_bytes,
            "card": self.card.name if self.card else None,
            "cardBytes": self.card.memory_bytes if self.card else None,
            "budgetBytes": self.budget_bytes,
            "verdict": self.verdict,
            "why": self.why,
            "fixes": self.fixes,
        }


def gib(n: int | float) -> str:
    return f"{n / GIB:.1f} GiB"


def train_setup(spec: RunSpec) -> TrainSetup:
    """The train stage's setup as the train stage will run it: ``training.sharding.strategy``
    ``auto`` shards fully when the stage has more than one rank (gpus x nodes), ``full``
    always, ``none`` never; ``offloadOptimizer`` is FSDP2's CPU offload (parameters, gradients
    and optimizer state in host memory)."""
    res = spec.stages.train
    ranks = max(1, res.gpus) * res.nodes
    strategy = spec.training.sharding.strategy
    offload = spec.training.sharding.offload_optimizer
    lora = spec.training.lora
    return TrainSetup(
        ranks=ranks,
        sharded=strategy == "full" or (strategy == "auto" and ranks > 1),
        offload=offload,
        lora_rank=lora.rank if lora.enabled else None,
        max_length=spec.training.max_length,
        micro_batch=spec.training.micro_batch_size,
    )


def sequence_tokens(spec: RunSpec, stage: Stage, arch: Architecture) -> int:
    """Longest prompt + answer a generation stage must hold, capped at the model's context.

    pairs: an instruction (and, for the loser, the winner's answer) plus its answer; judge and
    evaluate: the instruction, two answers and the judgment (evaluation sets' answers are
    assumed no longer than the run's own).
    """
    answers = 2 * spec.pairs.max_new_tokens
    tokens = {
        Stage.SELECT: INSTRUCTION_TOKENS + SELECT_NEW_TOKENS,
        Stage.PAIRS: INSTRUCTION_TOKENS + answers,
        Stage.JUDGE: INSTRUCTION_TOKENS + answers + spec.judging.max_new_tokens,
        Stage.EVALUATE: INSTRUCTION_TOKENS + answers + spec.evaluation.max_new_tokens,
    }[stage]
    return min(tokens, arch.max_position_embeddings or tokens)


def _fits(estimate: Estimate, card: Card) -> bool:
    return estimate.total <= card.memory_bytes * estimate.budget_share


def _train_fixes(
    arch: Architecture, setup: TrainSetup, res: StageResources, card: Card
) -> list[str]:
    fixes = []
    per_node = max(1, res.gpus)
    for nodes in range(res.nodes + 1, MAX_NODES + 1):
        more = dataclasses.replace(setup, ranks=per_node * nodes, sharded=True)
        if _fits(capacity.estimate_training(arch, more), card):
            fixes.append(f"stages.train.nodes: {nodes}")
            break
    if not setup.offload:
        offload = dataclasses.replace(setup, sharded=True, offload=True)
        if _fits(capacity.estimate_training(arch, offload), card):
            fixes.append("training.sharding.offloadOptimizer: true")
    if setup.lora_rank is None:
        lora = dataclasses.replace(setup, lora_rank=SUGGESTED_LORA_RANK)
        if _fits(capacity.estimate_training(arch, lora), card):
            fixes.append("training.lora.enabled: true")
    return fixes


def _generate_fixes(
    arch: Architecture, setup: GenerateSetup, stage: Stage, res: StageResources, card: Card
) -> list[str]:
    tp = 1 if setup.engine != "vllm" else setup.tensor_parallel
    for wider in (2, 4, 8, 16):
        if wider <= tp or (wider > MAX_TENSOR_PARALLEL and wider > res.gpus):
            continue
        more = GenerateSetup("vllm", wider, setup.sequence_tokens)
        if _fits(capacity.estimate_generation(arch, more), card):
            gpus_part = "" if wider <= res.gpus else f"gpus: {wider}, "
            engine = "" if setup.engine == "vllm" else "engine: vllm, "
            return [f"stages.{stage.value}: {{{engine}{gpus_part}tensorParallel: {wider}}}"]
    return []


def check_stage(spec: RunSpec, stage: Stage, arch: Architecture) -> StageFit:
    """Estimate one stage and judge it against its card."""
    res = spec.stages.of(stage)
    card = card_of(
        node_selector=res.node_selector,
        gpu_memory=res.gpu_memory,
        field=f"spec.stages.{stage.value}.gpuMemory",
    )
    if stage is Stage.TRAIN:
        train = train_setup(spec)
        estimate = capacity.estimate_training(arch, train)
        mode = "LoRA" if train.lora_rank is not None else "full"
        shard = "sharded" if train.sharded else "unsharded"
        shard += " + offload" if train.offload and train.sharded else ""
        setup = f"{res.gpus} GPUs x {res.nodes} nodes, {mode} fine-tuning, {shard}"
        setup += f", {train.max_length} tokens x {train.micro_batch}"
    else:
        generate = GenerateSetup(
            res.engine, res.tensor_parallel, sequence_tokens(spec, stage, arch)
        )
        estimate = capacity.estimate_generation(arch, generate)
        setup = f"{res.engine}, TP {res.tensor_parallel}, {generate.sequence_tokens} tokens"
    fit = StageFit(stage, res.gpus, setup, estimate, card, FITS, "")
    if res.gpus == 0:
        fit.verdict, fit.why = NOT_CHECKED, "runs on CPU; GPU memory not checked"
        return fit
    if card is None:
        fit.verdict = UNKNOWN_CARD
        fit.why = (
            f"set spec.stages.{stage.value}.gpuMemory (e.g. 80Gi) or a known "
            f"nodeSelector {PRODUCT_LABEL}"
        )
        return fit
    budget = int(card.memory_bytes * estimate.budget_share)
    limit = f"{card.name}'s {gib(card.memory_bytes)}"
    if estimate.budget_share < 1:  # vLLM: the share it may take
        limit = f"{gib(budget)} ({estimate.budget_share:.0%} of {limit})"
    if estimate.total <= budget:
        fit.why = f"{gib(estimate.total)} of {limit}"
        return _check_host(fit, res, stage)
    largest = max(estimate.parts, key=lambda k: estimate.parts[k])
    fit.verdict = DOES_NOT_FIT
    fit.why = (
        f"{gib(estimate.total)} > {limit}; largest part: {largest} {gib(estimate.parts[largest])}"
    )
    if stage is Stage.TRAIN:
        fit.fixes = _train_fixes(arch, train_setup(spec), res, card)
    else:
        fit.fixes = _generate_fixes(arch, generate, stage, res, card)
    return fit


def _check_host(fit: StageFit, res: StageResources, stage: Stage) -> StageFit:
    """Offloaded state lives in the pod's memory: every rank of the pod keeps its shard."""
    if not fit.estimate.host_bytes:
        return fit
    try:
        pod = parse_quantity(res.memory, field=f"spec.stages.{stage.value}.memory")
    except ValueError:
        return fit
    needed = fit.estimate.host_bytes * max(1, res.gpus)
    if needed > pod:
        fit.verdict = DOES_NOT_FIT
        fit.why = (
            f"offloaded state needs {gib(needed)} of host memory per pod > memory {res.memory}"
        )
        fit.fixes = [f"stages.{stage.value}.memory: {int(needed * 1.25 / GIB) + 1}Gi"]
    return fit


def check(spec: RunSpec, arch: Architecture) -> list[StageFit]:
    """Every stage of the run, in the order it runs them."""
    return [check_stage(spec, stage, arch) for stage in Stage]


def architecture_of(spec: RunSpec) -> Architecture | None:
    """The architecture the spec carries (``spec.modelArchitecture``), if any."""
    known = spec.model_architecture
    if known is None:
        return None
    return Architecture(**known.model_dump())


def message(fit: StageFit) -> str:
    """One line for a condition or an error: the stage, the estimate, the card and the fix."""
    text = f"stage {fit.stage.value} does not fit its GPUs ({fit.setup}): {fit.why}"
    if fit.fixes:
        text += "; it would fit with " + " or ".join(fit.fixes)
    return text


def refusal(spec: RunSpec) -> str | None:
    """Why the planner must refuse the run before its first Job, or None.

    Only when the spec carries ``modelArchitecture``: without it nothing is known and nothing
    is refused (``selftaught plan`` reads config.json and checks then).
    """
    arch = architecture_of(spec)
    if arch is None:
        return None
    for fit in check(spec, arch):
        if fit.verdict == DOES_NOT_FIT:
            return message(fit)
    return None
