"""The recorder's processes and signals (issue 11, items 4, 5, 7, 8, 9): Ctrl-C, SIGTERM and
SIGKILL to the recorder's pid or group, a frozen recorder, a writer it started that dies.
Whatever happens, every frame sent is durable (or the user cut the wait short), the last
episode has its final row, and no process or /dev/shm file is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from recorder.delivery.link import probe_writer
from tests.support.datasets_check import assert_exact_episodes, load
from tests.support.process_tree import alive, arrow_bytes, blocked_signals, holds, wait_for
from tests.support.processes import ROOT, run_record
from tests.support.recorder_cli import RecorderCli, writer_pids
from tests.support.recorders import report, session_state

ENV = "BreakoutNoFrameskip-v4"
MANY = ("--episodes", "1000", "--seed", "3")  # runs far longer than any test waits


@pytest.fixture
def recorders():
    started: list[RecorderCli] = []

    def make(*args) -> RecorderCli:
        rec = RecorderCli(*args)
        started.append(rec)
        return rec

    yield make
    for rec in started:
        rec.kill_all()


def _assert_complete(data_dir, sent: int, durable: int) -> dict:
    """Everything sent is on disk, each episode from step 0 to its final row."""
    assert sent == durable and sent > 0
    episodes = assert_exact_episodes(load(data_dir, ENV))
    assert sum(len(rows) - 1 for rows in episodes.values()) == sent
    return episodes


def test_ctrl_c_to_the_group_keeps_every_frame_with_an_auto_started_writer(
        recorders, endpoint, data_dir):
    """One worker, in the recorder's own process (two worker processes: the test below)."""
    rec = recorders(ENV, endpoint, data_dir, *MANY, "--workers", "1")
    rec.wait_recording()
    assert rec.workers == []
    (writer,) = writer_pids(data_dir)
    rec.signal_group(signal.SIGINT)  # a terminal's Ctrl-C: the whole foreground group
    code, out, err = rec.communicate()
    assert code == 130, (out, err)
    sent, durable = rec.counts()
    rec.leftovers()
    wait_for(lambda: not alive(writer), 30, "the auto-started writer to exit when idle")
    episodes = _assert_complete(data_dir, sent, durable)
    state = session_state(data_dir, ENV)
    assert state["status"] == "ended" and state["end"]["reason"] == "interrupted"
    # Ctrl-C cuts the episode in play (aborted), or lands as one ends by itself (seed 3's first
    # episode ends about when the writer's first rows reach the disk): then none starts after it.
    outcomes = [e["outcome"] for e in state["episodes"]]
    assert len(outcomes) == len(episodes), (state["episodes"], err)
    assert outcomes[-1] == "aborted" or "aborted" not in outcomes, (state["episodes"], err)
    report("Ctrl-C to the recorder's group, auto-started writer", sent=sent, durable=durable,
           exit_code=code, processes_left=0, shm_files_left=0)


# Presses Ctrl-C on its 20th action, the last step of the first episode (--max-steps 20).
CTRL_C_AT_AN_EPISODE_END = """
import os
import signal


class Agent:
    def __init__(self, action_space, env_id=""):
        self.actions = 0

    def act(self, observation):
        self.actions += 1
        if self.actions == 20:
            os.kill(os.getpid(), signal.SIGINT)
        return 1
"""


def test_ctrl_c_as_an_episode_ends_is_an_interrupted_session(endpoint, data_dir, tmp_path):
    """The worker asks for its next episode just after the Ctrl-C: the answer (none) must not
    read as "the episodes ran out", so the session ends interrupted, not completed."""
    agent = tmp_path / "ctrl_c_agent.py"
    agent.write_text(CTRL_C_AT_AN_EPISODE_END)
    result = run_record(ENV, endpoint, data_dir, "--agent", f"{agent}:Agent", "--episodes", "3",
                        "--max-steps", "20", "--seed", "3")
    assert result.returncode == 130, (result.stdout, result.stderr)
    state = session_state(data_dir, ENV)
    assert state["status"] == "ended" and state["end"]["reason"] == "interrupted", state["end"]
    episodes = assert_exact_episodes(load(data_dir, ENV))
    assert [len(rows) for rows in episodes.values()] == [21]
    assert [e["outcome"] for e in state["episodes"]] == ["truncated"]


@pytest.mark.parametrize("sig, to, code", [(signal.SIGINT, "pid", 130),
                                            (signal.SIGTERM, "pid", 143),
                                            (signal.SIGTERM, "group", 143)])
