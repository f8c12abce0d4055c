"""What the planner sees of one child Job: :class:`ObservedJob`. Pure data.

The controller (``controller.observe``) reduces Job and Pod objects to this, the local runner
builds it from its worker processes; the planner never sees raw manifests. It lives beside the
planner because it is the planner's input, not part of the user-facing API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from selftaught.api import Model
from selftaught.phases import FailureClass, JobState, Stage


class ObservedJob(Model):
    """One child Job as the controller (or the local runner) observed it."""

    name: str
    iteration: int
    stage: Stage
    attempt: int
    state: JobState
    failure: FailureClass | None = None
    failure_message: str | None = None
    #: Termination-message summaries, one per completed pod index (shard).
    summaries: dict[int, dict[str, Any]] = Field(default_factory=dict)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    #: Why the Job cannot make progress (Unschedulable, ImagePullBackOff, NotAdmitted), if any.
    stuck_reason: str | None = None
    stuck_message: str | None = None
    stuck_since: datetime | None = None
