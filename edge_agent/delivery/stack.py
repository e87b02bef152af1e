"""The agent's delivery stack assembled from its config: dead-letter store, spool, transport, sender.

One place builds and closes them in the right order: the sender stops first (its last batch goes
back to the spool), then the spool and the dead-letter store close their files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_agent.delivery.config import UplinkConfig
from edge_agent.delivery.dead_letters import DeadLetterConfig, DeadLetterStats, DeadLetterStore
from edge_agent.delivery.http_uplink import HttpTransport
from edge_agent.delivery.mqtt_uplink import MqttTransport
from edge_agent.delivery.sender import Delivery, DeliveryStats
from edge_agent.delivery.spool import Spool, SpoolConfig
from edge_agent.delivery.transport import Transport


def build_transport(agent_id: str, config: UplinkConfig) -> Transport:
    """HTTP or MQTT, as ``central.transport`` says."""
    if config.transport == "mqtt":
        return MqttTransport(agent_id, config)
    return HttpTransport(config)


@dataclass(frozen=True)
class DeliveryStack:
    delivery: Delivery
    spool: Spool
    dead_letters: DeadLetterStore

    def dead_letter_stats(self) -> DeadLetterStats:
        return self.dead_letters.stats()

    def close(self, timeout_s: float) -> DeliveryStats:
        """Send what can be sent within ``timeout_s``; the rest stays in the spool for the next start."""
        try:
            return self.delivery.close(timeout_s)
        finally:
            self.spool.close()
            self.dead_letters.close()


def open_delivery(
    agent_id: str,
    uplink: UplinkConfig,
    spool: SpoolConfig,
    dead_letters: DeadLetterConfig,
    *,
    state_dir: Path,
    transport: Transport | None = None,
) -> DeliveryStack:
    """Open the stores (recovering damaged files), then start the sender. Relative paths are in ``state_dir``."""
    letters = DeadLetterStore(dead_letters.model_copy(update={"path": inside_state_dir(state_dir, dead_letters.path)}))
    try:
        store = Spool(spool.model_copy(update={"path": inside_state_dir(state_dir, spool.path)}))
    except BaseException:
        letters.close()
        raise
    try:
        sender = Delivery(agent_id, uplink, store, transport or build_transport(agent_id, uplink), dead_letters=letters)
    except BaseException:
        store.close()
        letters.close()
        raise
    return DeliveryStack(delivery=sender, spool=store, dead_letters=letters)


def inside_state_dir(state_dir: Path, path: Path) -> Path:
    """``path`` itself when absolute, else inside the agent's ``state_dir``."""
    return path if path.is_absolute() else state_dir / path
