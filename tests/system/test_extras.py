"""Extra observations (`gymrec-record --record ...`): each platform's RAM equal to what a bare env
stepped with the same seed and actions holds at every step (final rows included), VizDoom's
depth / labels / automap buffers of the screen's size and equal to a bare env's, the columns
loaded by `datasets` (plain and streaming), a tampered RAM byte named by replay as the first
divergence, a name the platform cannot record refused before anything starts; and step 0
carrying reset's info."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from recorder.envs import make_env, resolve_env
from tests.support.processes import free_endpoint, run_record
from tests.support.replay_rows import edit_rows, failures, read_rows


def _record(tmp_path_factory, env_id: str, steps: int, *extra: str) -> Path:
    data_dir = tmp_path_factory.mktemp("extras") / "data"
    result = run_record(env_id, free_endpoint(), data_dir, "--episodes", "1", "--max-steps",
                        str(steps), "--seed", "4", *extra)
    assert result.returncode == 0, result.stderr
    return data_dir


def _bare(env_id: str, rows: list[dict], read, record: tuple[str, ...] = ()) -> list:
    """What `read(env, observation, info)` says of a bare env with each recorded frame (reset
    with the row's seed, then each recorded action)."""
    env = make_env(resolve_env(env_id, record=record))
    try:
        observation, info = env.reset(seed=rows[0]["seed"])
        seen = [read(env, observation, info)]
        for row in rows[:-1]:
            observation, _, _, _, info = env.step(row["action"])
            seen.append(read(env, observation, info))
    finally:
        env.close()
    return seen


def replay(env_id: str, data_dir: Path, *extra: str):
    """gymrec-replay in this process (no interpreter start-up); .exit_code, .stdout."""
    from click.testing import CliRunner

    from recorder.replay.cli import main

    return CliRunner().invoke(main, [env_id, "--data-dir", str(data_dir), *extra])


@pytest.fixture(scope="module")
def breakout(tmp_path_factory) -> Path:
    return _record(tmp_path_factory, "BreakoutNoFrameskip-v4", 150, "--record", "ram")


def test_atari_ram_is_ales_at_every_step(breakout):
    env_id = "BreakoutNoFrameskip-v4"
    rows = read_rows(breakout / env_id)
    assert rows[-1]["is_last"] and len(rows) == 151
    expected = _bare(env_id, rows, lambda env, obs, info: env.unwrapped.ale.getRAM().tolist())
    assert [r["ram"] for r in rows] == expected  # the final row's too
    assert len({bytes(r["ram"]) for r in rows}) > 100  # RAM that moves, not a constant
    (path,) = (breakout / env_id / ".meta" / "sessions").glob("*.json")
    start = json.loads(path.read_text())["start"]
    assert start["extras"] == {"ram": {"dtype": "uint8", "shape": [128]}}
    card = (breakout / env_id / "README.md").read_text()
    assert "`ram` (128 uint8, a fixed-length uint8 sequence)" in card


def test_step_0_holds_the_info_reset_returned(breakout):
    """gymrec-record dropped reset's info: step 0's info_json was {} (ALE's reset says which
    seeds it used)."""
    env_id = "BreakoutNoFrameskip-v4"
    rows = read_rows(breakout / env_id)
    env = make_env(resolve_env(env_id))
    try:
        _, info = env.reset(seed=rows[0]["seed"])
    finally:
        env.close()
    typed = ("lives", "episode_frame_number", "frame_number")
    assert rows[0]["info"] == {k: info[k] for k in typed}
    rest = {k: np.asarray(v).tolist() for k, v in info.items() if k not in typed}
    assert rest and json.loads(rows[0]["info_json"]) == rest


def test_load_dataset_returns_ram_plain_and_streaming(breakout):
    import datasets

    root = str(breakout / "BreakoutNoFrameskip-v4")
    plain = datasets.load_dataset(root, split="train")
    assert plain.features["ram"] == datasets.List(datasets.Value("uint8"), length=128)
    streamed = next(iter(datasets.load_dataset(root, split="train", streaming=True)))
    assert streamed["ram"] == plain[0]["ram"] == read_rows(Path(root))[0]["ram"]
    assert plain.with_format("numpy")[:10]["ram"].shape == (10, 128)


def test_a_tampered_ram_byte_is_the_first_divergence_at_its_step(breakout, tmp_path):
    env_id = "BreakoutNoFrameskip-v4"
    shutil.copytree(breakout, tmp_path / "copy", ignore=shutil.ignore_patterns(".writer.*"))
    root = tmp_path / "copy" / env_id
    target, byte = 73, 0x3A
    old = read_rows(root)[target]["ram"][byte]

    def flip(ram: list) -> list:
        return [*ram[:byte], ram[byte] ^ 0x01, *ram[byte + 1:]]

    assert edit_rows(root, lambda r: r["step"] == target, "ram", flip) == 1
    result = replay(env_id, root.parent)
    assert result.exit_code == 1, result.output
    (fail,) = failures(result.stdout).values()
    # row t's RAM is what action t-1 led to: the divergence is that step's, as for info
    assert (fail["step"], fail["fields"]) == (target - 1, ("ram",))
    assert (f"RAM byte 0x3a differs (recorded 0x{old ^ 1:02x}, replayed 0x{old:02x}), "
            "frame still equal") in result.stdout
    assert replay(env_id, breakout).exit_code == 0  # the untouched recording passes


def test_retro_ram_is_the_emulators_at_every_step(tmp_path_factory):
    env_id = "Airstriker-Genesis-v0"
    data_dir = _record(tmp_path_factory, env_id, 60, "--record", "ram")
    rows = read_rows(data_dir / env_id)
    expected = _bare(env_id, rows, lambda env, obs, info: env.unwrapped.get_ram().tolist())
    assert len(rows[0]["ram"]) == 65536
    assert [r["ram"] for r in rows] == expected
    assert len({bytes(r["ram"]) for r in rows}) > 30


def test_vizdoom_buffers_have_the_screens_size_and_a_bare_envs_depth(tmp_path_factory):
    import datasets

    env_id = "VizdoomBasic-v1"
    data_dir = _record(tmp_path_factory, env_id, 20, "--record", "depth,labels,automap")
    ds = datasets.load_dataset(str(data_dir / env_id), split="train")
    assert all(ds.features[n] == datasets.Image() for n in ("depth", "labels", "automap"))
    rows = list(ds)
    height, width = np.array(rows[0]["image"]).shape[:2]
    for row in rows:  # the final row too
        assert np.array(row["depth"]).shape == np.array(row["labels"]).shape == (height, width)
        assert np.array(row["automap"]).shape == (height, width, 3)
    depth = _bare(env_id, rows, lambda env, obs, info: obs["depth"][:, :, 0].copy(),
                  record=("depth",))
    assert all(np.array_equal(np.array(r["depth"]), d) for r, d in zip(rows, depth, strict=True))
    assert len({np.array(r["depth"]).tobytes() for r in rows}) > 1
    assert replay(env_id, data_dir).exit_code == 0


@pytest.mark.parametrize(("env_id", "name", "can"), [
    ("VizdoomBasic-v1", "ram", "depth, labels, automap"),
    ("BreakoutNoFrameskip-v4", "ram,depth", "ram"),
])
def test_a_name_the_platform_cannot_record_is_refused_before_anything_starts(
        tmp_path, env_id, name, can):
    from click.testing import CliRunner

    from recorder.cli import main

    result = CliRunner().invoke(main, [env_id, "--agent", "random", "--headless", "--record",
                                       name, "--data-dir", str(tmp_path / "data"),
                                       "--endpoint", free_endpoint()])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        f"gymrec-record: --record {name.split(',')[-1]}: {env_id} "
        f"({'VizDoom' if 'Vizdoom' in env_id else 'Atari'}) can record: {can}"]
    assert not (tmp_path / "data").exists()


