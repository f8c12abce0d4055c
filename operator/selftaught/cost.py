"""What a run's judges cost: generated tokens per kept judgment, GPU-hours per accuracy point.

Pure: status records in, numbers out. The absorb policy fills these into each iteration's
record, so ``kubectl get -o yaml``, ``selftaught status`` and the metrics read one source.

* **Tokens per kept judgment** is the judge stage's efficiency: fixed sampling pays N samples
  per pair whatever the judge's accuracy; adaptive sampling (:mod:`selftaught.rounds`) pays
  roughly 1 / accuracy.
* **GPU-hours per point** answers "what did the last points of held-out accuracy cost": every
  GPU-second the run spent up to and including an iteration (iteration 0's baseline included)
  divided by the held-out accuracy gained over iteration 0, in percentage points. Without a
  gain the ratio is undefined and left absent rather than infinite.
"""

from __future__ import annotations

from collections.abc import Sequence

from selftaught.api import IterationRecord

#: The evaluation set the gain is measured on (the run's own held-out pairs).
HELDOUT = "heldout"


def tokens_per_kept(tokens: int, kept: int) -> float | None:
    """Generated tokens per kept judgment (None when nothing was kept)."""
    return round(tokens / kept, 1) if kept > 0 else None


def heldout_accuracy(record: IterationRecord) -> float | None:
    """The record's held-out accuracy (0-1), None before its evaluation."""
    scores = record.scores.get(HELDOUT)
    return scores.accuracy if scores is not None else None


def gpu_hours_per_point(history: Sequence[IterationRecord], iteration: int) -> float | None:
    """GPU-hours of iterations 0..``iteration`` per percentage point of held-out accuracy
    gained over iteration 0 (None without a baseline, without an evaluation or without a gain)."""
    if not history or iteration >= len(history) or iteration < 1:
        return None
    baseline, current = heldout_accuracy(history[0]), heldout_accuracy(history[iteration])
    if baseline is None or current is None or current <= baseline:
        return None
    hours = sum(r.gpu_seconds for r in history[: iteration + 1]) / 3600
    return round(hours / ((current - baseline) * 100), 6)
