"""The wire protocol between recorders and the writer.

A message is a list of ZeroMQ frames:

    [MAGIC, header]                control messages, and a StepBatch whose pixels are in
                                   shared memory (the header names a slot per step)
    [MAGIC, header, pixels]        Step and EpisodeEnd: raw uint8 pixels, row-major (H, W, C)
    [MAGIC, header, pixels * N]    StepBatch of N steps with their pixels inline
    [MAGIC, header, images]        StepBatch of N steps encoded by the recorder (the session's
                                   codec and quality): their image files back to back in one
                                   frame (`image_sizes`, `frame_hashes` in the header; one
                                   frame, not N: ZeroMQ's cost per frame was 60% of sending)

A session that records extra observations (SessionStart.extras: RAM, VizDoom's buffers) adds
their raw uint8 bytes as frames after the pixels: one per extra for a Step or EpisodeEnd, in the
order of its header's `extras` (name → shape); for a StepBatch, step by step, each step's extras
in that order, after the N pixel frames (or right after the header when the pixels are in
shared memory). Never in the header: 64 KB of RAM × 256 steps would not fit it.

MAGIC names the protocol and its version. The header is a msgpack map whose key "type" names the
message; every message about a session carries "session" (32 hex chars) and "seq", the session's
sequence number (SessionStart is seq 0, each later message is the previous seq + 1). The writer
answers with Ack (everything up to seq is durable on disk) and Resend (send again from seq).

Each header field is declared once, with the check its wire value must pass (`_field(check)`);
checks that relate several fields are the message's RULES. Encoding is pure (`to_frames` /
`from_frames`); decoding validates every field and raises ProtocolError for anything else, so
hostile bytes never reach the writer's logic.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgpack

from shared.codec import CODEC_NAMES
from shared.errors import ProtocolError
from shared.schema import (
    MAX_EXTRAS,
    MAX_INFO_COLUMNS,
    MAX_INFO_JSON,
    check_extras,
    check_info_columns,
    check_space_fits,
    extra_shape_ok,
)
from shared.spaces import validate_space_description

# v2: SessionStart names who played (`player`) and the keys they played with.
# v3: fields added in the round of issues 12-18 (each one's comment says what it is):
#     SessionStart env_settings and agent_sha256; seeds -1 (NO_SEED) and -2 (CONTINUED).
#     Issue 12: SessionStart.owner_token, HelloReply.proof, Ack.proof; a StepBatch's steps and
#     seqs must fit their columns, an action space's actions the action column.
#     Issue 18: SessionEnd.fps_changes (the speed keys of human play).
#     Issue 14: SessionStart.info_columns; info and info_json in Step, EpisodeEnd (infos and
#     info_jsons in StepBatch): the env's info with each frame.
#     Issue 15: start_state (bytes, the header's only bin value) in Step and StepBatch, with
#     step 0 only: the snapshot a cheaply started episode (ALE) replays from.
#     Issue 14: SessionStart.extras (name → uint8 dtype and shape), `extras` (name → shape) in
#     Step, EpisodeEnd and StepBatch, their raw bytes as frames after the pixels.
#     Issue 15: StepBatch.frame_hashes and image_sizes: the steps' images, encoded by the
#     recorder, follow the header in one frame instead of raw pixels.
MAGIC = b"GYMREC\x03"
PROTOCOL_VERSION = 3
MAX_HEADER_BYTES = 256 * 1024
MAX_SIDE = 8192
MAX_BATCH = 256
MAX_START_STATE = 64 * 1024  # bytes of a start state (ALE's: ~14.5 KB)
OUTCOMES = ("terminated", "truncated", "aborted", "discarded")
_SESSION_RE = re.compile(r"[0-9a-f]{32}")
_I64 = 2**63
_I32 = 2**31

# -- field checks: each takes a decoded wire value, True when it is valid ---------------------

Check = Callable[[Any], bool]
Rule = tuple[Callable[[dict], bool], str]  # (holds for the whole header, what it means)


def _int(lo: int = 0, hi: int = _I64 - 1) -> Check:
    return lambda v: type(v) is int and lo <= v <= hi


def _num(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _str(max_len: int = 256) -> Check:
    return lambda v: type(v) is str and len(v) <= max_len


def _bool(v: Any) -> bool:
    return type(v) is bool


def _any(v: Any) -> bool:
    return True  # any msgpack value (its depth and types are checked for every header)


def _session_id(v: Any) -> bool:
    return type(v) is str and _SESSION_RE.fullmatch(v) is not None


def _one_of(values: tuple) -> Check:
    return lambda v: type(v) is str and v in values


def _list_of(item: Check, max_len: int = MAX_BATCH) -> Check:
    return lambda v: isinstance(v, list) and len(v) <= max_len and all(map(item, v))


def _frame_shape(v: Any) -> bool:
    """[H, W, C] of a uint8 frame: sides 1..MAX_SIDE, C of 1, 3 or 4 channels."""
    return (isinstance(v, list) and len(v) == 3 and _int(1, MAX_SIDE)(v[0])
            and _int(1, MAX_SIDE)(v[1]) and type(v[2]) is int and v[2] in (1, 3, 4))


def _str_map(v: Any) -> bool:
    return isinstance(v, dict) and all(_str()(k) and _str()(x) for k, x in v.items())


def _space(v: Any) -> bool:
    validate_space_description(v)  # raises ProtocolError naming what is malformed
    check_space_fits(v)  # every action it allows fits the action column
    return True


def _info_columns(v: Any) -> bool:
    check_info_columns(v)  # raises ProtocolError naming the bad column
    return True


def _extras(v: Any) -> bool:
    check_extras(v)  # raises ProtocolError naming the bad extra
    return True


def _extra_shapes(v: Any) -> bool:
    """A step's extras, name → shape, in the order of their frames (each name and shape is
    held against SessionStart.extras when the step is accepted)."""
    return (isinstance(v, dict) and len(v) <= MAX_EXTRAS
            and all(type(k) is str and len(k) <= 32 and extra_shape_ok(x) for k, x in v.items()))


def _start_state(v: Any) -> bool:
    """An episode's start snapshot (opaque bytes, the platform's own format), or None."""
    return v is None or type(v) is bytes and 0 < len(v) <= MAX_START_STATE


def _info(v: Any) -> bool:
    """A step's typed info: name → None, bool, int or finite float (each value is checked
    against its declared column when the step is accepted)."""
    return (isinstance(v, dict) and len(v) <= MAX_INFO_COLUMNS
            and all(type(x) in (type(None), bool, int) or type(x) is float and math.isfinite(x)
                    for x in v.values()))


def _info_json(v: Any) -> bool:
    """The rest of a step's info: a JSON object of at most MAX_INFO_JSON characters."""
    if type(v) is not str or len(v) > MAX_INFO_JSON:
        return False
    if v == "{}":  # every key had a column (ALE's info, each step): nothing to parse
        return True
    try:
        return isinstance(json.loads(v), dict)
    except ValueError:
        return False


