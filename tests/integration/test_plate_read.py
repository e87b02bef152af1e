"""Real plate reading: the PP-OCR models of the rapidocr-onnxruntime wheel read rendered plates exactly.

Also the "onnx" backend's I/O contract, end to end on real ONNX Runtime sessions: a user detector
(a tiny model whose output is a fixed box, built here) and a user recogniser (the PP-OCR recogniser
file, which fits the contract), and the thread-safety of ``read``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from devstack.plate_render import RenderedPlate, render_sample
from edge_agent.plates.config import PlateReadingConfig
from edge_agent.plates.models import PlateModelsMissingError, locate_ppocr_models, recogniser_dictionary
from edge_agent.plates.ppocr_backend import PpocrPlateReader
from edge_agent.plates.reader import PlateInputError, PlateReader, build_plate_reader
from edge_agent.plates.vote import PlateVoter, crop_quality

pytestmark = pytest.mark.integration

CASES = [
    (101, "clean", "car_long"),
    (102, "clean", "car_square"),
    (103, "clean", "motorbike"),
    (104, "blur_mild", "car_long"),
    (105, "angle_mild", "motorbike"),
    (106, "low_light_mild", "car_square"),
]


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    try:
        locate_ppocr_models()
    except PlateModelsMissingError as error:
        pytest.fail(f"{error}", pytrace=False)
    return build_plate_reader(PlateReadingConfig(providers=("cpu",)))


@pytest.mark.parametrize(("seed", "condition", "shape"), CASES)
def test_reads_rendered_plates_exactly(reader: PlateReader, seed: int, condition: str, shape: str) -> None:
    sample = render_sample(seed, condition, shape)  # type: ignore[arg-type]
    read = reader.read(sample.image)
    assert read is not None, sample.truth
    assert read.text == sample.truth
    assert read.format_valid
    assert read.layout == sample.layout
    assert read.plate_colour == sample.spec.colour
    assert read.confidence > 0.8
    assert read.box_xyxy is not None
    x1, y1, x2, y2 = read.box_xyxy
    tx1, ty1, tx2, ty2 = sample.plate_box
    assert x1 < (tx1 + tx2) / 2 < x2  # the box found is on the plate
    assert y1 < (ty1 + ty2) / 2 < y2


def test_a_vehicle_without_a_plate_reads_nothing(reader: PlateReader) -> None:
    sample = render_sample(7, "clean", "car_long")
    x1, y1, x2, y2 = sample.plate_box
    blank = sample.image.copy()
    blank[max(0, y1 - 4) : y2 + 4, max(0, x1 - 4) : x2 + 4] = blank[5, 5]
    assert reader.read(blank) is None


def test_bad_input_is_refused_clearly(reader: PlateReader) -> None:
    with pytest.raises(PlateInputError, match="HxWx3 uint8"):
        reader.read(np.zeros((64, 64), np.uint8))
    assert isinstance(reader, PpocrPlateReader)
    assert reader.counters.snapshot()["rejected_input"] >= 1


def test_read_is_thread_safe(reader: PlateReader) -> None:
    samples = [render_sample(200 + i, "clean") for i in range(6)]
    sequential = [reader.read(s.image) for s in samples]
    with ThreadPoolExecutor(max_workers=3) as pool:
        parallel = list(pool.map(lambda s: reader.read(s.image), samples * 2))
    assert parallel == sequential * 2
    assert [r.text if r else None for r in sequential] == [s.truth for s in samples]


def test_voting_over_reads_of_one_vehicle(reader: PlateReader) -> None:
    first = render_sample(300, "clean", "motorbike")
    voter = PlateVoter(PlateReadingConfig().vote)
    for view, condition in enumerate(("blur_mild", "angle_mild", "low_light_mild")):
        sample = render_sample(301 + view, condition, spec=first.spec)  # type: ignore[arg-type]
        voter.add(1, reader.read(sample.image), crop_quality(sample.image), float(view), crop=sample.image)
    voted = voter.finish(1)
    assert voted is not None
    assert voted.text == first.truth
    assert voted.reads == 3
    assert voted.best_crop is not None


def fixed_box_detector(path: Path, size: int, box: tuple[float, float, float, float]) -> Path:
    """A "user plate detector": input [1,3,S,S], output [1,1,5] = the given box (input pixels) and 0.9."""
    value = np.array([[[*box, 0.9]]], np.float32)
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["boxes"], value=numpy_helper.from_array(value, "boxes_v"))],
        "fixed_box",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 1, 5])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def onnx_config(tmp_path: Path, sample: RenderedPlate, *, with_detector: bool) -> PlateReadingConfig:
    rec = locate_ppocr_models().rec
    alphabet = "".join(recogniser_dictionary(ort.InferenceSession(str(rec), providers=["CPUExecutionProvider"])))
    detector = None
    if with_detector:
        # The letterbox of the crop into 320x320, applied to the true plate box (the "model" is exact).
        h, w = sample.image.shape[:2]
        scale = 320 / max(h, w)
        pad_x, pad_y = (320 - w * scale) / 2, (320 - h * scale) / 2
        x1, y1, x2, y2 = sample.plate_box
        box = (x1 * scale + pad_x, y1 * scale + pad_y, x2 * scale + pad_x, y2 * scale + pad_y)
        detector = fixed_box_detector(tmp_path / "det.onnx", 320, box)
    return PlateReadingConfig(
        backend="onnx",
        detector_path=detector,
        recogniser_path=rec,
        alphabet=alphabet,
        recogniser_mean=0.5,
        recogniser_std=0.5,
        providers=("cpu",),
    )


@pytest.mark.parametrize("with_detector", [True, False])
def test_onnx_backend_contract(tmp_path: Path, with_detector: bool) -> None:
    sample = render_sample(401, "clean", "car_long")
    reader = build_plate_reader(onnx_config(tmp_path, sample, with_detector=with_detector))
    read = reader.read(sample.image)
    assert read is not None
    assert read.text == sample.truth
    assert read.layout == "one_line"
    assert read.format_valid
