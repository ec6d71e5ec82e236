"""Cheap episode starts (issue 15): on ALE a session's later episodes start with an unseeded
reset, and the snapshot taken just before it (`start_state`, on row 0) lets each replay
bit-exactly on its own: fixed frameskip, sticky actions (v5) and stochastic frameskip (v4). A
damaged or swapped start state is reported; a dataset recorded before the column still replays,
and takes no new session. Real recordings into real writers, real replays (in this process)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import ale_py
import gymnasium as gym
import msgpack
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from recorder import record
from recorder.seeds import episode_seed
from shared import protocol as p
from shared.errors import ProtocolError
from tests.support.messages import make_batch, make_step
from tests.support.processes import ROOT, WriterProcess, free_endpoint, run_record
from tests.support.replay_rows import edit_rows, failures, read_rows

gym.register_envs(ale_py)
SEED = 3
STEPS = 90  # per episode (--max-steps): short episodes, every start still a real reset
SID = "0123456789abcdef0123456789abcdef"


def replay(env_id: str, data_dir: Path, *extra: str):
    """gymrec-replay in this process (no interpreter start-up); .exit_code, .stdout."""
    from click.testing import CliRunner

    from recorder.replay.cli import main

    return CliRunner().invoke(main, [env_id, "--data-dir", str(data_dir), *extra])


def _episode_starts(root: Path) -> list[tuple[str, int, bytes | None]]:
    """(episode id, seed, start state) of each episode's row 0; fails if another row has one."""
    starts = []
    for row in read_rows(root):
        if row["step"] == 0 and not row["is_last"]:
            starts.append((row["episode_id"], row["seed"], row["start_state"]))
        else:
            assert row["start_state"] is None, row
    return starts


@pytest.fixture(scope="module")
def writer(tmp_path_factory):
    """One writer for the module's recordings (each env is its own dataset in its folder)."""
    folder = tmp_path_factory.mktemp("starts")
    process = WriterProcess(free_endpoint(), folder / "data", folder / "writer.log").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def recordings(writer):
    """env id → its dataset's data folder: three episodes of one session, the first reset with
    its seed, the others cheaply (recorded once per module, when first asked for)."""
    done: dict[str, Path] = {}

    def recorded(env_id: str) -> Path:
        if env_id not in done:
            result = run_record(env_id, writer.endpoint, writer.data_dir, "--episodes", "3",
                                "--workers", "1", "--max-steps", str(STEPS), "--seed",
                                str(SEED))
            assert result.returncode == 0, result.stderr
            done[env_id] = writer.data_dir
        return done[env_id]

    return recorded


@pytest.mark.parametrize("env_id", ["BreakoutNoFrameskip-v4", "ALE/Breakout-v5", "Breakout-v4"])
def test_later_episodes_start_from_a_snapshot_and_each_replays_alone(recordings, env_id):
    data_dir = recordings(env_id)
    starts = _episode_starts(data_dir / env_id.replace("/", "_"))
    assert [seed for _, seed, _ in starts] == [episode_seed(SEED, k) for k in range(3)]
    assert starts[0][2] is None  # the session's first episode: reset with its seed
    assert all(10_000 < len(state) < p.MAX_START_STATE for _, _, state in starts[1:])
    assert starts[1][2] != starts[2][2]

    whole = replay(env_id, data_dir)
    assert whole.exit_code == 0 and "(3 passed)" in whole.stdout, whole.output
    alone = replay(env_id, data_dir, "--episode", starts[2][0])  # without episode 1 before it
    assert alone.exit_code == 0 and "(1 passed)" in alone.stdout, alone.output


def test_a_damaged_or_swapped_start_state_is_reported(recordings, tmp_path):
    env_id = "BreakoutNoFrameskip-v4"
    data_dir = tmp_path / "data"
    shutil.copytree(recordings(env_id) / env_id, data_dir / env_id,
                    ignore=shutil.ignore_patterns(".writer.*"))
    root = data_dir / env_id
    (first, _, _), (second, _, state), (third, _, _) = _episode_starts(root)

    def flip(value: bytes) -> bytes:
        return value[:-100] + bytes([value[-100] ^ 0x40]) + value[-99:]

    assert edit_rows(root, lambda r: r["episode_id"] == second and r["step"] == 0,
                     "start_state", flip) == 1
    assert edit_rows(root, lambda r: r["episode_id"] == third and r["step"] == 0,
                     "start_state", lambda _: state) == 1  # whole, but another episode's
    result = replay(env_id, data_dir)
    assert result.exit_code == 1, result.output
    failed = failures(result.stdout)
    assert set(failed) == {second, third} and "1 passed" in result.stdout  # the first
    assert failed[second]["fields"] == ("start_state",)
    assert "the start state is damaged (its checksum differs)" in result.stdout
    assert failed[third]["step"] is None  # diverges at reset: another episode's start


def _strip_start_states(root: Path) -> None:
    """Rewrite the shards as a gymrec from before start states wrote them: no such column, in
    the data nor in the `datasets` features."""
    for path in sorted((root / "data").glob("*.arrow")):
        table = ipc.open_stream(pa.BufferReader(path.read_bytes())).read_all()
        hf = json.loads(table.schema.metadata[b"huggingface"])
        del hf["info"]["features"]["start_state"]
        table = table.drop_columns(["start_state"]).replace_schema_metadata(
            {b"huggingface": json.dumps(hf).encode()})
        with pa.OSFile(str(path), "wb") as sink, ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=64)


