"""The platforms gymrec plays, one module each (atari.py, retro.py, vizdoom.py) behind the
interface in base.py, listed in registry.py. Env ids → envs, always rendering to arrays.

`resolve_env` is cheap and checks the id and ROM before anything starts; `make_env` builds it.
"""

from recorder.envs.base import Platform
from recorder.envs.registry import (
    EnvChoice,
    action_labels,
    choice_of_env,
    env_settings,
    extras_reader,
    extras_spec,
    first_reset,
    fps_defaults,
    frame_of,
    info_columns,
    info_reader,
    known_ids,
    make_env,
    native_fps,
    platform_named,
    platform_names,
    platforms,
    recording,
    resolve_env,
    resolver_for,
)

__all__ = [
    "EnvChoice", "Platform", "action_labels", "choice_of_env", "env_settings", "extras_reader",
    "extras_spec", "first_reset", "fps_defaults",
    "frame_of", "info_columns", "info_reader", "known_ids", "make_env", "native_fps",
    "platform_named", "platform_names",
    "platforms", "recording", "resolve_env", "resolver_for",
]
