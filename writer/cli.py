"""`gymrec-writer`: parse flags, build WriterSettings, run the daemon."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from shared.config import default_data_dir, default_endpoint
from shared.errors import GymrecError
from writer.daemon import Writer, WriterSettings


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Folder of the datasets (default: $GYMREC_DATA_DIR or ~/.local/share/gymrec).")
@click.option("--endpoint", default=None,
              help="ZeroMQ endpoint to listen on (default: tcp://127.0.0.1:5557, loopback only).")
@click.option("--encoders", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Encoder threads.")
@click.option("--shard-rows", type=click.IntRange(1), default=10_000, show_default=True,
              help="Rows per shard before it is sealed.")
@click.option("--session-timeout", type=click.FloatRange(0.1), default=60.0, show_default=True,
              help="Seconds of silence after which a session is sealed as aborted.")
@click.option("--exit-when-idle", type=click.FloatRange(0), default=None,
              help="Exit once no session has been open for this many seconds.")
@click.option("--verbose", "-v", is_flag=True, help="Log every session event.")
def main(data_dir, endpoint, encoders, shard_rows, session_timeout, exit_when_idle, verbose):
    """Receive frames from gymrec recorders and store them durably as Arrow shards."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="gymrec-writer: %(message)s")
    settings = WriterSettings(
        data_dir=data_dir or default_data_dir(), endpoint=endpoint or default_endpoint(),
        encoders=encoders, shard_rows=shard_rows, session_timeout=session_timeout,
        exit_when_idle=exit_when_idle,
    )
    try:
        writer = Writer.create(settings)
    except GymrecError as exc:
        click.echo(f"gymrec-writer: {exc}", err=True)
        sys.exit(exc.exit_code)
    writer.install_signal_handlers()
    logging.getLogger("gymrec.writer").info("listening on %s, data in %s", settings.endpoint,
                                            settings.data_dir)
    writer.run()


if __name__ == "__main__":
    main()
