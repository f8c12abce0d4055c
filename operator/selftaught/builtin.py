"""Built-in tasks (``instructions.source: builtin://<name>``), reached through a registry.

A built-in task is an instruction pool a run can select from without any dataset, together with
what the stages need to know about the task's own domain: the category labels its models know,
which part of the held-out set an instruction belongs to, and the verdict a judgment's own
reasoning implies. The production stages ask this registry for them by name, so they never
import the demo package (:mod:`selftaught.tiny`) that implements the one built-in task there is;
a task module registers itself on import (:func:`register`), and a name listed in
:data:`_LAZY_MODULES` is imported on first use, as :mod:`selftaught.storage.models` does for
``builtin://`` models.

Pure: the standard library only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

#: ``instructions.source`` prefix of a built-in pool.
BUILTIN_SCHEME = "builtin://"
#: Size of a built-in pool before selection (the spec's cap then applies).
BUILTIN_POOL_SIZE = 4000
#: The task models with the ``compact`` prompt style (the tiny judge) were warm-started on: its
#: category labels and the verdict its reasoning implies are that task's.
COMPACT_STYLE_TASK = "arithmetic"

#: Modules that register a task when imported, by task name.
_LAZY_MODULES = {"arithmetic": "selftaught.tiny.task"}


@dataclass(frozen=True)
class BuiltinTask:
    """One built-in task: its pool and the domain knowledge the stages use."""

    name: str
    #: ``pool(seed=..., size=...)``: the unlabeled instructions, deterministic for a seed.
    pool: Callable[..., list[str]]
    #: Every category label the task's models know (selection adds the ones a spec asks for).
    categories: tuple[str, ...]
    #: The held-out part an instruction belongs to (e.g. "seen" / "unseen"), or None.
    part_of: Callable[[str], str | None]
    #: The verdict ("A" / "B") a judgment's own reasoning implies, or None if it implies none.
    implied_verdict: Callable[[str], str | None]


_TASKS: dict[str, BuiltinTask] = {}


class UnknownBuiltin(LookupError):
    """No built-in task of that name; the message lists the known ones."""


def register(task: BuiltinTask) -> None:
    """Make ``builtin://<task.name>`` available (a task module calls this on import)."""
    _TASKS[task.name] = task


def known() -> list[str]:
    """Names of every built-in task, registered or registrable on first use."""
    return sorted(set(_TASKS) | set(_LAZY_MODULES))


def lookup(name: str) -> BuiltinTask:
    """The built-in task ``name``; :class:`UnknownBuiltin` naming the known ones if none."""
    if name not in _TASKS and name in _LAZY_MODULES:
        importlib.import_module(_LAZY_MODULES[name])
    try:
        return _TASKS[name]
    except KeyError:
        raise UnknownBuiltin(
            f"unknown built-in task {name!r} (known: {', '.join(known())})"
        ) from None


def is_builtin(source: str) -> bool:
    """Whether an ``instructions.source`` names a built-in pool."""
    return source.startswith(BUILTIN_SCHEME)


def from_source(source: str) -> BuiltinTask:
    """The built-in task a ``builtin://<name>`` source names."""
    return lookup(source[len(BUILTIN_SCHEME) :])
