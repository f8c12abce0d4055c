"""The SelfTaughtRun API: spec and status types, defaults and validation.

These pydantic models are the single source of truth for the custom resource. The CRD in
``crds/`` is generated from them (``selftaught crd``), and a test proves the committed file
equals the generated one, so the Python types, the schema Kubernetes enforces and the text
``kubectl explain`` shows can never drift apart. Descriptions are written for the user who
reads them through ``kubectl explain``: they explain the method, not the code.

Cross-field rules live in two places on purpose: as portable CEL (``x-kubernetes-validations``)
so the API server rejects a bad manifest at ``kubectl apply``, and as the same rule in Python
(:func:`check_rules`), so the embedded runner rejects it with the same message.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

from selftaught import kubegrammar as k8s
from selftaught.phases import Phase, Stage
from selftaught.summaries import SetScores

GROUP = "selftaught.dev"
VERSION = "v1alpha1"
KIND = "SelfTaughtRun"
PLURAL = "selftaughtruns"
SINGULAR = "selftaughtrun"
SHORT_NAMES = ["str", "strun"]
CATEGORIES = ["selftaught", "ml"]
API_VERSION = f"{GROUP}/{VERSION}"

#: A non-negative Kubernetes quantity (cpu: "500m", memory: "16Gi"); see :mod:`kubegrammar`.
QUANTITY_PATTERN = k8s.QUANTITY
#: s3://bucket/prefix or file:///absolute/path.
STORAGE_URI_PATTERN = r"^(s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?|file:///.*)$"
#: Paths a claim may not be mounted at (or under): the worker's own scratch and the kernel's.
RESERVED_MOUNT_PATHS = ("/tmp", "/dev", "/proc", "/sys")
#: Longest run name: a DNS-1123 label, so that every child name derived from it is valid.
MAX_RUN_NAME = k8s.DNS1123_LABEL_MAX


def _quantity_text(value: Any) -> Any:
    """``cpu: 4`` (an integer, as Kubernetes accepts it) read as the quantity "4"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


#: A resource quantity, integer or string on the wire (``x-kubernetes-int-or-string``).
Quantity = Annotated[
    str,
    Field(
        pattern=k8s.QUANTITY,
        json_schema_extra={"x-kubernetes-int-or-string": True, "minimum": 0},
    ),
    BeforeValidator(_quantity_text),
]
#: A name of another object in the namespace (Secret, PVC, ServiceAccount, PriorityClass).
ObjectName = Annotated[
    str, Field(min_length=1, max_length=k8s.DNS1123_SUBDOMAIN_MAX, pattern=k8s.DNS1123_SUBDOMAIN)
]
#: A container image reference.
Image = Annotated[str, Field(min_length=1, max_length=4096, pattern=k8s.IMAGE)]
#: A label value (node selector values, Kueue's queue label).
LabelValue = Annotated[str, Field(max_length=k8s.LABEL_VALUE_MAX, pattern=k8s.LABEL_VALUE)]


def cel_string(text: str) -> str:
    """``text`` as a CEL string literal (regexes keep their backslashes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


#: A template file: s3://bucket/key, file:///path or configmap://<ConfigMap name>/<key> (a key
#: of a ConfigMap in the run's namespace, mounted into the stage's pods), with an optional
#: #name (MT-Bench's JSONL).
TEMPLATE_URI_PATTERN = (
    r"^(s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/[^#]+|file:///[^#]+"
    r"|configmap://[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
    r"/[-._a-zA-Z0-9]+)(#[^#]+)?$"
)
#: How every template field's description names its sources.
TEMPLATE_SOURCES = (
    "s3:// or file:// URI, or configmap://<name>/<key> (a key of a ConfigMap in the run's "
    "namespace: the operator checks it before the run starts and mounts it into the pods), of "
    "a YAML/JSON file with 'user' and optional 'system' parts, or of MT-Bench's "
    "judge_prompts.jsonl with '#<name>'"
)


def cel(rule: str, message: str, *, field_path: str | None = None) -> dict[str, JsonValue]:
    """One ``x-kubernetes-validations`` entry; ``fieldPath`` names the field in the error."""
    entry: dict[str, JsonValue] = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


#: The CEL transition rule that marks a field immutable; :func:`immutable_paths` finds it.
IMMUTABLE_RULE = "self == oldSelf"


def immutable(name: str) -> dict[str, Any]:
    """Schema extra for a field that must not change once the run has started.

    The marker is the one source of the immutable-field list: the API server enforces it as CEL,
    and :func:`immutable_paths` walks the models for it so the planner fences the same fields.
    """
    return {"x-kubernetes-validations": [cel(IMMUTABLE_RULE, f"{name} is immutable")]}


def _is_immutable(extra: Any) -> bool:
    rules = extra.get("x-kubernetes-validations", []) if isinstance(extra, dict) else []
    return any(isinstance(r, dict) and r.get("rule") == IMMUTABLE_RULE for r in rules)


class Model(BaseModel):
    """Base: camelCase on the wire, unknown fields rejected (as the API server's strict mode)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def dump(self) -> dict[str, Any]:
        """The wire form: camelCase keys, no unset optionals."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --------------------------------------------------------------------------------------- spec


class SecretKeyRef(Model):
    """A key of a Secret in the run's namespace."""

    name: ObjectName = Field(description="Name of the Secret (a DNS-1123 subdomain).")
    key: str = Field(
        description="Key within the Secret: letters, digits, '-', '_' and '.'; not '.' and not "
        "starting with '..'.",
        min_length=1,
        max_length=k8s.SECRET_KEY_MAX,
        pattern=k8s.SECRET_KEY,
    )


class S3Settings(Model):
    """How workers reach an S3-compatible store. The operator itself never reads credentials."""

    endpoint: str | None = Field(
        default=None,
        description="Endpoint URL of an S3-compatible store (MinIO, SeaweedFS, Ceph). "
        "Leave empty for AWS S3.",
        max_length=2048,
    )
    region: str = Field(default="us-east-1", description="Region name passed to the S3 client.")
    access_key_id: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the access key id, injected into workers as "
        "AWS_ACCESS_KEY_ID. Leave empty to use the pod's identity (IRSA, workload identity).",
    )
    secret_access_key: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the secret access key (AWS_SECRET_ACCESS_KEY).",
    )
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto",
        description="Bucket addressing. Most self-hosted stores need 'path'.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.accessKeyId) == has(self.secretAccessKey)",
                    "accessKeyId and secretAccessKey must be given together",
                )
            ]
        }
    )


class VolumeClaim(Model):
    """A PersistentVolumeClaim that holds the artifacts (for file:// storage on a cluster)."""

    claim_name: ObjectName = Field(
        description="Name of the PVC (ReadWriteMany when stages share it)."
    )
    mount_path: str = Field(
        default="/artifacts",
        description="Where the claim is mounted in every worker; the storage URI's path must "
        "lie under it. Absolute, without '.' or '..' segments, and not /, /tmp (the worker's "
        "scratch), /dev, /proc, /sys or under them.",
        pattern=r"^/.*",
        max_length=4096,
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"!self.mountPath.matches({cel_string(k8s.NO_DOT_SEGMENTS)})",
                    "mountPath must not contain '.' or '..' segments",
                    field_path=".mountPath",
                ),
                cel(
                    "self.mountPath != '/' && !self.mountPath.matches("
                    + cel_string("^(" + "|".join(RESERVED_MOUNT_PATHS) + ")(/|$)")
                    + ")",
                    "mountPath must not be /, "
                    + ", ".join(RESERVED_MOUNT_PATHS)
                    + " or under them (the worker's scratch and the kernel's file systems)",
                    field_path=".mountPath",
                ),
            ]
        }
    )


