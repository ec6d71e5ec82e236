"""`gymrec-record`: parse flags into `CliSettings`, find or start a writer, record, print a
summary.

Exit codes: 0 done; 2 bad usage; 3 ROM missing; 4 endpoint busy; 5 the writer did not confirm
everything; 6 storage; 130 stopped by SIGINT (Ctrl-C), 143 by SIGTERM. Either signal, to the
recorder's pid or to its whole process group, stops it in order: the episode in progress ends
as aborted and everything sent is confirmed by the writer; a second one stops that wait.
"""

from __future__ import annotations

import shared.startup  # noqa: F401 - first: it sets what numpy reads as it loads

# isort: split
import dataclasses
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from recorder.agents import AgentSource, agent_source
from recorder.delivery.local_writer import WriterHandle, ensure_writer
from recorder.env_options import parse_env_options
from recorder.envs import EnvChoice, fps_defaults, platform_named, resolve_env
from recorder.headless.stop import EXIT_CODES, StopRequest
from recorder.play.keymaps import load_keymap
from recorder.seeds import fresh_base_seed
from shared.checks import check_data_dir, check_endpoint
from shared.cli_errors import one_line_errors
from shared.codec import CODEC_NAMES
from shared.config import (
    DEFAULT_QUALITY,
    dataset_dir,
    default_data_dir,
    default_endpoint,
)
from shared.errors import GymrecError, UsageError, WriterUnavailable
from shared.security import ClientKeys, load_public, load_secret
from shared.settings_file import (
    KEYS,
    Chosen,
    SettingsFile,
    between_episodes,
    load_settings_file,
    show_lines,
)
from shared.version import VERSION

if TYPE_CHECKING:
    from recorder.headless.loop import WorkerProgress


@dataclass(frozen=True, kw_only=True)
class CliSettings:
    """What `gymrec-record` was asked to do: one field per flag (None: the default applies)."""

    env_id: str | None
    agent: str | None = None
    headless: bool = False
    episodes: int | None = None
    max_steps: int | None = None
    seed: int | None = None
    workers: int | None = None  # None: default_workers
    encode_in: str = "auto"  # where frames become images: auto, recorder or writer
    state: str | None = None
    env_options: tuple[str, ...] = ()
    record: str | None = None  # extra observations, comma-separated: "ram", "depth,labels"
    fps: float | None = None
    codec: str | None = None
    quality: int | None = None
    data_dir: Path | None = None
    endpoint: str | None = None
    buffer_mb: int = 256
    stall_timeout: float = 30.0
    drain_timeout: float = 60.0
    scale: int | None = None
    keymap: Path | None = None
    between_episodes: float | str | None = None  # seconds, or "space"
    config: Path | None = None
    show_config: bool = False
    realtime: bool = False
    curve_key: Path | None = None
    server_key: Path | None = None


