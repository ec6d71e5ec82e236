"""Building a session's SessionStart message from a live env."""

from __future__ import annotations

import getpass
import socket
import time
import uuid
from typing import Any

from recorder.envs import (
    EnvChoice,
    action_labels,
    env_settings,
    extras_reader,
    extras_spec,
    frame_of,
    info_columns,
)
from shared import protocol as p
from shared.spaces import describe_space
from shared.version import VERSION, package_versions


def new_session_id() -> str:
    return uuid.uuid4().hex


def collector_name() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # getuser raises several types when no user name is known
        return f"unknown@{socket.gethostname()}"


def session_start(session_id: str, choice: EnvChoice, env: Any, first_observation: Any, *,
                  fps: float, codec: str, quality: int, base_seed: int, collector: str,
                  max_steps: int | None, shm_slots: int = 0, player: str = "human",
                  key_bindings: dict[str, str] | None = None,
                  agent_sha256: str = "") -> p.SessionStart:
    """The SessionStart of a session about to play `env` (reset to `first_observation`);
    `max_steps` None: episodes are never cut; `shm_slots` > 0: pixels go through a ring;
    `agent_sha256`: of the file the agent came from. The extras `choice.record` names are
    declared with the shapes they have in `first_observation`."""
    frame = frame_of(first_observation, env)
    extras = (extras_spec(extras_reader(env, choice.record)(first_observation))
              if choice.record else {})
    return p.SessionStart(
        session=session_id, seq=0, env_id=choice.env_id, platform=choice.platform,
        env_kwargs=dict(choice.kwargs), observation_space=str(env.observation_space),
        action_space=describe_space(env.action_space),
        action_labels=action_labels(env, choice.platform), fps=float(fps), codec=codec,
        quality=quality, versions=package_versions(), recorder_version=VERSION,
        collector=collector, frame_shape=list(frame.shape), base_seed=base_seed,
        started_at=time.time(), max_steps=max_steps or 0, shm_slots=shm_slots,
        player=player, key_bindings=dict(key_bindings or {}), env_settings=env_settings(env),
        agent_sha256=agent_sha256, info_columns=info_columns(env), extras=extras,
    )
