"""The agent's local HTTP endpoints: live annotated preview (MJPEG, SSE), snapshot, metrics, health.

``feed`` holds each camera's latest analysed frame (filled by the pipeline's frame observer),
``server`` serves it to browsers and scrapers without ever blocking the analytics thread.
"""
