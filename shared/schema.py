"""The dataset schema and the step record: one row per step, plus one final row per episode with
its last observation.

Row t holds the frame the player saw when choosing `action` t, the reward and end flags that action
produced, and `is_last=False`. The row after an episode's last action has `is_last=True`, the final
observation in `image`, the episode's end flags, reward 0 and a fill action (`action_fill`: -1 in
integer slots, NaN in float ones), so every column keeps one dtype in numpy/torch batches.
Datasets written before that hold nulls there.

A step's values (timestamp, action, reward, end flags) are declared once, in STEP_VALUES: the
recorder fills them into a StepData, the link copies them into a Step (or the lists of a
StepBatch), and `step_row` / `batch_row` / `final_row` copy them into the dataset's columns. A new
per-step column is: a StepData field, a StepValue and its place in COLUMNS (here), a field in
protocol.Step and a list in protocol.StepBatch, and the code that produces it
(recorder/episode.py, `step_data`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.errors import ProtocolError

if TYPE_CHECKING:  # pyarrow is imported where Arrow is built: a recorder never needs it
    import pyarrow as pa


@dataclass(kw_only=True, slots=True)  # made every step: not frozen (4 µs more each)
class StepData:
    """One env step as the recorder records it."""

    episode: int
    step: int  # 0-based within the episode
    seed: int  # the episode's reset seed
    frame: np.ndarray  # (H, W, C) uint8: the observation the action was chosen on
    timestamp: float  # Unix time the frame was shown (or handed to the agent), seconds
    action: Any  # in wire form (shared.spaces.action_to_wire)
    reward: float
    terminated: bool
    truncated: bool
    # The env's info with `frame` (reset's for step 0, else the previous step's): the values of
    # the session's typed info columns (SessionStart.info_columns), and the rest as JSON.
    info: dict = field(default_factory=dict)
    info_json: str = "{}"
    # Step 0 of an episode started from a snapshot (recorder/seeds.py): that snapshot.
    start_state: bytes | None = None
    # The session's extra observations with `frame` (SessionStart.extras): name → uint8 array.
    extras: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class EpisodeEndData:
    """An episode's end as the recorder records it: its final observation and how it ended."""

    episode: int
    step: int  # steps played: the final row's step index
    seed: int
    frame: np.ndarray  # (H, W, C) uint8: the final observation
    timestamp: float  # Unix time, seconds
    outcome: str  # one of protocol.OUTCOMES
    terminated: bool
    truncated: bool
    info: dict = field(default_factory=dict)  # the info that came with the final observation
    info_json: str = "{}"
    extras: dict = field(default_factory=dict)  # the extra observations with the final one


def _same(value: Any) -> Any:
    return value


INFO_STRUCT = "struct"  # the dtype of `info`: its fields are the session's info columns
INFO_DTYPES = ("int64", "float64", "bool")  # what a typed info column may be
MAX_INFO_COLUMNS = 128
MAX_INFO_JSON = 768  # characters of one step's info_json, at most (the rest is dropped)


@dataclass(frozen=True, kw_only=True)
class StepValue:
    """A value every step produces: a field of StepData and protocol.Step, a list of one per
    step in protocol.StepBatch, and a dataset column."""

    name: str  # in StepData, Step and the dataset
    batch_name: str  # in StepBatch
    dtype: str | None  # its `datasets` Value dtype; None: the action space's feature
    in_final_row: bool = False  # the episode's final row holds it too (else `final_fill`)
    final_fill: Callable[[dict], Any] = lambda action_space: None  # its value in a final row
    to_row: Callable[[Any], Any] = _same  # wire value → column value
    default: Any = None  # its value where a StepBatch sent none (an empty optional list)


STEP_VALUES = (
    StepValue(name="timestamp", batch_name="timestamps", dtype="float64", in_final_row=True),
    StepValue(name="action", batch_name="actions", dtype=None,
              final_fill=lambda action_space: action_fill(action_space)),
    StepValue(name="reward", batch_name="rewards", dtype="float64", to_row=float,
              final_fill=lambda action_space: 0.0),
    StepValue(name="terminated", batch_name="terminated", dtype="bool", in_final_row=True),
    StepValue(name="truncated", batch_name="truncated", dtype="bool", in_final_row=True),
    # The typed info columns: a struct whose fields SessionStart.info_columns declares (no
    # column when it declares none).
    StepValue(name="info", batch_name="infos", dtype=INFO_STRUCT, in_final_row=True, default={}),
    StepValue(name="info_json", batch_name="info_jsons", dtype="string", in_final_row=True,
              default="{}"),
)

