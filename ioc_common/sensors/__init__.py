"""Field sensors read over MQTT: payload parsing shared by the edge agent and central, in one place.

- ``config``: ``SensorConfig``, one station (topic, payload adapter, calibration, alert levels, time rules);
- ``adapters/``: one module per payload shape (``ioc_v1``, ``senml``, ``flat_json``, ``csv``), bytes -> raw readings;
- ``payload_schemas``: our own versioned JSON payloads (``ioc.water_level/1`` ...);
- ``units`` and ``calibration``: raw values to the contract's units;
- ``vn_aqi``: the Vietnamese hourly AQI (Quyết định 1459/QĐ-TCMT);
- ``normalise``: ``SensorNormaliser``, (topic, bytes, received_at) -> events and rejections, never raising;
- ``broker``, ``subscriber``, ``silence``, ``site``: the MQTT client side that feeds the normaliser.

Nothing here imports the edge agent or central: only pydantic, the standard library and ``event_contract``
(paho for the MQTT client side).
"""

from ioc_common.sensors.config import SensorConfig, check_sensors
from ioc_common.sensors.normalise import NormaliseResult, Rejection, SensorNormaliser

__all__ = ["NormaliseResult", "Rejection", "SensorConfig", "SensorNormaliser", "check_sensors"]
