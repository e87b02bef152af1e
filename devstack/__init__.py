"""Developer stack: installs and runs local PostgreSQL+TimescaleDB, mosquitto and an RTSP server."""
