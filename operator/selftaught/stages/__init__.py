"""The work inside the Jobs: one module per step of the method, each with
``run(task: StageTask, storage: Storage, shard: int) -> <Stage>Summary``: the declared summary
(:mod:`selftaught.summaries`) the planner reads.

ML libraries are imported inside ``run``, so importing a stage (the worker does, to find it) is
cheap. ``common`` holds what they share: model loading, seeds, reading committed shards.
"""
