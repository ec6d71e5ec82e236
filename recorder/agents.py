"""Agents that choose actions without a person: a seeded random agent."""

from __future__ import annotations

from typing import Any, Protocol


class Agent(Protocol):
    def reset(self, seed: int) -> None: ...

    def act(self, observation: Any) -> Any: ...


class RandomAgent:
    """Uniform samples from the action space, reproducible from each episode's seed."""

    def __init__(self, action_space: Any):
        self.action_space = action_space

    def reset(self, seed: int) -> None:
        self.action_space.seed(seed)

    def act(self, observation: Any) -> Any:
        return self.action_space.sample()


AGENTS = {"random": RandomAgent}
