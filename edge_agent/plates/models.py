"""Where the PP-OCR plate models are: the model files of the ``rapidocr-onnxruntime`` wheel, found, never imported.

The wheel is installed with ``--no-deps`` (its ``opencv-python`` would clash with our headless OpenCV)
and only for its ONNX files; the package itself is never imported (importing it would need the
dependencies we left out). Its folder is found with ``importlib.util.find_spec``, which reads the
package's location without running it. The recogniser's dictionary is in the model's own metadata
(key ``character``, one character a line), so no separate file is needed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

WHEEL_PACKAGE = "rapidocr_onnxruntime"
DET_FILE = "ch_PP-OCRv4_det_infer.onnx"
REC_FILE = "ch_PP-OCRv4_rec_infer.onnx"
INSTALL_HINT = "pip install --no-deps -c constraints.txt rapidocr-onnxruntime (./run setup does it)"


class PlateModelsMissingError(FileNotFoundError):
    """The PP-OCR model files are not where they should be; the message says how to install them."""


@dataclass(frozen=True, slots=True)
class PpocrModels:
    det: Path
    rec: Path


def wheel_models_dir() -> Path | None:
    """The installed wheel's ``models`` folder, or None when the wheel is not installed."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def locate_ppocr_models(models_dir: Path | None = None) -> PpocrModels:
    """The detector and recogniser files in ``models_dir`` (default: the wheel's); a clear error when missing."""
    folder = models_dir if models_dir is not None else wheel_models_dir()
    if folder is None:
        raise PlateModelsMissingError(f"the rapidocr-onnxruntime wheel is not installed: {INSTALL_HINT}")
    models = PpocrModels(folder / DET_FILE, folder / REC_FILE)
    for path in (models.det, models.rec):
        if not path.is_file():
            raise PlateModelsMissingError(f"plate model {path} is missing: {INSTALL_HINT}, or set plates.models_dir")
    return models


def recogniser_dictionary(session: ort.InferenceSession, name: str = "recogniser") -> list[str]:
    """The recogniser's characters in class order after the CTC blank, from its ``character`` metadata, plus the
    trailing space class PaddleOCR appends (``use_space_char``)."""
    meta: dict[str, str] = session.get_modelmeta().custom_metadata_map
    if "character" not in meta:
        raise ValueError(f"{name}: no 'character' metadata; give the dictionary explicitly")
    return [*meta["character"].splitlines(), " "]
