"""Action spaces as plain descriptions that both sides share, and actions as msgpack-able values.

A description is a small dict: `{"type": "Discrete", "n": 4, "start": 0}`,
`{"type": "MultiBinary", "n": 12}`, `{"type": "MultiDiscrete", "nvec": [3, 3]}`,
`{"type": "Box", "shape": [2], "dtype": "float32"}`, or `{"type": "Dict", "spaces": {name: desc}}`.
"""

from __future__ import annotations

import math
from typing import Any

from shared.errors import ProtocolError

MAX_ACTION_ITEMS = 4096


def describe_space(space: Any) -> dict:
    """Describe a gymnasium action space (duck-typed, so `shared` needs no gymnasium import)."""
    kind = type(space).__name__
    if kind == "Discrete":
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if kind == "MultiBinary":
        n = int(math.prod(space.n)) if hasattr(space.n, "__len__") else int(space.n)
        return {"type": "MultiBinary", "n": n}
    if kind == "MultiDiscrete":
        return {"type": "MultiDiscrete", "nvec": [int(v) for v in space.nvec.ravel()]}
    if kind == "Box":
        return {"type": "Box", "shape": [int(s) for s in space.shape], "dtype": str(space.dtype)}
    if kind == "Dict":
        return {"type": "Dict", "spaces": {k: describe_space(s) for k, s in space.spaces.items()}}
    raise ProtocolError(f"unsupported action space {kind}")


def action_to_wire(action: Any, desc: dict) -> Any:
    """Turn an env action (numpy scalars/arrays) into ints, floats, lists and dicts."""
    kind = desc["type"]
    if kind == "Discrete":
        return int(action)
    if kind in ("MultiBinary", "MultiDiscrete"):
        return [int(v) for v in _flat(action)]
    if kind == "Box":
        return [float(v) for v in _flat(action)]
    if kind == "Dict":
        return {k: action_to_wire(action[k], sub) for k, sub in desc["spaces"].items()}
    raise ProtocolError(f"unsupported action space {kind}")


def validate_action(value: Any, desc: dict) -> None:
    """Raise ProtocolError unless `value` is a wire action of the described space."""
    kind = desc["type"]
    if kind == "Discrete":
        if type(value) is not int or not desc["start"] <= value < desc["start"] + desc["n"]:
            raise ProtocolError(f"action {value!r} outside Discrete({desc['n']})")
    elif kind == "MultiBinary":
        _check_list(value, desc["n"], int)
        if any(v not in (0, 1) for v in value):
            raise ProtocolError("MultiBinary action holds values other than 0 and 1")
    elif kind == "MultiDiscrete":
        _check_list(value, len(desc["nvec"]), int)
        if any(not 0 <= v < n for v, n in zip(value, desc["nvec"], strict=True)):
            raise ProtocolError("MultiDiscrete action out of range")
    elif kind == "Box":
        _check_list(value, math.prod(desc["shape"]), float)
    elif kind == "Dict":
        if not isinstance(value, dict) or set(value) != set(desc["spaces"]):
            raise ProtocolError("Dict action keys differ from the action space")
        for k, sub in desc["spaces"].items():
            validate_action(value[k], sub)
    else:
        raise ProtocolError(f"unsupported action space {kind!r}")


def validate_space_description(desc: Any, depth: int = 0) -> None:
    """Raise ProtocolError unless `desc` is a well-formed space description."""
    if depth > 3 or not isinstance(desc, dict) or not isinstance(desc.get("type"), str):
        raise ProtocolError("malformed action space description")
    kind = desc["type"]
    if kind == "Discrete":
        if not (_int(desc.get("n")) and _int(desc.get("start")) and 0 < desc["n"] <= 2**31):
            raise ProtocolError("malformed Discrete space")
    elif kind == "MultiBinary":
        if not (_int(desc.get("n")) and 0 < desc["n"] <= MAX_ACTION_ITEMS):
            raise ProtocolError("malformed MultiBinary space")
    elif kind == "MultiDiscrete":
        nvec = desc.get("nvec")
        if not (isinstance(nvec, list) and 0 < len(nvec) <= MAX_ACTION_ITEMS
                and all(_int(v) and v > 0 for v in nvec)):
            raise ProtocolError("malformed MultiDiscrete space")
    elif kind == "Box":
        shape = desc.get("shape")
        if not (isinstance(shape, list) and all(_int(v) and v > 0 for v in shape)
                and math.prod(shape) <= MAX_ACTION_ITEMS and isinstance(desc.get("dtype"), str)):
            raise ProtocolError("malformed Box space")
    elif kind == "Dict":
        spaces = desc.get("spaces")
        if not isinstance(spaces, dict) or not spaces or len(spaces) > 64:
            raise ProtocolError("malformed Dict space")
        for key, sub in spaces.items():
            if not isinstance(key, str):
                raise ProtocolError("malformed Dict space")
            validate_space_description(sub, depth + 1)
    else:
        raise ProtocolError(f"unsupported action space {kind!r}")


def _int(v: Any) -> bool:
    return type(v) is int


def _flat(action: Any) -> list:
    if hasattr(action, "ravel"):
        return action.ravel().tolist()
    return list(action)


def _check_list(value: Any, length: int, item_type: type) -> None:
    if not isinstance(value, list) or len(value) != length:
        raise ProtocolError(f"action must be a list of {length} {item_type.__name__}s")
    if any(type(v) is not item_type for v in value):
        raise ProtocolError(f"action must be a list of {item_type.__name__}s")