class StorageSpec(Model):
    """Where artifacts (instructions, pairs, judgments, models, scores) live.

    Layout: <uri>/<namespace>/<run>/iteration-<i>/<stage>/. Each stage writes under a temporary
    key and commits last, so a half-written stage is never mistaken for a finished one.
    """

    uri: str = Field(
        description="Artifact root: s3://bucket/prefix or file:///path (a PVC or a local disk).",
        pattern=STORAGE_URI_PATTERN,
        max_length=2048,
    )
    s3: S3Settings | None = Field(
        default=None,
        description=(
            "How workers reach an S3-compatible store: endpoint, region, addressing and Secret "
            "references for the keys (default: AWS S3 with the pod's own credentials)."
        ),
    )
    volume_claim: VolumeClaim | None = Field(
        default=None, description="PVC mounted into every worker, for file:// storage."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.s3) || self.uri.startsWith('s3://')",
                    "s3 settings need an s3:// uri",
                    field_path=".s3",
                ),
                cel(
                    "!has(self.volumeClaim) || self.uri.startsWith('file://')",
                    "volumeClaim needs a file:// uri",
                    field_path=".volumeClaim",
                ),
                cel(
                    f"!self.uri.matches({cel_string(k8s.NO_DOT_SEGMENTS)})",
                    "uri must not contain '.' or '..' path segments",
                    field_path=".uri",
                ),
                cel(
                    "!self.uri.matches(" + cel_string(r"^s3://[^/]*(\.\.|\.-|-\.)") + ")",
                    "an S3 bucket name must not contain '..', '.-' or '-.'",
                    field_path=".uri",
                ),
                cel(
                    "!self.uri.matches("
                    + cel_string(r"^s3://[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+(/|$)")
                    + ")",
                    "an S3 bucket name must not be formatted as an IP address",
                    field_path=".uri",
                ),
                cel(
                    "!self.uri.startsWith('s3://xn--')",
                    "an S3 bucket name must not start with 'xn--'",
                    field_path=".uri",
                ),
            ]
        }
    )


class InstructionsSpec(Model):
    """Step 1 of the method: pick instructions from an unlabeled pool.

    The current model labels each instruction's category; the run keeps the requested
    categories, removes duplicates and caps the count. The paper kept ~20k WildChat prompts of
    the 'reasoning' category.
    """

    source: str = Field(
        description="JSONL file of instructions (s3://, file://) or builtin://arithmetic, the "
        "built-in task whose better answer is checkable. Bad lines are counted and reported "
        "with their line numbers, not fatal.",
        min_length=1,
        max_length=2048,
    )
    format: Literal["jsonl", "mtbench"] = Field(
        default="jsonl",
        description="Shape of each line. jsonl: one instruction per line under 'field' (with "
        "optional categoryField and referenceField). mtbench: MT-Bench's question.jsonl "
        "('question_id', 'category', 'turns'): the first turn is the instruction and its "
        "'category' is used as is (no model labelling); referenceSource adds reference answers.",
    )
    field: str = Field(
        default="instruction",
        description="JSON key that holds the instruction text in each line (format jsonl).",
        min_length=1,
        max_length=256,
    )
    category_field: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="JSON key that already holds each instruction's category (format jsonl): "
        "the model does not label the pool, and categories are compared with 'categories' "
        "case-insensitively. A line without a string there is a bad line.",
    )
    reference_field: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="JSON key that holds a reference answer (format jsonl): rows that have one "
        "carry it to their pairs, and judge and evaluate judge them reference-guided "
        "(judging.referenceTemplate, e.g. MT-Bench's '#pair-math-v1'). Optional per line.",
    )
    reference_source: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="Format mtbench: MT-Bench's reference answer file (s3://, file://; e.g. "
        "reference_answer/gpt-4.jsonl), joined to the questions by 'question_id'; the first "
        "turn of its first choice is the reference.",
    )
    label_template: str | None = Field(
        default=None,
        pattern=TEMPLATE_URI_PATTERN,
        max_length=2048,
        description="A labelling prompt of your own instead of the built-in one (select, when "
        f"the model labels the categories): {TEMPLATE_SOURCES}. Placeholders: {{instruction}} "
        "(required) and {categories} (the names the reply is matched against, comma "
        "separated). Checked before any stage runs where it is readable (file:// by selftaught "
        "plan/run, configmap:// by the operator), else when select starts.",
    )
    label_model: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="Model that labels the categories when the pool carries none (same forms "
        "as seedModel). The paper labelled with a different model (Mixtral) than the judge; "
        "default: the seed model.",
    )
    categories: list[Annotated[str, Field(min_length=1, max_length=63)]] = Field(
        default_factory=lambda: ["reasoning"],
        description="Categories to keep, as labelled by the model (coding, math, reasoning, "
        "safety, chat, other).",
        min_length=1,
        max_length=16,
    )
    max_instructions: int = Field(
        default=20000,
        ge=1,
        le=10_000_000,
        description="Cap on kept instructions, after filtering and deduplication.",
    )
    deduplicate: bool = Field(
        default=True, description="Drop instructions whose normalised text repeats."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.referenceSource) || self.format == 'mtbench'",
                    "referenceSource needs format mtbench (a jsonl pool names its reference "
                    "answers with referenceField)",
                    field_path=".referenceSource",
                ),
                cel(
                    "self.format != 'mtbench' || "
                    "(!has(self.referenceField) && !has(self.categoryField))",
                    "format mtbench reads 'turns', 'category' and referenceSource; "
                    "categoryField and referenceField are for format jsonl",
                    field_path=".format",
                ),
            ]
        }
    )


class PairsSpec(Model):
    """Step 2: contrasting pairs built once per run, with the winner known by construction.

    For instruction x the generator answers x (the winner); it then writes a similar but
    different instruction x' and answers that: a good answer to the wrong question, the loser.
    """

    max_new_tokens: int = Field(
        default=1024, ge=1, le=32768, description="Token limit of each generated text."
    )
    temperature: float = Field(
        default=0.7, ge=0.0, le=2.0, description="Sampling temperature for generation."
    )
    top_p: float = Field(
        default=0.9,
        gt=0.0,
        le=1.0,
        description=(
            "Nucleus (top-p) sampling: sample only from the smallest set of tokens whose "
            "probability adds up to this fraction (0-1]; 1 disables it."
        ),
    )
    template: str | None = Field(
        default=None,
        pattern=TEMPLATE_URI_PATTERN,
        max_length=2048,
        description="A prompt of your own for writing the similar-but-different instruction "
        "(whose answer becomes the losing response), instead of the built-in one: "
        f"{TEMPLATE_SOURCES}. Placeholder: {{instruction}} (required). Checked before any "
        "stage runs where it is readable (file:// by selftaught plan/run, configmap:// by the "
        "operator), else when pairs starts.",
    )


