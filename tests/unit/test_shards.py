"""Shard files on disk: sealing, checksums, and recovery of torn files."""

from __future__ import annotations

import ctypes
import hashlib
import json
import mmap
import os
import random
import shutil

import pyarrow as pa

from shared.layout import DatasetLayout
from shared.schema import arrow_schema, batch_row
from tests.support.messages import make_batch
from writer.store.durable import checksum_matches, file_checksum
from writer.store.shards import ShardWriter, load_manifest, read_complete_batches, recover

SPACE = {"type": "Discrete", "n": 4, "start": 0}


def _batch(schema: pa.Schema, first_seq: int, rows: int) -> pa.RecordBatch:
    steps = make_batch(rows, session="a" * 32, seq=first_seq, first_step=first_seq, pixels=None)
    return pa.RecordBatch.from_pylist(
        [batch_row(steps.session, first_seq, steps, i, b"\xff" * 50) for i in range(rows)],
        schema=schema)


def _write_open_shard(layout: DatasetLayout, batches: int, rows: int = 8) -> ShardWriter:
    layout.create()
    schema = arrow_schema(SPACE)
    shard = ShardWriter(layout, layout.shard_name("a" * 32, 1), schema)
    for b in range(batches):
        shard.append(_batch(schema, 1 + b * rows, rows), 1 + b * rows, (b + 1) * rows)
    return shard


def test_seal_moves_shard_and_records_checksum(tmp_path):
    layout = DatasetLayout(tmp_path / "env")
    info = _write_open_shard(layout, 3).seal()
    assert info.rows == 24 and (info.first_seq, info.last_seq) == (1, 24)
    path = layout.root / info.file
    assert path.exists() and not any(layout.incoming.iterdir())
    assert info.xxh3_128 == file_checksum(path)  # hashed as written: the seal reads nothing back
    assert info.bytes == path.stat().st_size
    assert load_manifest(layout)["shards"][0]["file"] == info.file
    assert pa.ipc.open_stream(str(path)).read_all().num_rows == 24


def test_checksums_of_manifests_before_xxh3_still_count(tmp_path):
    """Entries written while checksums were sha256 are checked by their sha256; an entry with
    the wrong one, or with none, does not match."""
    path = tmp_path / "shard.arrow"
    path.write_bytes(b"rows" * 1000)
    assert checksum_matches(path, {"xxh3_128": file_checksum(path)})
    assert checksum_matches(path, {"sha256": file_checksum(path, "sha256")})
    assert file_checksum(path, "sha256") == hashlib.sha256(b"rows" * 1000).hexdigest()
    assert not checksum_matches(path, {"sha256": "0" * 64})
    assert not checksum_matches(path, {"xxh3_128": "0" * 32, "sha256": "x"})
    assert not checksum_matches(path, {})


def _resident_pages(path) -> list[bool]:
    """Which of the file's pages are in the page cache (mincore on a mapping that reads none)."""
    size = os.path.getsize(path)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), size) as mapped:
        pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vector = (ctypes.c_ubyte * pages)()
        address = ctypes.addressof(ctypes.c_char.from_buffer(mapped))
        try:
            assert libc.mincore(ctypes.c_void_p(address), size, vector) == 0, ctypes.get_errno()
        finally:
            del address  # the buffer export must end before the mapping closes
        return [bool(v & 1) for v in vector]


def test_written_pages_leave_the_page_cache_once_synced(tmp_path):
    """The writer's page cache stays flat: appended batches are fsynced, then their whole pages
    dropped (a growing cache costs ~10x per byte on a VM); a seal drops the rest."""
    layout = DatasetLayout(tmp_path / "env")
    layout.create()
    schema = arrow_schema(SPACE)
    shard = ShardWriter(layout, layout.shard_name("a" * 32, 1), schema)
    for b in range(60):  # ~170 KB: dozens of pages
        shard.append(_batch(schema, 1 + b * 8, 8), 1 + b * 8, (b + 1) * 8)
    resident = _resident_pages(shard.path)
    assert len(resident) > 30 and not any(resident[:-1]), resident
    info = shard.seal()
    assert not any(_resident_pages(layout.root / info.file))
    table = pa.ipc.open_stream(str(layout.root / info.file)).read_all()  # all still there
    assert table.column("seq").to_pylist() == list(range(1, 481))


