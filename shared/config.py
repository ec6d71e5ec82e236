"""Defaults and the one place that reads environment variables."""

from __future__ import annotations

import os
import re
from pathlib import Path

from shared.errors import UsageError

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5557"
DEFAULT_QUALITY = 95
CODECS = ("jpeg", "png")

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)?$")


def default_data_dir() -> Path:
    """`GYMREC_DATA_DIR`, else `$XDG_DATA_HOME/gymrec`, else `~/.local/share/gymrec`."""
    if explicit := os.environ.get("GYMREC_DATA_DIR"):
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "gymrec"


def default_endpoint() -> str:
    """`GYMREC_ENDPOINT`, else loopback TCP."""
    return os.environ.get("GYMREC_ENDPOINT", DEFAULT_ENDPOINT)


def dataset_dir_name(env_id: str) -> str:
    """The folder name of an env's dataset: the id with `/` turned into `_` (`ALE/Pong-v5` →
    `ALE_Pong-v5`). Ids that could leave the data folder are refused."""
    if not _SAFE_ID.match(env_id) or ".." in env_id or len(env_id) > 200:
        raise UsageError(f"env id {env_id!r} is not a safe dataset name")
    return env_id.replace("/", "_")


def dataset_dir(data_dir: Path, env_id: str) -> Path:
    """Where the dataset of `env_id` lives under `data_dir`."""
    return Path(data_dir) / dataset_dir_name(env_id)