class JudgingSpec(Model):
    """Step 3, every iteration: the current judge judges each pair N times (rejection sampling).

    Each pair becomes a pairwise prompt (question, answer A, answer B; reasoning first, verdict
    last as [[A]] or [[B]]). Judgments whose verdict matches the known winner are kept; one is
    picked at random per pair; pairs with no correct judgment are dropped.
    """

    samples_per_pair: int = Field(
        default=15, ge=1, le=256, description="Judgments sampled per pair (paper: 15)."
    )
    temperature: float = Field(
        default=0.7, ge=0.0, le=2.0, description="Sampling temperature (paper: 0.7)."
    )
    top_p: float = Field(default=0.9, gt=0.0, le=1.0, description="Nucleus mass (paper: 0.9).")
    max_new_tokens: int = Field(
        default=1024, ge=1, le=32768, description="Token limit of one judgment."
    )
    balance_positions: bool = Field(
        default=True,
        description="Put the winner in position A for half the pairs and B for the other half, "
        "so the judge cannot learn a position bias. This balances the prompts, before "
        "rejection sampling: a judge that favours one position still keeps more judgments for "
        "it (see bothOrders).",
    )
    template: str | None = Field(
        default=None,
        pattern=TEMPLATE_URI_PATTERN,
        max_length=2048,
        description="A judging prompt of your own instead of the built-in one, used by judge "
        f"and evaluate (and select's context-fit check): {TEMPLATE_SOURCES} (e.g. '#pair-v2', "
        "the prompt Meta's release used). Placeholders: {question}, {answer_a}, {answer_b} "
        "(all required) and {reference}. An unknown or missing placeholder fails the run "
        "naming this field: before any stage runs where the file is readable (file:// by "
        "selftaught plan/run, configmap:// by the operator), else when the stage starts.",
    )
    reference_template: str | None = Field(
        default=None,
        pattern=TEMPLATE_URI_PATTERN,
        max_length=2048,
        description="Template for rows that carry a reference answer (reference-guided "
        "judging, as MT-Bench's '#pair-math-v1'); same forms as template, must use "
        "{reference}. Without it such rows use the built-in reference-guided prompt.",
    )
    both_orders: bool = Field(
        default=False,
        description="Judge every pair in both orders (winner as A and as B, samplesPerPair "
        "judgments each), as Meta's release does, then balance what is kept: per pair the "
        "kept judgment's order is chosen so that kept A-better and B-better judgments are "
        "equal after rejection sampling, dropping the surplus of the favoured position when "
        "no choice can even them out. Default false because it doubles the judging compute; "
        "turn it on when the judge shows a position bias (evaluation's positionConsistency "
        "well below 1, or the judge summary's keptWinnerA/keptWinnerB apart). Judgments naming "
        "both verdicts or a tie ([[C]]) are never kept, whatever this setting.",
    )
    sampling: Literal["fixed", "adaptive"] = Field(
        default="fixed",
        description="How the samplesPerPair judgments are drawn. 'fixed' (the paper): all N "
        "for every pair (and order) in one batch. 'adaptive': rounds of roundSize samples for "
        "the pairs that have no keepable judgment yet, until each has one or has drawn "
        "samplesPerPair; the same judgments are keepable and one is kept per pair. Samples are "
        "independent, so the first correct judgment is distributed like a random correct one "
        "among N and the same pairs end without one: the kept data is the same in "
        "distribution at a fraction of the generated tokens (docs/benchmarks.md measures it). "
        "Default fixed, the paper's procedure: over ten paired seeds adaptive's accuracy "
        "gains showed no detectable difference (mean -0.020, 95 % CI -0.066..+0.025) at "
        "2.1-3.2x fewer judging tokens, which bounds but does not rule out a small loss.",
    )
    round_size: int = Field(
        default=1,
        ge=1,
        le=256,
        description="sampling: adaptive only: judgments drawn per pair in each round (one "
        "engine call per round over the pairs still open). Default 1: measured on the tiny "
        "judge (N=15, 512 pairs) it drew the fewest tokens (105.6 per kept judgment against "
        "121.6 for 2 and 148.6 for 4) and was also fastest; a larger round trades tokens for "
        "fewer calls, each of which waits for its longest judgment (at most N rounds).",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.temperature > 0.0 || self.samplesPerPair == 1",
                    "samplesPerPair > 1 needs temperature > 0 (greedy samples are identical)",
                    field_path=".samplesPerPair",
                )
            ]
        }
    )


class LoraSpec(Model):
    """Low-rank adapters: cheaper training; merged before saving so the next judge is plain."""

    enabled: bool = Field(default=False, description="Train LoRA adapters instead of all weights.")
    rank: int = Field(
        default=16,
        ge=1,
        le=1024,
        description=(
            "LoRA rank r: the inner dimension of each low-rank adapter; higher trains more "
            "parameters."
        ),
    )
    alpha: int = Field(
        default=32,
        ge=1,
        le=4096,
        description="LoRA alpha: adapters' output is scaled by alpha/rank.",
    )
    dropout: float = Field(
        default=0.05,
        ge=0.0,
        lt=1.0,
        description="Dropout probability (0-1) on the adapters' input during training.",
    )


class ShardingSpec(Model):
    """How the train stage spreads the model over its ranks (gpus x nodes processes).

    Full sharding (FSDP2 through accelerate) splits parameters, gradients and optimizer states
    evenly over all ranks, so a model too large for one GPU trains on several; without it every
    rank holds a whole replica (data parallel, DDP). Master weights and optimizer states are
    fp32 either way; compute is bf16 on GPUs.
    """

    strategy: Literal["auto", "full", "none"] = Field(
        default="auto",
        description="auto: full sharding whenever the stage has more than one rank, else a "
        "single replica; full: always shard parameters, gradients and optimizer states "
        "(FSDP2) over all ranks, even one (which still gets FSDP's CPU offload and per-layer "
        "activation checkpointing); none: one full replica per rank (DDP), only for models "
        "that fit one GPU with their optimizer state.",
    )
    offload_optimizer: bool = Field(
        default=False,
        description="Keep the sharded fp32 master weights, gradients and AdamW states in host "
        "memory and step the optimizer on the CPU (FSDP2 CPU offload); the GPUs then hold only "
        "the bf16 layers being computed and the activations. Slower; needs host memory of about "
        "16 bytes per parameter / nodes per pod. Ignored without sharding and on CPUs.",
    )
    activation_checkpointing: bool = Field(
        default=True,
        description="Recompute each decoder layer's activations in the backward pass instead of "
        "keeping them: activation memory per GPU drops from all layers to about one, for ~30 % "
        "more compute.",
    )


#: TRL 1.16 ``DPOConfig.loss_type`` values usable alone (``DPOTrainer`` implements each).
DpoLossType = Literal[
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sigmoid_norm",
]


