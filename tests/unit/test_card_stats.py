"""The cards' statistics, preview and license (writer/hub/card.py, writer/store/card.py,
writer/summary/card_parts.py): merged statistics equal those built over all rows at once, peer
labels are escaped, the license defaults to "other" and `--license` is kept by the dataset."""

from __future__ import annotations

from dataclasses import asdict

import pyarrow as pa
import pytest
import yaml
from click.testing import CliRunner

from tests.support.hub_data import record_session
from tests.support.messages import make_start
from writer.hub.card import Published, card_text
from writer.store import card as store_card
from writer.summary.card_parts import CardExtras
from writer.summary.stats import StatsBuilder, merge


def _session(sid: str, **start) -> dict:
    return {"start": asdict(make_start(session=sid, **start)), "episodes": [], "gaps": []}


def _rows(sid: str, episodes: list[list[tuple[int, float]]]) -> pa.Table:
    cols: dict[str, list] = {k: [] for k in ("session_id", "episode_id", "step", "action",
                                             "reward", "terminated", "truncated", "is_last")}
    for e, steps in enumerate(episodes):
        for i, (action, reward) in enumerate([*steps, (-1, 0.0)]):
            last = i == len(steps)
            for k, v in zip(cols, (sid, f"{sid}-{e:05d}", i, action, reward, last, False, last),
                            strict=True):
                cols[k].append(v)
    return pa.table(cols)


def test_merged_session_statistics_equal_the_whole():
    a = _rows("a" * 32, [[(0, 1.0), (1, 2.0)], [(2, 0.0)]])
    b = _rows("b" * 32, [[(3, 5.0), (3, 1.0), (0, 0.0)]])
    sa, sb = _session("a" * 32), _session("b" * 32, fps=30.0, player="agent:random")
    parts = []
    for table, session in ((a, sa), (b, sb)):
        builder = StatsBuilder()
        builder.add_rows(table)
        parts.append(builder.build([session]).to_json(per_episode=True))
    whole = StatsBuilder()
    whole.add_rows(a)
    whole.add_rows(b)
    assert merge(parts, [sa, sb]) == whole.build([sa, sb])


def test_hub_card_shows_statistics_preview_and_license():
    builder = StatsBuilder()
    builder.add_rows(_rows("a" * 32, [[(0, 1.0), (1, 2.0)], [(2, 0.0)]]))
    s = _session("a" * 32, action_labels=["NO|OP", "FIRE", "RIGHT", "LEFT"])
    stats = builder.build([s])
    extras = CardExtras(stats=stats, stats_sessions=1, preview=b"RIFF....WEBP",
                        license_id="cc-by-4.0")
    text = card_text("me/x", [s, _session("b" * 32)], Published(), extras)
    header = yaml.safe_load(text.split("---\n", 2)[1])
    assert header["license"] == "cc-by-4.0" and "license_name" not in header
    assert "![A recorded episode, sped up](preview.webp)" in text
    assert "| return | 1.50 | 0.00 |" in text
    assert "| NO\\|OP | 1 | 33.3% |" in text  # a peer's label cannot break the table
    assert "Statistics over the 1 of 2 sessions" in text
    assert "## License" in text


def test_default_card_license_is_other_and_a_given_one_is_kept(data_dir):
    layout = record_session(data_dir, episodes=1, steps=5, seed=51)
    start = _session("c" * 32)["start"]
    header = yaml.safe_load(layout.card.read_text().split("---\n", 2)[1])
    assert (header["license"], header["license_name"]) == ("other", "game-footage")
    try:
        store_card.configure_license("cc0-1.0")
        store_card.write_card(layout, start)
    finally:
        store_card.configure_license(None)
    store_card.write_card(layout, start)  # a later writer without --license keeps it
    header = yaml.safe_load(layout.card.read_text().split("---\n", 2)[1])
    assert header["license"] == "cc0-1.0"


@pytest.mark.parametrize("value", ["MIT License", "cc-by\n4.0", ""])
def test_a_bad_license_is_one_line_and_exit_2(value, tmp_path):
    from writer.cli import main

    result = CliRunner().invoke(main, ["--license", value, "push", "X-v0", "--data-dir",
                                       str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # click's usage error, not a crash
    assert "is not a license id" in result.stderr


def _stats_read_afresh(layout) -> dict:
    """The statistics of every shard in `layout` read now, without the writer's running count."""
    builder = StatsBuilder()
    for path in layout.shards_of(layout.data):
        builder.add_rows(pa.ipc.open_stream(path.read_bytes()).read_all())
    return builder.build(store_card._sessions(layout)).to_json()


def test_card_statistics_count_new_shards_and_start_over_when_one_is_gone(data_dir):
    """Cards count only the shards sealed since the last one (a shard never changes once in
    data/); what they show equals reading every shard again, also after a session more and after
    a counted shard is moved away (e.g. `verify` quarantining it)."""
    layout = record_session(data_dir, episodes=2, steps=12, shard_rows=10, seed=1)
    assert store_card.dataset_stats(layout).to_json() == _stats_read_afresh(layout)
    record_session(data_dir, episodes=3, steps=7, shard_rows=10, seed=2)
    assert store_card.dataset_stats(layout).to_json() == _stats_read_afresh(layout)
    assert store_card.dataset_stats(layout).episodes == 5
    gone = layout.shards_of(layout.data)[0]
    gone.rename(data_dir / gone.name)
    after = store_card.dataset_stats(layout)
    assert after.to_json() == _stats_read_afresh(layout) and after.episodes < 5
