"""The contract between the planner and a worker: one stage task, serialised into the pod.

A planned stage becomes a :class:`StageTask`. The Job builder (and the local runner) put it,
as JSON, into the ``SELFTAUGHT_TASK`` environment variable (:data:`selftaught.pod.TASK_ENV`)
of ``selftaught worker <stage>``.
The worker learns everything it needs from it (where the artifacts are, which model to load,
the method's settings), so workers never need Kubernetes API access.
"""

from __future__ import annotations

from selftaught.api import Model, RunSpec, StageResources
from selftaught.phases import Stage


class StageTask(Model):
    """Everything one stage attempt needs; the same for every shard of it."""

    run: str
    namespace: str
    iteration: int
    stage: Stage
    attempt: int = 0
    shards: int = 1
    #: The model this stage generates with: the seed for select/pairs/evaluate of iteration 0,
    #: the previous judge for judge, this iteration's judge for evaluate.
    model: str
    #: For train only: the model training starts from (the seed, or the previous judge).
    init_model: str | None = None
    spec: RunSpec

    @property
    def resources(self) -> StageResources:
        return self.spec.stages.of(self.stage)

    def command(self) -> list[str]:
        return ["selftaught", "worker", Stage(self.stage).value]

    def to_env(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)

    @classmethod
    def from_env(cls, value: str) -> StageTask:
        return cls.model_validate_json(value)
