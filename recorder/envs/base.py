"""The interface every platform (Atari, Stable-Retro, VizDoom, ...) answers, and small helpers
its implementations share. A platform is one module beside this one; `registry.py` lists them.

What gymrec asks of a platform: which env ids it owns (and what an alias or a near miss means),
how to make an env that renders to arrays, its default FPS, its action labels, the picture in an
observation, the controls a key map binds and how held controls become an action, its part of
`gymrec-record --list`, and the packages whose versions decide what its envs do.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from shared.version import PLATFORM_PACKAGES

LISTING_WIDTH = 100  # characters per line of `--list`


class Platform(ABC):
    """One family of envs behind what gymrec needs of it. Subclasses set the class attributes
    and implement the abstract methods; the others have defaults that suit gymnasium envs."""

    name: str  # the key in SessionStarts, key map tables and shared.version.PLATFORM_PACKAGES
    title: str  # for people: "Stable-Retro"
    module: str  # the import package its envs come from ("ale_py"): recognises a live env
    default_fps: float  # frames per second when --fps is not given
    controls: tuple[str, ...]  # every control name a key map may bind
    default_keys: Mapping[str, str]  # pygame key name ("up", "ctrl") → control

    # -- ids and resolution -------------------------------------------------------------------

    @abstractmethod
    def ids(self) -> list[str]:
        """Every env id of this platform that the installed packages know."""

    def canonical_id(self, env_id: str, ids: list[str]) -> str | None:
        """The id `env_id` stands for on this platform (`ids`: from `ids()`), or None when it is
        not one of ours. May raise EnvNotFound with a hint only this platform can give."""
        return env_id if env_id in ids else None

    def check_playable(self, env_id: str) -> None:
        """Raise RomMissing (with how to get it) when the game's ROM or WAD is not installed."""
        return None  # nothing to install by default

    # -- envs ---------------------------------------------------------------------------------

    def env_kwargs(self, state: str | None) -> dict:
        """The kwargs an env is made with (stored in the dataset); `state`: a --state value."""
        return {"render_mode": "rgb_array"}

    @abstractmethod
    def make(self, env_id: str, kwargs: Mapping[str, Any]) -> Any:
        """A new env that renders to arrays, never to a window."""

    def frame(self, observation: Any, env: Any) -> np.ndarray:
        """The picture the player sees (height × width × channels, uint8): the observation
        itself when it is an image, else a render."""
        image = observation if is_image(observation) else env.render()
        return as_frame(image)

    def owns_env(self, env: Any) -> bool:
        """Whether a live env is one of this platform's (by the package of its class)."""
        return type(env.unwrapped).__module__.split(".")[0] == self.module

    @abstractmethod
    def action_labels(self, env: Any) -> list[str]:
        """A name per action (Discrete) or per element of the action vector."""

    @abstractmethod
    def resolver(self, env: Any) -> Callable[[frozenset[str]], Any]:
        """A function from the held controls (names in `controls`) to this env's action."""

    # -- listing ------------------------------------------------------------------------------

    def catalogue(self) -> dict[str, str]:
        """Every id, sorted, → what is missing to play it ("ROM missing"; "" when nothing)."""
        return {i: "" for i in sorted(self.ids())}

    @abstractmethod
    def summary(self, catalogue: Mapping[str, str]) -> list[str]:
        """This platform's lines in `gymrec-record --list` (pure: over `catalogue()`)."""

    # -- versions -----------------------------------------------------------------------------

    @property
    def packages(self) -> tuple[str, ...]:
        """The distributions whose versions decide what the envs do (shared with the writer)."""
        return PLATFORM_PACKAGES.get(self.name, ())


class GymPlatform(Platform):
    """A platform whose envs are in gymnasium's registry once `register_ids()` has run, with entry
    points in `module`."""

    @abstractmethod
    def register_ids(self) -> None:
        """Put this platform's ids into gymnasium's registry (idempotent)."""

    def ids(self) -> list[str]:
        self.register_ids()
        return gym_ids(self.module)

    def make(self, env_id: str, kwargs: Mapping[str, Any]) -> Any:
        import gymnasium as gym

        self.register_ids()
        return gym.make(env_id, **kwargs)


def is_image(observation: Any) -> bool:
    return isinstance(observation, np.ndarray) and observation.ndim == 3


def as_frame(image: np.ndarray) -> np.ndarray:
    """A contiguous uint8 height × width × channels array (a grey image gets one channel)."""
    if image.ndim == 2:
        image = image[:, :, None]
    return np.ascontiguousarray(image, dtype=np.uint8)


def gym_ids(module: str) -> list[str]:
    """The gymnasium registry's ids whose entry point lives in `module` (register first)."""
    import gymnasium as gym

    return [k for k, spec in gym.registry.items() if module in str(spec.entry_point).lower()]


# -- text helpers for `summary` ---------------------------------------------------------------

def heading(platform: Platform, what: str, title: str | None = None) -> str:
    return f"{title or platform.title} (default {platform.default_fps:g} fps): {what}"


def count_ids(n: int) -> str:
    return f"{n} id" if n == 1 else f"{n} ids"


def wrapped(items: list[str], indent: str = "  ") -> list[str]:
    """Items two spaces apart, in lines of at most LISTING_WIDTH characters (never split)."""
    lines, current = [], ""
    for item in items:
        if current and len(indent) + len(current) + 2 + len(item) > LISTING_WIDTH:
            lines.append(indent + current)
            current = item
        else:
            current = f"{current}  {item}" if current else item
    return [*lines, indent + current] if current else lines
