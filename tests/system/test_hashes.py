"""Raw-frame hashes: the writer stores xxh3-128 of every frame's pixels (`frame_hash`), equal to
the hash of the bare env's frame at that step; replay compares hashes (codec-independent, fast)
and, with `--check image`, the stored images too, and says which of the two failed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from recorder.envs import frame_of, make_env, resolve_env
from shared.codec import decode_frame, encode_frame
from shared.frame_hash import frame_hash
from tests.support.processes import free_endpoint, run_record
from tests.support.replay_rows import edit_rows, failures, read_rows

ENV_ID = "BreakoutNoFrameskip-v4"


def replay(env_id: str, data_dir: Path, *extra: str):
    """gymrec-replay in this process (no interpreter start-up); .exit_code, .stdout."""
    from click.testing import CliRunner

    from recorder.replay.cli import main

    return CliRunner().invoke(main, [env_id, "--data-dir", str(data_dir), *extra])


@pytest.fixture(scope="module")
def breakout(tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("hashes") / "data"
    result = run_record(ENV_ID, free_endpoint(), data_dir, "--episodes", "1", "--max-steps",
                        "60", "--seed", "3")
    assert result.returncode == 0, result.stderr
    return data_dir


def _copy(data_dir: Path, tmp_path: Path) -> Path:
    shutil.copytree(data_dir, tmp_path / "copy", ignore=shutil.ignore_patterns(".writer.*"))
    return tmp_path / "copy" / ENV_ID


def test_every_row_holds_the_hash_of_the_bare_envs_frame(breakout):
    rows = read_rows(breakout / ENV_ID)
    assert rows[-1]["is_last"] and len(rows) == 61
    env = make_env(resolve_env(ENV_ID))
    try:
        observation, _ = env.reset(seed=rows[0]["seed"])
        expected = [frame_hash(frame_of(observation, env))]
        for row in rows[:-1]:
            observation, *_ = env.step(row["action"])
            expected.append(frame_hash(frame_of(observation, env)))
    finally:
        env.close()
    assert [r["frame_hash"] for r in rows] == expected  # the final row's too
    assert len(set(expected)) > 1


def test_a_clean_recording_passes_by_hashes_alone_and_with_images(breakout):
    result = replay(ENV_ID, breakout)
    assert result.exit_code == 0, result.output
    assert "comparing frames by xxh3-128 hashes of their raw pixels" in result.stdout
    assert "(where no hash is stored)" in result.stdout
    result = replay(ENV_ID, breakout, "--check", "image")
    assert result.exit_code == 0, result.output
    assert "(where no hash is stored)" not in result.stdout


def test_a_replaced_valid_jpeg_fails_the_image_check_not_the_hash_check(breakout, tmp_path):
    root = _copy(breakout, tmp_path)
    target = 20
    other = {}

    def other_picture(image: dict) -> dict:  # a valid JPEG of another frame, same settings
        pixels = decode_frame(image["bytes"], "jpeg", 3)
        other["bytes"] = encode_frame(np.ascontiguousarray(pixels[::-1]),
                                      list(pixels.shape), "jpeg", 95)
        return {"bytes": other["bytes"], "path": None}

    assert edit_rows(root, lambda r: r["step"] == target, "image", other_picture) == 1
    hashes_only = replay(ENV_ID, root.parent)
    assert hashes_only.exit_code == 0, hashes_only.output  # the frames themselves reproduce
    result = replay(ENV_ID, root.parent, "--check", "image", "--diff-dir", str(tmp_path))
    assert result.exit_code == 1, result.output
    (fail,) = failures(result.stdout).values()
    assert (fail["step"], fail["frame"], fail["fields"]) == (target - 1, target, ("image",))
    assert "the stored image differs from the replayed frame, whose hash matches" in result.stdout


def test_an_altered_hash_fails_the_hash_check_at_that_step(breakout, tmp_path):
    root = _copy(breakout, tmp_path)
    target = 33
    flip = {"0": "1"}
    assert edit_rows(root, lambda r: r["step"] == target, "frame_hash",
                     lambda h: flip.get(h[0], "0") + h[1:]) == 1
    for extra in ((), ("--check", "image")):
        result = replay(ENV_ID, root.parent, "--diff-dir", str(tmp_path), *extra)
        assert result.exit_code == 1, result.output
        (fail,) = failures(result.stdout).values()
        # the stored image still matches: only the hash check fails
        assert (fail["step"], fail["frame"], fail["fields"], fail["max_diff"]) == (
            target - 1, target, ("frame",), 0), extra


def _drop_hashes(root: Path) -> None:
    """Rewrite the shards as an earlier gymrec wrote them: without `frame_hash`."""
    for shard in json.loads((root / ".meta" / "manifest.json").read_text())["shards"]:
        path = root / shard["file"]
        table = ipc.open_stream(pa.BufferReader(path.read_bytes())).read_all()
        table = table.drop_columns(["frame_hash"])
        with pa.OSFile(str(path), "wb") as sink, ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)


def test_a_dataset_without_hashes_is_compared_by_its_images(breakout, tmp_path):
    root = _copy(breakout, tmp_path)
    _drop_hashes(root)
    result = replay(ENV_ID, root.parent)
    assert result.exit_code == 0, result.output
    blank = encode_frame(np.zeros((210, 160, 3), np.uint8), [210, 160, 3], "jpeg", 95)
    assert edit_rows(root, lambda r: r["step"] == 12, "image",
                     lambda _: {"bytes": blank, "path": None}) == 1
    result = replay(ENV_ID, root.parent, "--diff-dir", str(tmp_path))
    assert result.exit_code == 1, result.output
    (fail,) = failures(result.stdout).values()
    # the stored image is the only record of the frame here: it reads as the frame differing
    assert (fail["step"], fail["frame"], fail["fields"]) == (11, 12, ("frame",))
