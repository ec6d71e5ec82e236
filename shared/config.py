"""Defaults and the one place that reads environment variables."""

from __future__ import annotations

import os
import re
from pathlib import Path

from shared.errors import UsageError

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5557"
DEFAULT_QUALITY = 95

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


# -- Hugging Face Hub -------------------------------------------------------------------------

DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
DOTENV_FILE = ".env"


def parse_dotenv(text: str) -> dict[str, str]:
    """`KEY=value` lines of a `.env` file (`export ` prefixes, quotes and `#` comments allowed)."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.removeprefix("export ").split("=", 1)
        value = value.strip()
        if value[:1] in ("'", '"') and value[-1:] == value[:1] and len(value) >= 2:
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def dotenv_values(path: Path | None = None) -> dict[str, str]:
    """The values of `path` (default: `.env` in the current folder); {} when there is none."""
    try:
        return parse_dotenv(Path(path or DOTENV_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
        return {}


def _env_or_dotenv(name: str, dotenv: Path | None) -> str | None:
    return os.environ.get(name) or dotenv_values(dotenv).get(name) or None


def hub_token(dotenv: Path | None = None) -> str | None:
    """The Hub token: `HF_TOKEN`, else `HF_TOKEN` in `.env`, else the huggingface_hub login
    (`hf auth login`); None when there is none. Never log it."""
    if token := _env_or_dotenv("HF_TOKEN", dotenv):
        return token.strip()
    from huggingface_hub import get_token

    try:
        return get_token()
    except Exception:  # an unreadable token file or a failed OIDC exchange: no usable token
        return None


def hub_endpoint(dotenv: Path | None = None) -> str:
    """`HF_ENDPOINT` (environment, then `.env`), else https://huggingface.co."""
    return (_env_or_dotenv("HF_ENDPOINT", dotenv) or DEFAULT_HUB_ENDPOINT).rstrip("/")
