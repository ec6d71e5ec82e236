"""Nothing a peer sends reaches a card's YAML front matter unescaped: a session whose `platform`
smuggles in a `configs` section (pointing `load_dataset` at no data) still loads its real rows,
from the local folder and from the Hub (the local server, real huggingface_hub/datasets)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from concurrent.futures import Future
from pathlib import Path

import datasets
import huggingface_hub.constants
import numpy as np
import pytest
import yaml

from shared import protocol as p
from shared.config import dataset_dir
from shared.layout import DatasetLayout
from tests.support.hub_cli import hub_env
from tests.support.hub_server import HubServer
from tests.support.messages import make_end, make_start, make_step
from writer.encode import encode_frame
from writer.hub.client import HubClient
from writer.hub.upload import publish
from writer.store.session import WriterSession

ENV_ID = "BreakoutNoFrameskip-v4"
SHAPE = [8, 8, 3]
INJECTED = ("atari\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n"
            "    path: nothing/*.arrow\npretty_name: pwned")


def _done(data: bytes) -> Future:
    future: Future = Future()
    future.set_result(data)
    return future


def _session_from_peer(data_dir: Path, platform: str, steps: int = 5) -> DatasetLayout:
    """One ended session of one episode, its start message as a peer sent it (through the
    protocol's own decoder), stored by the writer's session code."""
    start = p.from_frames(p.to_frames(make_start(
        session=uuid.uuid4().hex, env_id=ENV_ID, platform=platform, frame_shape=SHAPE,
        observation_space="Box(0, 255, (8, 8, 3), uint8)")))
    layout = DatasetLayout(dataset_dir(data_dir, ENV_ID))
    layout.create()
    session = WriterSession(start, layout, batch_rows=16, batch_seconds=0.0, shard_rows=100,
                            shard_bytes=1 << 30)
    pixels = np.zeros(SHAPE, np.uint8).tobytes()
    image = _done(encode_frame(pixels, SHAPE, "jpeg", 95))
    sid = start.session
    for step in range(steps):
        session.accept(step + 1, make_step(session=sid, seq=step + 1, step=step, shape=SHAPE,
                                           pixels=pixels, timestamp=time.time()), image)
    session.accept(steps + 1, make_end(session=sid, seq=steps + 1, step=steps, shape=SHAPE,
                                       pixels=pixels), image)
    session.accept(steps + 2, p.SessionEnd(session=sid, seq=steps + 2, reason="done",
                                           steps_sent=steps, steps_dropped=0), None)
    session.pump(time.monotonic() + 1)
    assert session.ended
    return layout


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n", 2)[1])


def test_local_card_quotes_a_peer_platform(tmp_path):
    layout = _session_from_peer(tmp_path, INJECTED)
    header = _front_matter(layout.card.read_text())
    assert set(header) == {"license", "license_name", "tags"}
    assert INJECTED in header["tags"]
    ds = datasets.load_dataset(str(layout.root), split="train")
    assert ds.num_rows == 6  # 5 steps + the final row


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with HubServer() as server:
        yield server


def test_hub_card_quotes_a_peer_platform(hub, tmp_path):
    layout = _session_from_peer(tmp_path, INJECTED)
    repo = "me/injected"
    publish(layout, HubClient(hub.url, hub.token, False), repo)
    header = _front_matter(hub.files(repo)["README.md"].decode())
    assert "pretty_name" in header and header["pretty_name"] != "pwned"
    assert header["configs"] == [{"config_name": "default",
                                  "data_files": [{"split": "train", "path": "data/*.parquet"}]}]
    assert INJECTED in header["tags"]
    # `datasets` reads HF_ENDPOINT when imported: load in a process of its own.
    load = f"import datasets; print(datasets.load_dataset({repo!r}, split='train').num_rows)"
    result = subprocess.run([sys.executable, "-c", load], env=hub_env(hub, tmp_path / "hf"),
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-1] == "6"
