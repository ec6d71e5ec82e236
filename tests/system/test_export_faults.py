"""Exports of datasets with holes, and exports that are killed: a discarded episode is left out,
a gap ends its episode there (truncated, and said so), a killed export leaves nothing that looks
like a dataset, and a Hub repo exports like a local folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from concurrent.futures import Future
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
from huggingface_hub import hf_hub_download

from shared import codec
from shared import protocol as p
from shared.config import dataset_dir
from shared.errors import UsageError
from shared.layout import DatasetLayout
from tests.support.hub_cli import hub_env
from tests.support.hub_data import ENV_ID, record_session
from tests.support.hub_server import HubServer
from tests.support.messages import make_end, make_start, make_step
from tests.support.processes import ROOT
from tests.system.test_export import export_cmd, load_lerobot
from writer.encode import encode_frame
from writer.export.command import ExportSettings, run_export
from writer.export.reading import HubDataset, LocalDataset
from writer.hub.client import HubClient
from writer.hub.upload import publish
from writer.summary.command import SummarySettings, run_summary

SHAPE = [40, 48, 3]  # big enough for Minari to treat frames as images


class _Session:
    """A session stored by the writer's own session code, message by message."""

    def __init__(self, data_dir: Path):
        self.rng = np.random.default_rng(3)
        self.start = make_start(session=uuid.uuid4().hex, env_id=ENV_ID, frame_shape=SHAPE,
                                observation_space="Box(0, 255, (40, 48, 3), uint8)")
        self.layout = DatasetLayout(dataset_dir(data_dir, ENV_ID))
        self.layout.create()
        from writer.store.session import WriterSession

        self.session = WriterSession(self.start, self.layout, batch_rows=8, batch_seconds=0.0,
                                     shard_rows=10, shard_bytes=1 << 30)
        self.seq = 0
        self.pixels: dict[tuple[int, int], bytes] = {}  # (episode, step) → encoded frame

    def _send(self, msg_of, image: bool = True) -> None:
        self.seq += 1
        msg = msg_of(self.seq)
        encoded = None
        if image:
            pixels = self.rng.integers(0, 256, SHAPE, dtype=np.uint8).tobytes()
            self.pixels[(msg.episode, msg.step)] = codec.encode_frame(pixels, SHAPE, "jpeg", 95)
            encoded = Future()
            encoded.set_result(encode_frame(pixels, SHAPE, "jpeg", 95))  # as the writer's pool
            msg = msg.__class__(**{**msg.__dict__, "pixels": pixels})
        self.session.accept(self.seq, msg, encoded)
        self.session.pump(time.monotonic() + 1)

    def steps(self, episode: int, steps: range, ends: str = "") -> None:
        """Steps of `episode`; the last one's flags say how it `ends` ("" : it does not)."""
        for step in steps:
            last = step == steps[-1]
            self._send(lambda seq, s=step, last=last: make_step(
                session=self.start.session, seq=seq, episode=episode, step=s, seed=10 + episode,
                action=s % 4, reward=float(s), shape=SHAPE, timestamp=time.time(),
                terminated=last and ends == "terminated", truncated=last and ends == "truncated"))

    def end(self, episode: int, step: int, outcome: str) -> None:
        self._send(lambda seq: make_end(
            session=self.start.session, seq=seq, episode=episode, step=step, seed=10 + episode,
            outcome=outcome, terminated=outcome == "terminated",
            truncated=outcome == "truncated", shape=SHAPE))

    def gap(self, episode: int, first: int, last: int) -> None:
        self._send(lambda seq: p.Gap(session=self.start.session, seq=seq, episode=episode,
                                     first_step=first, last_step=last,
                                     count=last - first + 1), image=False)

    def close(self) -> None:
        self._send(lambda seq: p.SessionEnd(session=self.start.session, seq=seq, reason="done",
                                            steps_sent=0, steps_dropped=0), image=False)
        assert self.session.ended


@pytest.fixture
def holes(data_dir) -> _Session:
    """Episode 0: 6 steps, terminated. 1: discarded. 2: steps 0-4, a gap of 5-9, steps 10-12,
    truncated. 3: 3 steps, truncated. 4: a gap of 0-2 (no start to step from), 3-5."""
    s = _Session(data_dir)
    s.steps(0, range(6), ends="terminated")
    s.end(0, 6, "terminated")
    s.steps(1, range(4))
    s.end(1, 4, "discarded")
    s.steps(2, range(5))
    s.gap(2, 5, 9)
    s.steps(2, range(10, 13), ends="truncated")
    s.end(2, 13, "truncated")
    s.steps(3, range(3), ends="truncated")
    s.end(3, 3, "truncated")
    s.gap(4, 0, 2)
    s.steps(4, range(3, 6), ends="truncated")
    s.end(4, 6, "truncated")
    s.close()
    return s


