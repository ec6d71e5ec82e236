"""`gymrec-writer`: run the daemon (optionally publishing to the Hub with `--push`), or
`gymrec-writer push ENV` to publish what is on disk and exit."""

from __future__ import annotations

import shared.startup  # noqa: F401 - first: it sets what numpy reads as it loads

# isort: split
import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path

import click

from shared.checks import check_endpoint
from shared.cli_errors import one_line_errors
from shared.config import (
    default_data_dir,
    default_endpoint,
    hub_endpoint,
    hub_token,
)
from shared.errors import GymrecError, UsageError
from shared.security import ServerKeys, load_secret
from shared.settings_file import Chosen, SettingsFile, load_settings_file, show_lines
from shared.version import VERSION
from writer.heap import keep_freed_buffers
from writer.hub.card import DEFAULT_REPO_TEMPLATE, repo_id_for
from writer.hub.client import HubClient, PublishError, Transient

NO_TOKEN = ("no Hugging Face token: set HF_TOKEN, put it in a .env file (see .env.example) "
            "or run `hf auth login`")
DRAIN_SECONDS = 60.0  # after the writer stops, how long uploads may still run


LICENSE_HELP = ("License the dataset cards declare, a Hub license id (e.g. cc-by-4.0); kept "
                "by the dataset once given (default: other: game footage belongs to the "
                "game's rights holders).")


def _set_license(value: str | None) -> None:
    if value is None:
        return
    if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]{0,63}", value):
        raise click.BadParameter(f"{value!r} is not a license id (lower case, like cc-by-4.0)")
    from writer.store.card import configure_license

    configure_license(value)


def _fail(exc: GymrecError) -> None:
    click.echo(f"gymrec-writer: {exc}", err=True)
    sys.exit(exc.exit_code)


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="gymrec-writer: %(message)s")
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # a line per request is too much


def _check_template(template: str) -> str:
    repo_id_for(template, "env", "user")  # raises UsageError for a malformed one
    return template


