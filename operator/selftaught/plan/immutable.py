"""Immutable-field policy: the fields that decide a run's data are fenced once it has started.

Which fields: those carrying the ``immutable`` marker in :mod:`selftaught.api` (the same marker
becomes the CRD's ``self == oldSelf`` rule), read through ``RunSpec.immutable_view``. When: from
the pass that plans the run's first Job; before that nothing was computed from them, so a run
refused at start (no ``spec.storage``) can still be repaired. How: one fingerprint per field in
``status.specFingerprints``, so a refusal names exactly the field(s) that changed, and reverting
them lets the run continue.

Runs started by an operator that kept one hash of all the fields (``status.specFingerprint``)
keep working: while that hash still matches, the per-field map is filled in from the spec.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from selftaught.api import RunSpec
from selftaught.conditions import find
from selftaught.phases import ConditionType, Reason
from selftaught.plan.state import PassState


def fingerprint(value: Any) -> str:
    """A short, stable hash of a JSON value."""
    blob = json.dumps(value, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def fingerprints(spec: RunSpec) -> dict[str, str]:
    """One fingerprint per immutable field, keyed by its dotted camelCase path."""
    return {path: fingerprint(value) for path, value in spec.immutable_view().items()}


def legacy_fingerprint(spec: RunSpec) -> str:
    """The single hash older operators stored: the view keyed by each field's own name."""
    view = spec.immutable_view()
    return fingerprint({path.rsplit(".", 1)[-1]: value for path, value in view.items()})


def changed_fields(state: PassState) -> tuple[list[str], bool]:
    """(paths of changed immutable fields, whether exactly those are known to have changed).

    Unfenced runs (no Job planned yet) report no change. A legacy single hash that no longer
    matches cannot tell which field moved: every immutable path is reported, inexactly.
    """
    status, current = state.status, fingerprints(state.spec)
    recorded = status.spec_fingerprints
    if recorded:
        changed = [path for path, value in current.items() if recorded.get(path, value) != value]
        if not changed:
            for path, value in current.items():  # a field marked later is fenced from now on
                recorded.setdefault(path, value)
        return changed, True
    if status.spec_fingerprint and status.stage is not None:
        if status.spec_fingerprint != legacy_fingerprint(state.spec):
            return list(current), False
        status.spec_fingerprints = current
    return [], True


def refusal(changed: list[str], *, exact: bool) -> str:
    """The message of a refused change, naming the field(s) as the user wrote them."""
    fields = [f"spec.{path}" for path in changed]
    if not exact:
        subject = f"one of {', '.join(fields)} changed; these"
    elif len(fields) == 1:
        subject = fields[0]
    else:
        subject = f"{', '.join(fields[:-1])} and {fields[-1]}"
    revert = "the change" if not exact else "it" if len(fields) == 1 else "them"
    return (
        f"{subject} cannot change once the run has started (its first Job was created): "
        f"change refused; revert {revert} or create a new run"
    )


def check_immutable(state: PassState) -> bool:
    """Accept the spec (True) or refuse the pass (False) with one Warning per new refusal."""
    changed, exact = changed_fields(state)
    if changed:
        message = refusal(changed, exact=exact)
        if state.condition(
            ConditionType.SPEC_ACCEPTED, False, Reason.IMMUTABLE_FIELD_CHANGED, message
        ):
            state.event("Warning", Reason.IMMUTABLE_FIELD_CHANGED, message)
        return False
    before = find(state.status.conditions, ConditionType.SPEC_ACCEPTED)
    was_refused = before is not None and before.reason == Reason.IMMUTABLE_FIELD_CHANGED
    state.condition(ConditionType.SPEC_ACCEPTED, True, Reason.ACCEPTED, "spec accepted")
    if was_refused:
        # The refusal's message must not outlive it (the status message is the latest word).
        state.event("Normal", Reason.ACCEPTED, "immutable fields restored; the run continues")
    if not state.status.spec_fingerprints and state.status.history:
        # Not fenced yet (suspended before its first Job): the baseline judge is the seed now.
        state.status.history[0].model = state.spec.seed_model
    state.status.observed_generation = state.run.generation
    return True


def fence(state: PassState) -> None:
    """Record the fingerprints in the pass that plans the run's first Job."""
    if state.out.creates and not state.status.spec_fingerprints:
        state.status.spec_fingerprints = fingerprints(state.spec)