def _hex(length: int) -> Check:
    """Lowercase hex of exactly `length` characters, or "" (not given)."""
    pattern = re.compile(f"(?:[0-9a-f]{{{length}}})?")
    return lambda v: type(v) is str and pattern.fullmatch(v) is not None


_int32 = _int(0, _I32 - 1)
_int64 = _int()
NO_SEED = -1  # an episode whose reset was not seeded (its start cannot be reproduced)
# An episode reset without a seed right after the session's previous episode, in the same env
# (a vector env's autoreset): replaying the session's episodes in order reproduces it.
CONTINUED = -2
_seed = _int(CONTINUED)
_later_seq = _int(1)  # seq 0 is the SessionStart


_FRAME_HASH = re.compile("[0-9a-f]{32}")


def _frame_hash(v: Any) -> bool:
    """A frame's hash (shared.frame_hash): 32 lowercase hex characters."""
    return type(v) is str and _FRAME_HASH.fullmatch(v) is not None


def _fps_change(v: Any) -> bool:
    """[episode, step, fps]: the frames after that step's were paced at fps."""
    return (isinstance(v, list) and len(v) == 3 and _int32(v[0]) and _int32(v[1])
            and _num(v[2]) and 0 < v[2] <= 10_000)


def _field(check: Check, **kwargs: Any) -> Any:
    """A header field whose wire value must pass `check`."""
    return field(metadata={"check": check}, **kwargs)


