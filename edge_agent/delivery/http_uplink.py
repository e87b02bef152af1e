"""The HTTP transport: one batch = one gzip POST to central's ``/api/v1/events`` with the agent's token.

Every POST announces ``X-IOC-Ack-Features: evidence_wanted``: this agent reads ``BatchAck.evidence_wanted``
(officers' requests for keyframes held at the edge), so central may put it in the ack. Central never sends
the field to an agent that does not announce it (older agents refuse unknown ack fields).

Answers map to outcomes (the sender decides what to do with them):

- 2xx: ``Acked`` with central's ``BatchAck`` (stored, duplicates, rejections by index, evidence wanted);
- 413: ``TooLarge`` (the sender halves the batch);
- network error, timeout, 408, 429, 5xx: ``Retry`` (with ``Retry-After`` when central sent one);
- 401, 403, 404, 405: ``Retry`` too. They say the agent's token or URL is wrong (or revoked), not
  that the events are bad, so the events stay in the spool until an operator fixes the config;
  ``last_error`` and the circuit breaker make it visible. (Central answers 403 for a batch of
  another agent, which the sender never builds: it refuses foreign events at submit.)
- any other 4xx (400, 422...): ``Refused`` with central's message: the batch can never succeed.

``UplinkConfig`` lives in ``edge_agent.delivery.config`` and is re-exported here for the callers
that import it from this module.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence

import httpx

from edge_agent.delivery.config import UplinkConfig
from edge_agent.delivery.transport import Acked, Refused, Retry, SendOutcome, TooLarge, batch_body
from event_contract import BatchAck
from ioc_common.backoff import retry_after_s

__all__ = ["EVENTS_PATH", "HttpTransport", "UplinkConfig"]

EVENTS_PATH = "/api/v1/events"
ACK_FEATURES_HEADER = "X-IOC-Ack-Features"
ACK_FEATURES = "evidence_wanted"
"""Optional BatchAck fields this agent reads (comma-separated tokens)."""
RETRIED_4XX = frozenset({401, 403, 404, 405, 408, 429})
"""4xx answers that are about the connection or the agent's credentials, not the events: retried."""


class HttpTransport:
    """POSTs batches to central; one ``httpx.Client`` (keep-alive) for the agent's lifetime."""

    def __init__(self, config: UplinkConfig, *, client: httpx.Client | None = None) -> None:
        if config.url is None:
            raise ValueError("the HTTP transport needs central.url")
        self._gzip = config.gzip
        self._token = config.resolve_token()
        self._client = client or httpx.Client(timeout=config.timeout_s)
        self._owns_client = client is None
        self._endpoint = str(config.url).rstrip("/") + EVENTS_PATH

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def send(self, agent_id: str, payloads: Sequence[bytes]) -> SendOutcome:
        body = batch_body(agent_id, payloads)
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
            ACK_FEATURES_HEADER: ACK_FEATURES,
        }
        if self._gzip:
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        try:
            response = self._client.post(self._endpoint, content=body, headers=headers)
        except httpx.HTTPError as error:
            return Retry(f"{type(error).__name__}: {error}")
        return outcome_of(response)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


def outcome_of(response: httpx.Response) -> SendOutcome:
    """What central's HTTP answer means for the batch (see the module doc)."""
    status = response.status_code
    if response.is_success:
        try:
            return Acked(BatchAck.model_validate_json(response.content))
        except ValueError:
            return Acked(None)  # stored, but the answer was unreadable: nothing to dead-letter
    message = f"HTTP {status}: {_server_message(response)}"
    if status == 413:
        return TooLarge(message)
    if status >= 500 or status in RETRIED_4XX or status < 400:
        return Retry(message, retry_after_s(response.headers.get("Retry-After")))
    return Refused(message)


def _server_message(response: httpx.Response) -> str:
    text = response.text.strip()
    return text[:500] if text else response.reason_phrase
