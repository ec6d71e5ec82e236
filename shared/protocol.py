"""The wire protocol between recorders and the writer.

A message is a list of ZeroMQ frames:

    [MAGIC, header]                control messages, and a StepBatch whose pixels are in
                                   shared memory (the header names a slot per step)
    [MAGIC, header, pixels]        Step and EpisodeEnd: raw uint8 pixels, row-major (H, W, C)
    [MAGIC, header, pixels * N]    StepBatch of N steps with their pixels inline

MAGIC names the protocol and its version. The header is a msgpack map whose key "type" names the
message; every message about a session carries "session" (32 hex chars) and "seq", the session's
sequence number (SessionStart is seq 0, each later message is the previous seq + 1). The writer
answers with Ack (everything up to seq is durable on disk) and Resend (send again from seq).

Encoding is pure (`to_frames` / `from_frames`); decoding validates every field and raises
ProtocolError for anything else, so hostile bytes never reach the writer's logic.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgpack

from shared.errors import ProtocolError
from shared.spaces import validate_space_description

MAGIC = b"GYMREC\x01"
PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 256 * 1024
MAX_SIDE = 8192
OUTCOMES = ("terminated", "truncated", "aborted", "discarded")
_SESSION_RE = re.compile(r"^[0-9a-f]{32}$")
_I64 = 2**63


@dataclass(frozen=True)
class Hello:
    """Recorder → writer probe; the writer answers with HelloReply."""

    TYPE: ClassVar[str] = "hello"
    nonce: int
    version: str


@dataclass(frozen=True)
class HelloReply:
    TYPE: ClassVar[str] = "hello_reply"
    nonce: int
    version: str
    data_dir: str


@dataclass(frozen=True)
class SessionStart:
    """Everything the writer needs to store a session, and everything worth keeping about it."""

    TYPE: ClassVar[str] = "session_start"
    session: str
    seq: int
    env_id: str
    platform: str
    env_kwargs: dict
    observation_space: str
    action_space: dict
    action_labels: list
    fps: float
    codec: str
    quality: int
    versions: dict
    recorder_version: str
    collector: str
    frame_shape: list
    base_seed: int
    started_at: float
    max_steps: int  # the recorder cuts episodes after this many steps (0: never)
    # > 0: StepBatch pixels live in the file /dev/shm/gymrec-<session>, this many slots of
    # H*W*C bytes; a slot is not reused before the writer acknowledges the step in it.
    shm_slots: int = 0


@dataclass(frozen=True)
class Step:
    """One env step: the frame the player saw (pixels) and what they did about it."""

    TYPE: ClassVar[str] = "step"
    session: str
    seq: int
    episode: int
    step: int
    seed: int
    timestamp: float
    action: Any
    reward: float
    terminated: bool
    truncated: bool
    shape: list
    pixels: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class StepBatch:
    """Consecutive steps of one episode (seq, seq+1, ...): one message instead of N, so the
    per-message costs (send, decode, acknowledge) are paid once."""

    TYPE: ClassVar[str] = "steps"
    session: str
    seq: int
    episode: int
    first_step: int
    seed: int
    shape: list
    timestamps: list
    actions: list
    rewards: list
    terminated: list
    truncated: list
    slots: list  # shared-memory slot of each step, or [] when the pixels follow as frames
    pixels: Any = field(default=None, compare=False, repr=False)

    @property
    def count(self) -> int:
        return len(self.timestamps)


@dataclass(frozen=True)
class EpisodeEnd:
    """The end of an episode: how it ended, and its final observation (pixels)."""

    TYPE: ClassVar[str] = "episode_end"
    session: str
    seq: int
    episode: int
    step: int
    seed: int
    timestamp: float
    outcome: str
    terminated: bool
    truncated: bool
    shape: list
    pixels: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Gap:
    """Steps the recorder had to drop (its resend buffer was full): an explicit hole in the data."""

    TYPE: ClassVar[str] = "gap"
    session: str
    seq: int
    episode: int
    first_step: int
    last_step: int
    count: int


@dataclass(frozen=True)
class SessionEnd:
    TYPE: ClassVar[str] = "session_end"
    session: str
    seq: int
    reason: str
    steps_sent: int
    steps_dropped: int


@dataclass(frozen=True)
class Ack:
    """Writer → recorder: every message of `session` up to `seq` is durable."""

    TYPE: ClassVar[str] = "ack"
    session: str
    seq: int


@dataclass(frozen=True)
class Resend:
    """Writer → recorder: send again from `seq` (0 means: start with the SessionStart)."""

    TYPE: ClassVar[str] = "resend"
    session: str
    seq: int


@dataclass(frozen=True)
class Refused:
    """Writer → recorder: this session cannot be stored (`reason` says why); do not retry."""

    TYPE: ClassVar[str] = "refused"
    session: str
    reason: str


Message = (Refused | Hello | HelloReply | SessionStart | Step | StepBatch | EpisodeEnd | Gap
           | SessionEnd
           | Ack | Resend)
_TYPES: dict[str, type] = {
    cls.TYPE: cls
    for cls in (Hello, HelloReply, SessionStart, Step, StepBatch, EpisodeEnd, Gap, SessionEnd,
                Ack, Resend, Refused)
}
MAX_BATCH = 256
_WITH_PIXELS = (Step, EpisodeEnd)


def to_frames(msg: Message) -> list:
    """Encode a message as its list of frames (pixels stay the caller's buffer, not copied)."""
    header = {"type": msg.TYPE}
    for name in _header_fields(type(msg)):
        header[name] = getattr(msg, name)
    frames = [MAGIC, msgpack.packb(header, use_bin_type=True)]
    if isinstance(msg, _WITH_PIXELS):
        frames.append(msg.pixels)
    elif isinstance(msg, StepBatch) and not msg.slots:
        frames.extend(msg.pixels)
    return frames


@functools.cache
def _header_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.name != "pixels")


