"""A live camera that films the wall clock: every frame carries the time it was made, burned into its pixels.

Glass-to-glass latency is the age of the picture the operator sees. A real camera cannot tell us when a
frame left the sensor, so the devstack's clock camera writes its own birth time into each frame twice:

- big seven-segment digits ``HH:MM:SS.mmm`` (local time) in the middle, for a person looking at the page;
- a stripe of black/white cells across the top band, for a program: a start guard (white, black), the
  48-bit epoch milliseconds (most significant bit first), 4 check bits (check bit ``k`` is the parity of the
  data bits whose index is ``k`` mod 4) and an end guard (black, white).

The stripe's geometry is a fraction of the picture's size, so a reader finds it in any downscaled copy
(the agent's 640 px JPEG, a canvas scaled by the page). Cells are about 11 x 28 px at 640 x 360: they come
through H.264 and JPEG intact, and a reader samples well inside each cell (median of three points, three
rows tried) so a box line drawn over the stripe does not change the value. The guards give the reader its
black and white levels and, with the check bits, let it refuse a misread instead of returning a wrong time.

The module's top level uses only the standard library: ``devstack/rtsp_server.py`` loads it by path
under Debian's ``/usr/bin/python3`` (which has GStreamer's bindings but not numpy) to render the frames of
its clock mounts. ``read_clock_stripe`` works on a numpy array through the array's own methods, and
``READ_CLOCK_STRIPE_JS`` is the same reader for a page's canvas.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy.typing as npt

DATA_BITS = 48
CHECK_BITS = 4
START_GUARD = (1, 0)
END_GUARD = (0, 1)
CELLS = len(START_GUARD) + DATA_BITS + CHECK_BITS + len(END_GUARD)

STRIPE_X0 = 8 / 640
STRIPE_X1 = 632 / 640
STRIPE_Y0 = 6 / 360
STRIPE_Y1 = 34 / 360
BAND_Y1 = 40 / 360
"""Stripe cells span [STRIPE_X0, STRIPE_X1) x [STRIPE_Y0, STRIPE_Y1) of the picture; the band above BAND_Y1 is black."""

SAMPLE_ROWS = (0.5, 0.3, 0.7)
"""Rows tried by a reader, as fractions of the stripe's height: the first that reads cleanly wins."""
SAMPLE_COLUMNS = (0.3, 0.5, 0.7)
"""Points sampled across each cell (fractions of its width); the cell's level is their median."""
MIN_CONTRAST = 64
"""Guard white minus guard black (0..255) below which the reader refuses: no stripe in that picture."""
MARGIN_SHARE = 0.2
"""A cell closer to the black/white threshold than this share of the contrast is ambiguous: refused."""

BLACK = 0
WHITE = 255
BACKGROUND = 40
DIGIT_LEVEL = 235
MARKER_LEVEL = 170


@dataclass(frozen=True, slots=True)
class ClockSpec:
    """The clock camera's picture: size and frame rate (the encoder's GOP is one second of frames)."""

    width: int = 640
    height: int = 360
    fps: int = 25

    def __post_init__(self) -> None:
        if self.width < 320 or self.height < 180 or self.width % 2 or self.height % 2:
            raise ValueError(f"clock picture {self.width}x{self.height}: at least 320x180, even sizes")
        if not 1 <= self.fps <= 60:
            raise ValueError(f"clock frame rate {self.fps}: 1..60")

    @property
    def frame_period_ms(self) -> float:
        return 1000.0 / self.fps


def now_ms() -> int:
    """Wall clock, epoch milliseconds (what a frame made now carries)."""
    return time.time_ns() // 1_000_000


def check_bits(data: list[int]) -> list[int]:
    """Check bit ``k`` = parity of the data bits whose index is ``k`` mod ``CHECK_BITS``."""
    return [sum(data[k::CHECK_BITS]) % 2 for k in range(CHECK_BITS)]


def stripe_cells(epoch_ms: int) -> tuple[int, ...]:
    """The stripe's cells (1 white, 0 black), left to right, for ``epoch_ms``."""
    if not 0 <= epoch_ms < 1 << DATA_BITS:
        raise ValueError(f"epoch ms {epoch_ms} does not fit in {DATA_BITS} bits")
    data = [(epoch_ms >> (DATA_BITS - 1 - i)) & 1 for i in range(DATA_BITS)]
    return (*START_GUARD, *data, *check_bits(data), *END_GUARD)


