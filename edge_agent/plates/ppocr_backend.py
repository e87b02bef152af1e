"""Backend "ppocr": PP-OCRv4 text detection on the vehicle crop, plate grouping, recognition, format check.

Text detection on the whole vehicle crop finds the plate's text lines (and any other text: a
dealer's sticker, a truck's lettering); each line is straightened and recognised, and the line or
pair of lines that parses as a Vietnamese plate with the highest confidence is the reading. No
plate-specific detector is needed, so the plate may be anywhere on the crop and at an angle.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.perception.detectors.onnx_session import OnnxSession
from edge_agent.plates.colour import plate_colour
from edge_agent.plates.config import PlateReadingConfig
from edge_agent.plates.grouping import LineRead, PlateCandidate, best_candidate, plate_candidates, split_two_line_blocks
from edge_agent.plates.models import locate_ppocr_models, recogniser_dictionary
from edge_agent.plates.recognise import TextRecogniser, crop_quad
from edge_agent.plates.result import PlateRead, ReaderCounters, check_crop, runtime_settings
from edge_agent.plates.text_detect import TextBox, TextDetector
from event_contract.traffic import PlateColour


def line_colour(crop: npt.NDArray[np.uint8], best: PlateCandidate) -> PlateColour | None:
    """The plate colour from its straightened text lines: plate background and ink only, even when the plate is
    turned (its axis-aligned box would take in the vehicle around it)."""
    lines = [crop_quad(crop, line.box.quad) for line in best.lines]
    height = min(line.shape[0] for line in lines)
    same = [cv2.resize(line, (max(1, line.shape[1] * height // line.shape[0]), height)) for line in lines]
    return plate_colour(np.hstack(same).astype(np.uint8))


def to_plate_read(crop: npt.NDArray[np.uint8], best: PlateCandidate) -> PlateRead:
    """The reading of a chosen candidate, with the plate's box and colour in the crop."""
    box = best.box(crop.shape[1], crop.shape[0])
    return PlateRead(
        text=best.parse.text,
        confidence=round(best.confidence, 4),
        layout=best.parse.layout or best.layout_hint,
        format_valid=best.parse.valid,
        plate_colour=line_colour(crop, best),
        box_xyxy=box,
        char_probs=best.char_probs,
    )


class PpocrPlateReader:
    """Reads plates with the PP-OCRv4 models of the rapidocr-onnxruntime wheel. ``read`` is thread-safe."""

    def __init__(self, config: PlateReadingConfig) -> None:
        self.config = config
        models = locate_ppocr_models(config.models_dir)
        settings = runtime_settings(config)
        self.detector = TextDetector(
            OnnxSession(models.det, settings),
            max_side=config.det_max_side,
            threshold=config.det_threshold,
            box_threshold=config.det_box_threshold,
            unclip_ratio=config.det_unclip_ratio,
        )
        rec_session = OnnxSession(models.rec, settings)
        self.recogniser = TextRecogniser(rec_session, recogniser_dictionary(rec_session.session, str(models.rec)))
        self.counters = ReaderCounters()

    @property
    def providers(self) -> list[str]:
        return self.detector.session.providers

    def detect_lines(self, crop: npt.NDArray[np.uint8]) -> list[TextBox]:
        """Text lines on the crop, the most plate-like first (two-line blocks cut in halves)."""
        boxes = split_two_line_blocks(self.detector(crop))
        boxes.sort(key=lambda b: -b.score * b.height)
        return boxes[: self.config.max_candidates]

    def read_lines(self, crop: npt.NDArray[np.uint8], boxes: list[TextBox]) -> PlateRead | None:
        """Recognise ``boxes`` on ``crop`` and choose the plate (used by ``read`` and by the benchmarks)."""
        if not boxes:
            return None
        texts = self.recogniser([crop_quad(crop, box.quad) for box in boxes])
        best = best_candidate(plate_candidates([LineRead(b, t) for b, t in zip(boxes, texts, strict=True)]))
        if best is None or best.confidence < self.config.min_confidence:
            return None
        return to_plate_read(crop, best)

    def read(self, vehicle_crop: npt.NDArray[np.uint8]) -> PlateRead | None:
        check_crop(vehicle_crop, self.counters)
        result = self.read_lines(vehicle_crop, self.detect_lines(vehicle_crop))
        self.counters.count(result)
        return result
