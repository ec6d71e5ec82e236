"""The episode runner shared by the headless loop and human play, on a real Breakout env, with
an in-memory sink in place of the link (the same two calls)."""

from __future__ import annotations

import numpy as np
import pytest

from recorder.envs import frame_of, make_env, resolve_env
from recorder.episode import Episode
from shared.schema import EpisodeEndData, StepData
from shared.spaces import describe_space


class MemorySink:
    def __init__(self, keep: bool = True):
        self.steps: list[StepData] = []
        self.ends: list[EpisodeEndData] = []
        self.keep = keep

    def send_step(self, step: StepData) -> bool:
        self.steps.append(step)
        return self.keep

    def send_episode_end(self, end: EpisodeEndData) -> None:
        self.ends.append(end)


@pytest.fixture(scope="module")
def env():
    env = make_env(resolve_env("BreakoutNoFrameskip-v4"))
    yield env
    env.close()


def _episode(env, sink: MemorySink, max_steps: int | None) -> Episode:
    observation, _ = env.reset(seed=5)
    return Episode(sink=sink, env=env, index=2, seed=5, observation=observation,
                   action_space=describe_space(env.action_space), max_steps=max_steps)


def test_each_step_records_the_frame_its_action_was_chosen_on(env):
    sink = MemorySink()
    episode = _episode(env, sink, max_steps=None)
    seen = [episode.frame.copy()]
    for action in (1, 2, 3):
        episode.shown_at = 100.0 + action  # when the frame was on screen
        assert episode.record(np.int64(action), env.step(action)) is True
        seen.append(frame_of(episode.observation, env).copy())
    assert [s.step for s in sink.steps] == [0, 1, 2]
    assert [s.timestamp for s in sink.steps] == [101.0, 102.0, 103.0]
    assert all(np.array_equal(s.frame, f) for s, f in zip(sink.steps, seen[:3], strict=True))
    assert [(type(s.action), s.action) for s in sink.steps] == [(int, 1), (int, 2), (int, 3)]
    assert all(type(s.reward) is float and type(s.truncated) is bool for s in sink.steps)
    assert {(s.episode, s.seed) for s in sink.steps} == {(2, 5)}
    assert not episode.over and sink.ends == []


def test_max_steps_truncates_the_last_step_and_the_end_is_sent_once(env):
    sink = MemorySink()
    episode = _episode(env, sink, max_steps=4)
    while not episode.over:
        episode.record(0, env.step(0))
    assert [s.truncated for s in sink.steps] == [False, False, False, True]
    episode.end(at=7.0)
    episode.end("aborted")
    (end,) = sink.ends
    assert (end.outcome, end.step, end.truncated, end.terminated, end.timestamp) == \
        ("truncated", 4, True, False, 7.0)
    assert np.array_equal(end.frame, episode.frame)


def test_an_episode_ended_early_is_aborted_or_as_told(env):
    for outcome, expected in ((None, "aborted"), ("discarded", "discarded")):
        sink = MemorySink(keep=False)
        episode = _episode(env, sink, max_steps=None)
        assert episode.record(0, env.step(0)) is False  # the sink's answer is passed on
        episode.end(outcome)
        assert [(e.outcome, e.step, e.terminated, e.truncated) for e in sink.ends] == \
            [(expected, 1, False, False)]