# Columns that say where a row sits, and the row's bookkeeping: the same for every dataset.
_FIXED_DTYPES = {
    "session_id": "string", "episode_id": "string", "episode_index": "int32", "seed": "int64",
    "step": "int32", "frame_hash": "string", "is_last": "bool", "seq": "int64",
    "start_state": "binary",
}

# The columns in stored order (a new step value goes before "is_last").
COLUMNS = (
    "session_id", "episode_id", "episode_index", "seed", "step", "timestamp", "image",
    "frame_hash", "action", "reward", "terminated", "truncated", "info", "info_json",
    "start_state", "is_last", "seq",
)
# Columns that datasets written by earlier builds lack (readers take them as null); `info` is
# also absent from a dataset whose env has no typed info.
ADDED_COLUMNS = ("frame_hash", "info", "info_json", "start_state")


# `datasets` Value dtypes and the names of their Arrow types in pyarrow (looked up when an Arrow
# schema is built; only these: a dtype comes from a peer's SessionStart).
_ARROW_TYPES = {"string": "string", "int8": "int8", "uint8": "uint8", "int32": "int32",
                "int64": "int64", "float32": "float32", "float64": "float64", "bool": "bool_",
                "binary": "binary"}


def _value(dtype: str) -> dict:
    return {"dtype": dtype, "_type": "Value"}


def action_feature(desc: dict) -> dict:
    """The `datasets` feature (in its serialized form) of an action space description."""
    kind = desc["type"]
    if kind == "Discrete":
        return _value("int64")
    if kind == "MultiBinary":
        return {"feature": _value("int8"), "length": desc["n"], "_type": "List"}
    if kind == "MultiDiscrete":
        return {"feature": _value("int64"), "length": len(desc["nvec"]), "_type": "List"}
    if kind == "Box":
        n = 1
        for s in desc["shape"]:
            n *= s
        return {"feature": _value("float32"), "length": n, "_type": "List"}
    if kind == "Dict":
        return {k: action_feature(sub) for k, sub in desc["spaces"].items()}
    raise ProtocolError(f"unsupported action space {kind!r}")


def action_fill(desc: dict) -> Any:
    """The `action` of a final row, where no action was taken: -1 in every integer slot, NaN
    in every Box slot (the column's dtype stays; `is_last` says there was no action)."""
    kind = desc["type"]
    if kind == "Discrete":
        return -1
    if kind == "MultiBinary":
        return [-1] * desc["n"]
    if kind == "MultiDiscrete":
        return [-1] * len(desc["nvec"])
    if kind == "Box":
        return [float("nan")] * action_feature(desc)["length"]
    if kind == "Dict":
        return {k: action_fill(sub) for k, sub in desc["spaces"].items()}
    raise ProtocolError(f"unsupported action space {kind!r}")


_I64_MAX = 2**63 - 1
_F32_MAX = float(np.finfo(np.float32).max)


def check_space_fits(desc: dict) -> None:
    """Raise ProtocolError unless every action of the (well-formed) space `desc` fits its column:
    Discrete and MultiDiscrete values int64, MultiBinary int8, Box float32."""
    kind = desc["type"]
    if kind == "Discrete" and not -_I64_MAX - 1 <= desc["start"] <= _I64_MAX - desc["n"] + 1:
        raise ProtocolError("Discrete space: its actions do not fit int64")
    if kind == "MultiDiscrete" and any(n > _I64_MAX + 1 for n in desc["nvec"]):
        raise ProtocolError("MultiDiscrete space: its actions do not fit int64")
    if kind == "Dict":
        for sub in desc["spaces"].values():
            check_space_fits(sub)


def check_action_fits(value: Any, desc: dict) -> None:
    """Raise ProtocolError unless a valid action of `desc` also fits its column (a Box action:
    finite float32 values; the integer spaces' ranges are checked by check_space_fits)."""
    kind = desc["type"]
    if kind == "Box" and not all(math.isfinite(v) and abs(v) <= _F32_MAX for v in value):
        raise ProtocolError("Box action holds NaN, infinity or a value beyond float32")
    if kind == "Dict":
        for key, sub in desc["spaces"].items():
            check_action_fits(value[key], sub)


def check_info_columns(columns: dict) -> None:
    """Raise ProtocolError unless `columns` (name → dtype) can be the typed info columns."""
    if not isinstance(columns, dict) or len(columns) > MAX_INFO_COLUMNS:
        raise ProtocolError(f"info columns: a map of at most {MAX_INFO_COLUMNS} names")
    for name, dtype in columns.items():
        if not (type(name) is str and 0 < len(name) <= 128) or dtype not in INFO_DTYPES:
            raise ProtocolError(f"info column {str(name)[:60]!r}: {str(dtype)[:20]!r} is not one "
                                f"of {', '.join(INFO_DTYPES)}")


