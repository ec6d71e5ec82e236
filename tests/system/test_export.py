"""`gymrec-writer export`: real recordings on each platform, exported by the real command, then
opened by Minari itself (`minari.load_dataset`, `recover_environment`) and by a reader that
follows LeRobot's v3.0 loader (LeRobot needs torch: too heavy for this suite)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest

from shared.codec import decode_frame, encode_frame
from tests.support.processes import ROOT, WriterProcess, free_endpoint, record_cmd
from writer.export.command import ExportSettings, run_export
from writer.export.reading import LocalDataset

IMAGE = "observation.image"  # the LeRobot frame column
PLATFORMS = {  # env id → folder, recording flags (small: two short episodes)
    "BreakoutNoFrameskip-v4": ("BreakoutNoFrameskip-v4", ["--episodes", "2", "--max-steps", "30"]),
    "Airstriker-Genesis-v0": ("Airstriker-Genesis-v0", ["--episodes", "2", "--max-steps", "30"]),
    "VizdoomBasic-v1": ("VizdoomBasic-v1", ["--episodes", "2", "--max-steps", "40"]),
}


def export_cmd(env_id: str, data_dir: Path, fmt: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "writer.cli", "export", env_id, "--format", fmt, "--out",
            str(out), "--data-dir", str(data_dir), *extra]


def export(env_id: str, data_dir: Path, fmt: str, out: Path, via_cli: bool) -> str:
    """The export's closing line: through the CLI in a process of its own (with its progress
    on stderr), or by the same function in this process (quicker)."""
    if not via_cli:
        folder = PLATFORMS[env_id][0]
        return run_export(ExportSettings(dataset=LocalDataset(data_dir / folder), format=fmt,
                                         out=out, name=folder))
    result = subprocess.run(export_cmd(env_id, data_dir, fmt, out), cwd=ROOT,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "shard" in result.stderr  # progress
    return result.stdout


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    """One small recording per platform, made once for this module: three recorders at once
    into one writer."""
    data_dir = tmp_path_factory.mktemp("recordings")
    endpoint = free_endpoint()
    writer = WriterProcess(endpoint, data_dir, data_dir.parent / "writer.log").start()
    try:
        recorders = [subprocess.Popen(record_cmd(env_id, endpoint, data_dir, *flags, "--seed",
                                                 "5"), cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
                     for env_id, (_, flags) in PLATFORMS.items()]
        for recorder in recorders:
            _, err = recorder.communicate(timeout=240)
            assert recorder.returncode == 0, err
    finally:
        writer.stop()
    return data_dir


def our_episodes(data_dir: Path, folder: str) -> dict[str, list[dict]]:
    """Our dataset as `datasets` loads it, rows grouped by episode (image bytes undecoded)."""
    ds = datasets.load_dataset(str(data_dir / folder), split="train")
    ds = ds.cast_column("image", datasets.Image(decode=False))
    episodes: dict[str, list[dict]] = defaultdict(list)
    for row in ds:
        episodes[row["episode_id"]].append(row)
    return {k: sorted(v, key=lambda r: r["step"]) for k, v in sorted(
        episodes.items(), key=lambda kv: (kv[1][0]["session_id"], kv[1][0]["episode_index"]))}


def _start(data_dir: Path, folder: str) -> dict:
    path = next((data_dir / folder / ".meta" / "sessions").glob("*.json"))
    return json.loads(path.read_text())["start"]


def _frames(rows: list[dict], start: dict) -> np.ndarray:
    return np.stack([decode_frame(r["image"]["bytes"], start["codec"], start["frame_shape"][2])
                     for r in rows])


def _replayed_frame(obs, start: dict) -> np.ndarray:
    """What gymrec would have stored for a live observation: encoded with the recorded codec
    settings, then decoded."""
    frame = obs["screen"] if isinstance(obs, dict) else obs
    frame = np.ascontiguousarray(frame, dtype=np.uint8)
    data = encode_frame(frame.tobytes(), list(frame.shape), start["codec"], start["quality"])
    return decode_frame(data, start["codec"], start["frame_shape"][2])


@pytest.mark.parametrize(("env_id", "via_cli"), [
    ("BreakoutNoFrameskip-v4", True), ("Airstriker-Genesis-v0", False),
    ("VizdoomBasic-v1", False)])
def test_minari_round_trip(recordings, tmp_path, env_id, via_cli):
    import minari  # in the dev group: always installed for the suite
    folder = PLATFORMS[env_id][0]
    closing = export(env_id, recordings, "minari", tmp_path, via_cli)
    ours = our_episodes(recordings, folder)
    start = _start(recordings, folder)
    steps = sum(len(rows) - 1 for rows in ours.values())
    assert f"exported {len(ours)} episodes, {steps} steps" in closing

    os.environ["MINARI_DATASETS_PATH"] = str(tmp_path)
    try:
        dataset = minari.load_dataset(f"gymrec/{folder}-v0")
    finally:
        del os.environ["MINARI_DATASETS_PATH"]
    assert (dataset.total_episodes, dataset.total_steps) == (len(ours), steps)
    env = dataset.recover_environment()
    try:
        for episode, rows in zip(dataset.iterate_episodes(), ours.values(), strict=True):
            assert episode.observations.dtype == np.uint8
            assert np.array_equal(episode.observations, _frames(rows, start))  # N+1 of them
            actions = [r["action"] for r in rows[:-1]]
            assert np.array_equal(episode.actions, np.asarray(actions))
            assert dataset.action_space.contains(episode.actions[0])
            assert episode.rewards.tolist() == [r["reward"] for r in rows[:-1]]
            assert episode.terminations.tolist() == [r["terminated"] for r in rows[:-1]]
            assert episode.truncations.tolist() == [r["truncated"] for r in rows[:-1]]
            # The recorded env, made from the dataset alone, steps to the same frames.
            obs, _ = env.reset(seed=rows[0]["seed"])
            replayed = [_replayed_frame(obs, start)]
            for action in episode.actions:
                obs, *_ = env.step(action)
                replayed.append(_replayed_frame(obs, start))
            assert np.array_equal(np.stack(replayed), episode.observations)
        seeds = [m["seed"] for m in dataset.storage.get_episode_metadata(range(len(ours)))]
        assert seeds == [rows[0]["seed"] for rows in ours.values()]
    finally:
        env.close()


# -- a reader that follows LeRobot's v3.0 loader (lerobot/datasets/io_utils.py, feature_utils.py,
#    dataset_reader.py): info.json → features → datasets.Dataset.from_parquet over data/*/*.parquet;
#    episodes from meta/episodes/*/*.parquet (dataset_from_index, dataset_to_index); tasks from
#    meta/tasks.parquet (index "task"); stats.json as arrays.

def _lerobot_hf_features(features: dict) -> datasets.Features:
    out = {}
    for key, ft in features.items():
        if ft["dtype"] == "video":
            continue
        if ft["dtype"] == "image":
            out[key] = datasets.Image()
        elif tuple(ft["shape"]) == (1,):
            out[key] = datasets.Value(dtype=ft["dtype"])
        elif len(ft["shape"]) == 1:
            out[key] = datasets.Sequence(length=ft["shape"][0],
                                         feature=datasets.Value(dtype=ft["dtype"]))
        else:
            raise AssertionError(f"unexpected feature {ft}")
    return datasets.Features(out)


def load_lerobot(root: Path) -> dict:
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert key in info["features"], key
    data_paths = sorted((root / "data").glob("*/*.parquet"))
    assert [p.relative_to(root).as_posix() for p in data_paths] == [
        info["data_path"].format(chunk_index=0, file_index=0)]
    hf = datasets.Dataset.from_parquet([str(p) for p in data_paths],
                                       features=_lerobot_hf_features(info["features"]))
    episodes = datasets.Dataset.from_parquet(
        [str(p) for p in sorted((root / "meta" / "episodes").glob("*/*.parquet"))])
    tasks = pd.read_parquet(root / "meta" / "tasks.parquet")
    tasks.index.name = "task"
    stats = {k: {s: np.atleast_1d(np.array(v)) for s, v in d.items()}
             for k, d in json.loads((root / "meta" / "stats.json").read_text()).items()}
    return {"info": info, "hf": hf, "episodes": episodes, "tasks": tasks, "stats": stats}


def test_lerobot_layout_read_as_lerobot_reads_it(recordings, tmp_path):
    env_id, folder = "Airstriker-Genesis-v0", "Airstriker-Genesis-v0"  # MultiBinary actions
    out = tmp_path / "airstriker-lerobot"
    closing = export(env_id, recordings, "lerobot", out, via_cli=False)
    ours = our_episodes(recordings, folder)
    start = _start(recordings, folder)
    steps = sum(len(rows) - 1 for rows in ours.values())
    assert f"exported {len(ours)} episodes, {steps} steps" in closing

    data = load_lerobot(out)
    info, hf, episodes = data["info"], data["hf"], data["episodes"]
    assert (info["total_episodes"], info["total_frames"], info["fps"]) == (len(ours), steps, 60)
    assert info["features"]["action"]["names"] == start["action_labels"]
    assert len(hf) == steps
    for ep, rows in zip(episodes, ours.values(), strict=True):
        frames = hf.select(range(ep["dataset_from_index"], ep["dataset_to_index"]))
        assert ep["length"] == len(rows) - 1 == len(frames)
        assert frames["episode_index"] == [ep["episode_index"]] * len(frames)
        assert frames["frame_index"] == list(range(len(frames)))
        assert frames["action"] == [r["action"] for r in rows[:-1]]
        assert frames["next.reward"] == pytest.approx([r["reward"] for r in rows[:-1]])
        assert frames["next.done"] == [False] * (len(frames) - 1) + [True]
        assert data["tasks"].iloc[frames[0]["task_index"]].name == f"Play {env_id}"
        pictures = np.stack([np.asarray(img) for img in frames[IMAGE]])
        assert np.array_equal(pictures, _frames(rows[:-1], start))
    assert data["stats"]["action"]["count"].tolist() == [steps]
    assert data["stats"][IMAGE]["mean"].shape == (3, 1, 1)
    assert not list(tmp_path.glob(".*partial*"))

