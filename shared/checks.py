"""Checks of the values both CLIs take from the user before anything starts: ZeroMQ endpoints
and data folders. Each raises a GymrecError that names the bad value (one line, an exit code)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from shared.errors import StorageError, UsageError

IPC_PATH_MAX = 107  # characters in an ipc:// path on Linux (sun_path)
_TCP = re.compile(r"^tcp://(?P<host>\[[0-9A-Fa-f:.]+\]|[^:/\[\]\s]+):(?P<port>[0-9]+)$")
ENDPOINT_FORMS = "tcp://HOST:PORT (e.g. tcp://127.0.0.1:5557) or ipc:///path/to/socket"


def check_endpoint(endpoint: str) -> str:
    """`endpoint` if a recorder and a writer can meet there: tcp://HOST:PORT with a port in
    1..65535, or ipc://PATH; else UsageError naming it."""
    if endpoint.startswith("ipc://"):
        path = endpoint[len("ipc://"):]
        if not path or len(path) > IPC_PATH_MAX:
            raise UsageError(f"--endpoint {endpoint!r}: an ipc path has 1 to {IPC_PATH_MAX} "
                             "characters")
        return endpoint
    match = _TCP.match(endpoint)
    if match is None:
        raise UsageError(f"--endpoint {endpoint!r} is not of the form {ENDPOINT_FORMS}")
    if not 1 <= int(match["port"]) <= 65535:
        raise UsageError(f"--endpoint {endpoint!r}: port {match['port']} is not in 1..65535")
    return endpoint


def check_data_dir(data_dir: Path) -> Path:
    """The data folder, made if missing and proven writable (a file is created and removed in
    it); else StorageError naming it and why."""
    data_dir = Path(data_dir).expanduser()
    if data_dir.exists() and not data_dir.is_dir():
        raise StorageError(f"cannot use data folder {data_dir}: it is a file, not a folder")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".gymrec-probe-", dir=data_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise StorageError(f"cannot use data folder {data_dir}: "
                           f"{exc.strerror or exc}") from exc
    return data_dir
