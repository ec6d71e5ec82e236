"""Running the writer's push command against the local Hub server."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.support.hub_data import ENV_ID
from tests.support.hub_server import HubServer


def hub_env(hub: HubServer, home: Path, token: bool = True, xet: bool = True) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HOME=str(home),
               HF_HUB_DISABLE_TELEMETRY="1")
    if token:
        env["HF_TOKEN"] = hub.token
    if not xet:
        env["HF_HUB_DISABLE_XET"] = "1"
    return env


def push_cmd(data_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "writer.cli", "push", ENV_ID, "--data-dir", str(data_dir),
            *extra]
