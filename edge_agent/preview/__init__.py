"""The agent's local HTTP endpoints: live annotated preview (MJPEG, SSE), the live record stream central relays,
snapshot, metrics, health.

``feed`` holds each camera's latest analysed frame (filled by the pipeline's frame observer),
``server`` serves it to browsers and scrapers without ever blocking the analytics thread;
``live`` builds the records of the live stream (docs/live_view.md).
"""
