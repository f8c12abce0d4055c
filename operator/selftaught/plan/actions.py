"""What a planning pass returns: actions on child Jobs, Events, and the new status. Pure data.

The caller applies the actions (creating a Job whose name exists is success), writes the status
once if it changed, and only then sends the Events, so a retried reconcile never tells the story
twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from selftaught.api import RunStatus
from selftaught.task import StageTask


@dataclass(frozen=True)
class CreateJob:
    """Create the Job for one stage attempt (an existing one of this name is success)."""

    name: str
    task: StageTask


@dataclass(frozen=True)
class DeleteJob:
    """Delete a child Job that no longer belongs to the run's position (stale or stuck)."""

    name: str
    reason: str


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event on the run, sent after the status write succeeded."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


Action = CreateJob | DeleteJob


@dataclass
class Plan:
    """The outcome of one pass: apply ``actions``, write ``status``, then send ``events``."""

    actions: list[Action] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    status: RunStatus = field(default_factory=RunStatus)
    #: Seconds after which the caller should plan again even without a new observation.
    requeue_after: float | None = None

    @property
    def creates(self) -> list[CreateJob]:
        return [a for a in self.actions if isinstance(a, CreateJob)]

    @property
    def deletes(self) -> list[DeleteJob]:
        return [a for a in self.actions if isinstance(a, DeleteJob)]