class _BetweenEpisodes(click.ParamType):
    name = "SECONDS|space"

    def convert(self, value, param, ctx):
        try:
            return between_episodes(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@click.command(cls=one_line_errors(click.Command, "gymrec-record"),
               context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(VERSION, "--version", prog_name="gymrec-record")
@click.argument("env_id", required=False)
@click.option("--agent", default=None, metavar="SPEC",
              help="Let an agent play instead of a person: random, breakout-tracker, "
                   "run-right-jump, module:attr or path/to/file.py:attr (see README, Agents).")
@click.option("--headless", is_flag=True, help="No window, no frame pacing (needs --agent).")
@click.option("--episodes", type=click.IntRange(1), default=None,
              help="Episodes to record (default 1 for an agent; a person plays until Esc).")
@click.option("--max-steps", type=click.IntRange(1), default=None,
              help="Cut each episode after this many steps (recorded as truncated).")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None,
              help="Base seed; every episode's reset seed is derived from it and stored.")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Recorders playing at once, all into one writer (default: --headless, "
                   "the cores this process may use while each gets 4 episodes or more; else "
                   "1). One plays in this process, more are worker processes.")
@click.option("--encode-in", type=click.Choice(["auto", "recorder", "writer"]),
              default="auto", show_default=True,
              help="Headless: where frames become images. auto: in the recorders when every "
                   "core has one (the writer's encoding would only compete with them for the "
                   "cores), else in the writer, beside the recorders.")
@click.option("--state", default=None,
              help="Stable-Retro save state to start from (one the game has, e.g. Level1).")
@click.option("--env-option", "env_options", multiple=True, metavar="KEY=VALUE",
              help="A keyword for making the env (repeatable; JSON/TOML values), e.g. "
                   "frameskip=1; stored in the dataset and used by replay.")
@click.option("--record", "record", default=None, metavar="NAME[,NAME]",
              help="Extra observations to store with each frame, a column each: ram (Atari, "
                   "Stable-Retro), depth, labels, automap (VizDoom). Default: frames and info.")
@click.option("--fps", type=click.FloatRange(1, 1000), default=None,
              help=f"Frames per second (default: the env's own rate; {fps_defaults()}).")
@click.option("--codec", type=click.Choice(CODEC_NAMES), default=None,
              help="Frame codec (default: jpeg, or the config file's).")
@click.option("--quality", type=click.IntRange(1, 100), default=None,
              help=f"JPEG quality (default: {DEFAULT_QUALITY}, or the config file's).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Folder of the datasets (default: $GYMREC_DATA_DIR, else "
                   "$XDG_DATA_HOME/gymrec, else ~/.local/share/gymrec). A writer already "
                   "running for another folder is refused.")
@click.option("--endpoint", default=None,
              help="Writer endpoint, tcp://HOST:PORT or ipc://PATH (default: $GYMREC_ENDPOINT, "
                   "else tcp://127.0.0.1:5557).")
@click.option("--buffer-mb", type=click.IntRange(1), default=256, show_default=True,
              help="Resend buffer per recorder: unconfirmed frames kept, in MiB.")
@click.option("--stall-timeout", type=click.FloatRange(0), default=30.0, show_default=True,
              help="Headless: seconds to wait for a silent writer before dropping frames.")
@click.option("--drain-timeout", type=click.FloatRange(0), default=60.0, show_default=True,
              help="Seconds to wait at the end for the writer to confirm everything.")
@click.option("--scale", type=click.IntRange(1, 8), default=None,
              help="Window: pixels per game pixel (default: 2, or the config file's).")
@click.option("--keymap", type=click.Path(path_type=Path), default=None,
              help="Window: TOML file changing the default keys (see README, Human play).")
@click.option("--between-episodes", type=_BetweenEpisodes(), default=None,
              help="Window: a break before each new episode, N seconds or 'space' (wait for "
                   "Space); nothing is recorded meanwhile.")
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Config file of defaults (default: $XDG_CONFIG_HOME/gymrec/config.toml).")
@click.option("--show-config", is_flag=True,
              help="Print each setting, its value and where it comes from, then exit.")
@click.option("--list", "list_ids", is_flag=True,
              help="List the env ids of every platform (ENV_ID, if given, filters them).")
@click.option("--realtime", is_flag=True,
              help="Headless: pace the agent at --fps like a game (never wait for the writer).")
@click.option("--curve-key", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="This recorder's secret key file (gymrec-writer keys): talk CURVE to a "
                   "remote writer.")
@click.option("--server-key", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The writer's public key file (with --curve-key).")
def main(*, list_ids: bool, **flags) -> None:
    """Record ENV_ID (e.g. BreakoutNoFrameskip-v4, Airstriker-Genesis, VizdoomBasic-v1).

    Without --headless a window opens: a person plays (or, with --agent, watches the agent)."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # no banner in our output
    try:
        if list_ids:
            from recorder.listing import gather, listing_lines

            click.echo("\n".join(listing_lines(gather(), flags["env_id"])))
            sys.exit(0)
        sys.exit(run(CliSettings(**flags)))
    except GymrecError as exc:
        click.echo(f"gymrec-record: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("gymrec-record: interrupted", err=True)
        sys.exit(130)


def run(settings: CliSettings) -> int:
    """Record as `settings` say; returns the exit code."""
    config = load_settings_file(settings.config)
    if settings.show_config:
        return _show_config(settings, config)
    if settings.headless and settings.between_episodes is not None:
        raise UsageError("--between-episodes is for the window (not --headless)")
    settings = _with_config(settings, config)  # flag > environment variable > config > default
    curve = _client_keys(settings.curve_key, settings.server_key)
    if settings.env_id is None:
        raise UsageError("missing ENV_ID (try BreakoutNoFrameskip-v4, or --list)")
    if settings.headless and not settings.agent:
        raise UsageError("--headless needs --agent (a person plays in the window)")
    if not settings.headless and (settings.workers or 1) > 1:
        raise UsageError("--workers needs --headless (the window has one player)")
    if not settings.headless and settings.encode_in == "recorder":
        raise UsageError("--encode-in recorder needs --headless (a game loop a person plays "
                         "never encodes)")
    endpoint = check_endpoint(settings.endpoint or default_endpoint())
    choice = resolve_env(settings.env_id, settings.state, parse_env_options(settings.env_options),
                         record_names(settings.record))
    agent = agent_source(settings.agent) if settings.agent else None
    settings = dataclasses.replace(settings, fps=_fps(settings, config, choice).value)
    keys = None if settings.headless else load_keymap(settings.keymap, choice.platform)
    data_dir = Path(settings.data_dir or default_data_dir()).expanduser().resolve()
    dataset_dir(data_dir, choice.env_id)  # refuses unsafe names before anything starts
    if curve is None:  # a local writer may be started for it: it must be usable
        check_data_dir(data_dir)
    # A writer started here answers a moment later; headless workers start meanwhile.
    writer = ensure_writer(endpoint, data_dir, data_dir / ".writer.log", curve,
                           wait=keys is not None)
    if settings.data_dir is not None:
        writer.check_folder(data_dir)
    # Imported once a writer is found or on its way (ZeroMQ, the protocol, the progress view).
    from recorder.headless.loop import RecordSettings
    from recorder.headless.workers import run_workers
    from recorder.session_start import collector_name

    base_seed = fresh_base_seed() if settings.seed is None else settings.seed
    if keys is not None:
        return _play_in_window(settings, choice, keys, writer, endpoint, base_seed, curve, agent)
    workers = settings.workers or default_workers(
        settings.episodes or 1, settings.realtime,
        platform_named(choice.platform).cores_per_recorder)
    record = RecordSettings(
        choice=choice, endpoint=endpoint, data_dir=writer.data_dir,
        episodes=settings.episodes or 1, max_steps=settings.max_steps, base_seed=base_seed,
        agent=agent, codec=settings.codec, quality=settings.quality,
        fps=settings.fps, buffer_bytes=settings.buffer_mb * 1024 * 1024,
        drain_timeout=settings.drain_timeout, collector=collector_name(),
        workers=workers, stall_timeout=settings.stall_timeout,
        realtime=settings.realtime, curve=curve,
        encode_frames=encode_in_recorder(settings.encode_in, workers, settings.realtime),
    )
    stop = StopRequest()  # SIGINT/SIGTERM stop the recording in order (see workers.py)
    try:
        with writer.kept_alive(_notify):
            pool = run_workers(record, notify=_notify, stop=stop,
                               ready=lambda: writer.wait_ready(lambda: stop.requested))
        # An auto-started writer exits by itself once idle: nobody waits for it.
        return _summarise(record.data_dir, choice.env_id, pool.workers,
                          interrupted=pool.interrupted_code, cut_short=pool.cut_short)
    finally:
        stop.restore()


def _play_in_window(settings: CliSettings, choice: EnvChoice, keys, writer: WriterHandle,
                    endpoint: str, base_seed: int, curve: ClientKeys | None,
                    agent: AgentSource | None) -> int:
    from recorder.play.window import PlaySettings, play  # pygame and its window only when needed
    from recorder.session_start import collector_name

    play_settings = PlaySettings(
        choice=choice, endpoint=endpoint, data_dir=writer.data_dir,
        fps=settings.fps, keymap=keys, base_seed=base_seed,
        codec=settings.codec, quality=settings.quality,
        buffer_bytes=settings.buffer_mb * 1024 * 1024, drain_timeout=settings.drain_timeout,
        collector=collector_name(), scale=settings.scale, max_steps=settings.max_steps,
        episodes=settings.episodes or (1 if agent else None), agent=agent,
        curve=curve, between_episodes=settings.between_episodes,
    )
    # The window stops on KeyboardInterrupt (Ctrl-C); SIGTERM gets the same orderly end.
    received: list[int] = []

    def interrupt(signum, frame) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        with writer.kept_alive(_notify):
            result = play(play_settings)  # an auto-started writer exits by itself once idle
    finally:
        signal.signal(signal.SIGTERM, previous)
    ms = result.frame_ms
    click.echo(f"pacing: {result.fps:g} fps target, {result.frames} frames, frame time "
               f"p50 {ms['p50']:.1f} ms p99 {ms['p99']:.1f} ms, late frames {result.late}")
    if result.discarded:
        click.echo(f"discarded episodes: {result.discarded} (kept aside, not in the dataset)")
    interrupted = None
    if result.progress.interrupted:
        interrupted = EXIT_CODES[received[0]] if received else 130
    return _summarise(play_settings.data_dir, choice.env_id, [result.progress],
                      interrupted=interrupted)


# A worker process costs an interpreter and its imports (about a second of CPU, more on a busy
# machine) before its first step; a random agent's Atari episode takes a fraction of that.
EPISODES_PER_WORKER = 4


def default_workers(episodes: int, realtime: bool, cores_per_recorder: int = 1) -> int:
    """Headless workers when --workers is not given: one per `cores_per_recorder` cores this
    process may run on (the env's platform says; more recorders get nearer the machine's
    bound: docs/BENCHMARKS.md), as long as each gets EPISODES_PER_WORKER episodes (a short run
    plays sooner in the recorder's own process); 1 with --realtime (a paced agent plays like
    one person)."""
    if realtime:
        return 1
    cores = len(os.sched_getaffinity(0)) // max(1, cores_per_recorder)
    return max(1, min(cores, episodes // EPISODES_PER_WORKER))


def encode_in_recorder(where: str, workers: int, realtime: bool) -> bool:
    """Whether headless recorders encode their frames (`--encode-in`). auto: when every core
    this process may use has a recorder that is not paced (--realtime), the writer's encoder
    threads would only compete with them for the cores, and each frame would be copied through
    shared memory on the way (docs/BENCHMARKS.md); with fewer recorders than cores the writer
    encodes on the cores left, beside them."""
    if where != "auto":
        return where == "recorder"
    return not realtime and workers >= len(os.sched_getaffinity(0))


def _client_keys(curve_key: Path | None, server_key: Path | None) -> ClientKeys | None:
    if curve_key is None and server_key is None:
        return None
    if curve_key is None or server_key is None:
        raise UsageError("--curve-key and --server-key go together")
    public, secret = load_secret(curve_key)
    return ClientKeys(server_public=load_public(server_key), public=public, secret=secret)


def _notify(line: str) -> None:
    click.echo(line, err=True)


def _summarise(data_dir: Path, env_id: str, results: list[WorkerProgress], *,
               interrupted: int | None, cut_short: bool = False) -> int:
    """Print the counts; returns the exit code (`interrupted`: the code of the stop signal)."""
    episodes = sum(r.episodes for r in results)
    sent = sum(r.steps for r in results)
    durable = sum(r.steps_durable for r in results)
    dropped = sum(r.steps_dropped for r in results)
    unconfirmed = sum(r.unconfirmed for r in results)
    where = dataset_dir(data_dir, env_id)
    click.echo(f"episodes: {episodes}  frames sent: {sent}  frames durable: {durable}  "
               f"gaps (dropped frames): {dropped}")
    elapsed = max((r.elapsed_s for r in results), default=0.0)
    if elapsed > 0:
        click.echo(f"recorded in {elapsed:.1f} s: {durable / elapsed:,.0f} frames/s durable")
    click.echo(f"dataset: {where}")
    if unconfirmed:
        click.echo(f"gymrec-record: the writer did not confirm {unconfirmed} messages "
                   f"(frames of those are not on disk)", err=True)
        if not cut_short:  # a second Ctrl-C chose not to wait: that is the user's stop
            return WriterUnavailable.exit_code
    return interrupted or 0



# -- the config file: each setting from its flag, else its environment variable, else the file,
# -- else the built-in default (shared/settings_file.py) ----------------------------------------

_FLAGS = {"data_dir": "--data-dir", "endpoint": "--endpoint", "codec": "--codec",
          "quality": "--quality", "scale": "--scale", "keymap": "--keymap",
          "between_episodes": "--between-episodes"}
_BUILT_IN = {"codec": "jpeg", "quality": DEFAULT_QUALITY, "scale": 2, "keymap": None,
             "between_episodes": 0.0}


def _chosen(settings: CliSettings, config: SettingsFile) -> dict[str, Chosen]:
    defaults = {**_BUILT_IN, "data_dir": default_data_dir(), "endpoint": default_endpoint()}
    return {key: config.choose(key, getattr(settings, key), flag, defaults[key])
            for key, flag in _FLAGS.items()}


def _with_config(settings: CliSettings, config: SettingsFile) -> CliSettings:
    """`settings` with the config file's values where no flag was given. The data folder and
    endpoint are left to their environment variables and defaults (read where they are used)
    unless the file names them."""
    values = {}
    for key, chosen in _chosen(settings, config).items():
        if key not in ("data_dir", "endpoint") or chosen.source.startswith("config"):
            values[key] = chosen.value
    return dataclasses.replace(settings, **values)


def record_names(flag: str | None) -> tuple[str, ...]:
    """`--record ram,depth` → ("ram", "depth"); whether the env can record them is checked
    by resolve_env."""
    names = tuple(n.strip() for n in (flag or "").split(",") if n.strip())
    if flag is not None and not names:
        raise UsageError("--record: name what to record (ram; depth, labels, automap)")
    return names


def _fps(settings: CliSettings, config: SettingsFile, choice: EnvChoice) -> Chosen:
    return config.choose(f"fps.{choice.platform}", settings.fps, "--fps", None,
                         f"default: {choice.env_id}'s own rate")


def _show_config(settings: CliSettings, config: SettingsFile) -> int:
    chosen = _chosen(settings, config)
    if settings.env_id is not None:
        choice = resolve_env(settings.env_id, settings.state,
                             parse_env_options(settings.env_options))
        chosen[f"fps.{choice.platform}"] = _fps(settings, config, choice)
    else:
        for key in (k for k in KEYS if k.startswith("fps.")):
            chosen[key] = config.choose(key, settings.fps, "--fps", "each env's own",
                                        "default (gymrec-record --list shows them)")
    click.echo("\n".join(show_lines(chosen, config)))
    return 0


if __name__ == "__main__":
    main()
