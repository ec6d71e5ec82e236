"""`gymrec-replay`: replay recorded episodes and prove they reproduce bit-exactly.

Thin: parse flags, open the dataset source, replay session by session, print a table and a verdict.
Exit 0 only when at least one episode was replayed and every replayed episode passed; 1 when one
diverged; 130 when interrupted; an error's own code (one line, no traceback) otherwise.
"""

from __future__ import annotations

import shared.startup  # noqa: F401 - first: it sets what numpy reads as it loads

# isort: split
import dataclasses
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from recorder.envs import resolve_env
from recorder.replay.checks import frame_checks
from recorder.replay.images import save_png, side_by_side
from recorder.replay.replayer import (
    ABORTED,
    DISCARDED,
    FAIL,
    GAP,
    INTERRUPTED,
    PASS,
    UNSEEDED,
    EnvCache,
    EpisodeResult,
    SessionPlan,
    check_env_id,
    plan_sessions,
    replay_session,
    version_warnings,
)
from recorder.replay.sources.local import DatasetSource, open_source
from shared.cli_errors import one_line_errors
from shared.config import dataset_dir, default_data_dir
from shared.errors import GymrecError, UsageError
from shared.frame_hash import HASH_NAME
from shared.version import VERSION, package_versions

PROG = "gymrec-replay"
_STYLE = {PASS: "green", FAIL: "bold red", ABORTED: "yellow", GAP: "yellow",
          DISCARDED: "dim", INTERRUPTED: "yellow", UNSEEDED: "dim"}
_SUMMARY = ((PASS, "passed"), (FAIL, "failed"), (ABORTED, "aborted"), (GAP, "cut short by a gap"),
            (INTERRUPTED, "interrupted"), (DISCARDED, "discarded"),
            (UNSEEDED, "not reproducible (unseeded)"))


@dataclass(frozen=True)
class ReplaySettings:
    env_id: str
    data_dir: Path
    repo: str | None
    episode: str | None
    render: bool
    fps: float | None
    diff_dir: Path
    helper_process: bool
    check_images: bool = False  # compare the stored images too, not only the frame hashes


