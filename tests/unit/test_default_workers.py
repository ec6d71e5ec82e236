"""How many recorders play when --workers is not given, and where their frames are encoded
when --encode-in is not."""

from __future__ import annotations

import os

from recorder.cli import EPISODES_PER_WORKER, default_workers, encode_in_recorder
from recorder.envs import platform_named


def test_a_short_run_plays_in_one_recorder_and_a_long_one_on_every_core():
    cores = len(os.sched_getaffinity(0))
    assert default_workers(1, realtime=False) == 1
    assert default_workers(EPISODES_PER_WORKER * 2 - 1, realtime=False) == 1
    assert default_workers(EPISODES_PER_WORKER * 2, realtime=False) == min(cores, 2)
    assert default_workers(10_000, realtime=False) == cores


def test_a_game_running_in_a_process_of_its_own_gets_one_recorder_per_two_cores():
    """VizDoom's engine is a process beside the recorder: on 2 cores one recorder with the
    writer encoding beat two recorders by 5.5 % (docs/BENCHMARKS.md, seventh pass)."""
    cores = len(os.sched_getaffinity(0))
    assert platform_named("vizdoom").cores_per_recorder == 2
    assert platform_named("atari").cores_per_recorder == 1
    assert platform_named("retro").cores_per_recorder == 1
    assert default_workers(10_000, realtime=False, cores_per_recorder=2) == max(1, cores // 2)
    assert default_workers(1, realtime=False, cores_per_recorder=2) == 1
    workers = default_workers(10_000, realtime=False, cores_per_recorder=2)
    assert encode_in_recorder("auto", workers, realtime=False) == (workers >= cores)


def test_a_paced_agent_plays_alone():
    assert default_workers(10_000, realtime=True) == 1


def test_recorders_encode_their_frames_when_every_core_has_one():
    cores = len(os.sched_getaffinity(0))
    assert encode_in_recorder("auto", cores, realtime=False)
    assert encode_in_recorder("auto", cores + 1, realtime=False)
    assert not encode_in_recorder("auto", cores - 1, realtime=False)  # the writer has a core
    assert not encode_in_recorder("auto", cores, realtime=True)  # paced: its loop stays light
    assert encode_in_recorder("recorder", 1, realtime=True)
    assert not encode_in_recorder("writer", cores, realtime=False)