class DpoSpec(Model):
    """Direct preference optimisation on judgments (TRL ``DPOTrainer``): per pair, a correct
    judgment is preferred over an incorrect one for the same judging prompt.

    The reference model is the model training starts from (``initFrom``: the seed, or the
    previous judge), frozen; with LoRA it is the base with the adapters switched off.
    """

    beta: float = Field(
        default=0.1,
        gt=0.0,
        le=100.0,
        description="How far the judge may move from the reference model: higher beta keeps it "
        "closer (TRL's default 0.1). For lossType ipo it is IPO's regulariser tau.",
    )
    loss_type: DpoLossType = Field(
        default="sigmoid",
        description="TRL DPOTrainer's loss: sigmoid (the DPO paper), hinge (SLiC), ipo, "
        "exo_pair, nca_pair, robust (noisy preferences, with labelSmoothing), bco_pair, "
        "sppo_hard, aot, aot_unpaired, apo_zero, apo_down, discopop, sigmoid_norm "
        "(length-normalised). See TRL's DPOConfig for each.",
    )
    label_smoothing: float = Field(
        default=0.0,
        ge=0.0,
        lt=0.5,
        description="Assumed probability that a preference is flipped (robust DPO) or EXO's "
        "epsilon; only for lossType robust or exo_pair. The labels here are known by "
        "construction, so 0 is the natural value.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.labelSmoothing == 0.0 || self.lossType in ['robust', 'exo_pair']",
                    "labelSmoothing applies only to lossType robust or exo_pair",
                    field_path=".labelSmoothing",
                )
            ]
        }
    )


class TrainingSpec(Model):
    """Step 4: fine-tuning of the next judge on the kept judgments (TRL SFT, or DPO).

    With SFT the loss covers the judgment tokens only; with DPO the judge learns to prefer a
    correct judgment over an incorrect one for the same prompt. The paper restarted from the
    seed model every iteration (it worked better), with lr 1e-6, a cosine schedule, 100 warm-up
    steps and at most two epochs.
    """

    method: Literal["sft", "dpo"] = Field(
        default="sft",
        description="sft: supervised fine-tuning on one correct judgment per pair (the paper); "
        "dpo: direct preference optimisation on (correct, incorrect) judgment pairs for the "
        "same prompt, the second recipe of Meta's release. With dpo the judge stage keeps only "
        "pairs that got both a correct and an incorrect judgment.",
    )
    dpo: DpoSpec | None = Field(
        default=None,
        description="DPO settings (beta, lossType, labelSmoothing); only with method dpo, "
        "where an absent block means TRL's defaults (sigmoid loss, beta 0.1).",
    )
    init_from: Literal["seed", "previous"] = Field(
        default="seed",
        description="Start each iteration's training from the seed model (paper) or from the "
        "previous iteration's judge.",
    )
    learning_rate: float = Field(
        default=1e-6,
        gt=0.0,
        le=1.0,
        description="Peak learning rate, reached after the warm-up steps (the paper: 1e-6).",
    )
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field(
        default="cosine", description="Learning-rate schedule after warm-up."
    )
    warmup_steps: int = Field(
        default=100,
        ge=0,
        le=1_000_000,
        description=(
            "Optimizer steps over which the learning rate rises linearly from 0 to its peak."
        ),
    )
    epochs: float = Field(
        default=2.0, gt=0.0, le=10.0, description="Passes over the kept judgments (paper: <= 2)."
    )
    batch_size: int = Field(
        default=16,
        ge=1,
        le=4096,
        description="Global batch size: a multiple of microBatchSize, and batchSize / "
        "microBatchSize a multiple of the train stage's processes (gpus x nodes).",
    )
    micro_batch_size: int = Field(
        default=1, ge=1, le=4096, description="Per-device batch; the rest is accumulation."
    )
    max_length: int = Field(
        default=4096, ge=64, le=131072, description="Longest training sequence in tokens."
    )
    lora: LoraSpec = Field(
        default_factory=LoraSpec,
        description=(
            "Low-rank adapters (LoRA): train small adapter matrices instead of all weights; off by"
            " default."
        ),
    )
    sharding: ShardingSpec = Field(
        default_factory=ShardingSpec,
        description="Sharded training (FSDP) over the stage's GPUs and nodes, CPU offload, "
        "activation checkpointing.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.microBatchSize <= self.batchSize",
                    "microBatchSize must not exceed batchSize",
                    field_path=".microBatchSize",
                ),
                # Gradient accumulation is batchSize / microBatchSize (per process): a remainder
                # would silently train with a smaller batch than the one asked for.
                cel(
                    "self.batchSize % self.microBatchSize == 0",
                    "batchSize must be a multiple of microBatchSize (the global batch is "
                    "microBatchSize x processes x accumulation steps)",
                    field_path=".microBatchSize",
                ),
                cel(
                    "!has(self.dpo) || self.method == 'dpo'",
                    "training.dpo applies only with training.method dpo",
                    field_path=".dpo",
                ),
            ]
        }
    )

    def dpo_settings(self) -> DpoSpec:
        """The DPO settings in force: the block, or its defaults when it is absent."""
        return self.dpo or DpoSpec()


class EvalDataset(Model):
    """A pairwise evaluation set in RewardBench's format: prompt, chosen, rejected, subset."""

    name: str = Field(
        description="Short name, used as the key of its scores in the status.",
        pattern=r"^[a-z0-9]([a-z0-9_\-]{0,30}[a-z0-9])?$",
    )
    uri: str = Field(description="JSONL file (s3:// or file://).", min_length=1, max_length=2048)
    scoring: Literal["official", "lenient"] = Field(
        default="official",
        description="official: RewardBench's generative scoring, so scores compare with "
        "published ones (a judgment is A if it contains [[A]], else B if it contains [[B]], "
        "else unparsable = 0.5; [[C]] is a tie = 0.5; majority votes count unparsable samples "
        "as votes; sections weighted by RewardBench's EXAMPLE_COUNTS). lenient: this "
        "project's parser (the last [[A]]/[[B]] counts, spaces allowed, unparsable samples "
        "abstain), as used for the held-out synthetic pairs; never a RewardBench number.",
    )


class EvaluationSpec(Model):
    """Step 5: measure each judge, the seed included (iteration 0 is the baseline).

    Scored the way RewardBench scores a generative judge: the A/B order is swapped at random per
    example with a fixed seed, an unparsable verdict counts 0.5, sections are Chat, Chat Hard,
    Safety and Reasoning. Position consistency (both orders agree) is reported too.
    """

    held_out_fraction: float = Field(
        default=0.05,
        gt=0.0,
        lt=1.0,
        description="Fraction of the selected instructions kept out of training, whose pairs "
        "measure held-out accuracy. Immutable: it decides which data the run builds.",
        json_schema_extra=immutable("heldOutFraction"),
    )
    datasets: list[EvalDataset] = Field(
        default_factory=list,
        description="Extra evaluation sets (RewardBench format).",
        max_length=32,
    )
    majority_vote: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Judgments sampled per example; the most frequent outcome counts (paper: "
        "32 gave 88.7 on RewardBench). Any count works: in official scoring an unparsable "
        "sample is a vote for neither answer, and a tie of the vote scores the mean of the tied "
        "outcomes (an even A/B split is 0.5, RewardBench's expected value). Samples use "
        "voteTemperature and voteTopP when above 1.",
    )
    vote_temperature: float = Field(
        default=0.7,
        ge=0.0,
        le=2.0,
        description="Sampling temperature of majority-vote samples (majorityVote > 1; must be "
        "> 0 then). Default 0.7, the paper's judging temperature.",
    )
    vote_top_p: float = Field(
        default=0.9,
        gt=0.0,
        le=1.0,
        description="Nucleus mass of majority-vote samples (majorityVote > 1). Default 0.9, the "
        "paper's judging top-p.",
    )
    max_new_tokens: int = Field(
        default=1024, ge=1, le=32768, description="Token limit of one judgment."
    )
    temperature: float = Field(
        default=0.0,
        ge=0.0,
        le=2.0,
        description="Sampling temperature of the single judgment per example (majorityVote "
        "1; top-p 1.0); 0 means greedy. Majority votes use voteTemperature.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.majorityVote == 1 || self.voteTemperature > 0.0",
                    "majorityVote > 1 needs voteTemperature > 0 (greedy samples are identical)",
                    field_path=".majorityVote",
                ),
                cel(
                    "self.datasets.all(d, self.datasets.exists_one(e, e.name == d.name))",
                    "dataset names must be unique",
                    field_path=".datasets",
                ),
            ]
        }
    )