def test_a_signal_to_the_pid_or_the_group_stops_the_recording_in_order(
        recorders, writer_factory, endpoint, data_dir, sig, to, code):
    writer_factory().start()
    rec = recorders(ENV, endpoint, data_dir, *MANY, "--workers", "2")
    rec.wait_recording()
    assert len(rec.workers) == 2
    if to == "pid":
        rec.signal_pid(sig)  # as `kill`, `timeout` or a scheduler would
    else:
        rec.signal_group(sig)
    got, out, err = rec.communicate(timeout=60)
    assert got == code, (out, err)
    sent, durable = rec.counts()
    rec.leftovers(timeout=5)
    _assert_complete(data_dir, sent, durable)
    report(f"{signal.Signals(sig).name} to the recorder's {to}, 2 workers", sent=sent,
           durable=durable, exit_code=got, processes_left=0, shm_files_left=0)


def test_sigkill_of_the_recorder_takes_its_workers_along(recorders, writer_factory, endpoint,
                                                         data_dir):
    writer_factory().start()
    rec = recorders(ENV, endpoint, data_dir, *MANY, "--workers", "2")
    rec.wait_recording()
    assert len(rec.workers) == 2
    wait_for(lambda: len(_session_states(data_dir)) == 2, 60, "both workers' sessions")
    rec.signal_pid(signal.SIGKILL)
    rec.communicate()
    rec.leftovers(timeout=30)  # the workers noticed, ended their sessions, removed their rings
    states = _session_states(data_dir)
    assert len(states) == 2
    episodes = assert_exact_episodes(load(data_dir, ENV))
    for state in states:
        assert state["status"] == "ended" and state["end"]["reason"] == "interrupted"
    assert sum(len(rows) - 1 for rows in episodes.values()) == sum(
        state["end"]["steps_sent"] for state in states)
    report("recorder SIGKILLed (its workers end their sessions)",
           sent=sum(state["end"]["steps_sent"] for state in states), processes_left=0,
           shm_files_left=0)


def test_a_worker_that_dies_stops_the_other_in_order(recorders, writer_factory, endpoint,
                                                     data_dir):
    """SIGKILL to one of two workers (at any point of asking for its next episode): the
    recorder says a worker died (exit 1), the other ends its session in order with every frame
    it sent durable, and the killed one's session is closed by the writer, its ring removed."""
    writer_factory("--session-timeout", "2").start()
    rec = recorders(ENV, endpoint, data_dir, *MANY, "--workers", "2")
    rec.wait_recording()
    assert len(rec.workers) == 2
    wait_for(lambda: len(_session_states(data_dir)) == 2, 60, "both workers' sessions")
    os.kill(rec.workers[0], signal.SIGKILL)
    code, out, err = rec.communicate()
    assert code == 1 and "died" in err, (code, out, err)
    rec.leftovers(timeout=30)  # the writer gave up on the dead one's session: its ring went
    wait_for(lambda: all(st["status"] != "recording" for st in _session_states(data_dir)), 30,
             "both sessions closed")
    states = {st["status"]: st for st in _session_states(data_dir)}
    assert set(states) == {"ended", "aborted"}, states
    survivor = states["ended"]
    assert survivor["end"]["reason"] == "interrupted"
    ds = load(data_dir, ENV)
    mine = ds.filter(lambda r: r["session_id"] == survivor["start"]["session"])
    episodes = assert_exact_episodes(mine)
    assert sum(len(rows) - 1 for rows in episodes.values()) == survivor["end"]["steps_sent"]
    report("one of two workers SIGKILLed (the other ends in order)",
           sent=survivor["end"]["steps_sent"], processes_left=0, shm_files_left=0)


def test_a_sigkilled_recorder_playing_in_its_own_process_loses_nothing_confirmed(
        recorders, writer_factory, endpoint, data_dir):
    """One worker plays in the recorder's process: nothing is left to end its session, so
    the writer closes it as aborted once it is silent; every row it confirmed stays, each
    episode but the cut one whole."""
    writer_factory("--session-timeout", "2").start()
    rec = recorders(ENV, endpoint, data_dir, *MANY, "--workers", "1")
    rec.wait_recording()
    assert rec.workers == []  # no worker process
    rec.signal_pid(signal.SIGKILL)
    rec.communicate()
    wait_for(lambda: session_state(data_dir, ENV)["status"] == "aborted", 30,
             "the writer to seal the silent session as aborted")
    rec.leftovers(timeout=30)  # its ring too: the writer removes it with the session
    rows = load(data_dir, ENV)
    assert len(rows) > 0 and sorted(rows["seq"]) == list(range(1, len(rows) + 1))
    report("recorder with one in-process worker SIGKILLed", rows_kept=len(rows),
           status="aborted", processes_left=0, shm_files_left=0)