def test_recovery_keeps_exactly_the_complete_batches_at_any_cut(tmp_path):
    template = DatasetLayout(tmp_path / "template")
    shard = _write_open_shard(template, 6)
    offsets = []  # stream size after each complete batch
    whole = shard.path.read_bytes()
    _, batches = read_complete_batches(shard.path)
    assert len(batches) == 6
    sink = pa.BufferOutputStream()
    writer = pa.ipc.new_stream(sink, batches[0].schema)
    schema_end = sink.tell()
    for b in batches:
        writer.write_batch(b)
        offsets.append(sink.tell())
    rng = random.Random(1)
    cuts = sorted({rng.randrange(0, len(whole) + 1) for _ in range(60)} | set(offsets))
    for cut in cuts:
        layout = DatasetLayout(tmp_path / f"cut{cut}")
        layout.create()
        (layout.incoming / shard.path.name).write_bytes(whole[:cut])
        recovered = recover(layout)
        complete = sum(1 for o in offsets if o <= cut) if cut >= schema_end else 0
        assert sum(i.rows for i in recovered) == complete * 8, cut
        if complete:
            table = pa.ipc.open_stream(str(layout.data / shard.path.name)).read_all()
            assert table.column("seq").to_pylist() == list(range(1, complete * 8 + 1))
        assert not any(layout.incoming.iterdir())
        shutil.rmtree(layout.root)


def test_recovery_records_a_shard_renamed_but_missing_from_the_manifest(tmp_path):
    layout = DatasetLayout(tmp_path / "env")
    info = _write_open_shard(layout, 2).seal()
    layout.manifest.write_text(json.dumps({"version": 1, "shards": []}))
    recovered = recover(layout)
    assert [r.file for r in recovered] == [info.file]
    assert load_manifest(layout)["shards"][0]["rows"] == 16
    assert recover(layout) == []  # idempotent


def _discard_layout(tmp_path, name: str) -> tuple[DatasetLayout, ShardWriter]:
    layout = DatasetLayout(tmp_path / name)
    layout.create()
    schema = arrow_schema(SPACE)
    shard = ShardWriter(layout, layout.shard_name("a" * 32, 1), schema)
    for episode in range(3):
        batch = _batch(schema, 1 + episode * 8, 8)
        batch = batch.set_column(1, "episode_id", pa.array([f"{'a' * 32}-{episode:05d}"] * 8))
        shard.append(batch, 1 + episode * 8, (episode + 1) * 8)
    return layout, shard


def test_crash_after_closing_before_rename(tmp_path):
    layout, shard = _discard_layout(tmp_path, "closed")
    shard._writer.close()  # the end-of-stream marker is written, then the process dies
    shard._sink.close()
    (info,) = recover(layout)
    assert info.rows == 24 and not any(layout.incoming.iterdir())
    assert recover(layout) == []


def test_crash_in_the_middle_of_a_discard_rewrite(tmp_path):
    layout, shard = _discard_layout(tmp_path, "discard")
    shard._sink.close()
    discarded = frozenset({f"{'a' * 32}-00001"})
    # The crash left a half-written rewrite and a half-written .discarded copy.
    (layout.incoming / (shard.name + ".tmp")).write_bytes(b"ARROW partial")
    layout.discarded.mkdir()
    (layout.discarded / shard.name).write_bytes(b"partial")
    (info,) = recover(layout, lambda session: discarded)
    kept = pa.ipc.open_stream(str(layout.root / info.file)).read_all()
    assert kept.num_rows == 16 and f"{'a' * 32}-00001" not in kept.column("episode_id").to_pylist()
    aside = pa.ipc.open_stream(str(layout.discarded / shard.name)).read_all()
    assert aside.column("episode_id").to_pylist() == [f"{'a' * 32}-00001"] * 8
    assert not any(layout.incoming.iterdir())


def test_crash_while_replacing_the_manifest_keeps_the_old_one(tmp_path):
    layout = DatasetLayout(tmp_path / "env")
    first = _write_open_shard(layout, 1).seal()
    (layout.meta / "manifest.json.tmp").write_text('{"version": 1, "shards": [')  # torn
    assert [s["file"] for s in load_manifest(layout)["shards"]] == [first.file]
    recover(layout)
    assert [s["file"] for s in load_manifest(layout)["shards"]] == [first.file]
