"""Sorting failures of the `huggingface_hub` client, once, for both sides.

`classify` turns any exception raised by a Hub call into a `HubFailure`: what kind of failure it
is, the HTTP status if any, and a text free of the token. The writer (publishing) and replay
(reading) each map kinds to their own errors and advice; neither inspects client exceptions.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from enum import Enum

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class HubFailureKind(Enum):
    STALE_PARENT = "stale_parent"  # HTTP 412: someone committed since the repo was read
    RETRY = "retry"  # 408/429/5xx: worth retrying after a pause
    NETWORK = "network"  # no connection, a dropped one, a timeout
    AUTH = "auth"  # HTTP 401: the token was refused
    FORBIDDEN = "forbidden"  # HTTP 403: the token may not do this
    OFFLINE = "offline"  # HF_HUB_OFFLINE is set
    GATED = "gated"  # the repo needs its conditions accepted
    REPO_NOT_FOUND = "repo_not_found"
    REVISION_GONE = "revision_gone"  # the commit asked for no longer exists
    FILE_NOT_FOUND = "file_not_found"  # listed, but not served
    NOT_CACHED = "not_cached"  # no answer, and not in the local cache
    HTTP = "http"  # any other HTTP status
    LOCAL_IO = "local_io"  # writing the local cache failed (disk full, permissions)
    OTHER = "other"


@dataclass(frozen=True, kw_only=True)
class HubFailure:
    kind: HubFailureKind
    detail: str  # "HTTP 503 (server message)" or "ConnectionError: ...": token masked
    status: int | None = None
    retry_after: float | None = None  # seconds, from a Retry-After header


def classify(exc: BaseException, token: str | None) -> HubFailure:
    """What kind of failure `exc` (raised by a huggingface_hub call) is."""
    from huggingface_hub import errors as hf

    def mask(text: str) -> str:
        return text.replace(token, "***") if token else text

    def failure(kind: HubFailureKind, **extra) -> HubFailure:
        return HubFailure(kind=kind, detail=f"{type(exc).__name__}: {mask(str(exc))}", **extra)

    if isinstance(exc, hf.LocalEntryNotFoundError):
        cause = exc.__cause__
        if isinstance(cause, Exception) and not isinstance(cause, hf.LocalEntryNotFoundError):
            return classify(cause, token)  # e.g. a 403 on the HEAD request
        return failure(HubFailureKind.NOT_CACHED)
    if isinstance(exc, hf.OfflineModeIsEnabled):
        return failure(HubFailureKind.OFFLINE)
    specific = next((kind for cls, kind in (
        (hf.GatedRepoError, HubFailureKind.GATED),  # before its base, RepositoryNotFoundError
        (hf.RepositoryNotFoundError, HubFailureKind.REPO_NOT_FOUND),
        (hf.RevisionNotFoundError, HubFailureKind.REVISION_GONE),
        (hf.EntryNotFoundError, HubFailureKind.FILE_NOT_FOUND),
    ) if isinstance(exc, cls)), None)
    if isinstance(exc, hf.HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        message = mask(exc.server_message or "").strip()
        detail = f"HTTP {status}" + (f" ({message.splitlines()[0]})" if message else "")
        kind = specific or {412: HubFailureKind.STALE_PARENT, 401: HubFailureKind.AUTH,
                            403: HubFailureKind.FORBIDDEN}.get(status, HubFailureKind.HTTP)
        retry_after = None
        if specific is None and status in RETRY_STATUSES:
            kind = HubFailureKind.RETRY
            retry_after = parse_retry_after(exc.response.headers.get("Retry-After"))
        return HubFailure(kind=kind, detail=detail, status=status, retry_after=retry_after)
    if specific is not None:
        return failure(specific)
    if isinstance(exc, _network_errors()):
        return failure(HubFailureKind.NETWORK)
    if isinstance(exc, OSError):
        return failure(HubFailureKind.LOCAL_IO)
    return failure(HubFailureKind.OTHER)


def _network_errors() -> tuple[type[BaseException], ...]:
    network: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)
    try:  # the HTTP library of huggingface_hub 1.x/2.x (pinned in uv.lock)
        import httpx2

        network += (httpx2.TransportError,)
    except ImportError:
        pass
    return network


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))
