"""The codec registry: every codec round-trips real frames the way replay relies on, and the
protocol, the CLI and replay take their codec names from it."""

from __future__ import annotations

import numpy as np
import pytest

from shared import codec as c
from shared import protocol as p
from shared.errors import ProtocolError
from tests.support.messages import make_start


@pytest.mark.parametrize("name", c.CODEC_NAMES)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_each_codec_round_trips_as_replay_expects(name, channels):
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 256, (30, 40, channels), dtype=np.uint8)
    codec = c.codec_for(name)
    data = c.encode_frame(frame.tobytes(), list(frame.shape), name, 95)
    back = c.decode_frame(data, name, channels)
    assert back.shape == frame.shape and back.dtype == np.uint8
    if codec.lossless:
        assert np.array_equal(back, frame)
    else:  # replay re-encodes: equal pixels must give equal bytes
        assert c.encode_frame(frame.tobytes(), list(frame.shape), name, 95) == data
    assert codec.describe(95).startswith(name)


def test_an_unknown_codec_is_named_and_refused_everywhere():
    with pytest.raises(c.UnknownCodec, match="'gif'.*jpeg, png"):
        c.codec_for("gif")
    assert c.describe_codec("gif", 95) == "gif"  # a card of a newer recording still renders
    with pytest.raises(ProtocolError, match="codec"):
        p.from_frames(p.to_frames(make_start(codec="gif")))
    for name in c.CODEC_NAMES:
        assert p.from_frames(p.to_frames(make_start(codec=name))).codec == name
