"""Dataset folder names: ids that try to leave the data folder are refused."""

from __future__ import annotations

import pytest

from shared.config import dataset_dir, dataset_dir_name
from shared.errors import UsageError


@pytest.mark.parametrize(("env_id", "folder"), [
    ("BreakoutNoFrameskip-v4", "BreakoutNoFrameskip-v4"), ("ALE/Pong-v5", "ALE_Pong-v5"),
    ("Airstriker-Genesis-v0", "Airstriker-Genesis-v0"), ("VizdoomBasic-v1", "VizdoomBasic-v1"),
])
def test_safe_ids_map_to_one_folder(env_id, folder):
    assert dataset_dir_name(env_id) == folder


@pytest.mark.parametrize("env_id", [
    "../escape", "../../etc", "/etc/passwd", "a/../b", "..", ".", "a/b/c", "", ".hidden",
    "a\\b", "a\0b", "x" * 300, "~/home", "a/", "/",
])
def test_escaping_ids_are_refused(env_id, tmp_path):
    with pytest.raises(UsageError, match="not a safe dataset name"):
        dataset_dir(tmp_path, env_id)
