"""Kubernetes-style conditions on a copy of the status. Pure.

A condition's ``lastTransitionTime`` moves only when its ``status`` flips, as the Kubernetes API
conventions ask; reason and message may change in place. The setter reports whether anything
changed so the caller can emit an Event only on a real change.
"""

from __future__ import annotations

from datetime import UTC, datetime

from selftaught.api import Condition
from selftaught.phases import ConditionType, Reason


def rfc3339(moment: datetime) -> str:
    """A moment as Kubernetes writes times: UTC, whole seconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    """The one reader of RFC 3339 times (the status, Job and Pod timestamps): an aware
    datetime, or None for an empty value.

    ``Z`` and numeric offsets are read as written; a time without an offset is taken as UTC
    (what Kubernetes means), so every result compares with the planner's aware clock. Raises
    ValueError naming the text when it is not a time at all.
    """
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise ValueError(f"not an RFC 3339 time: {text!r}") from error
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def find(conditions: list[Condition], kind: ConditionType | str) -> Condition | None:
    return next((c for c in conditions if c.type == str(kind)), None)


def is_true(conditions: list[Condition], kind: ConditionType | str) -> bool:
    found = find(conditions, kind)
    return found is not None and found.status == "True"


def set_condition(
    conditions: list[Condition],
    kind: ConditionType,
    status: bool,
    *,
    reason: Reason | str,
    message: str,
    generation: int,
    now: datetime,
) -> bool:
    """Set one condition in place; True when status, reason or message changed."""
    wanted = "True" if status else "False"
    current = find(conditions, kind)
    if current is None:
        conditions.append(
            Condition(
                type=str(kind),
                status=wanted,
                reason=str(reason),
                message=message,
                observed_generation=generation,
                last_transition_time=rfc3339(now),
            )
        )
        return True
    changed = (current.status, current.reason, current.message) != (wanted, str(reason), message)
    if current.status != wanted:
        current.last_transition_time = rfc3339(now)
    current.status = wanted  # type: ignore[assignment]
    current.reason = str(reason)
    current.message = message
    current.observed_generation = generation
    return changed