def test_a_dataset_from_before_start_states_replays_and_takes_no_new_session(writer):
    env_id, data_dir, endpoint = "ALE/Pong-v5", writer.data_dir, writer.endpoint
    # Two workers, one episode each: two sessions whose every episode was reset with its seed,
    # as every episode was before start states.
    result = run_record(env_id, endpoint, data_dir, "--episodes", "2", "--workers", "2",
                        "--max-steps", "60", "--seed", "8")
    assert result.returncode == 0, result.stderr
    root = data_dir / "ALE_Pong-v5"
    _strip_start_states(root)
    assert "start_state" not in ipc.open_stream(
        str(next((root / "data").glob("*.arrow")))).schema.names

    result = replay(env_id, data_dir)
    assert result.exit_code == 0 and "(2 passed)" in result.stdout, result.output
    # A new session's rows would not load beside these: refused, in one line.
    result = run_record(env_id, endpoint, data_dir, "--episodes", "1", "--max-steps", "5")
    assert result.returncode == 5, result.stderr
    assert "earlier gymrec (without the start_state column)" in result.stderr
    assert "Traceback" not in result.stderr


def test_record_env_keeps_the_users_seeds_and_starts_the_rest_cheaply(writer):
    env_id, data_dir = "PongNoFrameskip-v4", writer.data_dir
    with record(gym.make(env_id, max_episode_steps=40), data_dir=data_dir,
                endpoint=writer.endpoint) as env:
        for seed in (11, None, 12, None):
            env.reset(seed=seed)
            for _ in range(40):
                env.step(env.action_space.sample())
    starts = _episode_starts(data_dir / env_id)
    assert [(seed, state is None) for _, seed, state in starts] == [
        (11, True), (p.CONTINUED, False), (12, True), (p.CONTINUED, False)]
    result = replay(env_id, data_dir, "--episode", starts[1][0])  # alone
    assert result.exit_code == 0 and "(1 passed)" in result.stdout, result.output


def test_human_play_starts_later_episodes_cheaply_too(writer):
    """The window's loop (an agent plays it here, at 200 fps) starts episodes as headless does."""
    env_id, data_dir = "Pong-v4", writer.data_dir
    result = subprocess.run(
        [sys.executable, "-m", "recorder.cli", env_id, "--endpoint", writer.endpoint,
         "--data-dir", str(data_dir), "--agent", "random", "--episodes", "2", "--max-steps",
         "25", "--fps", "200", "--seed", "6"], cwd=ROOT, capture_output=True, text=True,
        timeout=180)
    assert result.returncode == 0, result.stderr
    starts = _episode_starts(data_dir / env_id)
    assert [(seed, state is None) for _, seed, state in starts] == [
        (episode_seed(6, 0), True), (episode_seed(6, 1), False)]
    result = replay(env_id, data_dir, "--episode", starts[1][0])
    assert result.exit_code == 0 and "(1 passed)" in result.stdout, result.output


# -- the wire: a start state is bytes, with step 0 only, and the header's only bin value ------


def test_a_start_state_travels_with_step_0_only():
    state = b"\x00snapshot" * 100
    step = make_step(session=SID, seq=1, step=0, start_state=state)
    assert p.from_frames(p.to_frames(step)).start_state == state
    batch = make_batch(3, session=SID, seq=1, first_step=0, start_state=state)
    assert p.from_frames(p.to_frames(batch)).start_state == state
    for msg in (make_step(session=SID, seq=1, step=1, start_state=state),
                make_batch(3, session=SID, seq=1, first_step=4, start_state=state)):
        with pytest.raises(ProtocolError, match="a start state after step 0"):
            p.from_frames(p.to_frames(msg))
    big = make_step(session=SID, seq=1, step=0, start_state=b"x" * (p.MAX_START_STATE + 1))
    with pytest.raises(ProtocolError):
        p.from_frames(p.to_frames(big))


def test_bin_values_elsewhere_in_a_header_are_refused():
    frames = p.to_frames(make_step(session=SID, seq=1, step=0))
    for key, value in (("info_json", b"{}"), ("info", {"lives": b"\x01"}), (b"bin key", 1)):
        header = msgpack.unpackb(frames[1], raw=False)
        header[key] = value
        with pytest.raises(ProtocolError):
            p.from_frames([frames[0], msgpack.packb(header, use_bin_type=True), frames[2]])


@pytest.mark.parametrize("env_id", ["BreakoutNoFrameskip-v4", "ALE/Pong-v5"])
def test_an_env_made_for_its_seed_is_the_seeded_reset(env_id):
    """A session's first reset on ALE loads the ROM once (the env is made seeded, then reset
    without a seed): the same observation, info, emulator and RNG state, and frames, as make +
    reset(seed); reset with another seed, it is an ordinary seeded reset."""
    import numpy as np

    from recorder.envs import first_reset, make_env, resolve_env

    choice = resolve_env(env_id)

    def played(env, observation) -> list:
        frames, rng = [observation], np.random.default_rng(5)
        for _ in range(150):
            observation, *_ = env.step(int(rng.integers(env.action_space.n)))
            frames.append(observation)
        return frames

    for made_for, reset_with in ((SEED, SEED), (SEED, SEED + 1)):
        usual = make_env(choice)
        expected, expected_info = usual.reset(seed=reset_with)
        env = make_env(choice, first_seed=made_for)
        assert env.unwrapped._gymrec_made_for[0] == made_for  # made seeded: one ROM load
        observation, info = first_reset(env, reset_with)
        assert info == expected_info and "seeds" in info
        state = [e.unwrapped.ale.cloneState(include_rng=True).serialize() for e in (usual, env)]
        rngs = [e.unwrapped.np_random.bit_generator.state for e in (usual, env)]
        assert state[0] == state[1] and rngs[0] == rngs[1]
        assert all(np.array_equal(x, y) for x, y in zip(played(usual, expected),
                                                        played(env, observation), strict=True))
        usual.close()
        env.close()
