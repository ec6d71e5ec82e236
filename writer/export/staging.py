"""Exports are atomic: written into a hidden sibling folder `.<name>.partial-<pid>` and renamed
to `<name>` only once complete, so a killed export never leaves a dataset that looks finished.
The next export of the same name removes the folders of exports whose process is gone."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.errors import UsageError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_abandoned(target: Path) -> list[Path]:
    """Partial folders of `target` left by exports that were killed; removes them."""
    removed = []
    if not target.parent.is_dir():
        return removed
    for path in target.parent.glob(f".{target.name}.partial-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@contextmanager
def staged(target: Path) -> Iterator[Path]:
    """A fresh folder to write `target` into; renamed to `target` when the block ends without
    an exception, removed otherwise. UsageError if `target` exists already."""
    if target.exists():
        raise UsageError(f"{target} exists already: remove it or export under another name")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(target)
    partial = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    os.replace(partial, target)
