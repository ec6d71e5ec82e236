"""The config file: every value checked with an error naming the key and the file, paths
relative to the file, and each setting's value from flag > environment > file > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import UsageError
from shared.settings_file import (
    SPACE,
    between_episodes,
    config_path,
    load_settings_file,
    show_lines,
)


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "says"), [
    ("quality = 300\n", "quality = 300: must be a whole number from 1 to 100"),
    ("scale = 2.5\n", "scale = 2.5: must be a whole number from 1 to 8"),
    ('codec = "webp"\n', 'codec = "webp": must be one of jpeg, png'),
    ("data_dir = 3\n", "data_dir = 3: must be a path"),
    ('endpoint = "localhost"\n', 'endpoint = "localhost": must be a ZeroMQ endpoint'),
    ('keymap = "keys.toml"\n', 'keymap = "keys.toml": no such file'),
    ("between_episodes = -1\n", "between_episodes = -1: must be a number of seconds"),
    ('between_episodes = "later"\n', 'between_episodes = "later": must be a number'),
    ("[fps]\natari = 0\n", "fps.atari = 0: must be a number of frames per second"),
    ('[fps]\natari = "fast"\n', 'fps.atari = "fast": must be a number'),
    ("[fps]\nsnes = 60\n", "unknown key 'fps.snes'"),
    ("fps = 60\n", "unknown key 'fps'"),
    ('colour = "red"\n', "unknown key 'colour'"),
    ('[hub]\nprivate = "yes"\n', 'hub.private = "yes": must be true or false'),
    ('[hub]\nrepo = "no slash"\n', 'hub.repo = "no slash": must be owner/name'),
    ('[hub]\nlicense = "CC BY"\n', 'hub.license = "CC BY": must be a Hub license id'),
    ("scale = \n", "not valid TOML"),
])
def test_each_bad_value_names_its_key_and_the_file(tmp_path, text, says):
    path = _file(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        load_settings_file(path)
    message = str(caught.value)
    assert message.startswith(f"config {path}: ") and says in message, message
    assert "\n" not in message and caught.value.exit_code == 2


def test_values_as_used(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "keys.toml").write_text("[atari]\n")
    path = _file(tmp_path, 'data_dir = "~/gym"\nkeymap = "keys.toml"\nbetween_episodes = '
                 '"Space"\nquality = 80\n[fps]\nretro = 30\n[hub]\nrepo = "org/{env}"\n')
    values = load_settings_file(path).values
    assert values == {"data_dir": tmp_path / "home" / "gym", "keymap": tmp_path / "keys.toml",
                      "between_episodes": SPACE, "quality": 80, "fps.retro": 30.0,
                      "hub.repo": "org/{env}"}
    assert between_episodes("2.5") == 2.5 and between_episodes(0) == 0.0


def test_flag_then_environment_then_file_then_default(tmp_path, monkeypatch):
    config = load_settings_file(_file(tmp_path, 'endpoint = "ipc:///tmp/x"\ncodec = "png"\n'))
    monkeypatch.setenv("GYMREC_ENDPOINT", "tcp://127.0.0.1:7000")
    chosen = config.choose("endpoint", "tcp://127.0.0.1:9", "--endpoint", "tcp://default")
    assert (chosen.value, chosen.source) == ("tcp://127.0.0.1:9", "flag --endpoint")
    chosen = config.choose("endpoint", None, "--endpoint", "tcp://default")
    assert (chosen.value, chosen.source) == ("tcp://127.0.0.1:7000", "env GYMREC_ENDPOINT")
    monkeypatch.delenv("GYMREC_ENDPOINT")
    chosen = config.choose("endpoint", None, "--endpoint", "tcp://default")
    assert (chosen.value, chosen.source) == ("ipc:///tmp/x", f"config {config.path}")
    chosen = config.choose("quality", None, "--quality", 95)
    assert (chosen.value, chosen.source) == (95, "default")
    lines = show_lines({"codec": config.choose("codec", None, "--codec", "jpeg")}, config)
    assert lines == [f"config file: {config.path} (read)", f"codec = png   # config {config.path}"]


def test_where_the_file_is(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config_path() == tmp_path / "gymrec" / "config.toml"
    missing = load_settings_file()  # the default file may be missing: built-in defaults
    assert not missing.found and missing.values == {}
    with pytest.raises(UsageError, match=f"config {tmp_path / 'other.toml'}: no such file"):
        load_settings_file(tmp_path / "other.toml")  # a file asked for must exist
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_path() == tmp_path / "home" / ".config" / "gymrec" / "config.toml"