def from_frames(frames: list) -> Message:
    """Decode and validate frames (bytes, memoryviews or zmq.Frames). Raises ProtocolError."""
    if len(frames) < 2 or len(frames) > 2 + MAX_BATCH:
        raise ProtocolError(f"unexpected number of frames: {len(frames)}")
    if bytes(_buf(frames[0])) != MAGIC:
        raise ProtocolError("not a gymrec v1 message (bad magic or version)")
    header = _unpack_header(_buf(frames[1]))
    cls = _TYPES.get(header.pop("type", None))
    if cls is None:
        raise ProtocolError("unknown message type")
    names = _header_fields(cls)
    if set(header) != set(names):
        raise ProtocolError(f"{cls.TYPE}: fields {sorted(header)} differ from {sorted(names)}")
    _VALIDATORS[cls](header)
    if cls is StepBatch:
        return _batch_from_frames(header, frames)
    if cls in _WITH_PIXELS:
        if len(frames) != 3:
            raise ProtocolError(f"{cls.TYPE} without its pixel frame")
        pixels = _buf(frames[2])
        if len(pixels) != math.prod(header["shape"]):
            raise ProtocolError(
                f"{cls.TYPE}: {len(pixels)} pixel bytes for shape {header['shape']}"
            )
        return cls(**header, pixels=pixels)
    if len(frames) != 2:
        raise ProtocolError(f"{cls.TYPE} carries an unexpected frame")
    return cls(**header)


def _batch_from_frames(header: dict, frames: list) -> StepBatch:
    if header["slots"]:
        if len(frames) != 2:
            raise ProtocolError("steps in shared memory carry no pixel frames")
        return StepBatch(**header)
    if len(frames) != 2 + len(header["timestamps"]):
        raise ProtocolError("steps without one pixel frame each")
    size = math.prod(header["shape"])
    pixels = [_buf(f) for f in frames[2:]]
    if any(len(px) != size for px in pixels):
        raise ProtocolError(f"steps: pixel bytes differ from shape {header['shape']}")
    return StepBatch(**header, pixels=pixels)


def _buf(frame: Any) -> memoryview:
    if hasattr(frame, "buffer"):
        return frame.buffer
    return memoryview(frame)


def _reject_ext(code: int, data: bytes) -> Any:
    raise ProtocolError("msgpack extension types are not allowed")


def _unpack_header(raw: memoryview) -> dict:
    if len(raw) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {len(raw)} bytes is over {MAX_HEADER_BYTES}")
    try:
        header = msgpack.unpackb(
            raw, raw=False, strict_map_key=True, ext_hook=_reject_ext, timestamp=0,
            max_bin_len=0, max_ext_len=0, max_str_len=64 * 1024, max_array_len=8192,
            max_map_len=256,
        )
    except ProtocolError:
        raise
    except Exception as exc:  # msgpack raises many types for bad input
        raise ProtocolError(f"header is not valid msgpack: {type(exc).__name__}") from exc
    if not isinstance(header, dict):
        raise ProtocolError("header is not a map")
    _check_depth(header, 0)
    return header


