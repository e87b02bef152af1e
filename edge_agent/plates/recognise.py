"""Text-line recognition with a CTC model (PP-OCRv4's or a user's), restricted to the characters of plates.

The recogniser scores every class of its dictionary (6,623 characters for PP-OCRv4, mostly Chinese).
Plates use only digits, capital letters, the dash and the dot, so the decoder keeps just those
classes (a lower-case class adds its probability to its capital) before the greedy CTC decode: a
blurred ``0`` can then not become ``〇`` or ``o``. Each kept character carries its probability, so a
read's confidence and the per-character vote across frames both come from the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.perception.detectors.onnx_session import OnnxSession

PLATE_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-."
"""What a plate can show (``Đ`` of MĐ is read as ``D``)."""


@dataclass(frozen=True, slots=True)
class LineText:
    """One recognised line: its characters, each character's probability, and their mean."""

    text: str
    char_probs: tuple[float, ...]

    @property
    def confidence(self) -> float:
        return float(np.mean(self.char_probs)) if self.char_probs else 0.0


class CtcDecoder:
    """Greedy CTC decoding over the plate characters of a model's dictionary (class 0 = blank)."""

    def __init__(self, dictionary: Sequence[str], keep: str = PLATE_CHARS) -> None:
        self.symbols = keep
        groups: list[list[int]] = [[0]]
        for char in keep:
            groups.append([i + 1 for i, c in enumerate(dictionary) if c.upper() == char])
        missing = [c for c, g in zip(keep, groups[1:], strict=True) if not g]
        if len(missing) == len(keep):
            raise ValueError("the recogniser's dictionary has none of the plate characters (digits, A-Z, '-', '.')")
        self.width = 1 + max(max(g) for g in groups if g)
        # A (classes x symbols) 0/1 matrix: probabilities of a symbol's classes add up.
        self.matrix = np.zeros((self.width, len(groups)), np.float32)
        for j, group in enumerate(groups):
            for i in group:
                self.matrix[i, j] = 1.0

    def __call__(self, probs: npt.NDArray[np.float32]) -> LineText:
        """``probs``: (T, C) class probabilities (rows summing to 1) of one line."""
        if probs.shape[1] < self.width:
            raise ValueError(f"recogniser gives {probs.shape[1]} classes, its dictionary needs {self.width}")
        kept = probs[:, : self.width] @ self.matrix
        best = kept.argmax(axis=1)
        best_p = kept[np.arange(len(best)), best]
        chars: list[str] = []
        char_probs: list[float] = []
        previous = 0
        for index, p in zip(best.tolist(), best_p.tolist(), strict=True):
            if index != 0 and index == previous:
                char_probs[-1] = max(char_probs[-1], float(p))
            elif index != 0:
                chars.append(self.symbols[index - 1])
                char_probs.append(float(p))
            previous = index
        return LineText("".join(chars), tuple(char_probs))


def softmax_if_logits(values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Rows as probabilities: unchanged when they already are, else a softmax (for models that output logits)."""
    sums = values.sum(axis=-1)
    if values.min() >= 0 and np.allclose(sums, 1.0, atol=1e-2):
        return values
    shifted = np.exp(values - values.max(axis=-1, keepdims=True))
    probs: npt.NDArray[np.float32] = np.asarray(shifted / shifted.sum(axis=-1, keepdims=True), np.float32)
    return probs


def crop_quad(image: npt.NDArray[np.uint8], quad: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """The quadrilateral (tl, tr, br, bl) straightened into a rectangle."""
    width = max(2, round(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[3] - quad[2]))))
    height = max(2, round(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2]))))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    return cv2.warpPerspective(
        image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    ).astype(np.uint8)


class TextRecogniser:
    """PP-OCR style recogniser: lines resized to height 48 (aspect kept), BGR ``(x/255-0.5)/0.5``, padded to a
    common width of at least 320 (its training width), one batch per call. Thread-safe."""

    def __init__(self, session: OnnxSession, dictionary: Sequence[str], *, height: int = 48, min_width: int = 320):
        self.session = session
        self.output = session.session.get_outputs()[0].name
        self.decoder = CtcDecoder(dictionary)
        self.height = height
        self.min_width = min_width

    def batch(self, lines: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
        widths = [max(8, math.ceil(self.height * line.shape[1] / max(line.shape[0], 1))) for line in lines]
        total = max(self.min_width, *widths)
        out = np.zeros((len(lines), 3, self.height, total), np.float32)
        for i, (line, natural) in enumerate(zip(lines, widths, strict=True)):
            width = min(natural, total)
            resized = cv2.resize(line, (width, self.height), interpolation=cv2.INTER_LINEAR)
            out[i, :, :, :width] = (resized.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)
        return out

    def __call__(self, lines: Sequence[npt.NDArray[np.uint8]]) -> list[LineText]:
        if not lines:
            return []
        probs = softmax_if_logits(self.session.run([self.output], self.batch(lines))[0])
        return [self.decoder(p) for p in probs]
