"""The dataset schema: one row per step, plus one final row per episode with its last observation.

Row t holds the frame the player saw when choosing `action` t, the reward and end flags that action
produced, and `is_last=False`. The row after an episode's last action has `is_last=True`, the final
observation in `image`, `action` and `reward` null, and the episode's end flags.
"""

from __future__ import annotations

import pyarrow as pa

from shared.errors import ProtocolError

COLUMNS = (
    "session_id", "episode_id", "episode_index", "seed", "step", "timestamp", "image", "action",
    "reward", "terminated", "truncated", "is_last", "seq",
)


def action_feature(desc: dict):
    """The `datasets` feature of an action space description."""
    from datasets import Sequence, Value

    kind = desc["type"]
    if kind == "Discrete":
        return Value("int64")
    if kind == "MultiBinary":
        return Sequence(Value("int8"), length=desc["n"])
    if kind == "MultiDiscrete":
        return Sequence(Value("int64"), length=len(desc["nvec"]))
    if kind == "Box":
        n = 1
        for s in desc["shape"]:
            n *= s
        return Sequence(Value("float32"), length=n)
    if kind == "Dict":
        return {k: action_feature(sub) for k, sub in desc["spaces"].items()}
    raise ProtocolError(f"unsupported action space {kind!r}")


def features(action_space: dict):
    """The `datasets.Features` of a dataset whose actions follow `action_space`."""
    from datasets import Features, Image, Value

    return Features({
        "session_id": Value("string"),
        "episode_id": Value("string"),
        "episode_index": Value("int32"),
        "seed": Value("int64"),
        "step": Value("int32"),
        "timestamp": Value("float64"),
        "image": Image(),
        "action": action_feature(action_space),
        "reward": Value("float64"),
        "terminated": Value("bool"),
        "truncated": Value("bool"),
        "is_last": Value("bool"),
        "seq": Value("int64"),
    })


def arrow_schema(action_space: dict) -> pa.Schema:
    """The Arrow schema, carrying the `datasets` features metadata so `image` decodes as Image()."""
    return features(action_space).arrow_schema


def episode_id(session_id: str, episode: int) -> str:
    """A dataset-wide unique episode id: `<session>-<episode index, 5 digits>`."""
    return f"{session_id}-{episode:05d}"
