"""What the planner sees of one child Job: :class:`ObservedJob`. Pure data.

The controller (``controller.observe``) reduces Job and Pod objects to this, the local runner
builds it from its worker processes; the planner never sees raw manifests. It lives beside the
planner because it is the planner's input, not part of the user-facing API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from selftaught.api import Model
from selftaught.phases import FailureClass, JobState, Stage
from selftaught.summaries import StageSummary, parse_all


class ObservedJob(Model):
    """One child Job as the controller (or the local runner) observed it."""

    name: str
    iteration: int
    stage: Stage
    attempt: int
    state: JobState
    failure: FailureClass | None = None
    failure_message: str | None = None
    #: Termination-message summaries, one per completed pod index (shard), each parsed once
    #: into the stage's model (:mod:`selftaught.summaries`).
    summaries: dict[int, StageSummary] = Field(default_factory=dict)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    #: Why the Job cannot make progress (Unschedulable, ImagePullBackOff, NotAdmitted), if any.
    stuck_reason: str | None = None
    stuck_message: str | None = None
    stuck_since: datetime | None = None

    @field_validator("summaries", mode="before")
    @classmethod
    def _of_this_stage(cls, value: Any, info: ValidationInfo) -> Any:
        """Plain summaries (a local result.json, a test) parse as this Job's stage's."""
        stage = info.data.get("stage")
        if stage is None or not isinstance(value, dict):
            return value
        return parse_all(Stage(stage), value)