class EarlyStopSpec(Model):
    """Stop iterating when the judge stops improving."""

    patience: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Stop after this many iterations without improvement; 0 disables.",
    )
    min_improvement: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Accuracy gain (0-1) over the best so far that counts as improvement.",
    )
    metric: str = Field(
        default="heldout",
        description="Evaluation set whose overall accuracy decides improvement and the best "
        "iteration: 'heldout' or the name of an entry of evaluation.datasets.",
        min_length=1,
    )


class Toleration(Model):
    """A Kubernetes toleration (core/v1 Toleration)."""

    key: str | None = Field(
        default=None,
        description="Key of the node taint this tolerates (a qualified name, like a label key); "
        "empty with operator Exists tolerates every taint.",
        max_length=317,
        pattern=f"^$|{k8s.QUALIFIED_NAME}",
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None,
        description="Exists (any value of the key) or Equal (the value must match); default Equal.",
    )
    value: LabelValue | None = Field(
        default=None,
        description="Value of the taint to match when the operator is Equal (a label value); must "
        "be empty with Exists.",
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None,
        description=(
            "Taint effect to tolerate (NoSchedule, PreferNoSchedule, NoExecute); empty tolerates "
            "all effects."
        ),
    )
    toleration_seconds: int | None = Field(
        default=None, description="How long a NoExecute taint is tolerated."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.key) || !self.key.matches("
                    + cel_string(k8s.QUALIFIED_NAME_LONG_PREFIX)
                    + ")",
                    "key: prefix part must be no more than 253 characters",
                    field_path=".key",
                ),
                cel(
                    "(has(self.key) && self.key != '') || "
                    "(has(self.operator) && self.operator == 'Exists')",
                    'operator must be Exists when `key` is empty, which means "match all values '
                    'and all keys"',
                    field_path=".operator",
                ),
                cel(
                    "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || "
                    "self.value == ''",
                    "value must be empty when `operator` is 'Exists'",
                    field_path=".value",
                ),
                cel(
                    "!has(self.tolerationSeconds) || (has(self.effect) && "
                    "self.effect == 'NoExecute')",
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                    field_path=".effect",
                ),
            ]
        }
    )


class Placement(Model):
    """Where pods may run: the scheduling fields a stage's Jobs and the judge server share."""

    node_selector: dict[str, LabelValue] = Field(
        default_factory=dict,
        description="Node labels the pods must match: keys are label keys (an optional "
        "DNS-subdomain prefix and '/', then at most 63 characters), values label values.",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"self.all(k, k.matches({cel_string(k8s.QUALIFIED_NAME)}) && "
                    f"!k.matches({cel_string(k8s.QUALIFIED_NAME_LONG_PREFIX)}))",
                    f"every key must be a label key: {k8s.QUALIFIED_NAME_MESSAGE}",
                )
            ]
        },
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, description="Taints the pods tolerate (GPU nodes usually have one)."
    )
    affinity: dict[str, Any] | None = Field(
        default=None,
        description="core/v1 Affinity, passed through to the pods unchanged.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    priority_class_name: ObjectName | None = Field(
        default=None,
        description="PriorityClass name of the pods (scheduling order and preemption; a "
        "DNS-1123 subdomain).",
    )


class Compute(Placement):
    """What each pod gets (a stage's or the judge server's): GPUs, CPU, memory, engine."""

    gpus: int = Field(
        default=1,
        ge=0,
        le=64,
        description="GPUs (nvidia.com/gpu) requested per pod; 0 runs on CPU.",
    )

    cpu: Quantity = Field(
        default="4", description="CPU request per pod: a quantity ('500m', '4' or 4)."
    )

    memory: Quantity = Field(
        default="32Gi", description="Memory request and limit per pod: a quantity ('16Gi')."
    )

    engine: Literal["vllm", "transformers"] = Field(
        default="vllm",
        description="Generation engine: vllm (GPU, production) or transformers (CPU or one GPU).",
    )

    tensor_parallel: int = Field(
        default=1, ge=1, le=64, description="GPUs one model replica spans (vLLM)."
    )

    threads: int | None = Field(
        default=None, ge=1, le=512, description="Torch CPU threads; default: the CPU request."
    )

    image: Image | None = Field(
        default=None, description="Image of these pods; default: spec.worker.image."
    )

    def torch_threads(self) -> int:
        """CPU threads for torch and OpenMP: ``threads`` if set, else the CPU request rounded
        half-up, at least 1 ("4" -> 4, "2500m" -> 3, "500m" -> 1).

        One rule for both sides of the pod: the Job's ``OMP_NUM_THREADS`` and the worker's
        ``torch.set_num_threads``. Half-up, not down: the request is not a limit (Jobs set no
        CPU limit, so no CFS quota throttles the extra thread), and a 2.5-core request with 2
        threads would leave half a core idle. A quantity this cannot read gives 1.
        """
        if self.threads:
            return int(self.threads)
        text = self.cpu.strip()
        try:
            cores = float(text[:-1]) / 1000.0 if text.endswith("m") else float(text)
            return max(1, int(cores + 0.5))
        except (ValueError, OverflowError):  # OverflowError: '1E400' reads as infinity
            return 1


#: The rules every :class:`Compute` holds (each subclass adds its own to its schema's list).
COMPUTE_RULES = [
    cel(
        "self.engine != 'vllm' || self.gpus >= 1",
        "engine vllm needs gpus >= 1",
        field_path=".engine",
    ),
    cel(
        "self.engine != 'vllm' || self.tensorParallel <= self.gpus",
        "tensorParallel must not exceed gpus",
        field_path=".tensorParallel",
    ),
]


