"""What the local fork server imports once, so each stage process starts warm.

Only imports, tables that libraries build on first use, then a ``gc.freeze()``: nothing here
may start a thread, open a file or touch the environment's per-shard settings (forking a
process with threads is unsafe, and each shard sets its own environment after the fork). A
missing optional library only makes the children slower: multiprocessing ignores a preload
that fails to import, so each import is guarded here.
"""

from __future__ import annotations

import contextlib
import gc
import warnings

import selftaught.stages
import selftaught.worker  # noqa: F401

with contextlib.suppress(ImportError):
    import torch  # noqa: F401
with contextlib.suppress(ImportError):
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401
with contextlib.suppress(ImportError):
    from trl import SFTConfig, SFTTrainer  # type: ignore[attr-defined]  # noqa: F401


def _warm_model_loading() -> None:
    """Do once here what every ``from_pretrained`` in a stage would do first (~0.06 s each).

    transformers builds its table of checkpoint key renamings (about a thousand regular
    expressions) on the first model load of a process and keeps it in a module global, so a
    fork inherits it built. The tiny judge's architecture (llama) is imported for the same
    reason. Internal API: if it moves, the children only lose the head start.
    """
    with contextlib.suppress(Exception):
        from transformers import conversion_mapping

        conversion_mapping.get_checkpoint_conversion_mapping("llama")  # type: ignore[no-untyped-call]
    with contextlib.suppress(ImportError):
        import transformers.models.llama.modeling_llama  # noqa: F401


_warm_model_loading()

# A runner started as ``python -m selftaught.cli`` has that module as ``__main__``; each fork
# re-runs it as ``__mp_main__`` (multiprocessing's way of restoring the parent's main module),
# and runpy warns if the module was imported already (this file no longer imports it: the
# children enter ``selftaught.worker.command`` directly). Harmless: it only defines functions.
warnings.filterwarnings(
    "ignore", message=r"'selftaught\.cli' found in sys\.modules", category=RuntimeWarning
)

# Move everything imported so far out of the collector's reach: a full collection in a stage
# (accelerate calls one before every training run) otherwise walks ~440k objects of torch and
# transformers for ~0.3 s, and forked pages stay shared instead of being touched by the walk.
gc.collect()
gc.freeze()
