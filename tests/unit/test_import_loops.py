"""The command line is the top floor: nothing below it imports it back.

The local fork server's children used to re-enter through ``selftaught.cli.main``, closing the
loop cli -> local/runner -> processes -> forkserver -> cli. They call
:func:`selftaught.worker.command` now; this pins it with the import graph itself.
"""

from __future__ import annotations

import grimp
import pytest

from selftaught.local.forkserver import worker_arguments


def test_no_module_of_the_package_imports_the_cli() -> None:
    graph = grimp.build_graph("selftaught")
    importers = graph.find_modules_that_directly_import("selftaught.cli")
    assert importers == set()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["worker", "judge"], ("judge", False), id="plain"),
        pytest.param(["worker", "train", "--distributed"], ("train", True), id="distributed"),
    ],
)
def test_fork_server_children_read_the_worker_command(
    argv: list[str], expected: tuple[str, bool]
) -> None:
    assert worker_arguments(argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param([], id="empty"),
        pytest.param(["run", "x.yaml"], id="not-worker"),
        pytest.param(["worker", "train", "--verbose"], id="unknown-flag"),
    ],
)
def test_anything_else_is_refused(argv: list[str]) -> None:
    with pytest.raises(ValueError, match="not a worker command"):
        worker_arguments(argv)
