"""Bounded latency when a live stream cannot be decoded in real time: skip to keyframes until caught up.

A camera sends at its own pace whatever we do. When the box decodes slower than that (too many
cameras, a CPU spike), the packets wait in the socket buffer and every frame comes out later than the
one before: latency grows without bound, and the latest-frame mailbox cannot help, since the delay is
before the decoder. The lag of a frame is how much later than the stream's own pace it came out of
the decoder: the wall-clock time now minus (the connection's earliest arrival origin + the frame's
PTS offset). Past ``max_lag_s`` the reader asks FFmpeg to decode keyframes only (non-key packets are
read and dropped, which costs almost nothing) until a keyframe comes out within half that lag; then
every frame is decoded again. Analytics meanwhile gets one frame per group of pictures: fewer frames,
but current ones. Each episode and each skipped packet is counted.
"""

from __future__ import annotations


class CatchUp:
    """Decides, frame by frame, whether a live stream is too far behind to decode every frame."""

    def __init__(self, max_lag_s: float | None) -> None:
        if max_lag_s is not None and max_lag_s <= 0:
            raise ValueError(f"max_lag_s must be positive or None, got {max_lag_s}")
        self._max_lag_s = max_lag_s
        self.skipping = False
        self.episodes = 0

    def observe(self, lag_s: float, keyframe: bool) -> bool:
        """Take a decoded frame's lag; returns whether non-key frames are to be skipped from now on."""
        if self._max_lag_s is None:
            return False
        if not self.skipping and lag_s > self._max_lag_s:
            self.skipping = True
            self.episodes += 1
        elif self.skipping and keyframe and lag_s <= self._max_lag_s / 2:
            self.skipping = False
        return self.skipping

    def restart(self) -> None:
        """A new connection starts with no backlog."""
        self.skipping = False
