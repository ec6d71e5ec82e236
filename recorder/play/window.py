"""Human play: a pygame window shows the game, held keys become actions, every step goes to the
writer. Everything runs in this process; the link's sends never block, so the game never waits
for the writer (a full resend buffer turns steps into an explicit, counted gap).

One tick of the loop, paced by FramePacer:
    wait for the deadline → read the events of the time the frame was on screen → (recording)
    step the env with the keys held meanwhile and queue the step → draw the next frame → flip.
So the action of a frame comes from the keys held while that very frame was shown.

The speed keys change the pacer's rate from the next frame on; each change is logged and sent
with the SessionEnd (`fps_changes`), and every frame keeps its own timestamp. With
`between_episodes` a break (seconds, or until Space) comes before each new episode: the env is
reset, its first frame is shown with what comes next, and nothing is played or recorded.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pygame

from recorder.agents import AgentSource, make_agent
from recorder.delivery.link import LinkStats, WriterLink
from recorder.envs import (
    EnvChoice,
    action_labels,
    first_reset,
    frame_of,
    make_env,
    native_fps,
)
from recorder.episode import Episode
from recorder.headless.loop import WorkerProgress, ring_slots
from recorder.pacing import FramePacer
from recorder.play.actions import describe_action, resolver_for
from recorder.play.hud import (
    BREAK,
    PAUSED,
    READY,
    REC,
    RED,
    SAVING,
    HudBar,
    HudInfo,
    Overlay,
    break_lines,
    hud_lines,
    title_lines,
)
from recorder.play.input import (
    DISCARD,
    FASTER,
    HUD,
    PAUSE,
    QUIT,
    SLOWER,
    START,
    InputState,
)
from recorder.play.keymaps import CONTROLS, Keymap
from recorder.play.speed import Speed, SpeedLog
from recorder.seeds import episode_seed, start_episode
from recorder.session_start import new_session_id, session_start
from shared.errors import UsageError
from shared.schema import EpisodeEndData, StepData
from shared.security import ClientKeys
from shared.settings_file import SPACE

CONNECTED_WITHIN = 3.0  # seconds since the writer's last ack for the HUD to say "connected"
NOTICE_SECONDS = 2.0


@dataclass(frozen=True)
class PlaySettings:
    choice: EnvChoice
    endpoint: str
    data_dir: Path
    fps: float | None  # None: the env's own rate (native_fps)
    keymap: Keymap
    base_seed: int
    codec: str
    quality: int
    buffer_bytes: int
    drain_timeout: float
    collector: str
    scale: int = 2
    max_steps: int | None = None
    episodes: int | None = None  # None: new episodes until the player quits
    agent: AgentSource | None = None  # an agent plays in the window instead of the keyboard
    curve: ClientKeys | None = None  # CURVE keys when the writer requires them
    keepalive: float = 1.0  # seconds of writer silence before the link re-announces the session
    shared_memory: bool = True  # pixels through a shared-memory ring to a writer on this machine
    # Frames per message: 4 halves the loop's cost of recording (docs/BENCHMARKS.md, game loop);
    # a frame then reaches the writer up to 3 frames (or 0.1 s) later.
    batch_steps: int = 4
    # A break before each new episode: seconds, or "space" (until Space); None or 0: none.
    between_episodes: float | str | None = None


@dataclass(frozen=True)
class PlayStatus:
    """What an event source may look at: the frame on screen and the phase of the session."""

    phase: str
    episode: int
    step: int
    tick: int


EventSource = Callable[[PlayStatus], Iterable[pygame.event.Event]]


def window_events(status: PlayStatus) -> list[pygame.event.Event]:
    return pygame.event.get()


@dataclass
class PlayResult:
    progress: WorkerProgress
    discarded: int = 0
    frames: int = 0
    late: int = 0
    frame_ms: dict[str, float] = field(default_factory=dict)  # p50, p99 of the frame interval
    intervals_s: list[float] = field(default_factory=list)  # seconds between frames
    work_s: list[float] = field(default_factory=list)  # seconds of work per frame, waits excluded
    fps_changes: list[list] = field(default_factory=list)  # [episode, step, fps] (speed keys)
    fps: float = 0.0  # the target rate play started at (the env's own unless --fps)


@dataclass(frozen=True)
class _NoOutbox:
    unacked: int = 0
    steps_durable: int = 0
    steps_dropped: int = 0


class OfflineLink:
    """Stands in for the WriterLink when a session is played without recording: the same
    calls, nothing leaves the process, so the loop, window and HUD do exactly their usual work.
    For comparisons (scripts/bench_loop.py); a subclass may do its own work with each frame."""

    def __init__(self):
        self.outbox = _NoOutbox()
        self.stats = LinkStats()  # no ack ever: the HUD says the writer is not answering
        self.keepalive = 0.0

    def send_step(self, step: StepData) -> bool:
        return True

    def send_episode_end(self, end: EpisodeEndData) -> None:
        pass

    def send_session_end(self, reason: str, fps_changes: list | None = None) -> None:
        pass

    def pump(self) -> None:
        pass

    def drain(self, timeout: float, on_wait=None) -> bool:
        return True

    def close(self) -> None:
        pass


def play(settings: PlaySettings, events: EventSource = window_events,
         link: OfflineLink | None = None) -> PlayResult:
    """Open the window and record until the player quits (or `episodes` are done). With
    `link` (an OfflineLink) the steps go there instead: the session is played, not recorded."""
    try:
        pygame.display.init()
    except pygame.error as exc:
        raise UsageError(f"cannot open a window ({exc}); without a display record with "
                         "--agent random --headless") from exc
    env = make_env(settings.choice, first_seed=episode_seed(settings.base_seed, 0))
    if settings.fps is None:
        settings = dataclasses.replace(settings, fps=native_fps(env))
    try:
        game = _Game(settings, env, events, link)
        try:
            game.run()
        finally:
            game.finish()
        return game.result()
    finally:
        env.close()
        pygame.display.quit()


class _Game:
    def __init__(self, settings: PlaySettings, env: Any, events: EventSource,
                 link: OfflineLink | None = None):
        self.settings, self.env, self.events = settings, env, events
        self.tick = 0
        seed = episode_seed(settings.base_seed, 0)
        observation, reset_info = first_reset(env, seed)
        frame = frame_of(observation, env)
        self.progress = WorkerProgress(0, session=new_session_id())
        start = session_start(self.progress.session, settings.choice, env, observation,
                              fps=settings.fps, codec=settings.codec, quality=settings.quality,
                              base_seed=settings.base_seed, collector=settings.collector,
                              max_steps=settings.max_steps,
                              player=settings.agent.player if settings.agent else "human",
                              agent_sha256=settings.agent.sha256 if settings.agent else "",
                              key_bindings={} if settings.agent else settings.keymap.by_name(),
                              shm_slots=ring_slots(settings.endpoint, settings.buffer_bytes,
                                                   frame.nbytes, settings.shared_memory))
        self.action_space = start.action_space
        self.link = link if link is not None else \
            WriterLink(settings.endpoint, start, settings.buffer_bytes, curve=settings.curve,
                       batch_steps=settings.batch_steps)
        self.link.keepalive = settings.keepalive
        self.ep = self._episode(0, seed, observation, reset_info)
        self.agent = make_agent(settings.agent, env.action_space,
                                env_id=settings.choice.env_id) if settings.agent else None
        if self.agent:
            self.agent.reset(seed)
        self.resolve = resolver_for(env, settings.choice.platform)
        self.input = InputState()
        self.pacer = FramePacer(settings.fps)
        self.speed, self.speed_log = Speed(settings.fps), SpeedLog()
        self.break_until: float | None = None  # monotonic end of a break (None: until Space)
        self.phase = REC if self.agent else READY
        self.hud_visible = True
        self.discarded = 0
        self.notice, self.notice_until = "", 0.0
        self.interrupted = self.completed = False
        self.fresh = False
        height, width = frame.shape[:2]
        self.overlay = Overlay()
        self.bar = HudBar(self.overlay, (width * settings.scale, height * settings.scale))
        self.window = pygame.display.set_mode(self.bar.window_size)
        self.picture = self.window.subsurface(pygame.Rect(
            self.bar.picture_left, 0, width * settings.scale, height * settings.scale))
        pygame.display.set_caption(f"gymrec \u2014 {settings.choice.env_id}")
        self.canvas = pygame.Surface((width, height))
        self.controls_help = _control_help(settings.keymap, self.resolve,
                                           action_labels(env, settings.choice.platform))
        self.ep.shown_at = self._show()

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        try:
            while self._tick():
                pass
            self.completed = True
        except KeyboardInterrupt:
            self.interrupted = True

    def _tick(self) -> bool:
        """One frame; False once the session is over."""
        self.pacer.wait()
        status = PlayStatus(self.phase, self.ep.index, self.ep.steps, self.tick)
        for event in self.events(status):
            self.input.process_event(event)
        self.tick += 1
        self.fresh = False
        for command in self.input.take_commands():
            if not self._command(command):
                return False
        if self.phase == BREAK and self.break_until is not None and \
                time.monotonic() >= self.break_until:
            self.phase, self.fresh = REC, True
        keys = self.input.frame_keys()
        # A frame the player has not seen yet as it is (just started, resumed, or the first of
        # a new episode after a discard) is shown for a whole frame before it is played.
        if self.phase == REC and not self.fresh and not self._play_step(keys):
            return False
        self.ep.shown_at = self._show()
        self.link.pump()  # also keeps the session open while paused (the link's keepalive)
        return True

    def _command(self, command: str) -> bool:
        if command == QUIT:
            return False
        if command == HUD:
            self.hud_visible = not self.hud_visible
        elif command == START and self.phase in (READY, BREAK):
            self.phase, self.fresh = REC, True
        elif command in (FASTER, SLOWER):
            self._change_speed(1 if command == FASTER else -1)
        elif command == PAUSE and self.phase in (REC, PAUSED):
            self.phase, self.fresh = (PAUSED if self.phase == REC else REC), True
        elif command == DISCARD and self.phase in (REC, PAUSED):
            self.fresh = self._discard()
        return True

    def _play_step(self, keys: frozenset[int]) -> bool:
        """Step the env with the action of `keys` (or the agent's); False when all is done."""
        if self.agent is not None:
            action = self.agent.act(self.ep.observation)
        else:
            action = self.resolve(self.settings.keymap.controls(keys))
        sent = self.ep.record(action, self.env.step(action))
        self.progress.steps += int(sent)
        if self.ep.over:
            # The final observation is never shown (the next episode follows at once): it is
            # stamped with the time it came out of the env.
            self._end_episode(at=time.time())
            self.progress.episodes += 1
            if self.settings.episodes is not None and self.progress.episodes >= \
                    self.settings.episodes:
                return False
            self._next_episode()
            self._start_break()
        return True

    def _start_break(self) -> None:
        """Before a new episode: a break of `between_episodes` seconds, or until Space."""
        wait = self.settings.between_episodes
        if not wait:
            return
        self.phase = BREAK
        self.break_until = None if wait == SPACE else time.monotonic() + float(wait)

    def _change_speed(self, direction: int) -> None:
        """A speed key: the frames after the one on screen are paced at the new rate, and the
        change is logged with the step of the frame on screen."""
        if not self.speed.step(direction):
            end = "fastest" if direction > 0 else "slowest"
            self._notify(f"speed {self.speed.label()} is the {end}")
            return
        if not self.speed_log.add(self.ep.index, self.ep.steps, self.speed.fps):
            self.speed.step(-direction)
            self._notify("too many speed changes in this session")
            return
        self.pacer.set_fps(self.speed.fps)
        self._notify(f"speed {self.speed.label()}: {self.speed.fps:g} fps")

    def _end_episode(self, outcome: str | None = None, at: float | None = None) -> None:
        """Send the episode's final observation (by default the frame on screen, and the
        outcome its last step says)."""
        self.ep.end(outcome, at)
        self.link.pump()

    def _episode(self, index: int, seed: int, observation: Any, info: Any,
                 start_state: bytes | None = None) -> Episode:
        """`info`: what reset returned with `observation` (step 0's info); `start_state`: the
        snapshot the episode started from (recorder/seeds.py)."""
        return Episode(sink=self.link, env=self.env, index=index, seed=seed,
                       observation=observation, action_space=self.action_space,
                       max_steps=self.settings.max_steps, start_state=start_state,
                       info=info if isinstance(info, dict) else None,
                       record=self.settings.choice.record)

    def _next_episode(self) -> None:
        index = self.ep.index + 1
        seed = episode_seed(self.settings.base_seed, index)
        # Unseeded from a snapshot where a seeded reset is costly (ALE: ~0.1 s, a stutter).
        observation, info, start_state = start_episode(self.env, seed)
        self.ep = self._episode(index, seed, observation, info, start_state)
        if self.agent:
            self.agent.reset(seed)

    def _discard(self) -> bool:
        """Throw the episode in progress away and start the next; False if nothing to discard."""
        if self.ep.steps == 0:
            self._notify("nothing to discard yet")
            return False
        self._end_episode("discarded")
        self.discarded += 1
        self._notify(f"episode {self.ep.index} discarded")
        self._next_episode()
        return True

    # -- the end ----------------------------------------------------------------------------

    def finish(self) -> None:
        """Save everything: the episode in progress ends as aborted, then wait for the writer."""
        if not self.ep.ended and self.ep.steps > 0:
            self._end_episode("aborted")
        # Anything but a normal end (Ctrl-C, an error in the env) is an interrupted session.
        self.link.send_session_end("completed" if self.completed else "interrupted",
                                   fps_changes=self.speed_log.changes)
        self.phase = SAVING
        shown = 0.0

        def on_wait() -> None:
            nonlocal shown
            if time.monotonic() - shown > 0.1:
                shown = time.monotonic()
                pygame.event.pump()
                self._show()

        try:
            self.link.drain(self.settings.drain_timeout, on_wait=on_wait)
        except KeyboardInterrupt:
            self.interrupted = True
        self.progress.steps_durable = self.link.outbox.steps_durable
        self.progress.steps_dropped = self.link.outbox.steps_dropped
        self.progress.unconfirmed = self.link.outbox.unacked
        self.progress.interrupted = self.interrupted
        self.progress.done = True
        self.link.close()

    def result(self) -> PlayResult:
        p50, p99 = self.pacer.interval_percentiles(50, 99)
        return PlayResult(self.progress, self.discarded, self.pacer.frames, self.pacer.late,
                          {"p50": p50 * 1000, "p99": p99 * 1000}, list(self.pacer.intervals),
                          list(self.pacer.work), [list(c) for c in self.speed_log.changes],
                          self.settings.fps)

    # -- drawing ----------------------------------------------------------------------------

    def _notify(self, text: str) -> None:
        self.notice, self.notice_until = text, time.monotonic() + NOTICE_SECONDS

    def _show(self) -> float:
        """Draw the current frame and overlays, flip; returns the wall-clock time of the flip."""
        frame = self.ep.frame
        if frame.shape[2] != 3:
            frame = np.repeat(frame[:, :, :1], 3, 2)
        pygame.surfarray.blit_array(self.canvas, frame.swapaxes(0, 1))
        if self.bar.picture_left:  # a window wider than the picture: clear its sides too
            self.window.fill((0, 0, 0))
        pygame.transform.scale(self.canvas, self.picture.get_size(), self.picture)
        self.bar.draw(self.window, hud_lines(self._hud_info()),
                      dot=RED if self.phase == REC else None, visible=self.hud_visible)
        width = self.window.get_width() - 40
        if self.phase == READY:
            lines = title_lines(self.overlay, width, self.controls_help, bool(self.agent))
            self.overlay.box(self.window, lines, centre=True)
        elif self.phase == BREAK:
            left = None if self.break_until is None else self.break_until - time.monotonic()
            self.overlay.box(self.window, break_lines(self.ep.index, left), centre=True)
        elif self.phase == PAUSED:
            self.overlay.box(self.window, [("PAUSED", (255, 210, 60)),
                                           ("P to resume", (170, 170, 170))], centre=True)
        elif self.phase == SAVING:
            self.overlay.box(self.window, [("Saving...", (255, 210, 60)),
                                           (f"{self.link.outbox.unacked} messages to confirm",
                                            (170, 170, 170))], centre=True)
        pygame.display.flip()
        return time.time()

    def _hud_info(self) -> HudInfo:
        now = time.monotonic()
        outbox = self.link.outbox
        if now > self.notice_until:
            self.notice = ""
        return HudInfo(
            phase=self.phase, episode=self.ep.index, step=self.ep.steps,
            fps=self.pacer.achieved_fps, target_fps=self.speed.fps, speed=self.speed.label(),
            late=self.pacer.late,
            connected=now - self.link.stats.last_ack_at < CONNECTED_WITHIN,
            backlog=outbox.unacked, durable=outbox.steps_durable, gaps=outbox.steps_dropped,
            discarded=self.discarded, notice=self.notice,
        )


def _control_help(keymap: Keymap, resolve, labels: list[str]) -> list[str]:
    """"RIGHT: right", "FIRE: space", ...: what each bound key does *in this game* (named by
    the env's own labels), leaving out keys that do nothing here."""
    entries = []
    for control in CONTROLS[keymap.platform]:
        keys = keymap.keys_for(control)
        effect = describe_action(resolve(frozenset({control})), labels) if keys else ""
        if effect:
            entries.append(f"{effect}: {'/'.join(keys)}")
    return entries