def check_info_fits(values: Any, columns: dict) -> None:
    """Raise ProtocolError unless `values` (a step's typed info) holds only declared columns,
    each None or a value of its dtype (int64 in range, a finite float, a bool)."""
    if not isinstance(values, dict):
        raise ProtocolError("info is not a map")
    for name, value in values.items():
        dtype = columns.get(name)
        if dtype is None:
            raise ProtocolError(f"info {str(name)[:60]!r} is not a declared info column")
        if value is None:
            continue
        fits = (type(value) is bool if dtype == "bool"
                else type(value) is int and -_I64_MAX - 1 <= value <= _I64_MAX
                if dtype == "int64"
                else type(value) in (int, float) and math.isfinite(value))
        if not fits:
            raise ProtocolError(f"info {name!r}: {str(value)[:40]} does not fit {dtype}")


# -- extra observations (opt-in, `gymrec-record --record ram`): uint8 arrays with each frame ----

MAX_EXTRAS = 8
MAX_EXTRA_BYTES = 16 * 1024 * 1024  # of one extra of one step
_EXTRA_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


def extra_is_image(shape: list) -> bool:
    """An extra of 2 or 3 dimensions (H, W[, C]) is stored as a PNG image, one of 1 as a
    fixed-length uint8 sequence."""
    return len(shape) >= 2


def extra_shape_ok(shape: Any) -> bool:
    """1 to 3 dimensions (3: C of 1, 3 or 4), each ≥ 1, at most MAX_EXTRA_BYTES in all."""
    if not (isinstance(shape, list) and 1 <= len(shape) <= 3
            and all(type(n) is int and 1 <= n <= MAX_EXTRA_BYTES for n in shape)):
        return False
    if len(shape) == 3 and shape[2] not in (1, 3, 4):
        return False
    return math.prod(shape) <= MAX_EXTRA_BYTES


def check_extras(extras: Any) -> None:
    """Raise ProtocolError unless `extras` (name → {"dtype": "uint8", "shape": [...]}) can be a
    session's extra observations: at most MAX_EXTRAS, each named apart from every other column,
    a uint8 array of 1 dimension (a sequence: RAM) or 2-3 (an image: H, W[, C of 1, 3 or 4])."""
    if not isinstance(extras, dict) or len(extras) > MAX_EXTRAS:
        raise ProtocolError(f"extras: a map of at most {MAX_EXTRAS} names")
    for name, spec in extras.items():
        if type(name) is not str or not _EXTRA_NAME.fullmatch(name) or name in COLUMNS:
            raise ProtocolError(f"extra {str(name)[:40]!r}: not a name for a new column")
        if not (isinstance(spec, dict) and spec.keys() == {"dtype", "shape"}
                and spec["dtype"] == "uint8" and extra_shape_ok(spec["shape"])):
            raise ProtocolError(f"extra {name!r}: {str(spec)[:60]} is not a uint8 array of "
                                "1 to 3 dimensions")


def check_extras_fit(shapes: Any, declared: dict) -> None:
    """Raise ProtocolError unless a step's extras (name → shape, in frame order) are exactly
    the session's declared ones, in their order."""
    expected = [(name, spec["shape"]) for name, spec in declared.items()]
    if not isinstance(shapes, dict) or list(shapes.items()) != expected:
        raise ProtocolError(f"extras {_names(shapes)} differ from the session's "
                            f"{_names(declared)}")


def _names(extras: Any) -> str:
    return str(sorted(map(str, extras)) if isinstance(extras, dict) else extras)[:80]


def extra_feature(spec: dict) -> dict:
    """The `datasets` feature of an extra: Image, or a List of uint8 of fixed length."""
    if extra_is_image(spec["shape"]):
        return {"_type": "Image"}
    return {"feature": _value("uint8"), "length": spec["shape"][0], "_type": "List"}


def extra_cells(declared: dict, buffers: list | None) -> dict:
    """A row's extra columns from one step's buffers (in the declared order): a sequence as a
    uint8 array, an image as lossless PNG bytes. None (no buffers): every cell null."""
    from shared.codec import encode_frame

    if not buffers:
        return {name: None for name in declared}
    cells = {}
    for (name, spec), buf in zip(declared.items(), buffers, strict=True):
        shape = spec["shape"]
        if extra_is_image(shape):
            hwc = [*shape[:2], shape[2] if len(shape) == 3 else 1]
            cells[name] = {"bytes": encode_frame(buf, hwc, "png", 100), "path": None}
        else:
            cells[name] = np.frombuffer(buf, dtype=np.uint8)
    return cells