def _session_states(data_dir) -> list[dict]:
    import json

    folder = data_dir / ENV / ".meta" / "sessions"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def test_a_second_ctrl_c_cuts_the_wait_for_an_absent_writer(recorders, writer_factory,
                                                            endpoint, data_dir):
    writer = writer_factory().start()
    rec = recorders(ENV, endpoint, data_dir, *MANY)
    rec.wait_recording()
    writer.proc.send_signal(signal.SIGSTOP)  # the writer is away: nothing is confirmed
    try:
        time.sleep(0.5)
        rec.signal_group(signal.SIGINT)
        time.sleep(1.0)  # the recorder now waits for confirmations that do not come
        assert rec.proc.poll() is None
        began = time.monotonic()
        rec.signal_group(signal.SIGINT)
        code, out, err = rec.communicate(timeout=60)
        waited = time.monotonic() - began
    finally:
        writer.proc.send_signal(signal.SIGCONT)
    assert code == 130, (out, err)
    assert waited < 10, waited  # not the 60 s drain timeout, nor the 30 s stall timeout
    assert "did not confirm" in err and "worker" not in err, err
    rec.leftovers(timeout=5)
    report("two Ctrl-C while the writer is frozen", exit_code=code,
           seconds_after_second_ctrl_c=round(waited, 1), processes_left=0, shm_files_left=0)


def test_sigkilled_auto_started_writer_is_replaced_and_nothing_is_lost(recorders, endpoint,
                                                                       data_dir):
    rec = recorders(ENV, endpoint, data_dir, "--episodes", "6", "--max-steps", "600",
                    "--seed", "5", "--realtime", "--fps", "300")
    rec.wait_recording(nbytes=100_000)
    for kill in range(2):
        (writer,) = writer_pids(data_dir)
        os.kill(writer, signal.SIGKILL)
        wait_for(lambda writer=writer: [w for w in writer_pids(data_dir) if w != writer], 30,
                 f"a new writer after kill {kill + 1}")
        wait_for(lambda: probe_writer(endpoint, 0.3), 60, "the new writer to answer")
        on_disk = arrow_bytes(rec.env_root)  # after its recovery: rows it writes from now on
        wait_for(lambda on_disk=on_disk: arrow_bytes(rec.env_root) > on_disk + 100_000, 60,
                 "rows written by the new writer")
        (new,) = writer_pids(data_dir)
        assert not blocked_signals(new) & {signal.SIGINT, signal.SIGTERM}  # stoppable
    code, out, err = rec.communicate()
    assert code == 0, (out, err)
    # Each kill was followed by a new writer that wrote rows (checked above). The recorder says
    # so once per restart it saw through: a kill that lands before its watch thread has seen
    # the new writer answer reads as "could not be started again; trying again" and is folded
    # into the next start, so the count of these lines is 1 or 2, never 0, and the last word
    # is always a writer started.
    assert 1 <= err.count("started a new one") <= 2, err
    assert err.rstrip().endswith("started a new one"), err
    sent, durable = rec.counts()
    assert len(_assert_complete(data_dir, sent, durable)) == 6
    rec.leftovers()
    report("auto-started writer SIGKILLed 2x, restarted by the recorder", sent=sent,
           durable=durable, exit_code=code)


def test_a_frozen_recorder_continues_after_the_writer_gave_up_on_it(recorders, writer_factory,
                                                                    endpoint, data_dir):
    writer_factory("--session-timeout", "2").start()
    rec = recorders(ENV, endpoint, data_dir, "--episodes", "2", "--max-steps", "600",
                    "--seed", "6", "--realtime", "--fps", "200")
    rec.wait_recording(nbytes=100_000)
    rec.signal_group(signal.SIGSTOP)  # Ctrl-Z, a laptop lid
    try:
        wait_for(lambda: session_state(data_dir, ENV)["status"] == "aborted", 30,
                 "the writer to seal the silent session as aborted")
    finally:
        rec.signal_group(signal.SIGCONT)
    code, out, err = rec.communicate()
    assert code == 0, (out, err)
    assert "continues" in err, err
    sent, durable = rec.counts()
    assert len(_assert_complete(data_dir, sent, durable)) == 2
    assert session_state(data_dir, ENV)["status"] == "ended"
    rec.leftovers()
    report("recorder SIGSTOPped past --session-timeout, then continued", sent=sent,
           durable=durable, exit_code=code, sessions=1)


def test_writer_started_with_sigint_ignored_stops_on_a_sigint_during_its_start_up(tmp_path,
                                                                                   endpoint):
    """A script's `gymrec-writer &` starts with SIGINT ignored (POSIX, no job control). A SIGINT
    while the writer starts (it holds its lock, then imports `datasets` and recovers: seconds)
    must still stop it."""
    data_dir = tmp_path / "data"
    cmd = [sys.executable, "-m", "writer.cli", "--endpoint", endpoint, "--data-dir",
           str(data_dir)]
    with open(tmp_path / "writer.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        # Its lock is taken ~2 s before it answers (importing `datasets`): the SIGINT lands in
        # its start-up, where the old writer had no handler yet and lost it.
        wait_for(lambda: holds(proc.pid, data_dir / ".writer.lock"), 30, "the writer's lock",
                 every=0.01)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
