"""GGUF checkpoints as ordinary Hugging Face model directories.

A ``seedModel`` of ``file:///path/model.gguf`` (llama.cpp's single-file format, as many small
instruction models ship) is converted once into a plain safetensors directory in the model
cache: transformers reads the GGUF (with the ``gguf`` package), de-quantizes its tensors into
float32 and saves model, tokenizer and chat template. Every engine and the train stage then see
an ordinary checkpoint, and the trained judges are ordinary checkpoints too.

The cache key is the file's absolute path, size and modification time, so a replaced file is
converted again. Conversion happens in a temporary directory renamed into place under a lock
file, so workers sharing a cache convert once and never see a half-written model.

float32 doubles the memory of a 16-bit checkpoint: this path is for models of up to a few
billion parameters (the worker loads them anyway); convert larger ones offline.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import tempfile
from pathlib import Path

#: The file suffix that selects this loader.
SUFFIX = ".gguf"


def is_gguf(path: Path) -> bool:
    return path.suffix.lower() == SUFFIX and path.is_file()


def cache_key(path: Path) -> str:
    """Directory name in the cache: the stem and a digest of path, size and mtime."""
    stat = path.stat()
    text = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"gguf-{path.stem}-{digest}"


def to_hf_directory(path: Path, cache_dir: Path) -> Path:
    """The converted directory of the GGUF file ``path`` in ``cache_dir`` (built once)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / cache_key(path)
    with open(cache_dir / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").is_file():
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache_dir))
            try:
                convert(path, staging)
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return target


def convert(path: Path, out_dir: Path) -> None:
    """Read ``path`` with transformers' GGUF loader and save a plain safetensors directory."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = path.parent, path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # The tensors are already de-quantized; only the marker forbids saving them.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
