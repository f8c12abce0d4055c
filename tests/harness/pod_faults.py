"""Failure injection for the kubelet: what should happen to the pods of matching Jobs.

A rule matches Jobs by name (regex, ``search``) and/or labels (all must be equal), optionally
only some completion indexes, and for at most ``times`` pods. The first matching rule wins::

    kubelet.inject(PodFault.OOM_KILLED, labels={"selftaught.dev/stage": "train"}, times=1)
    kubelet.inject(PodFault.EXIT, name=r"-judge-", exit_code=3, message='{"error": "bad"}')
    kubelet.inject(PodFault.INSTANT, message='{"kept": 10}')       # scale benchmarks

``SLOW_START`` delays the process by ``delay`` seconds (the pod stays Pending meanwhile);
``INSTANT`` with a ``delay`` keeps the pod Running that long before it succeeds;
``UNSCHEDULABLE`` and ``IMAGE_PULL_BACKOFF`` leave the pod Pending forever (until the Job is
deleted or its deadline passes); the other kinds run no process at all.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class PodFault(StrEnum):
    EXIT = "exit"  # container exits with exit_code (reason Error)
    OOM_KILLED = "oom-killed"  # exit 137, reason OOMKilled
    EVICTED = "evicted"  # pod Failed, status.reason Evicted, condition DisruptionTarget
    UNSCHEDULABLE = "unschedulable"  # Pending, PodScheduled=False reason Unschedulable
    IMAGE_PULL_BACKOFF = "image-pull-backoff"  # Pending, container waiting ImagePullBackOff
    SLOW_START = "slow-start"  # Pending for `delay` seconds, then runs normally
    INSTANT = "instant"  # runs nothing, succeeds at once with `message` as termination message


@dataclass
class PodFaultRule:
    """One injected behaviour; ``times=None`` means every matching pod."""

    kind: PodFault
    name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    indexes: frozenset[int] | None = None
    exit_code: int = 1
    message: str = ""
    delay: float = 0.0
    times: int | None = None

    def matches(self, job: dict[str, Any], index: int) -> bool:
        meta = job.get("metadata") or {}
        if self.name is not None and not re.search(self.name, meta.get("name", "")):
            return False
        labels = meta.get("labels") or {}
        if any(labels.get(k) != v for k, v in self.labels.items()):
            return False
        return self.indexes is None or index in self.indexes


class PodFaults:
    """The kubelet's rule list, safe to change from the test thread while pods start."""

    def __init__(self) -> None:
        self._rules: list[PodFaultRule] = []
        self._lock = threading.Lock()

    def add(self, rule: PodFaultRule) -> PodFaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, job: dict[str, Any], index: int) -> PodFaultRule | None:
        """The first rule matching this pod, consuming one of its ``times``."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(job, index):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self._rules.remove(rule)
                    return rule
        return None
