"""Backend "onnx": the user's own plate detector and recogniser ONNX files, behind the same ``PlateReader``.

I/O contract (also in docs/plates.md):

- detector (optional, ``detector_path``): one input [1,3,S,S] float32, RGB scaled to 0..1, the crop
  letterboxed (centred, grey 114) into S = ``detector_input_size``; first output [N,5+] or [1,N,5+] rows
  ``x1, y1, x2, y2, score`` in input pixels, after NMS (extra columns ignored). Without a detector the
  PP-OCR text detector of the rapidocr wheel finds the plate's text lines.
- recogniser (``recogniser_path``): one input [1,3,H,W] float32, RGB, ``(x/255 - mean) / std``,
  H = ``recogniser_height``, W = ``recogniser_width`` (stretched) or the aspect-kept width when the model's
  width is dynamic; first output [1,T,C] (or [T,1,C]) CTC scores, probabilities or logits, class 0 = blank,
  class i+1 = ``alphabet[i]``. A two-line plate is cut at its middle gap and its halves put side by side
  (``split_two_line``), the usual input of one-line recognisers such as LPRNet.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.perception.detectors.letterbox import letterbox
from edge_agent.perception.detectors.onnx_session import OnnxSession
from edge_agent.plates.colour import plate_colour
from edge_agent.plates.config import PlateReadingConfig
from edge_agent.plates.grouping import CORRECTION_PENALTY
from edge_agent.plates.models import locate_ppocr_models
from edge_agent.plates.recognise import CtcDecoder, LineText, softmax_if_logits
from edge_agent.plates.result import PlateRead, ReaderCounters, check_crop, runtime_settings
from edge_agent.plates.text_detect import TextBox, TextDetector
from edge_agent.plates.vn_format import parse_plate
from event_contract.traffic import PlateLayout

TWO_LINE_ASPECT = 2.5
"""A plate box narrower than this many heights is a two-line plate."""
Box = tuple[int, int, int, int]


def split_rows(plate: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """A two-line plate as one line: cut at the least-inked row of its middle third, halves side by side."""
    grey = cv2.cvtColor(plate, cv2.COLOR_BGR2GRAY)
    ink = np.abs(grey.astype(np.float32) - float(np.median(grey))).mean(axis=1)
    h = plate.shape[0]
    lo, hi = h // 3, max(h // 3 + 1, 2 * h // 3)
    cut = lo + int(np.argmin(ink[lo:hi]))
    top, bottom = plate[:cut], plate[cut:]
    height = max(top.shape[0], bottom.shape[0], 1)
    resize = [cv2.resize(p, (max(1, round(p.shape[1] * height / max(p.shape[0], 1))), height)) for p in (top, bottom)]
    return np.hstack(resize).astype(np.uint8)


class OnnxPlateReader:
    """Your detector (or the PP-OCR text detector) and your CTC recogniser. ``read`` is thread-safe."""

    def __init__(self, config: PlateReadingConfig) -> None:
        assert config.recogniser_path is not None
        assert config.alphabet
        self.config = config
        settings = runtime_settings(config)
        self.detector = OnnxSession(config.detector_path, settings) if config.detector_path else None
        self.text_detector: TextDetector | None = None
        if self.detector is None:
            self.text_detector = TextDetector(
                OnnxSession(locate_ppocr_models(config.models_dir).det, settings),
                max_side=config.det_max_side,
                threshold=config.det_threshold,
                box_threshold=config.det_box_threshold,
                unclip_ratio=config.det_unclip_ratio,
            )
        self.recogniser = OnnxSession(config.recogniser_path, settings)
        self.rec_output = self.recogniser.session.get_outputs()[0].name
        self.decoder = CtcDecoder(list(config.alphabet))
        self.counters = ReaderCounters()

    def find_plate(self, crop: npt.NDArray[np.uint8]) -> Box | None:
        """The plate's box in the crop, or None."""
        h, w = crop.shape[:2]
        if self.detector is not None:
            canvas, mapping = letterbox(crop, self.config.detector_input_size)
            blob = (
                (cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32) / 255)
                .transpose(2, 0, 1)[None]
                .astype(np.float32)
            )
            out = self.detector.run([self.detector.session.get_outputs()[0].name], blob)[0]
            rows = out.reshape(-1, out.shape[-1])
            if rows.shape[1] < 5:
                raise ValueError(f"plate detector output has {rows.shape[1]} columns; the contract needs xyxy + score")
            rows = rows[rows[:, 4] >= self.config.detector_score]
            if len(rows) == 0:
                return None
            best = rows[int(np.argmax(rows[:, 4]))]
            x1, y1, x2, y2 = mapping.boxes_to_image(best[None, :4].astype(np.float32), w, h)[0]
            return _clip((x1, y1, x2, y2), w, h)
        assert self.text_detector is not None
        boxes = self.text_detector(crop)
        if not boxes:
            return None
        main = max(boxes, key=lambda b: b.score * b.height)
        group = [main, *(b for b in boxes if b is not main and _stacked_with(main, b))]
        quads = np.concatenate([b.quad for b in group])
        grow = 0.25 * main.height
        (x1, y1), (x2, y2) = quads.min(axis=0) - grow, quads.max(axis=0) + grow
        return _clip((float(x1), float(y1), float(x2), float(y2)), w, h)

    def recognise(self, plate: npt.NDArray[np.uint8]) -> tuple[LineText, PlateLayout]:
        layout: PlateLayout = "two_line" if plate.shape[1] < TWO_LINE_ASPECT * plate.shape[0] else "one_line"
        if layout == "two_line" and self.config.split_two_line:
            plate = split_rows(plate)
        height = self.config.recogniser_height
        width = self.config.recogniser_width or max(8, round(plate.shape[1] * height / max(plate.shape[0], 1)))
        rgb = cv2.cvtColor(cv2.resize(plate, (width, height)), cv2.COLOR_BGR2RGB).astype(np.float32)
        normal = (rgb / 255 - self.config.recogniser_mean) / self.config.recogniser_std
        blob = normal.transpose(2, 0, 1)[None].astype(np.float32)
        out = self.recogniser.run([self.rec_output], blob)[0]
        probs = out.reshape(-1, out.shape[-1])  # [1,T,C] and [T,1,C] both become [T,C]
        return self.decoder(softmax_if_logits(probs)), layout

    def read(self, vehicle_crop: npt.NDArray[np.uint8]) -> PlateRead | None:
        check_crop(vehicle_crop, self.counters)
        result = self._read(vehicle_crop)
        self.counters.count(result)
        return result

    def _read(self, crop: npt.NDArray[np.uint8]) -> PlateRead | None:
        box = self.find_plate(crop)
        if box is None or box[2] - box[0] < 4 or box[3] - box[1] < 4:
            return None
        x1, y1, x2, y2 = box
        plate = crop[y1:y2, x1:x2]
        line, layout = self.recognise(plate)
        probs = [p for c, p in zip(line.text, line.char_probs, strict=True) if c.isalnum()]
        if not probs:
            return None
        parse = parse_plate(line.text, layout_hint=layout)
        confidence = float(np.mean(probs)) * CORRECTION_PENALTY**parse.corrections
        if confidence < self.config.min_confidence or len(parse.compact) < 4:
            return None
        return PlateRead(
            text=parse.text,
            confidence=round(confidence, 4),
            layout=parse.layout or layout,
            format_valid=parse.valid,
            plate_colour=plate_colour(_inner(plate)),
            box_xyxy=box,
            char_probs=tuple(probs),
        )


def _stacked_with(main: TextBox, other: TextBox) -> bool:
    (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = main.xyxy, other.xyxy
    overlap = min(ax2, bx2) - max(ax1, bx1)
    gap = max(by1 - ay2, ay1 - by2)
    return overlap >= 0.5 * min(ax2 - ax1, bx2 - bx1) and gap < 0.8 * max(ay2 - ay1, by2 - by1)


def _inner(plate: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The middle of a plate box: its background and ink, not the vehicle around a generous box."""
    h, w = plate.shape[:2]
    return plate[int(0.15 * h) : max(int(0.85 * h), int(0.15 * h) + 1), int(0.1 * w) : max(int(0.9 * w), 1)]


def _clip(box: tuple[float, float, float, float], w: int, h: int) -> Box:
    x1, y1, x2, y2 = box
    return (max(0, int(x1)), max(0, int(y1)), min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2))))
