"""The storage contract, run against the in-memory fake and the file backend alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from selftaught.artifacts import COMMIT_MARKER
from selftaught.storage import (
    FileStorage,
    MemoryStorage,
    Storage,
    StorageCorrupt,
    StorageError,
    StorageNotFound,
    UncommittedError,
)
from selftaught.storage.local import STAGING_DIR

PREFIX = "ns/run/iteration-1/judge/shard-00000"


@pytest.fixture(params=["memory", "file"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "memory":
        yield MemoryStorage()
    else:
        yield FileStorage(f"file://{tmp_path}/root")


def test_bytes_round_trip_and_missing_key(storage: Storage) -> None:
    storage.write_bytes("a/b.bin", b"\x00data")
    assert storage.read_bytes("a/b.bin") == b"\x00data"
    assert storage.size("a/b.bin") == 5
    assert storage.exists("a/b.bin")
    assert not storage.exists("a")
    with pytest.raises(StorageNotFound) as error:
        storage.read_bytes("a/missing")
    assert storage.uri_for("a/missing") in str(error.value)


def test_jsonl_yields_errors_for_bad_lines_instead_of_dying(storage: Storage) -> None:
    storage.write_bytes("d.jsonl", b'{"x": 1}\n{broken\n\n"just a string"\n\xff\xfe\n')
    parsed = list(storage.read_jsonl("d.jsonl"))
    assert [n for n, _ in parsed] == [1, 2, 4, 5]
    assert parsed[0][1] == {"x": 1}
    assert parsed[2][1] == "just a string"
    assert isinstance(parsed[1][1], ValueError)
    assert "line 2" in str(parsed[1][1])
    assert isinstance(parsed[3][1], ValueError)


def test_write_jsonl_counts_rows_and_keeps_unicode(storage: Storage) -> None:
    assert storage.write_jsonl("r.jsonl", [{"t": "ünï"}, {"t": "b"}]) == 2
    assert storage.read_bytes("r.jsonl").decode() == '{"t":"ünï"}\n{"t":"b"}\n'


def test_prefixes_are_directories(storage: Storage) -> None:
    for key in ("s/shard-1/a", "s/shard-1/b/c", "s/shard-10/a"):
        storage.write_bytes(key, b"x")
    assert storage.list("s/shard-1") == ["s/shard-1/a", "s/shard-1/b/c"]
    storage.delete_prefix("s/shard-1")
    assert storage.list("") == ["s/shard-10/a"]
    storage.delete_prefix("never/written")


def test_directory_upload_and_download(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "config.json").write_text("{}")
    (source / "sub" / "w.bin").write_bytes(b"123")
    assert storage.upload_dir(source, "m") == {"config.json": 2, "sub/w.bin": 3}
    target = storage.download_dir("m", tmp_path / "dst")
    assert (target / "sub" / "w.bin").read_bytes() == b"123"
    with pytest.raises(StorageNotFound):
        storage.download_dir("nothing", tmp_path / "x")


def test_output_commits_manifest_last(storage: Storage, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"a": 1}')
    with storage.output(PREFIX) as out:
        out.write_jsonl("judgments.jsonl", [{"v": "A"}])
        out.upload_dir(model, "model")
        assert not storage.is_committed(PREFIX)
    assert storage.is_committed(PREFIX)
    assert storage.verify(PREFIX) == {"judgments.jsonl": 10, "model/config.json": 8}
    rows = list(storage.read_committed_jsonl(PREFIX, "judgments.jsonl"))
    assert rows == [(1, {"v": "A"})]


def test_rerun_overwrites_instead_of_appending(storage: Storage) -> None:
    with storage.output(PREFIX) as out:
        out.write_bytes("first-attempt-only.txt", b"stale")
        out.write_bytes("out.jsonl", b"{}\n")
    with storage.output(PREFIX) as out:
        out.write_bytes("out.jsonl", b"[]\n")
    assert storage.list(PREFIX) == [f"{PREFIX}/{COMMIT_MARKER}", f"{PREFIX}/out.jsonl"]
    assert storage.read_committed_bytes(PREFIX, "out.jsonl") == b"[]\n"


def test_failed_block_is_not_committed_and_readers_refuse_it(storage: Storage) -> None:
    with pytest.raises(KeyError), storage.output(PREFIX) as out:  # noqa: PT012 (the block is the scenario)
        out.write_bytes("out.jsonl", b"{}\n")
        raise KeyError("stage crashed")
    assert not storage.is_committed(PREFIX)
    with pytest.raises(UncommittedError, match=r"not committed.*re-run that stage"):
        storage.read_committed_bytes(PREFIX, "out.jsonl")


@pytest.mark.parametrize(
    ("damage", "error", "match"),
    [
        pytest.param("truncate", StorageCorrupt, "truncated", id="truncated-file"),
        pytest.param("delete", StorageCorrupt, "missing", id="missing-file"),
        pytest.param("manifest", StorageCorrupt, "bad commit manifest", id="garbled-manifest"),
    ],
)
def test_damaged_commits_are_detected(
    storage: Storage, damage: str, error: type[StorageError], match: str
) -> None:
    with storage.output(PREFIX) as out:
        out.write_bytes("out.jsonl", b'{"a": 1}\n{"a": 2}\n')
    key = f"{PREFIX}/out.jsonl"
    if damage == "truncate":
        storage.write_bytes(key, storage.read_bytes(key)[:5])
    elif damage == "delete":
        storage.delete_prefix(key)
    else:
        storage.write_bytes(f"{PREFIX}/{COMMIT_MARKER}", b"{not json")
    with pytest.raises(error, match=match):
        storage.read_committed_bytes(PREFIX, "out.jsonl")
    with pytest.raises(error, match=match):
        storage.verify(PREFIX)


def test_reading_a_file_outside_the_manifest_names_what_exists(storage: Storage) -> None:
    with storage.output(PREFIX) as out:
        out.write_bytes("a.jsonl", b"")
    with pytest.raises(StorageNotFound, match=r"not part of the committed output.*a\.jsonl"):
        storage.read_committed_bytes(PREFIX, "b.jsonl")


def test_output_refuses_the_root_prefix(storage: Storage) -> None:
    storage.write_bytes("keep.txt", b"x")
    with pytest.raises(ValueError, match="non-empty prefix"), storage.output("/"):
        pass
    assert storage.exists("keep.txt")


@pytest.mark.parametrize("name", ["", COMMIT_MARKER, "../escape", "a/../../b"])
def test_output_rejects_bad_file_names(storage: Storage, name: str) -> None:
    with pytest.raises(ValueError, match="invalid output file name"), storage.output(PREFIX) as out:
        out.write_bytes(name, b"x")


def test_download_committed_subdirectory(storage: Storage, tmp_path: Path) -> None:
    with storage.output("train") as out:
        out.write_bytes("model/config.json", b"{}")
        out.write_bytes("model/w.bin", b"ww")
        out.write_bytes("metrics.json", b"{}")
    target = storage.download_committed("train", tmp_path / "m", under="model")
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "w.bin"]


# ------------------------------------------------------------------ file:// specifics


def test_file_commit_stages_outside_the_prefix_and_cleans_up(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    with pytest.raises(RuntimeError), storage.output(PREFIX) as out:  # noqa: PT012 (the block is the scenario)
        out.write_bytes("x.jsonl", b"{}\n")
        assert storage.list(PREFIX) == []  # nothing visible before the commit
        raise RuntimeError("boom")
    assert not (tmp_path / PREFIX).exists()
    assert list((tmp_path / STAGING_DIR).iterdir()) == []


def test_file_failed_rerun_keeps_the_previous_commit(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    with storage.output(PREFIX) as out:
        out.write_bytes("x.jsonl", b"{}\n")
    with pytest.raises(RuntimeError), storage.output(PREFIX) as out:
        raise RuntimeError("boom")
    assert storage.read_committed_bytes(PREFIX, "x.jsonl") == b"{}\n"


def test_file_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "root")
    with pytest.raises(StorageError, match="escapes the storage root"):
        storage.write_bytes("../outside", b"x")


def test_file_uri_parsing(tmp_path: Path) -> None:
    storage = FileStorage(f"file://{tmp_path}")
    assert storage.root == tmp_path
    assert storage.uri_for("a/b") == f"file://{tmp_path}/a/b"
    with pytest.raises(ValueError, match="absolute"):
        FileStorage("relative/path")
    with pytest.raises(ValueError, match="not a local file URI"):
        FileStorage("file://host/share")