@click.command(cls=one_line_errors(click.Command, PROG),
               context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(VERSION, "--version", prog_name=PROG)
@click.argument("env_id")
@click.option("--episode", default=None, help="Replay only this episode id (<session>-00000).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Folder of the datasets (default: $GYMREC_DATA_DIR, else "
                   "$XDG_DATA_HOME/gymrec, else ~/.local/share/gymrec).")
@click.option("--repo", default=None,
              help="Replay a dataset repo on the Hugging Face Hub (owner/name) instead of "
                   "--data-dir ($HF_ENDPOINT, $HF_TOKEN for private repos).")
@click.option("--render", is_flag=True, help="Play the episodes back in a window.")
@click.option("--fps", type=click.FloatRange(0.1, 10_000), default=None,
              help="Playback speed with --render (default: the recorded FPS).")
@click.option("--diff-dir", type=click.Path(path_type=Path), default=None,
              help="Where pictures of divergences go (default: <tmp>/gymrec-replay).")
@click.option("--helper-process/--no-helper-process", default=True, show_default=True,
              help="Compare stored images in a second process while the env steps (headless).")
@click.option("--check", "checks", type=click.Choice(["hash", "image"]), multiple=True,
              default=("hash",), show_default=True,
              help="What frames are compared by: their raw-pixel hashes (always, where stored), "
                   "and with `--check image` the stored images too (JPEG re-encoded, PNG "
                   "decoded; slower).")
def main(env_id, episode, data_dir, repo, render, fps, diff_dir, helper_process, checks):
    """Replay ENV_ID's recorded episodes: reset with each stored seed, step the stored actions and
    compare every frame, reward and end flag with the recording.

    "Diverges at step N": step N (0-based action N) is the first whose outcome differs from the
    recording (its reward or flags, stored on row N, or the frame it led to, row N+1); "at reset":
    frame 0 differs already. A picture recorded | replayed | difference of the first differing
    frame is saved and its path printed.
    """
    settings = ReplaySettings(
        env_id=env_id, data_dir=Path(data_dir or default_data_dir()).expanduser(), repo=repo,
        episode=episode, render=render, fps=fps,
        diff_dir=Path(diff_dir or Path(tempfile.gettempdir()) / PROG).expanduser(),
        helper_process=helper_process and not render, check_images="image" in checks,
    )
    try:
        sys.exit(run(settings))
    except GymrecError as exc:
        click.echo(f"{PROG}: {exc}", err=True)
        sys.exit(exc.exit_code)


def run(settings: ReplaySettings) -> int:
    if settings.fps is not None and not settings.render:
        raise UsageError("--fps only applies with --render")
    choice = resolve_env(settings.env_id)  # unknown ids and missing ROMs fail here
    source = open_source(dataset_dir(settings.data_dir, choice.env_id), settings.repo)
    sessions = source.sessions()
    check_env_id(sessions, choice.env_id, source.where)
    plans = plan_sessions(sessions, settings.episode)
    out = Console(width=None if sys.stdout.isatty() else 160, highlight=False)
    err = Console(stderr=True, highlight=False)
    for line in _version_lines(plans):
        err.print(f"{PROG}: warning: {line} (replay may differ)", markup=False)
    replayed = {p.session_id for p in plans}
    for line in player_lines([s for s in sessions if s["start"]["session"] in replayed]):
        out.print(line, markup=False, soft_wrap=True)
    out.print(f"comparing frames by {HASH_NAME} hashes of their raw pixels", markup=False)
    compares = {p.recorded.compare for p in plans}
    for compare in sorted(compares, key=lambda c: c.method):
        out.print(f"comparing {compare.method}"
                  f"{'' if settings.check_images else ' (where no hash is stored)'}",
                  markup=False)
    results, pictures, interrupted = _replay_all(settings, source, plans, err)
    if settings.episode is not None and not results:
        raise UsageError(f"episode {settings.episode!r} has no rows in {source.where}")
    order = {p.session_id: i for i, p in enumerate(plans)}
    results.sort(key=lambda r: (order[r.session_id], r.episode_id))
    out.print(_table(settings.env_id, results))
    for result in results:
        if result.failed:
            out.print(_failure_line(result, pictures.get(result.episode_id)), markup=False,
                      soft_wrap=True)
        elif result.note:
            out.print(f"{result.status.upper()} {result.episode_id}: {result.note}", markup=False,
                      soft_wrap=True)
    verdict, code = _verdict(results, interrupted)
    out.print(verdict, markup=False)
    return code


def player_lines(sessions: list[dict]) -> list[str]:
    """Who played the sessions, one line per player and key map: "played by human (2
    sessions), keys: left=LEFT, space=FIRE"."""
    groups: dict[tuple[str, str], int] = {}
    for session in sessions:
        start = session["start"]
        player = str(start.get("player") or "not recorded (recorded before gymrec sent it)")
        keys = start.get("key_bindings") or {}
        shown = ", ".join(f"{k}={v}" for k, v in sorted(keys.items(),
                                                          key=lambda kv: (kv[1], kv[0])))
        if player == "human" or keys:
            shown = f", keys: {shown or 'not recorded'}"
        groups[player, shown] = groups.get((player, shown), 0) + 1
    return [f"played by {player} ({n} session{'s' * (n != 1)}){keys}"
            for (player, keys), n in sorted(groups.items())]


def _version_lines(plans: list[SessionPlan]) -> list[str]:
    installed = package_versions()
    lines: list[str] = []
    for plan in plans:
        for line in version_warnings(plan.recorded.versions, installed):
            if line not in lines:
                lines.append(line)
    return lines


def _replay_all(settings: ReplaySettings, source: DatasetSource, plans: list[SessionPlan],
                err: Console) -> tuple[list[EpisodeResult], dict[str, Path], bool]:
    """Replay every plan; returns the results (without pixels), the pictures of divergences
    saved on the way, and whether the person interrupted."""
    total = _total_rows(source, plans, settings.episode)
    progress = Progress(TextColumn("[bold]replaying"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("rows"), TimeElapsedColumn(), console=err, transient=True)
    task = progress.add_task("rows", total=total)
    results: list[EpisodeResult] = []
    pictures: dict[str, Path] = {}
    envs = EnvCache()
    viewer = None
    # Hashes compare inline; a helper process only pays off when images are compared.
    checks = frame_checks(plans[0].recorded.compare,
                          settings.helper_process and settings.check_images)
    try:
        with progress:
            if settings.render:
                from recorder.replay.render import PygameViewer

                viewer = PygameViewer(settings.fps or plans[0].recorded.fps,
                                      f"{PROG} {settings.env_id}")
            for plan in plans:
                for result in replay_session(plan, source, envs, checks, viewer,
                                             lambda n: progress.advance(task, n),
                                             check_images=settings.check_images):
                    if result.first_bad_views is not None:  # kept as a file, not in memory
                        pictures[result.episode_id] = _save_picture(result, settings.diff_dir)
                        result = dataclasses.replace(result, first_bad_views=None)
                    results.append(result)
                    if result.status == INTERRUPTED:
                        return results, pictures, True
    except KeyboardInterrupt:
        return results, pictures, True
    finally:
        checks.close()
        envs.close()
        if viewer is not None:
            viewer.close()
    return results, pictures, False


def _total_rows(source: DatasetSource, plans: list[SessionPlan], episode: str | None
                ) -> int | None:
    """Rows to replay, for the progress bar: the shards' counts when the source knows them,
    else what the session files list (an episode's steps + its final row); None: unknown."""
    if episode is not None:
        infos = [p.info(episode) for p in plans]
        if listed := sum(i.steps + 1 for i in infos if i is not None):
            return listed
    counts = [s.rows for p in plans for s in source.shards(p.session_id)]
    if None not in counts:
        return sum(counts)
    return sum(e.steps + 1 for p in plans for e in p.episodes if e.outcome != DISCARDED) or None


def _table(env_id: str, results: list[EpisodeResult]) -> Table:
    table = Table(title=f"{env_id}: replay against the recording")
    for name, justify in (("episode", "left"), ("seed", "right"), ("outcome", "left"),
                          ("steps", "right"), ("result", "left"), ("first divergence", "left"),
                          ("first bad frame", "right"), ("max pixel diff", "right"),
                          ("frames differing", "right")):
        table.add_column(name, justify=justify, overflow="fold", no_wrap=name == "episode")
    for r in results:
        d = r.divergence
        table.add_row(
            r.episode_id, "" if r.seed is None else str(r.seed), r.outcome, str(r.steps),
            f"[{_STYLE[r.status]}]{r.status.upper()}[/]",
            "" if d is None else f"{d.where} ({', '.join(d.fields)})",
            "" if d is None or d.frame is None else str(d.frame),
            str(r.max_pixel_diff) if r.frames_compared else "",
            f"{r.frames_differing}/{r.frames_compared}" if r.frames_compared else "",
        )
    return table


def _save_picture(result: EpisodeResult, diff_dir: Path) -> Path:
    d = result.divergence
    where = "reset" if d is None or d.step is None else f"step{d.step:06d}"
    return save_png(side_by_side(*result.first_bad_views),
                    diff_dir / f"{result.episode_id}-{where}.png")


def _failure_line(result: EpisodeResult, picture: Path | None) -> str:
    d = result.divergence
    if d is None:
        return f"FAIL {result.episode_id}: {result.note}"
    parts = [f"FAIL {result.episode_id}: diverges at {d.where} ({', '.join(d.fields)})"]
    if d.recorded:
        parts.append(f"recorded (reward, terminated, truncated) {d.recorded}, "
                     f"replayed {d.replayed}")
    if d.detail:
        parts.append(d.detail)
    if "image" in d.fields and "frame" not in d.fields:
        parts.append("the stored image differs from the replayed frame, whose hash matches "
                     "the recording's")
    if d.frame is not None:
        parts.append(f"first differing frame: row {d.frame}, largest pixel difference "
                     f"{result.max_pixel_diff}")
    if picture is not None:
        parts.append(f"recorded | replayed | difference: {picture}")
    if result.note:
        parts.append(result.note)
    return "; ".join(parts)


def _verdict(results: list[EpisodeResult], interrupted: bool) -> tuple[str, int]:
    counts = Counter(r.status for r in results)
    replayed = counts[PASS] + counts[FAIL] + counts[ABORTED] + counts[GAP]
    summary = ", ".join(f"{counts[s]} {label}" for s, label in _SUMMARY if counts[s])
    if interrupted:
        return f"verdict: INTERRUPTED ({summary or 'nothing replayed'})", 130
    if counts[FAIL]:
        return (f"verdict: FAIL: {counts[FAIL]} of {replayed} replayed episodes diverge "
                f"({summary})"), 1
    if not replayed:
        return f"verdict: NOTHING TO REPLAY ({summary or 'no episodes'})", 1
    if not counts[PASS]:  # aborted or cut short by a gap: reproduced as far as they went
        return (f"verdict: NOT VERIFIED: no episode was replayed to a recorded end "
                f"({summary})"), 1
    return f"verdict: PASS: every replayed episode reproduces bit-exactly ({summary})", 0


if __name__ == "__main__":
    main()
