"""Finding a writer, or starting a local one when none answers."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from recorder.delivery.link import probe_writer
from shared.errors import EndpointBusy, StorageError, WriterUnavailable
from shared.security import ClientKeys


@dataclass
class WriterHandle:
    """A writer that answers at `endpoint`; `process` is set when this recorder started it."""

    endpoint: str
    data_dir: Path
    process: subprocess.Popen | None = None

    def wait_for_exit(self, timeout: float) -> None:
        """An auto-started writer exits by itself once idle; make sure it did."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(10)


def ensure_writer(endpoint: str, data_dir: Path, log_path: Path,
                  curve: ClientKeys | None = None) -> WriterHandle:
    """Return the writer at `endpoint`, starting one (writing to `data_dir`) when none answers.
    With CURVE keys the writer is a remote one: it is never started here."""
    reply = probe_writer(endpoint, timeout=0.5 if curve is None else 3.0, curve=curve)
    if reply is not None:
        return WriterHandle(endpoint, Path(reply.data_dir))
    if curve is not None:
        raise WriterUnavailable(f"no writer at {endpoint} accepted our CURVE key (is its public "
                                "key in the writer's allow-list, and the server key right?)")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")
    cmd = [sys.executable, "-m", "writer.cli", "--endpoint", endpoint, "--data-dir",
           str(data_dir), "--exit-when-idle", "2"]
    process = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise _startup_failure(endpoint, log_path, process.returncode)
        if probe_writer(endpoint, timeout=0.3) is not None:
            return WriterHandle(endpoint, data_dir, process)
    process.kill()
    raise WriterUnavailable(f"a local writer did not start within 60 s (log: {log_path})")


def _startup_failure(endpoint: str, log_path: Path, code: int):
    lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    last = lines[-1] if lines else f"exit code {code}"
    if "already in use" in last:
        return EndpointBusy(f"endpoint {endpoint} is in use by something that is not a gymrec "
                            "writer; choose another with --endpoint")
    if "another gymrec-writer" in last or "cannot use data folder" in last:
        return StorageError(last.removeprefix("gymrec-writer: "))
    return WriterUnavailable(f"the local writer failed to start: {last}")
