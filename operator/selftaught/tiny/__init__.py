"""The built-in tiny judge (``builtin://tiny-judge?seed=N``) and its task.

Importing this package registers the ``builtin`` model resolver with the storage layer, so
``materialize_model("builtin://tiny-judge?seed=3", cache)`` builds (once, under a lock) and
returns a Hugging Face model directory that every stage loads like any other model.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from selftaught import progress
from selftaught.storage import register_model_resolver
from selftaught.tiny.model import TinyShape, build_base_model
from selftaught.tiny.warmstart import WarmStartPlan
from selftaught.tiny.warmstart import warm_start as run_warm_start

__all__ = ["TinyShape", "WarmStartPlan", "build_tiny_model", "resolve_builtin"]

#: Bump when the recipe changes, so cached builds of an older recipe are not reused.
RECIPE_VERSION = 8


def build_tiny_model(
    out_dir: Path,
    *,
    seed: int = 0,
    warm_start: bool = True,
    shape: TinyShape | None = None,
    plan: WarmStartPlan | None = None,
) -> Path:
    """Build the tiny Llama + tokenizer into ``out_dir`` (HF format), warm-started by default.

    Deterministic for a seed (and thread count). ``warm_start=False`` leaves random weights:
    useful only for tests of mechanics.
    """
    build_base_model(out_dir, seed=seed, shape=shape)
    if warm_start:
        with progress.compute():  # training, so a stage that builds the seed counts it as compute
            run_warm_start(out_dir, seed=seed, plan=plan)
    return out_dir


def resolve_builtin(uri: str, cache_dir: Path) -> Path:
    """Resolve ``builtin://tiny-judge[?seed=N]`` to a built model directory in ``cache_dir``.

    Built into a temporary directory and renamed into place under a file lock, so concurrent
    workers sharing a cache build it once and never see a half-written model.
    """
    parsed = urlparse(uri)
    if parsed.scheme != "builtin" or parsed.netloc != "tiny-judge":
        raise ValueError(f"unknown built-in model {uri!r} (expected builtin://tiny-judge?seed=N)")
    query = parse_qs(parsed.query)
    seed = int(query.get("seed", ["0"])[0])
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"tiny-judge-v{RECIPE_VERSION}-seed{seed}"
    with open(cache_dir / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").is_file():
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache_dir))
            try:
                build_tiny_model(staging, seed=seed)
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return target


register_model_resolver("builtin", resolve_builtin)
