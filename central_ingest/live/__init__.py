"""Central's live proxy: browsers watch cameras through central (which checks access), never straight from agents.

``routes``: ``GET /api/v1/live/cameras``, ``GET /api/v1/live/stats`` and the viewer WebSocket
``/api/v1/live/{agent_id}/{camera_id}/ws``; ``access``: who may open one; ``hub``: one agent connection per
camera fanned out to every viewer; ``settings``: the bounds. The wire format is ``ioc_common.live_records``
and docs/live_view.md.
"""