def test_a_killed_writer_loses_and_garbles_no_ram(writer_factory, endpoint, data_dir):
    """The resend buffer keeps each step's RAM with its pixels (in /dev/shm): what a writer
    killed mid-session lost comes again, byte for byte, from the recorder."""
    from tests.support.recorders import PacedRecorder, rows_table, steps_by_episode

    writer = writer_factory().start()
    rec = PacedRecorder(endpoint, data_dir, "--fps", "200", "--episodes", "1", "--max-steps",
                        "300", "--seed", "6", "--record", "ram")
    rec.wait_acked(60)
    writer.kill()
    time.sleep(0.3)  # ~60 steps the dead writer never saw
    writer = writer_factory().start()
    final = rec.finish()
    assert final["steps_durable"] == final["steps"] > 100, final
    assert final["resends"] + final["socket_full"] > 0, final  # the writer was missed
    assert sorted(steps_by_episode(rows_table(data_dir))[0]) == list(range(final["steps"]))
    env_id = "BreakoutNoFrameskip-v4"
    rows = sorted(read_rows(data_dir / env_id), key=lambda r: (r["is_last"], r["step"]))
    expected = _bare(env_id, rows, lambda env, obs, info: env.unwrapped.ale.getRAM().tolist())
    assert [r["ram"] for r in rows] == expected


