"""Reading and editing recorded rows, and reading replay's output."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc


def replay_here(env_id: str, data_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    """`gymrec-replay ENV_ID --data-dir DATA_DIR EXTRA...` in this process (no interpreter
    start-up, ~2 s less than a subprocess): its exit code, stdout and stderr. An exception the
    command did not turn into an exit code is raised here, as a traceback would fail a test."""
    from click.testing import CliRunner

    from recorder.replay.cli import main

    args = [env_id, "--data-dir", str(data_dir), *extra]
    result = CliRunner().invoke(main, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


FAIL_LINE = re.compile(r"^FAIL (\S+): diverges at (reset|step (\d+)) \(([^)]*)\)(.*)$", re.M)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("gymrec-replay:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def failures(stdout: str) -> dict[str, dict]:
    out = {}
    for m in FAIL_LINE.finditer(stdout):
        rest = m.group(5)
        frame = re.search(r"first differing frame: row (\d+), largest pixel difference (\d+)",
                          rest)
        picture = re.search(r"difference: (\S+\.png)", rest)
        out[m.group(1)] = {
            "step": None if m.group(2) == "reset" else int(m.group(3)),
            "fields": tuple(m.group(4).split(", ")),
            "frame": int(frame.group(1)) if frame else None,
            "max_diff": int(frame.group(2)) if frame else None,
            "picture": Path(picture.group(1)) if picture else None,
        }
    return out


def read_rows(root: Path) -> list[dict]:
    """Every row without images, in stored order (small test datasets only)."""
    rows = []
    for shard in json.loads((root / ".meta" / "manifest.json").read_text())["shards"]:
        rows += ipc.open_stream(str(root / shard["file"])).read_all().drop_columns(
            ["image"]).to_pylist()
    return rows


def edit_rows(root: Path, match, column: str, change) -> int:
    """Rewrite the shards of a dataset copy with `column = change(old)` on rows where
    `match(row)`; returns how many rows changed."""
    changed = 0
    for shard in json.loads((root / ".meta" / "manifest.json").read_text())["shards"]:
        path = root / shard["file"]
        table = ipc.open_stream(pa.BufferReader(path.read_bytes())).read_all()  # not mapped
        rows = table.drop_columns(["image"]).to_pylist()
        values = table.column(column).to_pylist()
        for i, row in enumerate(rows):
            if match(row):
                values[i] = change(values[i])
                changed += 1
        index = table.schema.get_field_index(column)
        table = table.set_column(index, table.schema.field(index),
                                 pa.array(values, type=table.schema.field(index).type))
        with pa.OSFile(str(path), "wb") as sink, ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=64)
    return changed
