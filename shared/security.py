"""CURVE encryption and key files for writers that listen beyond loopback.

Key files are ZeroMQ certificates (`zmq.auth.create_certificates`): `NAME.key` holds the public
key, `NAME.key_secret` both. A writer admits only recorders whose public key file is in its
allow-list folder; CURVE without such an authenticator would admit any key.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import stat
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


# -- proving who is who on one machine (no CURVE) ---------------------------------------------
#
# A writer keeps a random secret in DATA_DIR/.writer.secret (mode 0600, its user's). It answers
# a probe with HMAC(secret, nonce) and signs every Ack, so a recorder of the same user, which
# can read the file, tells its writer from a program that took the port first (a squatter
# cannot read the file, so cannot sign). A session's owner token lets only the recorder that
# started a session continue it; the writer keeps its hash only.

WRITER_SECRET = ".writer.secret"
_SECRET_BYTES = 32
TOKEN_HEX = 32  # a session owner token: 16 random bytes as hex
PROOF_HEX = 32  # a proof: the first 16 bytes of an HMAC-SHA256, as hex


def new_token() -> str:
    return secrets.token_hex(TOKEN_HEX // 2)


def token_digest(token: str) -> str:
    """What a writer keeps of an owner token (on disk, in a world-readable file)."""
    return hashlib.sha256(b"gymrec-owner\0" + token.encode()).hexdigest()


def prove(secret: bytes, *parts: object) -> str:
    message = "\0".join(str(part) for part in parts).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:PROOF_HEX]


def proof_holds(secret: bytes, proof: str, *parts: object) -> bool:
    return hmac.compare_digest(prove(secret, *parts), proof)


def writer_secret(data_dir: Path) -> bytes:
    """The writer's secret for `data_dir`, made on first use. Raises OSError."""
    path = data_dir / WRITER_SECRET
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(_SECRET_BYTES))
            f.flush()
            os.fsync(f.fileno())
    secret = read_writer_secret(data_dir)
    if secret is None:
        raise OSError(f"{path} is not a private file of this user with {_SECRET_BYTES} bytes")
    return secret


def read_writer_secret(data_dir: Path) -> bytes | None:
    """The secret in `data_dir`, only if it is a regular file of this user that nobody else can
    read (else anyone could have made it); None otherwise."""
    try:
        fd = os.open(Path(data_dir) / WRITER_SECRET, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if (not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid()
                or info.st_mode & 0o077 or info.st_size != _SECRET_BYTES):
            return None
        return os.pread(fd, _SECRET_BYTES, 0)
    finally:
        os.close(fd)
