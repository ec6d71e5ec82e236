"""One episode being recorded, shared by the headless loop and human play: each env step becomes
one StepData for the link (the one place a step becomes a message), `max_steps` cuts the
episode, and its end (the final observation) is sent once.

A new per-step value is produced in `Episode.record`, where the env's step result is at hand,
and declared in shared/schema.py and shared/protocol.py. The env's info travels with the frame
it came with (reset's with frame 0): typed values read by the platform, the rest as JSON.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from recorder.envs import extras_reader, frame_of, info_reader
from recorder.info import info_json
from shared.schema import EpisodeEndData, StepData
from shared.spaces import action_to_wire


class StepSink(Protocol):
    """Where recorded steps go: the WriterLink, or the OfflineLink of a session only played."""

    def send_step(self, step: StepData) -> bool:
        """Queue one step; False when it could not be kept (it became part of a gap)."""

    def send_episode_end(self, end: EpisodeEndData) -> None: ...


class Episode:
    """The episode in progress: its place in the session, the frame on screen, steps so far."""

    def __init__(self, *, sink: StepSink, env: Any, index: int, seed: int, observation: Any,
                 action_space: dict, max_steps: int | None,
                 picture: Callable[[Any], np.ndarray] | None = None,
                 info: Mapping | None = None,
                 start_state: bytes | None = None,
                 typed_info: Callable[[Mapping], dict] | None = None,
                 record: tuple[str, ...] = ()):
        self.sink, self.env = sink, env
        # The frame in an observation (default: frame_of with `env`; a vector env's sub-env
        # is not at hand, so its recorder says how).
        self.picture = picture or (lambda observation: frame_of(observation, env))
        # The typed info of a frame from the info that came with it (default: the platform
        # reads it, from the live env where the info lacks it); `info`: reset's.
        self.typed_info = typed_info or info_reader(env)
        self.info, self.info_json = self._info_of(info or {})
        # The extra observations (`record`: "ram", ...) with each frame, read from the env.
        self.read_extras = extras_reader(env, record) if record else _no_extras
        self.extras = self.read_extras(observation)
        self.index, self.seed = index, seed
        self.start_state = start_state  # the snapshot it started from (step 0 carries it)
        self.action_space = action_space  # its description, for actions in wire form
        self.max_steps = max_steps  # None: never cut
        self.observation = observation
        self.frame = self.picture(observation)
        self.shown_at = time.time()  # Unix time `frame` was shown (or handed to the agent)
        self.steps = 0
        self.terminated = self.truncated = False
        self.ended = False

    @property
    def extras_bytes(self) -> int:
        """Bytes of the current frame's extras (room a step needs beside its pixels)."""
        return sum(array.nbytes for array in self.extras.values())

    @property
    def over(self) -> bool:
        """The last step ended the episode (the env's end, or cut at `max_steps`)."""
        return self.terminated or self.truncated

    def record(self, action: Any, result: tuple) -> bool:
        """Record `action`, chosen on the current frame, and `result`, what env.step(action)
        returned; the next frame becomes current (`shown_at`: now, until the caller says when
        it was shown). Returns whether the link kept the step."""
        observation, reward, terminated, truncated, info = result
        if self.max_steps is not None and self.steps + 1 >= self.max_steps:
            truncated = True
        step = StepData(
            episode=self.index, step=self.steps, seed=self.seed, frame=self.frame,
            timestamp=self.shown_at, action=action_to_wire(action, self.action_space),
            reward=float(reward), terminated=bool(terminated), truncated=bool(truncated),
            start_state=self.start_state if self.steps == 0 else None,
            info=self.info, info_json=self.info_json, extras=self.extras,
        )
        kept = self.sink.send_step(step)
        self.steps += 1
        self.terminated, self.truncated = step.terminated, step.truncated
        self.observation = observation
        self.frame = self.picture(observation)
        self.info, self.info_json = self._info_of(info if isinstance(info, Mapping) else {})
        self.extras = self.read_extras(observation)
        self.shown_at = time.time()
        return kept

    def _info_of(self, info: Mapping) -> tuple[dict, str]:
        typed = self.typed_info(info)
        return typed, info_json(info, typed)

    def end(self, outcome: str | None = None, at: float | None = None) -> None:
        """Send the final observation (the current frame) once. `outcome` defaults to how the
        last step ended ("terminated", "truncated", else "aborted"); `at` to `shown_at`."""
        if self.ended:
            return
        self.ended = True
        if outcome is None:
            outcome = ("terminated" if self.terminated else "truncated" if self.truncated
                       else "aborted")
        self.sink.send_episode_end(EpisodeEndData(
            episode=self.index, step=self.steps, seed=self.seed, frame=self.frame,
            timestamp=self.shown_at if at is None else at, outcome=outcome,
            terminated=self.terminated, truncated=self.truncated, info=self.info,
            info_json=self.info_json, extras=self.extras,
        ))


def _no_extras(observation: Any) -> dict:
    return {}
