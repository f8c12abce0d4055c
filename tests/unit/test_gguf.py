"""GGUF seed models (selftaught.storage.gguf): which paths take the GGUF loader and when a
converted directory in the cache is reused. The conversion itself runs on a real GGUF file in
tests/integration/test_real_checkpoint.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from selftaught.storage import gguf


@pytest.mark.parametrize(
    ("name", "is_file", "expected"),
    [
        pytest.param("model.gguf", True, True, id="a-gguf-file"),
        pytest.param("MODEL.GGUF", True, True, id="suffix-case-insensitive"),
        pytest.param("model.gguf", False, False, id="a-directory-named-gguf"),
        pytest.param("model.safetensors", True, False, id="another-file"),
    ],
)
def test_only_gguf_files_take_the_gguf_loader(
    tmp_path: Path, name: str, is_file: bool, expected: bool
) -> None:
    path = tmp_path / name
    if is_file:
        path.write_bytes(b"GGUF")
    else:
        path.mkdir()
    assert gguf.is_gguf(path) is expected


def test_a_replaced_file_gets_a_new_cache_directory(tmp_path: Path) -> None:
    path = tmp_path / "SmolLM2.gguf"
    path.write_bytes(b"GGUF v1")
    first = gguf.cache_key(path)
    assert first.startswith("gguf-SmolLM2-")
    assert gguf.cache_key(path) == first  # stable while the file is unchanged
    path.write_bytes(b"GGUF version 2")
    os.utime(path, ns=(1, 1))
    assert gguf.cache_key(path) != first


def test_a_converted_directory_in_the_cache_is_reused(tmp_path: Path) -> None:
    """A finished conversion (config.json present) is not converted again: the file here is
    no valid GGUF, so converting it would fail."""
    path = tmp_path / "m.gguf"
    path.write_bytes(b"not really gguf")
    cache = tmp_path / "cache"
    done = cache / gguf.cache_key(path)
    done.mkdir(parents=True)
    (done / "config.json").write_text("{}")
    assert gguf.to_hf_directory(path, cache) == done
