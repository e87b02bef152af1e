"""Licence-plate reading at the edge: Vietnamese formats, readers (PP-OCR or your ONNX models), per-track vote.

- ``vn_format``: parse, normalise and validate Vietnamese plates (``parse_plate``).
- ``reader``: ``PlateRead``, the ``PlateReader`` protocol and ``build_plate_reader(config)``.
- ``vote``: ``PlateVoter`` (which frames to read, the best reading per track) and ``crop_quality`` (re-exported
  from ``quality``).
- ``config``: ``PlateReadingConfig`` and ``PlateVoteConfig``.

See docs/plates.md.
"""
