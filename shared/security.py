"""CURVE encryption and key files for writers that listen beyond loopback.

Key files are ZeroMQ certificates (`zmq.auth.create_certificates`): `NAME.key` holds the public
key, `NAME.key_secret` both. A writer admits only recorders whose public key file is in its
allow-list folder; CURVE without such an authenticator would admit any key.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from shared.errors import UsageError


@dataclass(frozen=True)
class ClientKeys:
    """What a recorder needs to talk to a CURVE writer (keys as z85 bytes)."""

    server_public: bytes
    public: bytes
    secret: bytes


@dataclass(frozen=True)
class ServerKeys:
    public: bytes
    secret: bytes
    allowed_dir: Path


def make_keypair(folder: Path, name: str) -> tuple[Path, Path]:
    """Write `NAME.key` (public, share it) and `NAME.key_secret` (keep it) into `folder`."""
    import zmq.auth

    folder.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(str(folder), name)
    Path(secret).chmod(0o600)
    return Path(public), Path(secret)


def load_public(path: Path) -> bytes:
    import zmq.auth

    try:
        public, _ = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read key file {path}: {exc}") from exc
    return public


def load_secret(path: Path) -> tuple[bytes, bytes]:
    import zmq.auth

    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read key file {path}: {exc}") from exc
    if secret is None:
        raise UsageError(f"{path} holds no secret key (use the .key_secret file)")
    return public, secret


def is_loopback(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on 127.0.0.0/8, ::1 or localhost."""
    if not endpoint.startswith("tcp://"):
        return endpoint.startswith(("ipc://", "inproc://"))
    host = endpoint[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # an interface name, `*` or a host name: not loopback