def _per_step(item: Check, optional: bool = False) -> Any:
    """A StepBatch field holding one value per step, each passing `item`; an `optional` one
    may instead be empty (no value for any step: the column's default)."""
    if optional:
        return field(default_factory=list,
                     metadata={"check": _list_of(item), "per_step": True, "optional": True})
    return field(metadata={"check": _list_of(item), "per_step": True})


def _pixels() -> Any:
    """Not a header field: the frame(s) after the header (bytes, or a list of them)."""
    return field(default=None, compare=False, repr=False)


# -- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Hello:
    """Recorder → writer probe; the writer answers with HelloReply."""

    TYPE: ClassVar[str] = "hello"
    RULES: ClassVar[tuple[Rule, ...]] = ()
    nonce: int = _field(_int64)
    version: str = _field(_str(64))


@dataclass(frozen=True, kw_only=True)
class HelloReply:
    TYPE: ClassVar[str] = "hello_reply"
    RULES: ClassVar[tuple[Rule, ...]] = ()
    nonce: int = _field(_int64)
    version: str = _field(_str(64))
    data_dir: str = _field(_str(4096))
    # HMAC of `nonce` with the secret in data_dir/.writer.secret (shared/security.py): the
    # writer proves it is the one writing there ("" from a CURVE writer: its key proves it).
    proof: str = _field(_hex(32), default="")


@dataclass(frozen=True, kw_only=True)
class _AboutSession:
    """The first fields of every message about a session (a base: never sent as itself)."""

    RULES: ClassVar[tuple[Rule, ...]] = ()
    session: str = _field(_session_id)
    seq: int = _field(_int64)