class StageResources(Compute):
    """Where and how one stage's pods run."""

    shards: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="Pods that split the items (Indexed Job). Only pairs and judge shard.",
    )
    nodes: int = Field(
        default=1, ge=1, le=256, description="Nodes for training (torchrun over an Indexed Job)."
    )
    queue_name: str | None = Field(
        default=None,
        description="Kueue LocalQueue (a DNS-1123 subdomain of at most 63 characters, since it "
        "is also a label value). When set, Jobs carry kueue.x-k8s.io/queue-name and are "
        "created suspended for Kueue to admit.",
        min_length=1,
        max_length=k8s.LABEL_VALUE_MAX,
        pattern=k8s.DNS1123_SUBDOMAIN,
    )
    max_retries: int = Field(
        default=2,
        ge=0,
        le=20,
        description="Retries of a failed attempt (evictions and preemptions do not count).",
    )
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, description="Wall-clock limit of one attempt."
    )
    gpu_memory: str | None = Field(
        default=None,
        pattern=QUANTITY_PATTERN,
        description="Memory of one of this stage's GPUs (e.g. 80Gi), for the capacity check. "
        "Empty: looked up from nodeSelector's nvidia.com/gpu.product label in the operator's "
        "table of NVIDIA cards. Set it for a card the table lacks, a MIG slice or a vGPU.",
    )
    pending_timeout_seconds: int = Field(
        default=1800,
        ge=10,
        le=604800,
        description="How long an attempt may sit unschedulable, unable to pull its image or "
        "unadmitted by Kueue before it is deleted and counted as a failed attempt.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                *COMPUTE_RULES,
                cel(
                    "self.nodes == 1 || self.gpus >= 1",
                    "multi-node training needs gpus >= 1",
                    field_path=".nodes",
                ),
            ]
        }
    )

    def pods(self, stage: Stage | str) -> int:
        """Pods one attempt of ``stage`` runs: ``shards`` for the stages that shard (pairs,
        judge), ``nodes`` for training, 1 otherwise.

        The one rule behind the Job's completions, the GPU-seconds the planner records and the
        GPU-seconds the metrics count, so the three can never disagree.
        """
        stage = Stage(stage)
        if stage.shardable:
            return self.shards
        return self.nodes if stage is Stage.TRAIN else 1


class ModelArchitecture(Model):
    """The seed model's architecture numbers, as in its config.json, for the capacity check.

    The operator never reads model storage, so it can check that every stage fits its GPUs
    before the first Job only when the spec carries these numbers. ``selftaught plan MANIFEST
    --write FILE`` fills them in from the model's config.json; without them the check runs only in
    ``selftaught plan``.
    """

    vocab_size: int = Field(ge=1, description="config.json vocab_size.")
    hidden_size: int = Field(ge=1, description="config.json hidden_size.")
    intermediate_size: int = Field(ge=1, description="config.json intermediate_size (MLP).")
    num_hidden_layers: int = Field(ge=1, description="config.json num_hidden_layers.")
    num_attention_heads: int = Field(ge=1, description="config.json num_attention_heads.")
    num_key_value_heads: int = Field(
        ge=1, description="config.json num_key_value_heads (grouped-query attention)."
    )
    tie_word_embeddings: bool = Field(
        default=False, description="config.json tie_word_embeddings (LM head shares weights)."
    )
    head_dim: int | None = Field(
        default=None, ge=1, description="config.json head_dim; empty: hiddenSize / heads."
    )
    attention_bias: bool = Field(
        default=False, description="config.json attention_bias (biases on q, k, v)."
    )
    max_position_embeddings: int | None = Field(
        default=None,
        ge=1,
        description="config.json max_position_embeddings: caps the sequence the check sizes "
        "the KV cache for.",
    )


class StagesSpec(Model):
    """Per-stage resources and placement."""

    select: StageResources = Field(
        default_factory=StageResources,
        description=(
            "Resources of the select stage (labels and filters the instruction pool; once per run)."
        ),
    )
    pairs: StageResources = Field(
        default_factory=StageResources,
        description=(
            "Resources of the pairs stage (generates contrasting response pairs; once per run)."
        ),
    )
    judge: StageResources = Field(
        default_factory=StageResources,
        description=(
            "Resources of the judge stage (samples judgments of each pair; every iteration)."
        ),
    )
    train: StageResources = Field(
        default_factory=StageResources,
        description="Resources of the train stage (fine-tunes the next judge; every iteration).",
    )
    evaluate: StageResources = Field(
        default_factory=StageResources,
        description=(
            "Resources of the evaluate stage (scores a judge on held-out and user sets; every "
            "iteration)."
        ),
    )

    def of(self, stage: Stage | str) -> StageResources:
        return getattr(self, Stage(stage).value)  # type: ignore[no-any-return]

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.select.shards == 1", "select does not shard", field_path=".select.shards"
                ),
                cel("self.train.shards == 1", "train does not shard", field_path=".train.shards"),
                cel(
                    "self.evaluate.shards == 1",
                    "evaluate does not shard",
                    field_path=".evaluate.shards",
                ),
            ]
        }
    )


class LocalObjectReference(Model):
    """A reference to an object in the run's namespace by name (core/v1 LocalObjectReference)."""

    name: ObjectName = Field(description="Name of the object (a DNS-1123 subdomain).")


class WorkerSpec(Model):
    """Settings shared by every worker pod."""

    image: Image | None = Field(
        default=None,
        description="Worker image (CUDA, vLLM, TRL) for every stage that names none. Empty: "
        "the operator's default (Helm value workerImage), so upgrading the chart upgrades runs.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent",
        description=(
            "When the kubelet pulls the worker image: Always, IfNotPresent (default) or Never."
        ),
    )
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list,
        description="Image pull Secrets, as a pod lists them: [{name: regcred}].",
        max_length=64,
    )
    service_account_name: ObjectName | None = Field(
        default=None, description="Service account of worker pods (needs no API access)."
    )
    model_cache: str = Field(
        default="/cache",
        description="Directory for model downloads and built-in models inside the pod "
        "(absolute, without '.' or '..' segments).",
        pattern=r"^/.*",
        max_length=4096,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"!self.matches({cel_string(k8s.NO_DOT_SEGMENTS)})",
                    "modelCache must not contain '.' or '..' segments",
                )
            ]
        },
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed for every random choice.")


class ResumeFrom(Model):
    """Restart the loop from a stage; later history is discarded, earlier artifacts are kept."""

    iteration: int = Field(ge=0, le=1000, description="Iteration to resume at.")
    stage: Stage = Field(description="Stage to resume at.")
    request: str | None = Field(
        default=None,
        max_length=63,
        description="Any text that makes this request new: each distinct iteration/stage/request "
        "is applied once, so change it (a timestamp, as `kubectl selftaught retry` writes) to "
        "re-run a position that was already resumed from.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.iteration == 0 ? self.stage in ['select', 'pairs', 'evaluate'] "
                    ": self.stage in ['judge', 'train', 'evaluate']",
                    "iteration 0 has select, pairs, evaluate; later iterations judge, train, "
                    "evaluate",
                    field_path=".stage",
                )
            ]
        }
    )


