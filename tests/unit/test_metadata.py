"""Episode entries rebuilt from final rows (writer/store/metadata.py, pure parts)."""

from __future__ import annotations

import pyarrow as pa

from writer.store.metadata import add_missing_episodes, episode_entry, final_rows, new_state


def _rows() -> pa.Table:
    return pa.table({
        "episode_id": ["s-00000"] * 3 + ["s-00001"] * 2 + ["s-00002"] * 2,
        "episode_index": [0, 0, 0, 1, 1, 2, 2],
        "seed": [5, 5, 5, 6, 6, 7, 7],
        "step": [0, 1, 2, 0, 1, 0, 1],
        "terminated": [False, False, True, False, False, False, False],
        "truncated": [False, False, False, False, True, False, False],
        "is_last": [False, False, True, False, True, False, True],
        "seq": [1, 2, 3, 4, 5, 6, 7],
        "image": [b"x"] * 7,
    })


def test_final_rows_give_each_episode_with_its_outcome():
    entries = [episode_entry(row) for row in final_rows(_rows())]
    assert [(e["episode_index"], e["seed"], e["steps"], e["outcome"]) for e in entries] == [
        (0, 5, 2, "terminated"), (1, 6, 1, "truncated"), (2, 7, 1, "aborted")]


def test_missing_episodes_are_added_and_known_ones_kept():
    state = new_state(None)
    state["episodes"] = [{**episode_entry(final_rows(_rows())[1]), "outcome": "discarded"}]
    assert add_missing_episodes(state, final_rows(_rows())) == 2
    assert [(e["episode_index"], e["outcome"]) for e in state["episodes"]] == [
        (0, "terminated"), (1, "discarded"), (2, "aborted")]
    assert add_missing_episodes(state, final_rows(_rows())) == 0