def _check_depth(value: Any, depth: int) -> None:
    if depth > 6:
        raise ProtocolError("header nested too deeply")
    if isinstance(value, dict):
        for v in value.values():
            _check_depth(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_depth(v, depth + 1)
    elif not (value is None or isinstance(value, (bool, int, float, str))):
        raise ProtocolError(f"header holds a {type(value).__name__}")


# -- field checks ---------------------------------------------------------------------------


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise ProtocolError(what)


def _is_int(v: Any, lo: int = 0, hi: int = _I64 - 1) -> bool:
    return type(v) is int and lo <= v <= hi


def _is_num(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _is_str(v: Any, max_len: int = 256) -> bool:
    return type(v) is str and len(v) <= max_len


def _session_and_seq(h: dict) -> None:
    _need(_is_str(h["session"]) and bool(_SESSION_RE.match(h["session"])), "bad session id")
    _need(_is_int(h["seq"]), "bad seq")


def _frame_shape(shape: Any) -> None:
    _need(isinstance(shape, list) and len(shape) == 3, "frame shape must be [H, W, C]")
    h, w, c = shape
    _need(_is_int(h, 1, MAX_SIDE) and _is_int(w, 1, MAX_SIDE) and c in (1, 3, 4)
          and type(c) is int, f"bad frame shape {shape}")


def _check_hello(h: dict) -> None:
    _need(_is_int(h["nonce"]) and _is_str(h["version"], 64), "bad hello")


def _check_hello_reply(h: dict) -> None:
    _check_hello(h)
    _need(_is_str(h["data_dir"], 4096), "bad hello reply")


def _check_session_start(h: dict) -> None:
    _session_and_seq(h)
    _need(h["seq"] == 0, "session_start must be seq 0")
    for name in ("env_id", "platform", "observation_space", "codec", "recorder_version",
                 "collector"):
        _need(_is_str(h[name], 4096), f"bad {name}")
    _need(h["codec"] in ("jpeg", "png"), f"unknown codec {h['codec']!r}")
    _need(_is_int(h["quality"], 1, 100), "quality must be 1..100")
    _need(isinstance(h["env_kwargs"], dict), "env_kwargs must be a map")
    _need(isinstance(h["versions"], dict)
          and all(_is_str(k) and _is_str(v) for k, v in h["versions"].items()), "bad versions")
    _need(isinstance(h["action_labels"], list)
          and all(_is_str(v) for v in h["action_labels"]), "bad action_labels")
    _need(_is_num(h["fps"]) and 0 < h["fps"] <= 10_000, "bad fps")
    _need(_is_int(h["base_seed"]), "bad base_seed")
    _need(_is_num(h["started_at"]), "bad started_at")
    _need(_is_int(h["max_steps"], 0, 2**31 - 1), "bad max_steps")
    _need(_is_int(h["shm_slots"], 0, 1 << 20), "bad shm_slots")
    _frame_shape(h["frame_shape"])
    validate_space_description(h["action_space"])


def _check_pixel_message(h: dict) -> None:
    _session_and_seq(h)
    _need(h["seq"] >= 1, "seq 0 is the session_start")
    _need(_is_int(h["episode"], 0, 2**31 - 1) and _is_int(h["step"], 0, 2**31 - 1),
          "bad episode/step")
    _need(_is_int(h["seed"]), "bad seed")
    _need(_is_num(h["timestamp"]), "bad timestamp")
    _need(type(h["terminated"]) is bool and type(h["truncated"]) is bool, "bad end flags")
    _frame_shape(h["shape"])


def _check_step(h: dict) -> None:
    _check_pixel_message(h)
    _need(_is_num(h["reward"]), "bad reward")


def _check_step_batch(h: dict) -> None:
    _session_and_seq(h)
    _need(h["seq"] >= 1, "seq 0 is the session_start")
    _need(_is_int(h["episode"], 0, 2**31 - 1) and _is_int(h["first_step"], 0, 2**31 - 1)
          and _is_int(h["seed"]), "bad episode/step/seed")
    _frame_shape(h["shape"])
    n = len(h["timestamps"]) if isinstance(h["timestamps"], list) else 0
    _need(0 < n <= MAX_BATCH, "a batch holds 1 to 256 steps")
    for name in ("actions", "rewards", "terminated", "truncated"):
        _need(isinstance(h[name], list) and len(h[name]) == n, f"{name}: one per step")
    _need(all(_is_num(v) for v in h["timestamps"]), "bad timestamps")
    _need(all(_is_num(v) for v in h["rewards"]), "bad rewards")
    _need(all(type(v) is bool for v in h["terminated"] + h["truncated"]), "bad end flags")
    slots = h["slots"]
    _need(isinstance(slots, list) and (not slots or len(slots) == n)
          and all(_is_int(v, 0, 1 << 20) for v in slots), "bad slots")


def _check_episode_end(h: dict) -> None:
    _check_pixel_message(h)
    _need(h["outcome"] in OUTCOMES, f"bad outcome {h['outcome']!r}")


def _check_gap(h: dict) -> None:
    _session_and_seq(h)
    _need(_is_int(h["episode"], 0, 2**31 - 1), "bad episode")
    _need(_is_int(h["first_step"], 0, 2**31 - 1) and _is_int(h["last_step"], 0, 2**31 - 1)
          and h["first_step"] <= h["last_step"], "bad gap range")
    _need(_is_int(h["count"], 1, 2**31 - 1), "bad gap count")


def _check_session_end(h: dict) -> None:
    _session_and_seq(h)
    _need(_is_str(h["reason"]), "bad reason")
    _need(_is_int(h["steps_sent"]) and _is_int(h["steps_dropped"]), "bad counts")


def _check_refused(h: dict) -> None:
    _need(_is_str(h["session"]) and bool(_SESSION_RE.match(h["session"])), "bad session id")
    _need(_is_str(h["reason"], 1024), "bad reason")


_VALIDATORS = {
    Hello: _check_hello,
    HelloReply: _check_hello_reply,
    SessionStart: _check_session_start,
    Step: _check_step,
    StepBatch: _check_step_batch,
    EpisodeEnd: _check_episode_end,
    Gap: _check_gap,
    SessionEnd: _check_session_end,
    Ack: _session_and_seq,
    Resend: _session_and_seq,
    Refused: _check_refused,
}