_LOAD_RAM = r"""
import json, sys
import datasets
out = {}
for streaming in (False, True):
    ds = datasets.load_dataset(sys.argv[1], split="train", streaming=streaming)
    out[str(streaming)] = [[r["seq"], list(r["ram"])] for r in ds]
    out[f"{streaming} feature"] = repr(ds.features["ram"])
print(json.dumps(out))
"""


def test_the_hub_parquet_carries_ram_plain_and_streaming(breakout, tmp_path):
    import subprocess
    import sys

    from tests.support.hub_cli import hub_env
    from tests.support.hub_server import HubServer
    from tests.support.processes import ROOT

    env_id = "BreakoutNoFrameskip-v4"
    with HubServer() as hub:
        env = hub_env(hub, tmp_path / "hf")
        pushed = subprocess.run([sys.executable, "-m", "writer.cli", "push", env_id,
                                 "--data-dir", str(breakout)], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=180)
        assert pushed.returncode == 0, pushed.stderr
        loaded = subprocess.run([sys.executable, "-c", _LOAD_RAM,
                                 f"me/GymnasiumRecording__{env_id}"], env=env,
                                capture_output=True, text=True, timeout=180)
        assert loaded.returncode == 0, loaded.stderr[-3000:]
    out = json.loads(loaded.stdout.splitlines()[-1])
    local = [[r["seq"], r["ram"]] for r in read_rows(breakout / env_id)]
    for streaming in ("False", "True"):
        assert sorted(out[streaming], key=lambda r: r[0]) == local, streaming
        assert out[f"{streaming} feature"] == "List(Value('uint8'), length=128)"


def test_record_of_your_own_loop_stores_ram_too(tmp_path):
    import gymnasium as gym

    from recorder import record
    from shared.errors import UsageError

    env = record(make_env(resolve_env("BreakoutNoFrameskip-v4")), data_dir=tmp_path / "data",
                 endpoint=free_endpoint(), record=("ram",))
    _, _ = env.reset(seed=3)
    rams = [env.unwrapped.ale.getRAM().tolist()]
    env.action_space.seed(3)
    for _ in range(30):
        env.step(env.action_space.sample())
        rams.append(env.unwrapped.ale.getRAM().tolist())
    env.close()
    rows = read_rows(tmp_path / "data" / "BreakoutNoFrameskip-v4")
    assert [r["ram"] for r in rows] == rams  # the final row (aborted at close) too
    doom = gym.make("VizdoomBasic-v1", render_mode="rgb_array")  # made without its buffers
    try:
        with pytest.raises(UsageError, match="make the env with depth_buffer_enabled=True"):
            record(doom, data_dir=tmp_path / "data", record=("depth",))
    finally:
        doom.close()


def test_the_window_records_ram_and_step_0s_reset_info(tmp_path):
    """Human play (here an agent in the window, dummy video driver) dropped reset's info too."""
    from recorder.agents import agent_source
    from recorder.play.keymaps import load_keymap
    from recorder.play.window import PlaySettings, play
    from tests.support.processes import WriterProcess

    env_id = "BreakoutNoFrameskip-v4"
    writer = WriterProcess(free_endpoint(), tmp_path / "data", tmp_path / "writer.log").start()
    try:
        choice = resolve_env(env_id, record=("ram",))
        play(PlaySettings(choice=choice, endpoint=writer.endpoint, data_dir=tmp_path / "data",
                          fps=250.0, keymap=load_keymap(None, "atari"), base_seed=8,
                          codec="png", quality=95, buffer_bytes=64 << 20, drain_timeout=30,
                          collector="test", max_steps=40, episodes=1,
                          agent=agent_source("random")))
    finally:
        writer.stop()
    rows = read_rows(tmp_path / "data" / env_id)
    assert len(rows) == 41
    seen = _bare(env_id, rows, lambda env, obs, info: (env.unwrapped.ale.getRAM().tolist(),
                                                        info))
    assert [r["ram"] for r in rows] == [ram for ram, _ in seen]
    reset_info = seen[0][1]
    assert json.loads(rows[0]["info_json"]) == {"seeds": np.asarray(reset_info["seeds"]).tolist()}
