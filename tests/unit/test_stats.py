"""Dataset statistics (writer/summary/stats.py) over hand-made rows whose numbers are known."""

from __future__ import annotations

import pyarrow as pa
import pytest

from writer.summary.pictures import evenly, histogram, preview_webp, summary_sheet
from writer.summary.stats import Spread, StatsBuilder


def _rows(episodes: dict[str, list[tuple]], action_type: pa.DataType | None = None) -> pa.Table:
    """episodes: id → [(action, reward)] steps; each gets a final row (terminated if the id
    ends in 't', truncated if 'u', neither else)."""
    cols = {k: [] for k in ("session_id", "episode_id", "step", "action", "reward",
                            "terminated", "truncated", "is_last")}
    for eid, steps in episodes.items():
        for i, (action, reward) in enumerate([*steps, (None, None)]):
            last = i == len(steps)
            for k, v in zip(cols, (eid.split("-")[0], eid, i, action, reward,
                                   last and eid.endswith("t"), last and eid.endswith("u"),
                                   last), strict=True):
                cols[k].append(v)
    return pa.table({**cols, "action": pa.array(cols["action"], action_type or pa.int64())})


def _session(sid: str, fps: float = 15.0, player: str = "human", **extra) -> dict:
    start = {"session": sid, "fps": fps, "action_labels": ["NOOP", "FIRE", "RIGHT"],
             "collector": "me@host", "player": player}
    return {"start": start, "episodes": [], "gaps": [], **extra}


def test_a_shard_counted_as_one_table_counts_what_its_batches_do():
    table = _rows({"a-0t": [(0, 1.0), (1, 0.0), (2, 2.0)], "a-1u": [(2, -1.0)],
                   "b-0": [(1, 0.5), (1, 0.5)]})
    batches = [table.slice(0, 2), table.slice(2, 3), table.slice(5)]  # as a writer flushes
    each, whole, empty = StatsBuilder(), StatsBuilder(), StatsBuilder()
    for batch in batches:
        each.add_rows(batch)
    whole.add_batches(b for t in batches for b in t.to_batches())
    empty.add_batches([])
    sessions = [_session("a"), _session("b")]
    ours, theirs = whole.build(sessions), each.build(sessions)
    assert ours.to_json() == theirs.to_json()  # the per-episode lists come in any order
    assert sorted(ours.episode_returns) == sorted(theirs.episode_returns)
    assert sorted(ours.episode_lengths) == sorted(theirs.episode_lengths)
    assert ours.rows == 9 and empty.build(sessions).rows == 0


def test_counts_returns_lengths_outcomes_and_actions():
    builder = StatsBuilder()
    table = _rows({"a-0t": [(0, 1.0), (1, 0.0), (2, 2.0)], "a-1u": [(2, -1.0)],
                   "b-0": [(1, 0.5), (1, 0.5)]})
    builder.add_rows(table.slice(0, 5))  # an episode split across two batches
    builder.add_rows(table.slice(5))
    gap = {"count": 7, "first_step": 3, "last_step": 9}
    stats = builder.build([_session("a", gaps=[gap]), _session("b", fps=30.0,
                                                                player="agent:random")])
    assert (stats.sessions, stats.episodes, stats.frames, stats.rows) == (2, 3, 6, 9)
    assert stats.hours == pytest.approx((4 / 15 + 2 / 30) / 3600)
    assert stats.returns.mean == pytest.approx((3.0 - 1.0 + 1.0) / 3)
    assert (stats.returns.min, stats.returns.max) == (-1.0, 3.0)
    assert (stats.lengths.min, stats.lengths.max, stats.lengths.quantiles["p50"]) == (1, 3, 2)
    assert stats.outcomes == {"aborted": 1, "terminated": 1, "truncated": 1}
    assert stats.actions == {"NOOP": 1, "FIRE": 3, "RIGHT": 2}
    assert (stats.gaps, stats.dropped_frames) == (1, 7)
    assert stats.players == {"agent:random": 1, "human": 1}
    assert stats.collectors == {"me@host": 2}


def test_recorded_outcomes_win_and_episodes_without_an_end_are_incomplete():
    builder = StatsBuilder()
    table = _rows({"a-0": [(0, 0.0)], "a-1": [(0, 0.0)]})
    builder.add_rows(table.slice(0, 3))  # a-1 lost its final row (a gap cut it)
    episodes = [{"episode_id": "a-0", "outcome": "aborted"},
                {"episode_id": "a-2", "outcome": "discarded"}]
    stats = builder.build([_session("a", episodes=episodes)])
    assert stats.outcomes == {"aborted": 1, "discarded": 1, "incomplete": 1}
    assert stats.episodes == 2 and stats.rows == 3


def test_multibinary_counts_presses_per_button():
    builder = StatsBuilder()
    kind = pa.list_(pa.int8(), 3)
    builder.add_rows(_rows({"a-0t": [([1, 0, 1], 0.0), ([1, 1, 0], 0.0)]}, kind))
    stats = builder.build([_session("a")])
    assert stats.action_kind == "MultiBinary"
    assert stats.actions == {"NOOP": 2, "FIRE": 1, "RIGHT": 1}


def test_spread_of_nothing_and_quantiles():
    assert Spread.of([]).mean is None
    spread = Spread.of([float(v) for v in range(1, 101)])
    assert spread.quantiles["p50"] == pytest.approx(50.5)
    assert spread.quantiles["p90"] == pytest.approx(90.1)


def test_pictures_are_pngs_and_webps_made_the_same_way_twice():
    import numpy as np

    frames = [np.full((40, 30, 3), i * 20, np.uint8) for i in range(6)]
    sheet = summary_sheet("t", [1.0, -2.0, 3.0], [5, 5, 9], frames)
    assert sheet[:8] == b"\x89PNG\r\n\x1a\n"
    assert sheet == summary_sheet("t", [1.0, -2.0, 3.0], [5, 5, 9], frames)
    webp = preview_webp(frames, fps=10)
    assert webp[:4] == b"RIFF" and webp[8:12] == b"WEBP"
    assert evenly(list(range(9)), 3) == [0, 4, 8] and evenly([1], 3) == [1]
    assert histogram([1, 1, 3], bins=2)[0] == [2.0, 1.0]


def test_hours_follow_the_speed_changes_of_human_play():
    from writer.summary.stats import play_seconds

    assert play_seconds(60, 0, 60.0, []) == pytest.approx(1.0)
    # 30 frames at 60 fps, then 30 at 15 fps (a change at step 30 of episode 0).
    assert play_seconds(60, 0, 60.0, [[0, 30, 15.0]]) == pytest.approx(0.5 + 2.0)
    # Episode 1 starts at the rate episode 0 ended with.
    assert play_seconds(30, 1, 60.0, [[0, 30, 15.0]]) == pytest.approx(2.0)
    builder = StatsBuilder()
    builder.add_rows(_rows({"a-00000t": [(0, 0.0)] * 60}))
    ended = _session("a", fps=60.0, end={"fps_changes": [[0, 30, 15.0]]})
    assert builder.build([ended]).hours == pytest.approx(2.5 / 3600)