@click.group(cls=one_line_errors(click.Group, "gymrec-writer"), invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(VERSION, "--version", prog_name="gymrec-writer")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Folder of the datasets (default: $GYMREC_DATA_DIR, else "
                   "$XDG_DATA_HOME/gymrec, else ~/.local/share/gymrec).")
@click.option("--endpoint", default=None,
              help="ZeroMQ endpoint to listen on, tcp://HOST:PORT or ipc://PATH (default: "
                   "$GYMREC_ENDPOINT, else tcp://127.0.0.1:5557; loopback only without CURVE).")
@click.option("--encoders", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Encoder threads.")
@click.option("--shard-rows", type=click.IntRange(1), default=10_000, show_default=True,
              help="Seal a session's shard at the first episode end once it holds this many "
                   "rows: shards hold whole episodes, so most hold more (also sealed at 1 GiB "
                   "and when the session ends).")
@click.option("--session-timeout", type=click.FloatRange(0.1), default=60.0, show_default=True,
              help="Seconds of silence after which a session is sealed as aborted.")
@click.option("--exit-when-idle", type=click.FloatRange(0), default=None,
              help="Exit once no session has been open for this many seconds.")
@click.option("--push", is_flag=True,
              help="Publish each sealed shard to the Hugging Face Hub in the background.")
@click.option("--repo", default=None,
              help="Hub dataset repo; {user} and {env} are filled in "
                   f"(default: {DEFAULT_REPO_TEMPLATE}).")
@click.option("--private", is_flag=True, help="Create missing Hub repos as private.")
@click.option("--push-interval", type=click.FloatRange(0), default=60.0, show_default=True,
              help="Seconds between commits to one repo (the Hub allows ~128 commits an hour).")
@click.option("--curve-key", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="This writer's secret key file (from `gymrec-writer keys`): encrypt with "
                   "CURVE. Required to listen beyond loopback.")
@click.option("--allow-keys", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder of the recorder public keys (*.key) admitted with --curve-key.")
@click.option("--nice", type=click.IntRange(0, 19), default=5, show_default=True,
              help="Lower the writer's CPU priority so the game loops on this machine go first.")
@click.option("--verbose", "-v", is_flag=True, help="Log every session event and commit.")
@click.option("--license", "license_id", expose_value=False, callback=lambda c, p, v:
              _set_license(v), help=LICENSE_HELP)
# Testing knobs (hidden): fault tests use them to make a write land exactly where they need it.
@click.option("--batch-rows", type=click.IntRange(1), default=256, hidden=True)
@click.option("--batch-seconds", type=click.FloatRange(0), default=0.05, hidden=True)
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
              default=None,
              help="Config file of defaults (default: $XDG_CONFIG_HOME/gymrec/config.toml).")
@click.option("--show-config", is_flag=True,
              help="Print each setting, its value and where it comes from, then exit.")
@click.pass_context
def main(ctx, data_dir, endpoint, encoders, shard_rows, session_timeout, exit_when_idle, push,
         repo, private, push_interval, curve_key, allow_keys, nice, verbose, batch_rows,
         batch_seconds, config_file, show_config):
    """Receive frames from gymrec recorders and store them durably as Arrow shards."""
    data_dir, endpoint, repo, private = _configured(config_file, show_config, data_dir,
                                                    endpoint, repo, private)
    ctx.obj = {"data_dir": data_dir, "repo": repo, "private": private, "verbose": verbose}
    if ctx.invoked_subcommand is not None:
        return
    stop = _stop_on_signals()
    from writer.daemon import Writer, WriterSettings  # after the handlers: see _stop_on_signals

    _logging(verbose)
    data_dir = Path(data_dir or default_data_dir()).expanduser().resolve()
    worker = None
    if nice:
        os.nice(nice)
    keep_freed_buffers()
    try:
        endpoint = check_endpoint(endpoint or default_endpoint())
        curve = _server_keys(curve_key, allow_keys)
        if push:
            worker = _upload_worker(data_dir, _check_template(repo or DEFAULT_REPO_TEMPLATE),
                                    private, push_interval)
        if not push:
            _arrow_without_pandas()
        settings = WriterSettings(
            data_dir=data_dir, endpoint=endpoint, encoders=encoders,
            shard_rows=shard_rows, batch_rows=batch_rows, batch_seconds=batch_seconds,
            session_timeout=session_timeout,
            exit_when_idle=exit_when_idle, on_sealed=worker.notify if worker else None,
            curve=curve,
        )
        writer = Writer.create(settings, stop)
    except GymrecError as exc:
        _fail(exc)
    logging.getLogger("gymrec.writer").info("listening on %s, data in %s", settings.endpoint,
                                            settings.data_dir)
    if worker is not None:
        worker.start()
    writer.run()
    if worker is not None:
        _drain(worker)


def _arrow_without_pandas() -> None:
    """pyarrow imports pandas the first time it builds an array, to recognise pandas objects:
    1-10 s of CPU at start-up (holding the GIL from the loop), for a writer that is never handed
    one. Build that first array with pandas unimportable, so pyarrow notes that it has none.
    (Not with --push: the Hub card's features come from `datasets`, which uses pandas.)"""
    import pyarrow as pa

    if "pandas" in sys.modules:
        return
    sys.meta_path.insert(0, _NoPandas)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(_NoPandas)


class _NoPandas:
    """A module finder that makes `import pandas` fail at once (see _arrow_without_pandas)."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "pandas":
            raise ModuleNotFoundError("pandas is not used by the writer", name=name)
        return None


def _configured(config_file: Path | None, show: bool, data_dir: Path | None,
                endpoint: str | None, repo: str | None, private: bool) -> tuple:
    """(data_dir, endpoint, repo, private), each from its flag, else its environment variable,
    else the config file, else the built-in default; with `show`, print them and exit."""
    try:
        config = load_settings_file(config_file)
    except GymrecError as exc:
        _fail(exc)
    chosen = {
        "data_dir": config.choose("data_dir", data_dir, "--data-dir", default_data_dir()),
        "endpoint": config.choose("endpoint", endpoint, "--endpoint", default_endpoint()),
        "hub.repo": config.choose("hub.repo", repo, "--repo", DEFAULT_REPO_TEMPLATE),
        "hub.private": config.choose("hub.private", private or None, "--private", False),
        "hub.license": _license_choice(config),
    }
    if show:
        click.echo("\n".join(show_lines(chosen, config)))
        sys.exit(0)
    if chosen["hub.license"].source.startswith("config"):
        from writer.store.card import configure_license

        configure_license(chosen["hub.license"].value)
    return tuple(c.value for c in chosen.values())[:4]


def _license_choice(config: SettingsFile) -> Chosen:
    """The cards' license: --license (applied when it is parsed; a subcommand's comes after
    this and wins), else the file's, else each dataset's own (else "other")."""
    ctx = click.get_current_context()
    given = ctx.get_parameter_source("license_id") is click.core.ParameterSource.COMMANDLINE
    return config.choose("hub.license", "(as given)" if given else None, "--license",
                         "each dataset's own, else other")


def _stop_on_signals() -> threading.Event:
    """SIGINT and SIGTERM set the returned event; the writer then stops in order, at once if
    it has not started serving yet. Installed before the slow start-up (imports, `datasets`,
    crash recovery: seconds): a writer started in a script's background inherits SIGINT
    ignored (POSIX), and a SIGINT that came during those seconds used to be lost for good."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # Started by a thread that blocks them (a recorder's writer watch): pending ones come now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGTERM, signal.SIGINT))
    return stop


def _server_keys(curve_key: Path | None, allow_keys: Path | None) -> ServerKeys | None:
    if curve_key is None and allow_keys is None:
        return None
    if curve_key is None or allow_keys is None:
        raise UsageError("--curve-key and --allow-keys go together")
    public, secret = load_secret(curve_key)
    return ServerKeys(public, secret, allow_keys)


def _upload_worker(data_dir: Path, template: str, private: bool, interval: float):
    from huggingface_hub.utils import disable_progress_bars

    from writer.hub.worker import PushSettings, UploadWorker

    token = hub_token()
    if token is None:
        click.echo(f"gymrec-writer: --push: {NO_TOKEN}; recording locally only", err=True)
        return None
    disable_progress_bars()  # a daemon's log is no place for progress bars
    client = HubClient(hub_endpoint(), token, private)
    return UploadWorker(client, data_dir, PushSettings(template, interval))


def _drain(worker) -> None:
    # A second Ctrl-C (or SIGTERM) now ends the wait; the journal keeps what was confirmed.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if worker.busy():
        click.echo("gymrec-writer: publishing the last shards (Ctrl-C to leave them for later)",
                   err=True)
    try:
        finished = worker.finish(DRAIN_SECONDS)
    except KeyboardInterrupt:
        finished = False
    if not finished:
        click.echo("gymrec-writer: uploads not finished; `gymrec-writer push <env>` sends the "
                   "rest", err=True)


@main.command()
@click.argument("env_id")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Folder of the datasets (default: $GYMREC_DATA_DIR, else "
                   "$XDG_DATA_HOME/gymrec, else ~/.local/share/gymrec).")
@click.option("--repo", default=None,
              help=f"Hub dataset repo; {{user}} and {{env}} are filled in "
                   f"(default: {DEFAULT_REPO_TEMPLATE}).")
@click.option("--private", is_flag=True, help="Create the repo as private if it is missing.")
@click.option("--verbose", "-v", is_flag=True, help="Log each step.")
@click.option("--license", "license_id", expose_value=False, callback=lambda c, p, v:
              _set_license(v), help=LICENSE_HELP)
@click.pass_context
def push(ctx, env_id, data_dir, repo, private, verbose):
    """Publish the shards of ENV_ID that the Hub repo lacks, then exit (resumes any earlier run).
    """
    from writer.hub.upload import DamagedShard, publish, report_line
    from writer.store.verify import find_dataset

    parent = ctx.obj or {}
    _logging(verbose or parent.get("verbose", False))
    data_dir = data_dir or parent.get("data_dir") or default_data_dir()
    template = repo or parent.get("repo") or DEFAULT_REPO_TEMPLATE
    try:
        layout = find_dataset(data_dir, env_id)
        _check_template(template)
        token = hub_token()
        if token is None:
            raise PublishError(NO_TOKEN)
        client = HubClient(hub_endpoint(), token, private or parent.get("private", False))
        repo_id = repo_id_for(template, layout.root.name,
                              client.user() if "{user}" in template else None)
        report = publish(layout, client, repo_id, on_commit=lambda oid, shards, rows: click.echo(
            f"commit {oid[:10]}: {shards} shard(s), {rows} rows"))
    except Transient as exc:
        _fail(PublishError(f"the Hub stayed unavailable ({exc}); run again to resume"))
    except GymrecError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        click.echo("gymrec-writer: interrupted; run again to resume", err=True)
        sys.exit(130)
    click.echo(report_line(report, client.endpoint))
    if report.skipped:  # damaged between the check before publishing and their staging
        _fail(DamagedShard(f"{len(report.skipped)} shard(s) failed their checksum and were not "
                           f"published: {', '.join(report.skipped)}"))


@main.command()
@click.argument("env_id")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Folder of the datasets (default as for the writer).")
@click.option("--repair", is_flag=True,
              help="Move shards that fail their checksum to .corrupt/ and out of the dataset.")
def verify(env_id, data_dir, repair):
    """Check ENV_ID's sealed shards against their manifest checksums."""
    from writer.store.verify import find_dataset, quarantine, verify_dataset

    try:
        layout = find_dataset(data_dir or default_data_dir(), env_id)
        report = verify_dataset(layout)
    except GymrecError as exc:
        _fail(exc)
    for problem in report.problems:
        click.echo(f"{problem.file}: {problem.kind} ({problem.rows} rows)")
    click.echo(f"{report.shards} shards, {report.rows} rows: "
               + ("all match their checksums" if report.ok else
                  f"{len(report.problems)} problem(s)"))
    if repair and not report.ok:
        quarantine(layout, report.problems)
        click.echo("corrupt shards moved to .corrupt/; the dataset now holds only verified data")
    sys.exit(0 if report.ok else 1)


def _dataset_to_read(env_id: str, data_dir: Path | None, repo: str | None):
    """The local dataset of ENV_ID, or the Hub repo `repo` (its env id is not checked)."""
    from writer.export.reading import HubDataset, LocalDataset
    from writer.store.verify import find_dataset

    if repo:
        return HubDataset(repo, hub_endpoint(), hub_token())
    return LocalDataset(find_dataset(data_dir or default_data_dir(), env_id).root)


@main.command()
@click.argument("env_id")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Folder of the datasets (default as for the writer).")
@click.option("--repo", default=None, help="Read this Hub dataset repo (owner/name) instead.")
@click.option("--picture", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Where to write the picture (default: <dataset>/.meta/summary.png).")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
def summary(env_id, data_dir, repo, picture, as_json):
    """Statistics of ENV_ID's dataset (episodes, frames, hours, returns, lengths, outcomes,
    actions, gaps, who played) and a picture of it."""
    from writer.summary.command import SummarySettings, default_picture, run_summary

    try:
        dataset = _dataset_to_read(env_id, data_dir, repo)
        run_summary(SummarySettings(dataset=dataset, title=repo or dataset.layout.root.name,
                                    picture=picture or default_picture(dataset),
                                    as_json=as_json))
    except GymrecError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(UsageError(f"cannot write the picture: {exc}"))
    except KeyboardInterrupt:
        click.echo("gymrec-writer: summary interrupted", err=True)
        sys.exit(130)


@main.command()
@click.argument("env_id")
@click.option("--format", "fmt", type=click.Choice(["minari", "lerobot"]), required=True,
              help="Minari (offline RL) or LeRobot dataset v3.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Minari: the datasets root (default: $MINARI_DATASETS_PATH or "
                   "~/.minari/datasets); LeRobot: the dataset folder (default: "
                   "./<env>-lerobot).")
@click.option("--dataset-id", default=None,
              help="Minari dataset id (default: gymrec/<env>-v0).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Folder of the datasets (default as for the writer).")
@click.option("--repo", default=None, help="Export this Hub dataset repo (owner/name) instead.")
def export(env_id, fmt, out, dataset_id, data_dir, repo):
    """Convert ENV_ID's dataset for Minari or LeRobot (episodes the player discarded are left
    out; an episode cut by a gap ends there, truncated)."""
    from shared.config import dataset_dir_name
    from writer.export.command import ExportSettings, run_export

    try:
        dataset = _dataset_to_read(env_id, data_dir, repo)
        name = dataset.layout.root.name if repo is None else dataset_dir_name(env_id)
        line = run_export(ExportSettings(dataset=dataset, format=fmt, out=out, name=name,
                                         dataset_id=dataset_id))
    except GymrecError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(UsageError(f"cannot write the export: {exc}"))
    except KeyboardInterrupt:
        click.echo("gymrec-writer: export interrupted; nothing was left behind", err=True)
        sys.exit(130)
    click.echo(line)


@main.command()
@click.argument("name")
@click.option("--dir", "folder", type=click.Path(path_type=Path, file_okay=False),
              default=Path("keys"), show_default=True, help="Where to write the key files.")
def keys(name, folder):
    """Make a CURVE key pair NAME.key (public: give it out) and NAME.key_secret (keep it)."""
    from shared.security import make_keypair

    if (folder / f"{name}.key").exists():
        _fail(UsageError(f"{folder / (name + '.key')} exists already"))
    public, secret = make_keypair(folder, name)
    click.echo(f"public key: {public}\nsecret key: {secret} (mode 600; keep it private)")


if __name__ == "__main__":
    main()
