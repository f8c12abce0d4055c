"""``selftaught serve RUN_DIR``: the best judge of a local run, behind the OpenAI-compatible API.

The run directory is what ``selftaught run`` left (``status.yaml`` in the CR's schema); its
``bestModel`` is a URI (``file://`` for a trained iteration, the seed's URI when iteration 0 won)
that the same resolver the workers use turns into a model directory.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from selftaught.api import RunStatus


class NothingToServe(ValueError):
    """The directory holds no run, or the run has no evaluated judge yet."""


@dataclass(frozen=True)
class BestJudge:
    name: str
    uri: str
    iteration: int
    accuracy: float | None


def best_judge(run_dir: Path) -> BestJudge:
    """The run's name and its best judge's URI, from ``RUN_DIR/status.yaml``."""
    path = run_dir / "status.yaml"
    if not path.is_file():
        raise NothingToServe(f"{path}: no status (not a selftaught run directory?)")
    document = yaml.safe_load(path.read_text()) or {}
    status = RunStatus.model_validate(document.get("status", document))
    if status.best_model is None or status.best_iteration is None:
        raise NothingToServe(
            f"{path}: no evaluated judge yet (phase {status.phase.value}, iteration "
            f"{status.iteration}); serve it once an evaluation has finished"
        )
    name = str(document.get("name") or run_dir.name)
    return BestJudge(name, status.best_model, status.best_iteration, status.best_accuracy)


def cache_dir(run_dir: Path) -> Path:
    """Where a local run materialises models: ``$SELFTAUGHT_CACHE``, else ``WORKDIR/.cache``."""
    return Path(os.environ.get("SELFTAUGHT_CACHE") or run_dir.resolve().parent / ".cache")


def main(run_dir: Path, *, host: str, port: int) -> int:
    """Load the best judge, bind, say where it is, serve until interrupted."""
    from selftaught.engines import make_engine
    from selftaught.prompts import prompt_style
    from selftaught.serving.app import ServedModel, bind, run_forever
    from selftaught.storage import ModelNotFound, materialize_model

    try:
        judge = best_judge(run_dir)
        model_dir = materialize_model(judge.uri, cache_dir(run_dir))
    except (NothingToServe, ModelNotFound, ValueError) as error:
        print(f"selftaught serve: {error}", file=sys.stderr)
        return 2
    engine = make_engine("transformers", model_dir, tensor_parallel=1, seed=0)
    try:
        sock = bind(host, port)
    except OSError as error:
        print(f"selftaught serve: cannot listen on {host}:{port}: {error}", file=sys.stderr)
        return 2
    shown = f"{judge.accuracy:.3f}" if judge.accuracy is not None else "-"
    print(
        f"serving {judge.name} (iteration {judge.iteration}, accuracy {shown}) from {judge.uri}\n"
        f"your judge is at http://{host}:{sock.getsockname()[1]}",
        flush=True,
    )
    style = prompt_style(model_dir)
    run_forever(
        ServedModel(engine=engine, name=judge.name, uri=judge.uri, prompt_style=style), sock
    )
    return 0
