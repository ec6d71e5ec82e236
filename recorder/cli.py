"""`gymrec-record`: parse flags, find or start a writer, record, print a summary."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import sys
from pathlib import Path

import click

from recorder.delivery.local_writer import ensure_writer
from recorder.envs import fps_defaults, resolve_env
from recorder.headless.loop import RecordSettings, WorkerProgress, record_worker
from recorder.headless.progress import ProgressView
from recorder.play.keymaps import load_keymap
from recorder.seeds import fresh_base_seed
from recorder.session_start import collector_name
from shared.config import (
    CODECS,
    DEFAULT_QUALITY,
    dataset_dir,
    default_data_dir,
    default_endpoint,
)
from shared.errors import GymrecError, UsageError, WriterUnavailable
from shared.security import ClientKeys, load_public, load_secret


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("env_id", required=False)
@click.option("--agent", type=click.Choice(["random"]), default=None,
              help="Let an agent play instead of a person.")
@click.option("--headless", is_flag=True, help="No window, no frame pacing (needs --agent).")
@click.option("--episodes", type=click.IntRange(1), default=None,
              help="Episodes to record (default 1 for an agent; a person plays until Esc).")
@click.option("--max-steps", type=click.IntRange(1), default=None,
              help="Cut each episode after this many steps (recorded as truncated).")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None,
              help="Base seed; every episode's reset seed is derived from it and stored.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Recorder processes playing at once, all into one writer.")
@click.option("--state", default=None, help="Stable-Retro save state to start from.")
@click.option("--fps", type=click.FloatRange(1, 1000), default=None,
              help=f"Frames per second (default per platform: {fps_defaults()}).")
@click.option("--codec", type=click.Choice(CODECS), default="jpeg", show_default=True)
@click.option("--quality", type=click.IntRange(1, 100), default=DEFAULT_QUALITY,
              show_default=True, help="JPEG quality.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Folder of the datasets (default: $GYMREC_DATA_DIR or ~/.local/share/gymrec).")
@click.option("--endpoint", default=None, help="Writer endpoint (default tcp://127.0.0.1:5557).")
@click.option("--buffer-mb", type=click.IntRange(1), default=256, show_default=True,
              help="Resend buffer per recorder: unconfirmed frames kept, in MiB.")
@click.option("--stall-timeout", type=click.FloatRange(0), default=30.0, show_default=True,
              help="Headless: seconds to wait for a silent writer before dropping frames.")
@click.option("--drain-timeout", type=click.FloatRange(0), default=60.0, show_default=True,
              help="Seconds to wait at the end for the writer to confirm everything.")
@click.option("--scale", type=click.IntRange(1, 8), default=2, show_default=True,
              help="Window: pixels per game pixel.")
@click.option("--keymap", type=click.Path(path_type=Path), default=None,
              help="Window: TOML file changing the default keys (see README, Human play).")
@click.option("--list", "list_ids", is_flag=True,
              help="List the env ids of every platform (ENV_ID, if given, filters them).")
@click.option("--realtime", is_flag=True,
              help="Headless: pace the agent at --fps like a game (never wait for the writer).")
@click.option("--curve-key", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="This recorder's secret key file (gymrec-writer keys): talk CURVE to a "
                   "remote writer.")
@click.option("--server-key", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The writer's public key file (with --curve-key).")
def main(env_id, agent, headless, episodes, max_steps, seed, workers, state, fps, codec, quality,
         data_dir, endpoint, buffer_mb, stall_timeout, drain_timeout, scale, keymap, list_ids,
         realtime, curve_key, server_key):
    """Record ENV_ID (e.g. BreakoutNoFrameskip-v4, Airstriker-Genesis, VizdoomBasic-v1).

    Without --headless a window opens: a person plays (or, with --agent, watches the agent)."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # no banner in our output
    try:
        if list_ids:
            from recorder.listing import gather, listing_lines

            click.echo("\n".join(listing_lines(gather(), env_id)))
            sys.exit(0)
        curve = _client_keys(curve_key, server_key)
        sys.exit(run(env_id, agent, headless, episodes, max_steps, seed, workers, state, fps,
                     codec, quality, data_dir, endpoint, buffer_mb, stall_timeout,
                     drain_timeout, scale, keymap, realtime=realtime, curve=curve))
    except GymrecError as exc:
        click.echo(f"gymrec-record: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("gymrec-record: interrupted", err=True)
        sys.exit(130)


def run(env_id, agent, headless, episodes, max_steps, seed, workers, state, fps, codec, quality,
        data_dir, endpoint, buffer_mb, stall_timeout, drain_timeout, scale=2,
        keymap=None, realtime=False, curve: ClientKeys | None = None) -> int:
    if env_id is None:
        raise UsageError("missing ENV_ID (try BreakoutNoFrameskip-v4, or --list)")
    if headless and not agent:
        raise UsageError("--headless needs --agent (a person plays in the window)")
    if not headless and workers > 1:
        raise UsageError("--workers needs --headless (the window has one player)")
    choice = resolve_env(env_id, state)
    keys = None if headless else load_keymap(keymap, choice.platform)
    data_dir = Path(data_dir or default_data_dir()).expanduser().resolve()
    endpoint = endpoint or default_endpoint()
    dataset_dir(data_dir, choice.env_id)  # refuses unsafe names before anything starts
    writer = ensure_writer(endpoint, data_dir, data_dir / ".writer.log", curve)
    base_seed = fresh_base_seed() if seed is None else seed
    if keys is not None:
        return _play_in_window(choice, keys, writer, endpoint, episodes, max_steps, base_seed,
                               agent, fps, scale, codec, quality, buffer_mb, drain_timeout,
                               curve)
    settings = RecordSettings(
        choice=choice, endpoint=endpoint, data_dir=writer.data_dir, episodes=episodes or 1,
        max_steps=max_steps, base_seed=base_seed,
        agent=agent, codec=codec, quality=quality, fps=fps or choice.default_fps,
        buffer_bytes=buffer_mb * 1024 * 1024, drain_timeout=drain_timeout,
        collector=collector_name(), workers=workers, stall_timeout=stall_timeout,
        realtime=realtime, curve=curve,
    )
    results = run_workers(settings)
    writer.wait_for_exit(timeout=30)
    return _summarise(settings.data_dir, choice.env_id, results)


def _play_in_window(choice, keys, writer, endpoint, episodes, max_steps, base_seed, agent, fps,
                    scale, codec, quality, buffer_mb, drain_timeout, curve=None) -> int:
    from recorder.play.window import PlaySettings, play  # pygame and its window only when needed

    settings = PlaySettings(
        choice=choice, endpoint=endpoint, data_dir=writer.data_dir,
        fps=fps or choice.default_fps, keymap=keys, base_seed=base_seed, codec=codec,
        quality=quality, buffer_bytes=buffer_mb * 1024 * 1024, drain_timeout=drain_timeout,
        collector=collector_name(), scale=scale, max_steps=max_steps,
        episodes=episodes or (1 if agent else None), agent=agent, curve=curve,
    )
    result = play(settings)
    writer.wait_for_exit(timeout=30)
    ms = result.frame_ms
    click.echo(f"pacing: {settings.fps:g} fps target, {result.frames} frames, frame time "
               f"p50 {ms['p50']:.1f} ms p99 {ms['p99']:.1f} ms, late frames {result.late}")
    if result.discarded:
        click.echo(f"discarded episodes: {result.discarded} (kept aside, not in the dataset)")
    return _summarise(settings.data_dir, choice.env_id, [result.progress])


def _client_keys(curve_key: Path | None, server_key: Path | None) -> ClientKeys | None:
    if curve_key is None and server_key is None:
        return None
    if curve_key is None or server_key is None:
        raise UsageError("--curve-key and --server-key go together")
    public, secret = load_secret(curve_key)
    return ClientKeys(server_public=load_public(server_key), public=public, secret=secret)


def run_workers(settings: RecordSettings) -> list[WorkerProgress]:
    ctx = mp.get_context("spawn")
    reports = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(settings, w, reports), daemon=True)
             for w in range(settings.workers)]
    for proc in procs:
        proc.start()
    latest = {w: WorkerProgress(w) for w in range(settings.workers)}
    view = ProgressView(settings)
    with view:
        while True:
            try:
                item = reports.get(timeout=0.2)
                if isinstance(item, str):
                    raise WriterUnavailable(item) if item.startswith("writer") else UsageError(item)
                latest[item.worker] = item
                view.update(list(latest.values()))
            except queue.Empty:
                pass
            except KeyboardInterrupt:
                continue  # the workers got it too; they end their episodes and drain
            if all(p.done for p in latest.values()) or not any(p.is_alive() for p in procs):
                break
    for proc in procs:
        proc.join(timeout=10)
    for w, proc in enumerate(procs):
        if not latest[w].done:
            raise GymrecError(f"recorder worker {w} died (exit code {proc.exitcode})")
    return list(latest.values())


def _worker_main(settings: RecordSettings, worker: int, reports) -> None:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    try:
        record_worker(settings, worker, reports.put)
    except GymrecError as exc:
        reports.put(str(exc))
    except KeyboardInterrupt:
        pass


def _summarise(data_dir: Path, env_id: str, results: list[WorkerProgress]) -> int:
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
        return WriterUnavailable.exit_code
    if any(r.interrupted for r in results):
        return 130
    return 0


if __name__ == "__main__":
    main()
