"""``python -m selftaught.observability [--chart charts/selftaught]``: regenerate the chart's
generated files (dashboard JSON, alert rules, and the chart's copy of the CRD) from Python.

Run it after changing :mod:`~selftaught.observability.dashboard` or
:mod:`~selftaught.observability.alerts`; the tests compare the committed files with the
builders' output byte for byte, so a forgotten regeneration fails CI rather than shipping stale
artifacts.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

#: Chart-relative paths of the generated files (the chart's templates read them from here).
DASHBOARD_PATH = Path("dashboards/selftaught.json")
RULES_PATH = Path("rules/selftaught.rules.yaml")
#: Helm installs crds/ itself and cannot package a symlink, so the chart holds a copy.
CRD_PATH = Path("crds/selftaughtrun.yaml")


def generated_files() -> dict[Path, str]:
    """Chart-relative path -> content of every generated file."""
    from selftaught import crd
    from selftaught.observability import alerts, dashboard

    return {
        DASHBOARD_PATH: dashboard.render_json(),
        RULES_PATH: alerts.render_yaml(),
        CRD_PATH: crd.render_yaml(),
    }


def write(chart: Path) -> list[Path]:
    """Write the generated files under ``chart``; returns the paths that changed."""
    changed = []
    for relative, text in generated_files().items():
        path = chart / relative
        if path.exists() and path.read_text() == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        changed.append(path)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m selftaught.observability")
    parser.add_argument("--chart", type=Path, default=Path("charts/selftaught"))
    args = parser.parse_args(argv)
    for path in write(args.chart):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
