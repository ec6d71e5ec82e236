"""Agents that choose actions without a person, and how `--agent SPEC` finds one.

An agent is any object with `act(observation) -> action` and, optionally, `reset(seed)` (called
before each episode with the episode's seed). SPEC names one:

    random                          the built-in seeded random agent
    breakout-tracker, run-right-jump  the example agents in recorder/examples/
    mypkg.policies:tracker          attribute `tracker` of an importable module
    path/to/agent.py:make_agent     attribute `make_agent` of a Python file

The attribute is an agent (it has `act`), or a factory (a class or function) called with the
env's action space, plus `env_id=` and `env_options=` when it takes them, that returns one.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from shared.errors import AgentFailed, UsageError


class Agent(Protocol):
    def act(self, observation: Any) -> Any: ...


class RandomAgent:
    """Uniform samples from the action space, reproducible from each episode's seed."""

    def __init__(self, action_space: Any):
        self.action_space = action_space

    def reset(self, seed: int) -> None:
        self.action_space.seed(seed)

    def act(self, observation: Any) -> Any:
        return self.action_space.sample()


BUILT_IN = {
    "random": "recorder.agents:RandomAgent",
    "breakout-tracker": "recorder.examples.breakout_tracker:BreakoutTracker",
    "run-right-jump": "recorder.examples.run_right_jump:RunRightJump",
}


@dataclass(frozen=True)
class AgentSource:
    """Where an agent comes from: the SPEC as given, and the sha256 of its file ("" for a
    built-in agent)."""

    spec: str
    target: str  # "module:attr" or "file.py:attr"
    sha256: str = ""

    @property
    def player(self) -> str:
        """What the dataset says played: "agent:<spec>"."""
        return f"agent:{self.spec}"


def agent_source(spec: str) -> AgentSource:
    """Check SPEC's form and load it once (so a typo fails before anything starts); raise
    UsageError naming what is wrong."""
    target = BUILT_IN.get(spec, spec)
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr.isidentifier():
        raise UsageError(f"--agent {spec!r}: expected random, {', '.join(list(BUILT_IN)[1:])}, "
                         "module:attribute or path/to/file.py:attribute")
    if spec not in BUILT_IN and where.endswith(".py"):
        target = f"{Path(where).expanduser().resolve()}:{attr}"  # workers may run elsewhere
    module = _load_module(spec, target.rpartition(":")[0])
    _attribute(spec, module, attr)
    file = getattr(module, "__file__", None)
    digest = "" if spec in BUILT_IN or not file else _sha256(Path(file))
    return AgentSource(spec=spec, target=target, sha256=digest)


def make_agent(source: AgentSource, action_space: Any, *, env_id: str = "",
               env_options: dict | None = None) -> CheckedAgent:
    """The agent `source` names, for an env with `action_space`, checked at every step."""
    where, _, attr = source.target.rpartition(":")
    found = _attribute(source.spec, _load_module(source.spec, where), attr)
    agent = found
    if isinstance(found, type) or not callable(getattr(found, "act", None)):
        if not callable(found):
            raise UsageError(f"--agent {source.spec}: {attr} is neither an agent (with act) "
                             "nor a factory of one")
        extra = {"env_id": env_id, "env_options": dict(env_options or {})}
        accepted = _keyword_names(found)
        kwargs = {k: v for k, v in extra.items() if accepted is None or k in accepted}
        try:
            agent = found(action_space, **kwargs)
        except Exception as exc:
            raise AgentFailed(f"--agent {source.spec}: making the agent failed: "
                              f"{type(exc).__name__}: {exc}") from exc
        if not callable(getattr(agent, "act", None)):
            raise UsageError(f"--agent {source.spec}: {attr}(action_space) returned "
                             f"{type(agent).__name__}, which has no act(observation)")
    return CheckedAgent(agent, action_space, source.spec)


class CheckedAgent:
    """An agent whose failures are one-line AgentFailed errors: raising, or an action outside
    the action space (the env never sees it)."""

    def __init__(self, agent: Any, action_space: Any, name: str):
        self.agent, self.action_space, self.name = agent, action_space, name
        self._reset = getattr(agent, "reset", None)
        # A Discrete space's plain int actions are checked here (gymnasium's `contains` takes
        # ~10 us a step, a tenth of the env's own step for Atari); anything else goes to it.
        from gymnasium.spaces import Discrete

        self._ints = (range(int(action_space.start), int(action_space.start + action_space.n))
                      if type(action_space) is Discrete else None)

    def reset(self, seed: int) -> None:
        if callable(self._reset):
            try:
                self._reset(seed)
            except Exception as exc:
                raise AgentFailed(f"agent {self.name} raised in reset: "
                                  f"{type(exc).__name__}: {exc}") from exc

    def act(self, observation: Any) -> Any:
        try:
            action = self.agent.act(observation)
        except Exception as exc:
            raise AgentFailed(f"agent {self.name} raised {type(exc).__name__}: {exc}") from exc
        if self._ints is not None and (type(action) is int or isinstance(action, np.integer)):
            valid = int(action) in self._ints
        else:
            try:
                valid = self.action_space.contains(action)
            except Exception:  # a value of a type the space cannot even compare
                valid = False
        if not valid:
            raise AgentFailed(f"agent {self.name} returned {_short(action)}, which is not in "
                              f"the action space {self.action_space}")
        return action


def _load_module(spec: str, where: str) -> Any:
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise UsageError(f"--agent {spec}: no file {path}")
            name = "gymrec_agent_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
            if name in sys.modules:
                return sys.modules[name]
            loader = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(loader)
            sys.modules[name] = module
            loader.loader.exec_module(module)
            return module
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())  # as `python -m` would: the user's own modules
        return importlib.import_module(where)
    except UsageError:
        raise
    except Exception as exc:  # the user's code, failing in its own way while importing
        sys.modules.pop(where, None)
        raise UsageError(f"--agent {spec}: cannot import {where}: "
                         f"{type(exc).__name__}: {exc}") from exc


def _attribute(spec: str, module: Any, attr: str) -> Any:
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UsageError(f"--agent {spec}: {module.__name__} has no attribute {attr!r}") from None


def _keyword_names(factory: Any) -> set[str] | None:
    """The keyword names `factory` takes; None when it takes any (**kwargs)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return set()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params}


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
