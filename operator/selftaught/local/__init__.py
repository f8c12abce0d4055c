"""The embedded runner: the operator's plan, executed as local processes, no cluster."""

from selftaught.local.runner import LocalRunner, RunInterrupted

__all__ = ["LocalRunner", "RunInterrupted"]