def decode_cells(levels: list[float]) -> int | None:
    """Epoch ms from the grey levels of the ``CELLS`` cells, or None when the guards, the levels or the check
    bits say this is not a clean read."""
    if len(levels) != CELLS:
        return None
    white = (levels[0] + levels[-1]) / 2
    black = (levels[1] + levels[-2]) / 2
    contrast = white - black
    if contrast < MIN_CONTRAST:
        return None
    threshold = (white + black) / 2
    margin = contrast * MARGIN_SHARE
    if any(abs(level - threshold) < margin for level in levels):
        return None
    bits = [1 if level > threshold else 0 for level in levels]
    guard = len(START_GUARD)
    if tuple(bits[:guard]) != START_GUARD or tuple(bits[-len(END_GUARD) :]) != END_GUARD:
        return None
    data = bits[guard : guard + DATA_BITS]
    if bits[guard + DATA_BITS : guard + DATA_BITS + CHECK_BITS] != check_bits(data):
        return None
    value = 0
    for bit in data:
        value = (value << 1) | bit
    return value


def _cell_span(index: int, width: int) -> tuple[int, int]:
    """Pixel columns [x0, x1) of stripe cell ``index`` in a picture ``width`` wide."""
    x0 = STRIPE_X0 * width
    step = (STRIPE_X1 - STRIPE_X0) * width / CELLS
    return round(x0 + index * step), round(x0 + (index + 1) * step)