def feature_dict(action_space: dict, info_columns: dict | None = None,
                 extras: dict | None = None) -> dict:
    """The dataset's `datasets.Features`, serialized (as `Features.to_dict()` gives them);
    `info_columns` (name → dtype): the fields of the `info` struct (none: no `info` column);
    `extras` (SessionStart.extras): a column each, before `is_last`."""
    dtypes = _FIXED_DTYPES | {v.name: v.dtype for v in STEP_VALUES}
    described = {}
    for name in COLUMNS:
        if name == "is_last":
            described.update({k: extra_feature(spec) for k, spec in (extras or {}).items()})
        if name == "image":
            described[name] = {"_type": "Image"}
        elif dtypes[name] == INFO_STRUCT:
            if info_columns:
                described[name] = {k: _value(d) for k, d in info_columns.items()}
        elif dtypes[name] is None:
            described[name] = action_feature(action_space)
        else:
            described[name] = _value(dtypes[name])
    return described


def _arrow_type(feature: dict) -> pa.DataType:
    import pyarrow as pa

    if feature.get("_type") == "Image":
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    if feature.get("_type") == "Value":
        return getattr(pa, _ARROW_TYPES[feature["dtype"]])()
    if feature.get("_type") == "List":
        return pa.list_(_arrow_type(feature["feature"]), feature["length"])
    return pa.struct([(k, _arrow_type(sub)) for k, sub in feature.items()])


def features(action_space: dict, info_columns: dict | None = None,
             extras: dict | None = None):
    """The `datasets.Features` of a dataset whose actions follow `action_space` (imports
    `datasets`: ~2 s the first time; the writer itself only needs `arrow_schema`)."""
    from datasets import Features

    return Features.from_dict(feature_dict(action_space, info_columns, extras))


def arrow_schema(action_space: dict, info_columns: dict | None = None,
                 extras: dict | None = None) -> pa.Schema:
    """The Arrow schema, carrying the `datasets` features metadata so `image` decodes as
    Image(). Built without importing `datasets` (a writer is up at once); a unit test holds
    it equal to `features(action_space).arrow_schema`."""
    import pyarrow as pa

    described = feature_dict(action_space, info_columns, extras)
    metadata = {"huggingface": json.dumps({"info": {"features": described}})}
    return pa.schema([(name, _arrow_type(f)) for name, f in described.items()],
                     metadata=metadata)


def column_notes(info_columns: dict | None, extras: dict | None = None) -> str:
    """What the hash, info and extra columns hold, for the cards (Markdown, one paragraph)."""
    typed = ", ".join(f"`{name}` ({dtype})" for name, dtype in (info_columns or {}).items())
    info = (f"`info` holds the env's info with each frame, typed: {typed}; "
            if typed else "This env reports no typed info (no `info` column); ")
    return (f"{info}`info_json` the rest of it as a JSON object. "
            "`frame_hash` is the xxh3-128 of the frame's raw pixels (H, W, C uint8, row-major), "
            "hex: replay compares it, whatever the codec." + extras_notes(extras))


EXTRA_MEANINGS = {  # what an extra a platform records is (the cards say it)
    "ram": "the emulator's RAM after the frame (Atari: ale.getRAM(), Stable-Retro: get_ram())",
    "depth": "VizDoom's depth buffer (uint8, nearer is darker)",
    "labels": "VizDoom's labels buffer (each object's label value per pixel)",
    "automap": "VizDoom's automap (the map view)",
}


def extras_notes(extras: dict | None) -> str:
    """One sentence per extra column (`--record`), for the cards; "" when there are none."""
    parts = []
    for name, spec in (extras or {}).items():
        shape = "×".join(map(str, spec["shape"]))
        kind = ("a lossless PNG image" if extra_is_image(spec["shape"])
                else "a fixed-length uint8 sequence")
        meaning = EXTRA_MEANINGS.get(name, "an extra observation")
        parts.append(f" `{name}` ({shape} uint8, {kind}) holds {meaning}, on every row, "
                     "final rows included.")
    return "".join(parts)


def episode_id(session_id: str, episode: int) -> str:
    """A dataset-wide unique episode id: `<session>-<episode index, 5 digits>`."""
    return f"{session_id}-{episode:05d}"


# -- rows: the one place a step (as it arrived on the wire) becomes a dataset row --------------


