"""`gymrec-replay` and the local card say who played each session and with which keys."""

from __future__ import annotations

from recorder.replay.cli import player_lines


def _session(sid: str, **start) -> dict:
    return {"start": {"session": sid, **start}}


def test_players_and_their_key_maps_one_line_each():
    keys = {"left": "LEFT", "right": "RIGHT", "space": "FIRE"}
    lines = player_lines([
        _session("a", player="human", key_bindings=keys),
        _session("b", player="human", key_bindings=keys),
        _session("c", player="human", key_bindings={"left ctrl": "FIRE"}),
        _session("d", player="agent:random", key_bindings={}),
        _session("e"),  # recorded before the player was sent
    ])
    assert lines == [
        "played by agent:random (1 session)",
        "played by human (1 session), keys: left ctrl=FIRE",
        "played by human (2 sessions), keys: space=FIRE, left=LEFT, right=RIGHT",
        "played by not recorded (recorded before gymrec sent it) (1 session)",
    ]


def test_the_local_card_lists_each_key_map_once():
    from writer.store.card import key_map_lines

    keys = {"left": "LEFT", "space": "FIRE"}
    sessions = [_session("a", player="human", key_bindings=keys),
                _session("b", player="human", key_bindings=keys),
                _session("c", player="agent:random", key_bindings={})]
    assert key_map_lines(sessions) == ["- key bindings of human play: `space` FIRE, `left` LEFT"]
    assert key_map_lines(sessions[2:]) == []
