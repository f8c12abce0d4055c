"""Names and labels of everything the operator creates. Pure.

A child Job's name is a function of (run, iteration, stage, attempt) alone, so a restarted
operator computes the same names and a repeated create is an "already exists", never a
duplicate. Shards are the completion indexes of one Indexed Job, so they need no name of their
own; each pod learns its shard from ``JOB_COMPLETION_INDEX``. Names must be DNS-1123 labels of at
most 63 characters (Indexed Job pods append ``-<index>-<5 chars>`` to form hostnames, so Jobs
keep a budget for that).
"""

from __future__ import annotations

import hashlib
import re

from selftaught.kubegrammar import DNS1123_LABEL
from selftaught.kubegrammar import DNS1123_LABEL_MESSAGE as DNS1123_LABEL_MESSAGE
from selftaught.phases import Stage

#: Job names are capped below 63 so pod hostnames (``<job>-<index>``) stay valid labels.
MAX_JOB_NAME = 52
MAX_LABEL = 63
_DNS1123 = re.compile(DNS1123_LABEL)

LABEL_PREFIX = "selftaught.dev"
LABEL_RUN = f"{LABEL_PREFIX}/run"
LABEL_RUN_UID = f"{LABEL_PREFIX}/run-uid"
LABEL_ITERATION = f"{LABEL_PREFIX}/iteration"
LABEL_STAGE = f"{LABEL_PREFIX}/stage"
LABEL_ATTEMPT = f"{LABEL_PREFIX}/attempt"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "selftaught-operator"
#: Selector the controller watches Jobs with.
CHILD_SELECTOR = {LABEL_MANAGED_BY: MANAGED_BY}

_STAGE_CODE = {
    Stage.SELECT: "sel",
    Stage.PAIRS: "pair",
    Stage.JUDGE: "judge",
    Stage.TRAIN: "train",
    Stage.EVALUATE: "eval",
}


def is_dns1123_label(name: str) -> bool:
    return len(name) <= MAX_LABEL and bool(_DNS1123.match(name))


def _digest(text: str, length: int = 6) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def job_name(run: str, iteration: int, stage: Stage | str, attempt: int) -> str:
    """``<run>-i<iteration>-<stage>-a<attempt>``, shortened with a hash when the run is long.

    The suffix (iteration, stage, attempt) is never truncated, so two children of one run never
    collide; a long run name is cut and made unique again by a hash of the full name.
    """
    suffix = f"i{iteration}-{_STAGE_CODE[Stage(stage)]}-a{attempt}"
    head = run.lower()
    budget = MAX_JOB_NAME - len(suffix) - 1
    if len(head) > budget:
        digest = _digest(run)
        head = head[: budget - len(digest) - 1].rstrip("-") + "-" + digest
    return f"{head}-{suffix}"


def service_name(run: str, iteration: int, attempt: int) -> str:
    """Headless Service for multi-node training rendezvous (same shape as the train Job)."""
    return job_name(run, iteration, Stage.TRAIN, attempt)


def child_labels(
    *, run: str, run_uid: str, iteration: int, stage: Stage | str, attempt: int
) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        "app.kubernetes.io/name": "selftaught-worker",
        LABEL_RUN: label_value(run),
        LABEL_RUN_UID: run_uid,
        LABEL_ITERATION: str(iteration),
        LABEL_STAGE: Stage(stage).value,
        LABEL_ATTEMPT: str(attempt),
    }


def label_value(text: str) -> str:
    """A valid label value (<= 63 chars) for any object name."""
    if len(text) <= MAX_LABEL:
        return text
    return text[: MAX_LABEL - 7].rstrip("-.") + "-" + _digest(text)


#: Label on the served judge's Deployment, Service and pods: the run's name (selector key).
LABEL_SERVING = f"{LABEL_PREFIX}/serving"


def serving_name(run: str) -> str:
    """``<run>-judge``: the Deployment and the Service that serve the run's best judge.

    A Service name must be a DNS-1035 label (a letter first, <= 63 chars), stricter than a run
    name: a leading digit gets an ``s-`` prefix, a long name is cut and made unique by a hash.
    """
    head = run.lower() if run[:1].isalpha() else f"s-{run.lower()}"
    suffix = "-judge"
    if len(head) + len(suffix) > MAX_LABEL:
        digest = _digest(run)
        head = head[: MAX_LABEL - len(suffix) - len(digest) - 1].rstrip("-") + "-" + digest
    return head + suffix