def test_minari_leaves_out_the_discarded_episode_and_cuts_at_the_gap(holes, tmp_path,
                                                                     monkeypatch):
    import minari  # in the dev group: always installed for the suite
    line = run_export(ExportSettings(dataset=LocalDataset(holes.layout.root), format="minari",
                                     out=tmp_path, name=ENV_ID))
    assert line.startswith("exported 3 episodes, 13 steps to ")
    assert "1 cut by a gap (truncated there)" in line and "1 discarded left out" in line
    assert "1 too short to export" in line  # episode 4: its start was never recorded
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    episodes = list(minari.load_dataset(f"gymrec/{ENV_ID}-v0").iterate_episodes())
    assert [len(e.actions) for e in episodes] == [6, 4, 3]
    cut = episodes[1]
    assert cut.truncations.tolist() == [False, False, False, True]
    assert cut.rewards.tolist() == [0.0, 1.0, 2.0, 3.0]
    ours = [codec.decode_frame(holes.pixels[(2, step)], "jpeg", 3) for step in range(5)]
    assert np.array_equal(cut.observations, np.stack(ours))
    assert episodes[0].terminations.tolist() == [False] * 5 + [True]
    assert episodes[2].truncations.tolist() == [False, False, True]


def test_lerobot_leaves_out_the_discarded_episode_and_cuts_at_the_gap(holes, tmp_path):
    out = tmp_path / "lerobot"
    line = run_export(ExportSettings(dataset=LocalDataset(holes.layout.root), format="lerobot",
                                     out=out, name=ENV_ID))
    assert line.startswith("exported 3 episodes, 14 steps to ")
    data = load_lerobot(out)
    assert data["episodes"]["length"] == [6, 5, 3]
    assert data["episodes"]["gymrec/cut_by_gap"] == [False, True, False]
    cut = data["hf"].select(range(6, 11))
    assert cut["next.truncated"] == [False] * 4 + [True]
    assert cut["action"] == [0, 1, 2, 3, 0]


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with HubServer() as server:
        yield server


def test_a_killed_export_from_the_hub_leaves_no_dataset_then_runs_again(hub, data_dir,
                                                                        tmp_path, capsys):
    import minari  # in the dev group: always installed for the suite
    record_session(data_dir, episodes=4, steps=12, shard_rows=10, seed=31)
    repo = "me/exported"
    publish(DatasetLayout(dataset_dir(data_dir, ENV_ID)), HubClient(hub.url, hub.token, False),
            repo)
    out = tmp_path / "minari"
    env = hub_env(hub, tmp_path / "hf")
    # The session files are in the export's cache already: its first download is a shard's,
    # made inside the staged export. The server holds it; the export is killed there.
    sha = hub.commits(repo)[-1].oid
    for path in hub.files(repo):
        if path.startswith("meta/sessions/"):
            hf_hub_download(repo, path, repo_type="dataset", revision=sha, endpoint=hub.url,
                            token=hub.token, cache_dir=tmp_path / "hf" / "hub")
    cmd = [*export_cmd(ENV_ID, data_dir, "minari", out), "--repo", repo]
    held = hub.hang_next("resolve")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert held.reached.wait(60), proc.communicate(timeout=5)
        partial = out / "gymrec"
        assert list(partial.glob(f".{ENV_ID}-v0.partial-{proc.pid}"))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        held.release.set()
    assert not (out / "gymrec" / f"{ENV_ID}-v0").exists()
    os.environ["MINARI_DATASETS_PATH"] = str(out)
    try:
        with pytest.raises(FileNotFoundError):
            minari.load_dataset(f"gymrec/{ENV_ID}-v0")
        result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=240)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("exported 4 episodes, 48 steps to ")
        dataset = minari.load_dataset(f"gymrec/{ENV_ID}-v0")
        assert dataset.total_episodes == 4
        metadata = json.loads((out / "gymrec" / f"{ENV_ID}-v0" / "data" / "metadata.json")
                              .read_text())
        assert metadata["dataset_id"] == f"gymrec/{ENV_ID}-v0"
    finally:
        del os.environ["MINARI_DATASETS_PATH"]
    assert not list(partial.glob(".*partial*"))  # the killed export's folder is gone too

    with pytest.raises(UsageError, match="me/missing: no such dataset repo"):
        HubDataset("me/missing", hub.url, hub.token)

    # The summary of a Hub repo reads it the same way.
    capsys.readouterr()
    picture = run_summary(SummarySettings(dataset=HubDataset(repo, hub.url, hub.token),
                                          title=repo, picture=tmp_path / "s.png", as_json=True))
    stats = json.loads(capsys.readouterr().out)
    assert (stats["episodes"], stats["frames"], stats["picture"]) == (4, 48, str(picture))
