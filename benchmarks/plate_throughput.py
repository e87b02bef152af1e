"""Plate-reading throughput: reads per second on one core, on all cores, and on a GPU when there is one.

    python -m benchmarks.plate_throughput [--reads 120] [--images 30] [--out FILE]

The inputs are generated vehicle crops (``devstack.plate_render``, clean, the three plate shapes in
turn, about 230x290 to 460x330 pixels). Measured in the same run:

- ``one_core``: one reader with ONNX Runtime ``intra_op_threads=1``, one call at a time. ``full_read``
  is the product's ``read()`` (text detection on the crop + recognition of the candidate lines +
  format check); ``detector_only`` and ``recogniser_only`` (the plate's lines, pre-cut) are the
  baselines that split its cost.
- ``all_cores``: (a) one reader with ``intra_op_threads=0`` (ONNX Runtime uses every core for each
  call), one call at a time; (b) one reader with 1 thread per call shared by one worker thread per core
  (``read`` is thread-safe), the layout that serves several cameras. ``per_core`` divides by the cores.
- ``gpu``: the same reader on ``CUDAExecutionProvider`` when this onnxruntime build offers it and a GPU
  answers; otherwise ``"not measured: no GPU on this box"``.

Warm-up reads (model load, first allocations) are not timed.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from benchmarks.common import RESULTS_DIR, save_result
from devstack.plate_render import SHAPES, render_sample
from edge_agent.plates.config import PlateReadingConfig
from edge_agent.plates.ppocr_backend import PpocrPlateReader
from edge_agent.plates.recognise import crop_quad

Image = npt.NDArray[np.uint8]
WARMUP = 3


def timed(calls: int, work: Callable[[int], object]) -> dict[str, float]:
    """Run ``work(i)`` ``calls`` times after a warm-up; reads per second and mean milliseconds."""
    for i in range(WARMUP):
        work(i)
    start = time.perf_counter()
    for i in range(calls):
        work(i)
    elapsed = time.perf_counter() - start
    return {"calls": calls, "per_s": round(calls / elapsed, 2), "ms_per_call": round(1000 * elapsed / calls, 2)}


def threaded(calls: int, workers: int, work: Callable[[int], object]) -> dict[str, float]:
    """``calls`` reads shared by ``workers`` threads; aggregate reads per second."""
    for i in range(WARMUP):
        work(i)
    counter = iter(range(calls))
    lock = threading.Lock()

    def loop() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            work(i)

    threads = [threading.Thread(target=loop) for _ in range(workers)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return {"calls": calls, "workers": workers, "per_s": round(calls / elapsed, 2)}


def measure_reader(reader: PpocrPlateReader, images: Sequence[Image], reads: int) -> dict[str, Any]:
    """Full read and its two baselines (detector alone, recogniser alone on pre-cut lines)."""
    lines = [[crop_quad(img, box.quad) for box in reader.detect_lines(img)] for img in images]
    return {
        "full_read": timed(reads, lambda i: reader.read(images[i % len(images)])),
        "detector_only": timed(reads, lambda i: reader.detector(images[i % len(images)])),
        "recogniser_only": timed(reads, lambda i: reader.recogniser(lines[i % len(lines)])),
    }


def gpu_result(images: Sequence[Image], reads: int) -> dict[str, Any] | str:
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "not measured: no GPU on this box (this onnxruntime build has no CUDAExecutionProvider)"
    reader = PpocrPlateReader(PlateReadingConfig(providers=("cuda",), intra_op_threads=1))
    if reader.providers[0] != "CUDAExecutionProvider":
        return f"not measured: no GPU on this box (CUDA provider did not start; running on {reader.providers[0]})"
    return {"providers": reader.providers, **measure_reader(reader, images, reads)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=120, help="timed calls per measurement (default 120)")
    parser.add_argument("--images", type=int, default=30, help="distinct crops cycled through (default 30)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    images = [render_sample(50_000 + i, "clean", SHAPES[i % len(SHAPES)]).image for i in range(args.images)]
    cpu = ("cpu",)
    one = PpocrPlateReader(PlateReadingConfig(providers=cpu, intra_op_threads=1))
    one_core = measure_reader(one, images, args.reads)
    print(f"1 core: full read {one_core['full_read']['per_s']}/s, detector {one_core['detector_only']['per_s']}/s, "
          f"recogniser {one_core['recogniser_only']['per_s']}/s", flush=True)  # fmt: skip
    wide = PpocrPlateReader(PlateReadingConfig(providers=cpu, intra_op_threads=0))
    intra = timed(args.reads, lambda i: wide.read(images[i % len(images)]))
    workers = threaded(args.reads, cores, lambda i: one.read(images[i % len(images)]))
    all_cores = {
        "cores": cores,
        "one_call_all_threads": intra,
        "one_thread_per_worker": workers,
        "per_core": round(max(intra["per_s"], workers["per_s"]) / cores, 2),
    }
    print(f"{cores} cores: intra-op {intra['per_s']}/s, {cores} workers {workers['per_s']}/s", flush=True)
    gpu = gpu_result(images, args.reads)
    print(f"gpu: {gpu if isinstance(gpu, str) else gpu['full_read']}", flush=True)
    result = {
        "images": args.images,
        "image_sizes": sorted({f"{img.shape[1]}x{img.shape[0]}" for img in images})[:5],
        "one_core": one_core,
        "reads_per_s_per_core": one_core["full_read"]["per_s"],
        "all_cores": all_cores,
        "gpu": gpu,
        "config": PlateReadingConfig().model_dump(mode="json"),
        "load_average_1_5_15": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in os.getloadavg()],
        },
        "note": "other jobs may share the box: compare load_average with cpu_count before trusting a number",
    }
    out = args.out
    path = save_result("plate_throughput", result, out.parent if out else RESULTS_DIR)
    if out is not None and path != out:
        path.rename(out)
        path = out
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