def read_clock_stripe(bgr: npt.NDArray[Any]) -> int | None:
    """The epoch ms burned into a clock-camera picture (BGR or grey, any size), or None when no clean stripe."""
    if bgr.ndim not in (2, 3):
        return None
    height, width = int(bgr.shape[0]), int(bgr.shape[1])
    if width < 160 or height < 90:
        return None
    step = (STRIPE_X1 - STRIPE_X0) * width / CELLS
    for row in SAMPLE_ROWS:
        y = int((STRIPE_Y0 + (STRIPE_Y1 - STRIPE_Y0) * row) * height)
        line = bgr[y].astype("int32")
        grey = line.sum(axis=1) / line.shape[1] if line.ndim == 2 else line
        levels: list[float] = []
        for index in range(CELLS):
            x0 = STRIPE_X0 * width + index * step
            samples = sorted(float(grey[min(width - 1, int(x0 + step * column))]) for column in SAMPLE_COLUMNS)
            levels.append(samples[len(samples) // 2])
        value = decode_cells(levels)
        if value is not None:
            return value
    return None


def _fill(plane: bytearray, width: int, box: tuple[int, int, int, int], level: int) -> None:
    """Paints ``box`` = (x0, y0, x1, y1) of a row-major grey ``plane`` ``width`` pixels wide."""
    x0, y0, x1, y1 = box
    run = bytes([level]) * (x1 - x0)
    for y in range(y0, y1):
        start = y * width + x0
        plane[start : start + len(run)] = run


_SEGMENTS = {
    "0": "abcdef",
    "1": "bc",
    "2": "abdeg",
    "3": "abcdg",
    "4": "bcfg",
    "5": "acdfg",
    "6": "acdefg",
    "7": "abc",
    "8": "abcdefg",
    "9": "abcdfg",
}


def _segment_boxes(segment: str, w: int, h: int, t: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a seven-segment digit's segment in a ``w`` x ``h`` cell, stroke ``t``."""
    half = h // 2
    return {
        "a": (0, 0, w, t),
        "b": (w - t, 0, w, half + t // 2),
        "c": (w - t, half - t // 2, w, h),
        "d": (0, h - t, w, h),
        "e": (0, half - t // 2, t, h),
        "f": (0, 0, t, half + t // 2),
        "g": (0, half - t // 2, w, half + t // 2 + t % 2),
    }[segment]


class ClockRenderer:
    """Draws clock frames as GRAY8 bytes (row-major, ``width * height``): the static picture is drawn once,
    each frame copies it and draws the stripe, the digits and a moving marker (so a motion gate sees change)."""

    def __init__(self, spec: ClockSpec | None = None) -> None:
        self.spec = spec or ClockSpec()
        width, height = self.spec.width, self.spec.height
        self._base = bytearray([BACKGROUND]) * (width * height)
        _fill(self._base, width, (0, 0, width, round(BAND_Y1 * height)), BLACK)
        self._stripe_y = (round(STRIPE_Y0 * height), round(STRIPE_Y1 * height))
        scale = width / 640
        self._digit = (round(40 * scale), round(76 * scale), max(2, round(8 * scale)), round(10 * scale))
        self._narrow = round(18 * scale)
        text_width = 9 * (self._digit[0] + self._digit[3]) + 3 * self._narrow
        self._text_x = max(0, (width - text_width) // 2)
        self._text_y = round(height * 0.42)

    def render(self, epoch_ms: int, frame_index: int = 0) -> bytes:
        """The frame made at ``epoch_ms`` (its ``frame_index``-th since the stream started moves the marker)."""
        width, height = self.spec.width, self.spec.height
        plane = bytearray(self._base)
        row = bytearray([BLACK]) * width
        for index, cell in enumerate(stripe_cells(epoch_ms)):
            if cell:
                x0, x1 = _cell_span(index, width)
                row[x0:x1] = bytes([WHITE]) * (x1 - x0)
        for y in range(*self._stripe_y):
            plane[y * width : (y + 1) * width] = row
        self._draw_text(plane, time.strftime("%H:%M:%S", time.localtime(epoch_ms / 1000)) + f".{epoch_ms % 1000:03d}")
        side = round(height * 0.13)
        travel = max(1, width - side)
        x = (frame_index * 6) % (2 * travel)
        x = x if x < travel else 2 * travel - x
        y0 = round(height * 0.78)
        _fill(plane, width, (x, y0, x + side, y0 + side), MARKER_LEVEL)
        return bytes(plane)

    def _draw_text(self, plane: bytearray, text: str) -> None:
        width = self.spec.width
        w, h, t, gap = self._digit
        x, y = self._text_x, self._text_y
        for char in text:
            if char in _SEGMENTS:
                for segment in _SEGMENTS[char]:
                    sx0, sy0, sx1, sy1 = _segment_boxes(segment, w, h, t)
                    _fill(plane, width, (x + sx0, y + sy0, x + sx1, y + sy1), DIGIT_LEVEL)
                x += w + gap
                continue
            dot = max(2, t)
            left = x + (self._narrow - dot) // 2
            marks = (h // 3, 2 * h // 3) if char == ":" else (h - dot,)
            for top in marks:
                _fill(plane, width, (left, y + top, left + dot, y + top + dot), DIGIT_LEVEL)
            x += self._narrow


READ_CLOCK_STRIPE_JS = f"""
(() => {{
  const CELLS = {CELLS}, DATA_BITS = {DATA_BITS}, CHECK_BITS = {CHECK_BITS};
  const X0 = {STRIPE_X0!r}, X1 = {STRIPE_X1!r}, Y0 = {STRIPE_Y0!r}, Y1 = {STRIPE_Y1!r};
  const ROWS = {list(SAMPLE_ROWS)!r}, COLUMNS = {list(SAMPLE_COLUMNS)!r};
  const MIN_CONTRAST = {MIN_CONTRAST}, MARGIN_SHARE = {MARGIN_SHARE!r};
  function decode(levels) {{
    const white = (levels[0] + levels[CELLS - 1]) / 2, black = (levels[1] + levels[CELLS - 2]) / 2;
    const contrast = white - black;
    if (contrast < MIN_CONTRAST) return null;
    const threshold = (white + black) / 2, margin = contrast * MARGIN_SHARE;
    const bits = [];
    for (const level of levels) {{
      if (Math.abs(level - threshold) < margin) return null;
      bits.push(level > threshold ? 1 : 0);
    }}
    if (bits[0] !== 1 || bits[1] !== 0 || bits[CELLS - 2] !== 0 || bits[CELLS - 1] !== 1) return null;
    const data = bits.slice(2, 2 + DATA_BITS);
    for (let k = 0; k < CHECK_BITS; k++) {{
      let parity = 0;
      for (let i = k; i < DATA_BITS; i += CHECK_BITS) parity ^= data[i];
      if (bits[2 + DATA_BITS + k] !== parity) return null;
    }}
    let value = 0;
    for (const bit of data) value = value * 2 + bit;  // 48 bits: exact in a double
    return value;
  }}
  // Reads the clock stripe of the picture drawn in `rect` (default: the whole canvas); null when unclean.
  window.iocReadClockStripe = (canvas, rect) => {{
    const r = rect || {{ x: 0, y: 0, width: canvas.width, height: canvas.height }};
    if (r.width < 160 || r.height < 90) return null;
    const top = Math.floor(r.y + Y0 * r.height), bottom = Math.ceil(r.y + Y1 * r.height);
    const pixels = canvas.getContext("2d").getImageData(r.x, top, r.width, bottom - top);
    const step = (X1 - X0) * r.width / CELLS;
    for (const row of ROWS) {{
      const y = Math.floor((Y0 + (Y1 - Y0) * row) * r.height + r.y) - top;
      const levels = [];
      for (let index = 0; index < CELLS; index++) {{
        const x0 = X0 * r.width + index * step;
        const samples = COLUMNS.map((column) => {{
          const x = Math.min(r.width - 1, Math.floor(x0 + step * column));
          const at = (y * pixels.width + x) * 4;
          return (pixels.data[at] + pixels.data[at + 1] + pixels.data[at + 2]) / 3;
        }}).sort((a, b) => a - b);
        levels.push(samples[1]);
      }}
      const value = decode(levels);
      if (value !== null) return value;
    }}
    return null;
  }};
}})();
"""
"""Defines ``window.iocReadClockStripe(canvas, rect?) -> number | null``, the same reader for a page's canvas."""
