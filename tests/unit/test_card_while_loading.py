"""`load_dataset(folder)` while the writer rewrites the card: the card's temporary file is hidden,
so datasets (which lists the folder to find the shards) never sees a file that is gone a moment
later (it raised FileNotFoundError: a test that loaded a dataset right after the recorder
returned failed now and then, as the writer rewrote the card with its preview)."""

from __future__ import annotations

import json
import threading

import datasets

from tests.support.hub_data import record_session
from writer.store.card import write_card


def test_loading_while_the_card_is_rewritten_never_sees_its_temporary_file(tmp_path):
    layout = record_session(tmp_path, episodes=2, steps=10)
    start = json.loads(next(layout.sessions.iterdir()).read_text())["start"]
    stop = threading.Event()
    rewrites = 0

    def rewrite() -> None:
        nonlocal rewrites
        while not stop.is_set():
            write_card(layout, start, make_preview=False)
            rewrites += 1

    thread = threading.Thread(target=rewrite)
    thread.start()
    try:
        for _ in range(20):
            rows = datasets.load_dataset(str(layout.root), split="train",
                                         download_mode="force_redownload")
            assert rows.num_rows == 22
    finally:
        stop.set()
        thread.join()
    assert rewrites > 20
