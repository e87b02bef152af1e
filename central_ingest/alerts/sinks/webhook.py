"""Signed webhook sink: each notice is POSTed as JSON, with an HMAC-SHA256 signature like Stripe's.

Headers of every POST:

- ``X-IOC-Timestamp``: Unix seconds when this try was signed (each retry is signed afresh, so a
  late retry is not mistaken for a replay).
- ``X-IOC-Signature``: ``sha256=<hex HMAC-SHA256(secret, f"{timestamp}.".encode() + body)>``.
- ``X-IOC-Alert-Id``: the alert's id.
- ``X-IOC-Delivery``: a UUID naming this notice's delivery, the same on every retry of it, so a
  receiver that got a try whose answer was lost can drop the repeat.

A receiver verifies with ``verify_signature`` (or the same few lines in its own language) and
rejects timestamps more than ``REPLAY_WINDOW_S`` (5 minutes) away from its clock.

Answers: 2xx delivered; 408, 429 and 5xx, timeouts and network errors are retried (honouring a
numeric ``Retry-After`` up to the backoff ceiling); any other status (4xx, or a 3xx: redirects are
not followed, the URL is wrong) is permanent: the notice is not retried and counts as failed.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from typing import Final

import httpx

from central_ingest.alerts.notice import AlertNotice
from central_ingest.alerts.sinks.dispatcher import PermanentDeliveryError, RetryableDeliveryError
from ioc_common.backoff import retry_after_s

TIMESTAMP_HEADER: Final = "X-IOC-Timestamp"
SIGNATURE_HEADER: Final = "X-IOC-Signature"
ALERT_ID_HEADER: Final = "X-IOC-Alert-Id"
DELIVERY_HEADER: Final = "X-IOC-Delivery"
SIGNATURE_SCHEME: Final = "sha256="
REPLAY_WINDOW_S: Final = 300.0
"""Receivers should reject a timestamp further than this from their clock (replays, very late tries)."""

RETRYABLE_STATUSES: Final = frozenset({408, 429})
_DELIVERY_NAMESPACE: Final = uuid.UUID("5b0c7f1e-6a53-4c4e-9a8e-2f1d3c0b7a61")
_USER_AGENT: Final = "ioc-central-alerts/1"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-IOC-Signature`` value for ``body`` signed at ``timestamp``."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return SIGNATURE_SCHEME + digest


def verify_signature(
    secret: bytes | str,
    timestamp: int | str,
    body: bytes,
    header: str,
    *,
    max_age_s: float | None = REPLAY_WINDOW_S,
    now: float | None = None,
) -> bool:
    """True when ``header`` is the signature of ``body`` at ``timestamp`` and the timestamp is fresh.

    Constant-time comparison. ``max_age_s=None`` skips the freshness check (tests, archived bodies).
    """
    key = secret.encode() if isinstance(secret, str) else secret
    try:
        signed_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    if max_age_s is not None:
        clock = time.time() if now is None else now
        if abs(clock - signed_at) > max_age_s:
            return False
    expected = sign(key, signed_at, body)
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def delivery_id(sink_id: str, notice: AlertNotice) -> uuid.UUID:
    """Stable id of one notice's delivery to one webhook: the same for every retry and after a restart."""
    key = f"{sink_id}|{notice.alert_id}|{notice.transition}|{notice.changed_at.isoformat()}"
    return uuid.uuid5(_DELIVERY_NAMESPACE, key)


def notice_body(notice: AlertNotice) -> bytes:
    """The JSON body: ``notice.model_dump(mode="json")`` serialised."""
    return notice.model_dump_json().encode()


class WebhookSink:
    """Delivers to one URL; one ``httpx.AsyncClient`` (keep-alive) per sink."""

    def __init__(self, sink_id: str, url: str, secret: bytes, *, timeout_s: float) -> None:
        if not secret:
            raise ValueError(f"webhook {sink_id!r}: empty signing secret")
        self._id = sink_id
        self._url = url
        self._secret = secret
        self._timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    @property
    def name(self) -> str:
        return f"webhook:{self._id}"

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout_s), follow_redirects=False, headers={"User-Agent": _USER_AGENT}
            )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def deliver(self, notice: AlertNotice) -> None:
        await self.start()
        assert self._client is not None
        body = notice_body(notice)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            ALERT_ID_HEADER: str(notice.alert_id),
            DELIVERY_HEADER: str(delivery_id(self._id, notice)),
        }
        response = await self._client.post(self._url, content=body, headers=headers)
        status = response.status_code
        if 200 <= status < 300:
            return
        if status >= 500 or status in RETRYABLE_STATUSES:
            wait_s = retry_after_s(response.headers.get("Retry-After"))
            raise RetryableDeliveryError(f"HTTP {status} from {self._url}", retry_after_s=wait_s)
        raise PermanentDeliveryError(f"HTTP {status} from {self._url}: {response.text[:200]!r}")