def step_row(session_id: str, seq: int, msg: Any, image: bytes,
             frame_hash: str | None = None, extras: dict | None = None) -> dict:
    """The row of a protocol.Step (seq `seq`) whose frame encoded to `image` and hashed to
    `frame_hash` (shared.frame_hash); `extras`: its extra columns (`extra_cells`)."""
    values = {v.name: v.to_row(getattr(msg, v.name)) for v in STEP_VALUES}
    values["start_state"] = msg.start_state
    return _row(session_id, seq, episode=msg.episode, seed=msg.seed, step=msg.step, image=image,
                frame_hash=frame_hash, values={**values, **(extras or {})}, is_last=False)


def batch_row(session_id: str, seq: int, batch: Any, i: int, image: bytes,
              frame_hash: str | None = None, extras: dict | None = None) -> dict:
    """The row of step `i` of a protocol.StepBatch that starts at seq `seq` (one row of
    `batch_columns`)."""
    columns = batch_columns(session_id, seq, batch, i, [image], [frame_hash],
                            None if extras is None else [extras])
    row = {name: values[0] for name, values in columns.items()}
    row["image"] = {"bytes": image, "path": None}
    return row


def batch_columns(session_id: str, seq: int, batch: Any, first: int, images: list[bytes],
                  frame_hashes: list, extras: list[dict] | None = None) -> dict[str, list]:
    """The rows of steps `first`, `first` + 1, ... of a protocol.StepBatch that starts at seq
    `seq`, one list per column (no dict per row: this is the writer's hot path), in stored
    order with the extras before `is_last`; a step each in `images` (`image` holds the bytes),
    `frame_hashes` and `extras` (its extra columns, `extra_cells`; None: none recorded)."""
    n = len(images)
    stop = first + n
    values: dict[str, list] = {
        "session_id": [session_id] * n, "episode_id": [episode_id(session_id, batch.episode)] * n,
        "episode_index": [batch.episode] * n, "seed": [batch.seed] * n,
        "step": list(range(batch.first_step + first, batch.first_step + stop)),
        "image": images, "frame_hash": frame_hashes,
        "start_state": [batch.start_state if first == 0 and i == 0 else None for i in range(n)],
        "is_last": [False] * n, "seq": list(range(seq + first, seq + stop)),
    }
    for v in STEP_VALUES:
        given = getattr(batch, v.batch_name)
        column = given[first:stop] if given else [v.default] * n
        values[v.name] = column if v.to_row is _same else [v.to_row(x) for x in column]
    columns = {}
    for name in COLUMNS:
        if name == "is_last":
            for extra in (extras[0] if extras else ()):
                columns[extra] = [cells[extra] for cells in extras]
        columns[name] = values[name]
    return columns


def final_row(session_id: str, seq: int, msg: Any, image: bytes, action_space: dict,
              frame_hash: str | None = None, extras: dict | None = None) -> dict:
    """The final row of an episode, from its protocol.EpisodeEnd: values a step's action
    produced hold their fill (`action_fill` for an `action_space` action, reward 0.0)."""
    values = {v.name: v.to_row(getattr(msg, v.name)) if v.in_final_row
              else v.final_fill(action_space) for v in STEP_VALUES}
    return _row(session_id, seq, episode=msg.episode, seed=msg.seed, step=msg.step, image=image,
                frame_hash=frame_hash, values={**values, **(extras or {})}, is_last=True)


def _row(session_id: str, seq: int, *, episode: int, seed: int, step: int, image: bytes,
         frame_hash: str | None, values: dict, is_last: bool) -> dict:
    return {
        "session_id": session_id, "episode_id": episode_id(session_id, episode),
        "episode_index": episode, "seed": seed, "step": step,
        "image": {"bytes": image, "path": None}, "frame_hash": frame_hash,
        "start_state": None, **values,  # values: a step's start_state, if any
        "is_last": is_last, "seq": seq,
    }


def row_columns(row: dict) -> dict[str, list]:
    """A row of `step_row` or `final_row` as columns of one row, as `batch_columns` gives them
    (`image` holds the bytes)."""
    columns = {name: [value] for name, value in row.items()}
    columns["image"] = [row["image"]["bytes"]]
    return columns


def columns_to_batch(columns: dict[str, list], schema: pa.Schema) -> pa.RecordBatch:
    """One Arrow batch of `schema` from rows held column by column (`batch_columns`,
    `row_columns`): an array per column, `image` built from its bytes (its `path` is null)."""
    import pyarrow as pa

    arrays = []
    for column in schema:
        values = columns[column.name]
        if column.name == "image":
            arrays.append(pa.StructArray.from_arrays(
                [pa.array(values, pa.binary()), pa.nulls(len(values), pa.string())],
                fields=list(column.type)))
        else:
            arrays.append(pa.array(values, column.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
