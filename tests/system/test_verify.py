"""Silent corruption in sealed shards is caught by checksums and kept out of the dataset."""

from __future__ import annotations

import random
import shutil

from shared.layout import DatasetLayout
from tests.support.datasets_check import load
from tests.support.processes import run_record
from writer.store.verify import quarantine, verify_dataset


def test_flipped_bits_are_detected_and_quarantined(breakout_recording, endpoint, data_dir,
                                                   tmp_path):
    # A copy of conftest's recording (2 episodes of 120 steps), without its writer's files.
    shutil.copytree(breakout_recording, data_dir, ignore=shutil.ignore_patterns(".writer.*"))
    root = data_dir / "BreakoutNoFrameskip-v4"
    clean = verify_dataset(DatasetLayout(root))
    assert clean.ok and clean.rows == 242
    (shard,) = (root / "data").glob("*.arrow")
    pristine = shard.read_bytes()
    rng = random.Random(0)
    for _ in range(100):
        data = bytearray(pristine)
        bit = rng.randrange(len(data) * 8)
        data[bit // 8] ^= 1 << (bit % 8)
        shard.write_bytes(bytes(data))
        report = verify_dataset(DatasetLayout(root))
        assert [p.kind for p in report.problems] == ["checksum mismatch"], bit
    shard.write_bytes(pristine)
    assert verify_dataset(DatasetLayout(root)).ok

    # A second, healthy session; then corrupt the first one's shard and quarantine it.
    assert run_record("BreakoutNoFrameskip-v4", endpoint, data_dir, "--episodes", "1",
                      "--max-steps", "40", "--seed", "2").returncode == 0
    data = bytearray(pristine)
    data[len(data) // 2] ^= 0x10
    shard.write_bytes(bytes(data))
    report = verify_dataset(DatasetLayout(root))
    quarantine(DatasetLayout(root), report.problems)
    assert verify_dataset(DatasetLayout(root)).ok
    assert (root / ".corrupt" / shard.name).exists()
    assert len(load(data_dir, "BreakoutNoFrameskip-v4")) == 41
    shutil.rmtree(root / ".corrupt")
