"""Shard names and dataset paths: made and read in one place (shared/layout.py)."""

from __future__ import annotations

from shared.layout import DatasetLayout, ShardName

SID = "0123456789abcdef0123456789abcdef"


def test_shard_names_round_trip_and_reject_what_is_not_a_shard():
    name = ShardName(session=SID, index=12)
    assert name.file_name() == f"{SID}-0012.arrow"
    assert ShardName.parse(name.file_name()) == name
    assert ShardName.parse(f"data/{SID}-0012.parquet") == name
    assert ShardName.parse(f"{SID}-12345.arrow").index == 12345
    for bad in ("x.arrow", f"{SID}-12.arrow", f"{SID}-0001.json", f"../{SID[:-1]}-0001.arrow",
                f"{SID}-0001.arrow.tmp", ""):
        assert ShardName.parse(bad) is None, bad


def test_shards_of_lists_one_session_in_write_order_and_skips_strangers(tmp_path):
    layout = DatasetLayout(tmp_path)
    layout.create()
    other = "f" * 32
    for sid, index in ((SID, 10), (SID, 2), (other, 1), (SID, 1)):
        (layout.data / ShardName(session=sid, index=index).file_name()).write_bytes(b"")
    (layout.data / "notes.arrow").write_bytes(b"")
    assert [p.name for p in layout.shards_of(layout.data, SID)] == [
        f"{SID}-0001.arrow", f"{SID}-0002.arrow", f"{SID}-0010.arrow"]
    assert len(layout.shards_of(layout.data)) == 4
    assert layout.session_file(SID) == tmp_path / ".meta" / "sessions" / f"{SID}.json"