@dataclass(frozen=True, kw_only=True)
class SessionStart(_AboutSession):
    """Everything the writer needs to store a session, and everything worth keeping about it."""

    TYPE: ClassVar[str] = "session_start"
    seq: int = _field(_int(0, 0))  # a session starts at seq 0
    env_id: str = _field(_str(4096))
    platform: str = _field(_str(4096))
    env_kwargs: dict = _field(lambda v: isinstance(v, dict))
    observation_space: str = _field(_str(4096))
    action_space: dict = _field(_space)
    action_labels: list = _field(_list_of(_str(), 8192))
    fps: float = _field(lambda v: _num(v) and 0 < v <= 10_000)
    codec: str = _field(_one_of(CODEC_NAMES))
    quality: int = _field(_int(1, 100))
    versions: dict = _field(_str_map)
    recorder_version: str = _field(_str(4096))
    collector: str = _field(_str(4096))
    frame_shape: list = _field(_frame_shape)
    base_seed: int = _field(_int64)
    started_at: float = _field(_num)  # Unix time, seconds
    # The recorder cuts episodes after this many steps (0: never).
    max_steps: int = _field(_int32)
    # > 0: StepBatch pixels live in the file /dev/shm/gymrec-<session>, this many slots of
    # H*W*C bytes; a slot is not reused before the writer acknowledges the step in it.
    shm_slots: int = _field(_int(0, 1 << 20), default=0)
    # Who played: "human", or "agent:<name>" for an agent.
    player: str = _field(_str(4096), default="human")
    # The key map of human play, key name → control ("left ctrl" → "FIRE"); {} for agents.
    key_bindings: dict = _field(_str_map, default_factory=dict)
    # A secret of the recorder (32 hex): only a connection that shows it may continue this
    # session (after a reconnect or a writer restart). The writer keeps its hash only.
    owner_token: str = _field(_hex(32), default="")
    # The env's effective settings as made (its spec's kwargs, frameskip, state, resolution...).
    env_settings: dict = _field(lambda v: isinstance(v, dict), default_factory=dict)
    # sha256 of the file an agent was loaded from ("" for a person or a built-in agent).
    agent_sha256: str = _field(_str(64), default="")
    # The typed info columns (name → "int64", "float64" or "bool"): fields of the `info` column.
    info_columns: dict = _field(_info_columns, default_factory=dict)
    # The extra observations recorded with each frame (`--record`): name → {"dtype": "uint8",
    # "shape": [...]}; a column each.
    extras: dict = _field(_extras, default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class _AtStep(_AboutSession):
    """The first fields of Step and EpisodeEnd: which step of which episode, and when."""

    seq: int = _field(_later_seq)
    episode: int = _field(_int32)
    step: int = _field(_int32)
    seed: int = _field(_seed)  # the episode's reset seed (NO_SEED: not seeded)
    timestamp: float = _field(_num)  # Unix time the frame was shown, seconds


@dataclass(frozen=True, kw_only=True)
class Step(_AtStep):
    """One env step: the frame the player saw (pixels) and what they did about it."""

    TYPE: ClassVar[str] = "step"
    action: Any = _field(_any)
    reward: float = _field(_num)
    terminated: bool = _field(_bool)
    truncated: bool = _field(_bool)
    shape: list = _field(_frame_shape)
    RULES: ClassVar[tuple[Rule, ...]] = (
        (lambda h: h["start_state"] is None or h["step"] == 0, "a start state after step 0"),
    )
    # The snapshot the episode replays from (recorder/seeds.py), with step 0 only; None: it
    # was reset with its seed.
    start_state: bytes | None = _field(_start_state, default=None)
    # The env's info with this frame: typed values (SessionStart.info_columns), the rest JSON.
    info: dict = _field(_info, default_factory=dict)
    info_json: str = _field(_info_json, default="{}")
    # The session's extras (name → shape), their bytes in `extra_data` (frames after pixels).
    extras: dict = _field(_extra_shapes, default_factory=dict)
    pixels: Any = _pixels()
    extra_data: Any = _pixels()  # one buffer per extra, in the order of `extras`


@dataclass(frozen=True, kw_only=True)
class StepBatch(_AboutSession):
    """Consecutive steps of one episode (seq, seq+1, ...): one message instead of N, so the
    per-message costs (send, decode, acknowledge) are paid once."""

    TYPE: ClassVar[str] = "steps"
    RULES: ClassVar[tuple[Rule, ...]] = (
        (lambda h: len(h["timestamps"]) > 0, "a batch holds 1 to 256 steps"),
        (lambda h: all(len(h[k]) == len(h["timestamps"])
                       or k in _optional_fields() and not h[k] for k in _per_step_fields()),
         "not one value per step in every list"),
        (lambda h: len(h["slots"]) in (0, len(h["timestamps"])), "bad slots"),
        (lambda h: not (h["slots"] and h["frame_hashes"]), "images in shared memory"),
        (lambda h: len(h["frame_hashes"]) == len(h["image_sizes"]), "images without sizes"),
        (lambda h: h["first_step"] + len(h["timestamps"]) <= _I32, "steps beyond int32"),
        (lambda h: h["seq"] + len(h["timestamps"]) <= _I64, "seqs beyond int64"),
        (lambda h: h["start_state"] is None or h["first_step"] == 0,
         "a start state after step 0"),
    )
    seq: int = _field(_later_seq)
    episode: int = _field(_int32)
    first_step: int = _field(_int32)
    seed: int = _field(_seed)
    shape: list = _field(_frame_shape)
    timestamps: list = _per_step(_num)
    actions: list = _per_step(_any)
    rewards: list = _per_step(_num)
    terminated: list = _per_step(_bool)
    truncated: list = _per_step(_bool)
    infos: list = _per_step(_info, optional=True)
    info_jsons: list = _per_step(_info_json, optional=True)
    start_state: bytes | None = _field(_start_state, default=None)  # its first step's, as in Step
    # The shared-memory slot of each step, or [] when the pixels follow as frames.
    slots: list = _field(_list_of(_int(0, 1 << 20)))
    # Each step's frame hash (shared.frame_hash) when the recorder encoded its frames: the
    # frame after the header then holds the steps' images (the session's codec and quality)
    # back to back, `image_sizes` bytes each. [] : raw pixels.
    frame_hashes: list = _per_step(_frame_hash, optional=True)
    image_sizes: list = _per_step(_int(1, _I32 - 1), optional=True)
    extras: dict = _field(_extra_shapes, default_factory=dict)  # every step's, as in Step
    pixels: Any = _pixels()
    extra_data: Any = _pixels()  # per step, a list of one buffer per extra ([] without extras)

    @property
    def count(self) -> int:
        return len(self.timestamps)


@dataclass(frozen=True, kw_only=True)
class EpisodeEnd(_AtStep):
    """The end of an episode: how it ended, and its final observation (pixels)."""

    TYPE: ClassVar[str] = "episode_end"
    outcome: str = _field(_one_of(OUTCOMES))
    terminated: bool = _field(_bool)
    truncated: bool = _field(_bool)
    shape: list = _field(_frame_shape)
    info: dict = _field(_info, default_factory=dict)  # the info with the final observation
    info_json: str = _field(_info_json, default="{}")
    extras: dict = _field(_extra_shapes, default_factory=dict)  # as in Step
    pixels: Any = _pixels()
    extra_data: Any = _pixels()


@dataclass(frozen=True, kw_only=True)
class Gap(_AboutSession):
    """Steps the recorder had to drop (its resend buffer was full): an explicit hole in the data."""

    TYPE: ClassVar[str] = "gap"
    RULES: ClassVar[tuple[Rule, ...]] = (
        (lambda h: h["first_step"] <= h["last_step"], "first_step after last_step"),
    )
    episode: int = _field(_int32)
    first_step: int = _field(_int32)
    last_step: int = _field(_int32)
    count: int = _field(_int(1, _I32 - 1))


@dataclass(frozen=True, kw_only=True)
class SessionEnd(_AboutSession):
    TYPE: ClassVar[str] = "session_end"
    reason: str = _field(_str())
    steps_sent: int = _field(_int64)
    steps_dropped: int = _field(_int64)
    # The target frame rate changes of human play (the speed keys), in order: [episode, step,
    # fps] each: made while frame `step` was on screen, the frames after it were paced at fps
    # (SessionStart.fps is the rate before the first).
    fps_changes: list = _field(_list_of(_fps_change, 4096), default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Ack(_AboutSession):
    """Writer → recorder: every message of `session` up to `seq` is durable."""

    TYPE: ClassVar[str] = "ack"
    # HMAC of (session, seq) with the writer's secret, as in HelloReply ("" under CURVE).
    proof: str = _field(_hex(32), default="")


@dataclass(frozen=True, kw_only=True)
class Resend(_AboutSession):
    """Writer → recorder: send again from `seq` (0 means: start with the SessionStart)."""

    TYPE: ClassVar[str] = "resend"


@dataclass(frozen=True, kw_only=True)
class Refused:
    """Writer → recorder: this session cannot be stored (`reason` says why); do not retry."""

    TYPE: ClassVar[str] = "refused"
    RULES: ClassVar[tuple[Rule, ...]] = ()
    session: str = _field(_session_id)
    reason: str = _field(_str(1024))


Message = (Refused | Hello | HelloReply | SessionStart | Step | StepBatch | EpisodeEnd | Gap
           | SessionEnd | Ack | Resend)
_TYPES: dict[str, type] = {
    cls.TYPE: cls
    for cls in (Hello, HelloReply, SessionStart, Step, StepBatch, EpisodeEnd, Gap, SessionEnd,
                Ack, Resend, Refused)
}
_WITH_PIXELS = (Step, EpisodeEnd)


def to_frames(msg: Message) -> list:
    """Encode a message as its list of frames (pixels stay the caller's buffer, not copied)."""
    header = {"type": msg.TYPE}
    for name, _ in _header_fields(type(msg)):
        header[name] = getattr(msg, name)
    frames = [MAGIC, msgpack.packb(header, use_bin_type=True)]
    if isinstance(msg, _WITH_PIXELS):
        frames.append(msg.pixels)
        frames.extend(msg.extra_data or ())
    elif isinstance(msg, StepBatch):
        if msg.frame_hashes:
            frames.append(b"".join(msg.pixels))
        elif not msg.slots:
            frames.extend(msg.pixels)
        for step_extras in msg.extra_data or ():
            frames.extend(step_extras)
    return frames


@functools.cache
def _header_fields(cls: type) -> tuple[tuple[str, Check], ...]:
    """(name, check) of each header field of a message class, in declaration order."""
    return tuple((f.name, f.metadata["check"]) for f in dataclasses.fields(cls)
                 if "check" in f.metadata)


@functools.cache
def _optional_fields() -> tuple[str, ...]:
    """The StepBatch per-step fields that may be empty."""
    return tuple(f.name for f in dataclasses.fields(StepBatch) if f.metadata.get("optional"))


@functools.cache
def _per_step_fields() -> tuple[str, ...]:
    """The StepBatch fields that hold one value per step."""
    return tuple(f.name for f in dataclasses.fields(StepBatch) if f.metadata.get("per_step"))


def from_frames(frames: list) -> Message:
    """Decode and validate frames (bytes, memoryviews or zmq.Frames). Raises ProtocolError."""
    if len(frames) < 2 or len(frames) > 2 + MAX_BATCH * (1 + MAX_EXTRAS):
        raise ProtocolError(f"unexpected number of frames: {len(frames)}")
    if bytes(_buf(frames[0])) != MAGIC:
        raise ProtocolError(f"not a gymrec v{PROTOCOL_VERSION} message (bad magic or version)")
    header = _unpack_header(_buf(frames[1]))
    kind = header.pop("type", None)
    cls = _TYPES.get(kind) if type(kind) is str else None
    if cls is None:
        raise ProtocolError("unknown message type")
    _validate(cls, header)
    if cls is StepBatch:
        return _batch_from_frames(header, frames)
    if cls in _WITH_PIXELS:
        if len(frames) != 3 + len(header["extras"]):
            raise ProtocolError(f"{cls.TYPE} without its pixel frame and one frame per extra")
        pixels = _buf(frames[2])
        if len(pixels) != math.prod(header["shape"]):
            raise ProtocolError(
                f"{cls.TYPE}: {len(pixels)} pixel bytes for shape {header['shape']}"
            )
        return cls(**header, pixels=pixels,
                   extra_data=_extra_frames(cls.TYPE, header["extras"], frames[3:]))
    if len(frames) != 2:
        raise ProtocolError(f"{cls.TYPE} carries an unexpected frame")
    return cls(**header)


def refused_start_session(frames: list) -> str | None:
    """The session id of a SessionStart that `from_frames` refused, when it names one that is
    well formed: the writer answers it with Refused (silence would leave a recorder waiting)."""
    try:
        header = _unpack_header(_buf(frames[1]))
    except (ProtocolError, IndexError):
        return None
    if header.get("type") != SessionStart.TYPE or not _session_id(header.get("session")):
        return None
    return header["session"]


def _validate(cls: type, header: dict) -> None:
    """Exactly the declared fields, each passing its check, then the message's RULES."""
    fields = _header_fields(cls)
    if header.keys() != {name for name, _ in fields}:
        raise ProtocolError(f"{cls.TYPE}: fields {sorted(header)} differ from "
                            f"{sorted(name for name, _ in fields)}")
    for name, check in fields:
        if not check(header[name]):
            raise ProtocolError(f"{cls.TYPE}: bad {name} {_short(header[name])}")
    for holds, meaning in cls.RULES:
        if not holds(header):
            raise ProtocolError(f"{cls.TYPE}: {meaning}")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _batch_from_frames(header: dict, frames: list) -> StepBatch:
    n, per_step = len(header["timestamps"]), len(header["extras"])
    inline = 0 if header["slots"] else 1 if header["frame_hashes"] else n
    if len(frames) != 2 + inline + n * per_step:
        raise ProtocolError("steps without one pixel frame each (none in shared memory, one "
                            "of all images) and one frame per extra each")
    extra_frames = frames[2 + inline:]
    extra_data = [_extra_frames("steps", header["extras"],
                                extra_frames[i * per_step:(i + 1) * per_step])
                  for i in range(n)] if per_step else []
    if header["slots"]:
        return StepBatch(**header, extra_data=extra_data)
    size = math.prod(header["shape"])
    if header["frame_hashes"]:  # images: what they hold is for the writer's codec to check
        return StepBatch(**header, pixels=_images(header["image_sizes"], _buf(frames[2]), size),
                         extra_data=extra_data)
    pixels = [_buf(f) for f in frames[2:2 + inline]]
    if any(len(px) != size for px in pixels):
        raise ProtocolError(f"steps: pixel bytes differ from shape {header['shape']}")
    return StepBatch(**header, pixels=pixels, extra_data=extra_data)


def _images(sizes: list[int], data: memoryview, frame_bytes: int) -> list[memoryview]:
    """The images back to back in `data`, `sizes` bytes each (none larger than an image of a
    frame of `frame_bytes` raw bytes may be)."""
    if sum(sizes) != len(data) or max(sizes) > 2 * frame_bytes + 65536:
        raise ProtocolError("steps: image sizes differ from their frame, or an image is larger "
                            "than its frame may be")
    images, at = [], 0
    for size in sizes:
        images.append(data[at:at + size])
        at += size
    return images


def _extra_frames(kind: str, shapes: dict, frames: list) -> list:
    """The buffers of one step's extras, each checked against its shape (uint8)."""
    buffers = [_buf(f) for f in frames]
    for (name, shape), buf in zip(shapes.items(), buffers, strict=True):
        if len(buf) != math.prod(shape):
            raise ProtocolError(f"{kind}: {len(buf)} bytes of extra {name[:32]!r} for shape "
                                f"{shape}")
    return buffers


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
            max_bin_len=MAX_START_STATE, max_ext_len=0, max_str_len=64 * 1024, max_array_len=8192,
            max_map_len=256,
        )
    except ProtocolError:
        raise
    except Exception as exc:  # msgpack raises many types for bad input
        raise ProtocolError(f"header is not valid msgpack: {type(exc).__name__}") from exc
    if not isinstance(header, dict):
        raise ProtocolError("header is not a map")
    for key, value in header.items():
        if type(key) is not str:  # a bin key (bin is allowed for start_state only)
            raise ProtocolError("header holds a key that is not a string")
        if not (key == "start_state" and type(value) is bytes):  # the one bin value allowed
            _check_depth(value, 1)
    return header


# What msgpack gives for nil, bool, int, float and str (exactly these types, never subclasses).
_LEAVES = frozenset({type(None), bool, int, float, str})
_MAX_DEPTH = 6


def _check_depth(value: Any, depth: int) -> None:
    """Only maps (of str keys), lists and leaves, at most _MAX_DEPTH deep. Leaves inside a
    container are checked in its loop, not by a call each (~200 calls a 16-step batch were
    half of decoding one)."""
    if depth > _MAX_DEPTH:
        raise ProtocolError("header nested too deeply")
    kind = type(value)
    if kind is dict:
        if not all(type(k) is str for k in value):
            raise ProtocolError("header holds a key that is not a string")
        children = value.values()
    elif kind is list:
        children = value
    elif kind in _LEAVES:
        return
    else:
        raise ProtocolError(f"header holds a {kind.__name__}")
    for child in children:
        if depth == _MAX_DEPTH or type(child) not in _LEAVES:
            _check_depth(child, depth + 1)
