"""The gymrec recorder. `from recorder import record` wraps a Gymnasium env (or vector env)
so that the user's own loop records every step (see recorder/wrapper.py)."""

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("record", "RecordingEnv", "RecordingVectorEnv"):  # gymnasium only when asked
        from recorder import wrapper

        return getattr(wrapper, name)
    raise AttributeError(f"module 'recorder' has no attribute {name!r}")