class ServeSpec(Compute):
    """Serve the run's best judge behind an OpenAI-compatible HTTP API.

    ``engine: vllm`` runs ``vllm serve``; ``transformers`` the project's own OpenAI-compatible
    server (CPU or one GPU: small judges and tests). When set, the operator owns a Deployment
    and a ClusterIP Service (both named ``<run>-judge``) running the judge server on
    ``status.bestModel``. A new best iteration rolls the Deployment to it once, a ready new
    replica first, so the endpoint never goes down. Removing ``serve`` deletes both; deleting
    the run deletes them by owner reference.
    """

    replicas: int = Field(
        default=1, ge=1, le=64, description="Server pods (each one loads the whole model)."
    )
    port: int = Field(
        default=8000,
        ge=1024,
        le=65535,
        description="TCP port the server listens on and the Service exposes (vLLM's default).",
    )
    max_model_len: int | None = Field(
        default=None,
        ge=16,
        le=10_000_000,
        description="Longest prompt plus reply, in tokens (vllm --max-model-len); default: "
        "the model's own context length.",
    )
    extra_args: list[Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=list,
        max_length=64,
        description="Further arguments for vllm serve (e.g. ['--gpu-memory-utilization', "
        "'0.85']), appended as given; not used by the transformers engine.",
    )
    queue_name: str | None = Field(
        default=None,
        description="Kueue LocalQueue (a DNS-1123 subdomain of at most 63 characters): the "
        "Deployment and its pods carry kueue.x-k8s.io/queue-name.",
        min_length=1,
        max_length=k8s.LABEL_VALUE_MAX,
        pattern=k8s.DNS1123_SUBDOMAIN,
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                *COMPUTE_RULES,
                cel(
                    "self.engine == 'vllm' || self.tensorParallel == 1",
                    "tensorParallel needs engine vllm",
                    field_path=".tensorParallel",
                ),
            ]
        }
    )


class RunSpec(Model):
    """A self-taught judge run: the loop of arXiv 2408.02666 as a Kubernetes resource."""

    seed_model: str = Field(
        description="The judge to start from: s3://, file://, a model name resolved by the "
        "worker (HF hub id present in its cache), or builtin://tiny-judge (a tiny CPU model "
        "built on the fly, for tests and the quick start).",
        min_length=1,
        max_length=2048,
        json_schema_extra=immutable("seedModel"),
    )
    storage: StorageSpec | None = Field(
        default=None,
        description="Artifact storage. Required on a cluster; `selftaught run` defaults it to "
        "file:// under its work directory.",
        json_schema_extra=immutable("storage"),
    )
    instructions: InstructionsSpec = Field(
        description=(
            "Where the unlabeled instructions come from, which categories to keep and how many."
        ),
        json_schema_extra=immutable("instructions"),
    )
    pairs: PairsSpec = Field(
        default_factory=PairsSpec,
        description=(
            "How contrasting pairs are generated: sampling settings for the winning and losing "
            "responses."
        ),
        json_schema_extra=immutable("pairs"),
    )
    judging: JudgingSpec = Field(
        default_factory=JudgingSpec,
        description=(
            "How judgments are sampled and filtered: samples per pair, temperature, top-p, length."
        ),
    )
    training: TrainingSpec = Field(
        default_factory=TrainingSpec,
        description=(
            "How each iteration's judge is fine-tuned: starting point, learning rate, schedule, "
            "batch, epochs, LoRA."
        ),
    )
    evaluation: EvaluationSpec = Field(
        default_factory=EvaluationSpec,
        description=(
            "How judges are scored: held-out fraction of synthetic pairs, extra RewardBench-format"
            " sets, votes."
        ),
    )
    iterations: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Self-taught iterations after the seed's baseline (paper: 5). Raising it on "
        "a finished run extends it.",
    )
    early_stop: EarlyStopSpec = Field(
        default_factory=EarlyStopSpec,
        description=(
            "Stop before spec.iterations when accuracy stops improving: metric, patience and "
            "minimum gain."
        ),
    )
    worker: WorkerSpec = Field(
        default_factory=WorkerSpec,
        description=(
            "Settings shared by all stage pods: image, pull policy and secrets, model cache, seed,"
            " service account."
        ),
    )
    stages: StagesSpec = Field(
        default_factory=StagesSpec,
        description=(
            "Per-stage pod resources and placement: GPUs, CPU, memory, shards, nodes, queue, "
            "tolerations."
        ),
    )
    model_architecture: ModelArchitecture | None = Field(
        default=None,
        description="The seed model's config.json numbers; when set, the operator refuses a "
        "run whose stages cannot fit their GPUs before creating any Job.",
    )
    suspend: bool = Field(
        default=False,
        description="Pause at the next stage boundary (running Jobs finish, none start).",
    )
    resume_from: ResumeFrom | None = Field(
        default=None, description="Re-run from this iteration and stage; applied once."
    )
    serve: ServeSpec | None = Field(
        default=None,
        description="Serve the best judge: a Deployment and a Service the operator keeps on "
        "status.bestModel, rolled once per new best. Unset: nothing is served.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.earlyStop.patience < self.iterations",
                    "earlyStop.patience must be smaller than iterations",
                    field_path=".earlyStop.patience",
                ),
                cel(
                    "!has(self.resumeFrom) || self.resumeFrom.iteration <= self.iterations",
                    "resumeFrom.iteration must not exceed iterations",
                    field_path=".resumeFrom.iteration",
                ),
                cel(
                    "self.earlyStop.metric == 'heldout' || "
                    "self.evaluation.datasets.exists(d, d.name == self.earlyStop.metric)",
                    "earlyStop.metric must be 'heldout' or a name in evaluation.datasets",
                    field_path=".earlyStop.metric",
                ),
                cel(
                    "self.iterations >= oldSelf.iterations",
                    "iterations can be raised, not lowered",
                    field_path=".iterations",
                ),
            ]
        }
    )

    def immutable_view(self) -> dict[str, Any]:
        """The immutable fields' wire values by dotted camelCase path ("seedModel",
        "evaluation.heldOutFraction"): what the planner fingerprints once the run has started.

        Derived from the :func:`immutable` markers, so marking a field is the whole change.
        """
        view: dict[str, Any] = {}
        for attributes, path in immutable_paths(RunSpec):
            value: Any = self
            for attribute in attributes:
                value = getattr(value, attribute)
            view[path] = value.dump() if isinstance(value, Model) else value
        return view


def immutable_paths(
    model: type[Model], prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], str]]:
    """Every field under ``model`` that carries the :func:`immutable` marker, in field order:
    (python attribute path, dotted camelCase path). Nested models are walked (heldOutFraction
    lives under evaluation); optional models (``storage``) are marked as a whole."""
    found: list[tuple[tuple[str, ...], str]] = []
    for attribute, info in model.model_fields.items():
        path = (*prefix, attribute)
        if _is_immutable(info.json_schema_extra):
            found.append((path, ".".join(to_camel(p) for p in path)))
        elif isinstance(info.annotation, type) and issubclass(info.annotation, Model):
            found.extend(immutable_paths(info.annotation, path))
    return found


# ------------------------------------------------------------------------------------- status


