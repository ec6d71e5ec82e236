"""The Hub card says who played each session and with which keys (from the SessionStart)."""

from __future__ import annotations

from dataclasses import asdict

from tests.support.messages import make_start
from writer.hub.card import Published, card_text


def _session(**start) -> dict:
    return {"start": asdict(make_start(**start)), "episodes": [], "gaps": [], "discarded": [],
            "status": "ended"}


def test_card_lists_players_and_the_key_bindings_of_human_play():
    keys = {"space": "FIRE", "left": "LEFT", "right": "RIGHT"}
    text = card_text("me/x", [_session(player="human", key_bindings=keys),
                              _session(player="agent:random"), _session(player="agent:random")],
                     Published())
    assert "Played by: agent:random (2 sessions), human (1 session)." in text
    assert "| `space` | FIRE |" in text and "| `left` | LEFT |" in text
    assert "not recorded" not in text


def test_peer_text_cannot_break_the_key_table():
    text = card_text("me/x", [_session(key_bindings={"a|b": "X\n# injected"})], Published())
    assert "| `a\\|b` | X # injected |" in text and "\n# injected" not in text


def test_sessions_recorded_before_players_were_sent_say_so():
    old = _session()
    del old["start"]["player"], old["start"]["key_bindings"]
    assert "Played by: not recorded" in card_text("me/x", [old], Published())