class Condition(Model):
    """A Kubernetes-style condition."""

    type: str = Field(
        description="Condition type, e.g. Ready, Progressing, Stalled, Suspended, SpecAccepted."
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase machine-readable reason.")
    message: str = Field(default="", description="Human-readable detail of the last transition.")
    observed_generation: int = Field(default=0, description="Spec generation it describes.")
    last_transition_time: str = Field(description="When the status last changed (RFC 3339).")


class IterationRecord(Model):
    """What one iteration did and measured. Iteration 0 is the seed's baseline."""

    iteration: int = Field(
        description=(
            "Iteration number: 0 is the seed judge's baseline, i > 0 the judge trained in "
            "iteration i."
        )
    )
    model: str | None = Field(default=None, description="URI of this iteration's judge.")
    instructions: int | None = Field(
        default=None, description="Iteration 0: instructions selected for training."
    )
    heldout_instructions: int | None = Field(
        default=None, description="Iteration 0: instructions held out for evaluation."
    )
    bad_lines: int | None = Field(
        default=None,
        description="Iteration 0: unreadable lines in the instruction pool (the select Job's "
        "log and termination message list their line numbers).",
    )
    pairs: int | None = Field(
        default=None, description="Contrasting pairs available to judge in this iteration."
    )
    judgments_sampled: int | None = Field(
        default=None,
        description="Judgments sampled in this iteration, across all pairs and rounds.",
    )
    judgments_kept: int | None = Field(
        default=None, description="Pairs with a kept (correct) judgment."
    )
    training_loss: float | None = Field(
        default=None,
        description=(
            "Training loss the train stage reported (SFT: mean cross-entropy per judgment "
            "token; DPO: TRL's preference loss)."
        ),
    )
    method: Literal["sft", "dpo"] | None = Field(
        default=None, description="How this iteration's judge was trained: sft or dpo."
    )
    reward_margin: float | None = Field(
        default=None,
        description="DPO only: mean reward margin (chosen minus rejected, in beta-scaled log "
        "ratios to the reference) on the last training step, as TRL logs it.",
    )
    reward_accuracy: float | None = Field(
        default=None,
        description="DPO only: share of the last training step's pairs whose chosen judgment "
        "has the higher reward, as TRL logs it.",
    )
    scores: dict[str, SetScores] = Field(
        default_factory=dict, description="Evaluation scores by set ('heldout' and datasets)."
    )
    stage_seconds: dict[str, float] = Field(
        default_factory=dict, description="Wall-clock seconds of each finished stage."
    )
    gpu_seconds: float = Field(default=0.0, description="GPU-seconds spent by this iteration.")
    stage_gpu_seconds: dict[str, float] = Field(
        default_factory=dict,
        description="GPU-seconds of each finished stage (wall time x GPUs per pod x pods).",
    )
    judging_tokens: int | None = Field(
        default=None, description="Tokens the judge stage generated (all samples drawn)."
    )
    judging_rounds: int | None = Field(
        default=None,
        description="Engine calls of the judge stage's busiest shard (1 with sampling: fixed).",
    )
    tokens_per_kept: float | None = Field(
        default=None, description="Generated judging tokens per kept judgment."
    )
    gpu_hours_per_point: float | None = Field(
        default=None,
        description="GPU-hours spent by the run up to this iteration per point (percentage "
        "point) of held-out accuracy gained over iteration 0; absent without a gain.",
    )
    started_at: str | None = Field(default=None, description="Start time (RFC 3339).")
    completed_at: str | None = Field(default=None, description="Completion time (RFC 3339).")


class Attempt(Model):
    """The current stage's attempt bookkeeping (retries are fenced by the attempt number)."""

    number: int = Field(default=0, description="Attempt number of the current stage (from 0).")
    failures: int = Field(default=0, description="Failures that consumed the retry budget.")
    disruptions: int = Field(default=0, description="Evictions and preemptions (free retries).")
    not_before: str | None = Field(
        default=None, description="Backoff: the next attempt starts no earlier (RFC 3339)."
    )
    last_failure: str | None = Field(default=None, description="Why the last attempt failed.")


class ServingStatus(Model):
    """What ``spec.serve`` serves now (the Deployment's view, read at each reconcile)."""

    model_uri: str | None = Field(
        default=None, description="URI of the judge the Deployment's template serves."
    )
    iteration: int | None = Field(default=None, description="Iteration of the served judge.")
    endpoint: str | None = Field(
        default=None,
        description="In-cluster OpenAI-compatible base URL: http://<service>.<namespace>.svc:"
        "<port>/v1.",
    )
    service: str | None = Field(default=None, description="Name of the Service (and Deployment).")
    replicas: int = Field(default=0, description="Server pods wanted (spec.serve.replicas).")
    ready_replicas: int = Field(default=0, description="Server pods ready (readiness probe).")
    updated_replicas: int = Field(
        default=0, description="Server pods running the current template (the served judge)."
    )


class RunStatus(Model):
    """What the run has done; the operator's only memory. Read it with kubectl get -o yaml."""

    phase: Phase = Field(
        default=Phase.PENDING,
        description="Coarse state: Pending, Running, Suspended, Succeeded or Failed.",
    )
    stage: Stage | None = Field(
        default=None,
        description="Current (or last) stage; while Suspended, the stage that starts on resume.",
    )
    stage_shown: str | None = Field(
        default=None,
        description="The STAGE printer column: the current stage, or while Suspended where the "
        "run paused ('paused after train'), since stage then names the next one.",
    )
    iteration: int = Field(default=0, description="Current iteration (0 = baseline).")
    iterations: int | None = Field(default=None, description="Iterations planned (spec).")
    progress: str | None = Field(default=None, description="Iteration as i/N, for kubectl get.")
    summary: str | None = Field(
        default=None,
        description="One line for people: position, best judge, GPU-hours (e.g. 'iteration 3/5 "
        "judging, best 0.840 at iteration 2, 1.9 GPU-h'); kubectl get -o wide shows it.",
    )
    attempt: Attempt = Field(default_factory=Attempt, description="Current stage's attempt.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description=(
            "Kubernetes-style conditions (Ready, Progressing, Stalled, ...), each with "
            "observedGeneration."
        ),
    )
    history: list[IterationRecord] = Field(
        default_factory=list, description="One record per iteration, in order."
    )
    best_iteration: int | None = Field(default=None, description="Iteration of the best judge.")
    best_accuracy: float | None = Field(
        default=None, description="Best overall accuracy on earlyStop.metric."
    )
    best_model: str | None = Field(default=None, description="URI of the best judge.")
    children: list[str] = Field(default_factory=list, description="Jobs of the current stage.")
    stage_started_at: str | None = Field(
        default=None, description="When the current stage's first attempt started (RFC 3339)."
    )
    started_at: str | None = Field(default=None, description="Run start (RFC 3339).")
    completed_at: str | None = Field(default=None, description="Run end (RFC 3339).")
    message: str | None = Field(default=None, description="Latest human-readable message.")
    observed_generation: int = Field(default=0, description="Spec generation last acted on.")
    spec_fingerprints: dict[str, str] = Field(
        default_factory=dict,
        description="Hash of each immutable spec field (by path) as it was when the run's first "
        "Job was created; a change to one of them is refused naming that field.",
    )
    spec_fingerprint: str | None = Field(
        default=None,
        description="Deprecated: one hash of all immutable fields, written by operators before "
        "specFingerprints; still honoured for runs started by them.",
    )
    applied_resume_from: str | None = Field(
        default=None, description="The resumeFrom request already applied ('<iteration>/<stage>')."
    )
    serving: ServingStatus | None = Field(
        default=None,
        description="The served judge (spec.serve): model URI, iteration, endpoint, ready "
        "replicas. Absent when nothing is served.",
    )


class SelfTaughtRun(Model):
    """The whole resource, as the planner and the local runner see it."""

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: Literal["SelfTaughtRun"] = "SelfTaughtRun"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: RunSpec
    status: RunStatus = Field(default_factory=RunStatus)

    model_config = ConfigDict(extra="ignore")

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace") or "default")

    @property
    def uid(self) -> str:
        return str(self.metadata.get("uid", ""))

    @property
    def generation(self) -> int:
        return int(self.metadata.get("generation", 1))
