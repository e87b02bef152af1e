"""Decoder choice (auto | cpu | nvdec): NVDEC when usable, else the CPU with the reason in the stats.

Build machines have no GPU: there, the real probe must say why NVDEC is unusable, and a
reader that is told NVDEC works (a fake probe) must hit the real failure in PyAV and
fall back to the CPU. On a GPU machine the same tests check that NVDEC is really used.
"""

from __future__ import annotations

from pathlib import Path

import av.error
import pytest

from edge_agent.sources.decoders import (
    DecoderChoice,
    choose_decoder,
    confirm_for_stream,
    hwaccel_for,
    is_source_failure,
    probe_nvdec,
)
from edge_agent.sources.pyav_reader import PyAVReader
from tests.unit.test_reader_pyav import offline, write_h264

NVDEC_HERE = probe_nvdec() is None


def test_choice_follows_the_request_and_the_probe() -> None:
    assert choose_decoder("cpu", lambda: None) == DecoderChoice("cpu", "decoder: cpu in the config")
    assert choose_decoder("auto", lambda: None).kind == "nvdec"
    assert choose_decoder("nvdec", lambda: None).kind == "nvdec"
    fallback = choose_decoder("nvdec", lambda: "no usable CUDA device (PermissionError: denied)")
    assert fallback.kind == "cpu"
    assert "NVDEC is unavailable: no usable CUDA device (PermissionError: denied)" in fallback.reason
    assert hwaccel_for(fallback) is None
    assert hwaccel_for(choose_decoder("auto", lambda: None)) is not None


def test_a_codec_nvdec_cannot_decode_goes_to_the_cpu_with_a_reason() -> None:
    nvdec = DecoderChoice("nvdec", "CUDA device available")
    assert confirm_for_stream(nvdec, "h264", is_hwaccel=True) == nvdec
    moved = confirm_for_stream(nvdec, "mjpeg", is_hwaccel=False)
    assert moved == DecoderChoice("cpu", "NVDEC cannot decode mjpeg; decoding on the CPU")


def test_unreachable_sources_are_not_blamed_on_nvdec() -> None:
    assert is_source_failure(av.error.ExitError(-1414092869, "Immediate exit requested"))
    assert is_source_failure(ConnectionRefusedError(111, "Connection refused"))
    assert is_source_failure(FileNotFoundError("absent.mp4"))
    assert not is_source_failure(av.error.PermissionError(1, "Operation not permitted"))


def test_the_real_probe_names_why_nvdec_is_unusable_or_finds_it() -> None:
    problem = probe_nvdec()
    assert problem is None or problem.startswith(("no usable CUDA device (", "this FFmpeg build has no CUDA"))


@pytest.mark.parametrize("request_", ["auto", "nvdec"])
def test_asking_for_nvdec_without_a_gpu_decodes_on_the_cpu_and_says_why(request_: str, tmp_path: Path) -> None:
    video = write_h264(tmp_path / "clip.mp4", [i * 100 for i in range(8)])
    reader = PyAVReader("cam-1", offline(video, decoder=request_))
    frames = list(reader.frames())

    stats = reader.stats()
    assert len(frames) == 8
    if NVDEC_HERE:
        assert stats.decoder == "nvdec"
    else:
        assert stats.decoder == "cpu"
        assert "NVDEC is unavailable: " in stats.decoder_reason
        assert (
            stats.decoder_reason
            == f"decoder: {request_}, but NVDEC is unavailable: {probe_nvdec()}; decoding on the CPU"
        )


def test_nvdec_that_fails_in_pyav_falls_back_to_the_cpu_instead_of_failing_the_camera(tmp_path: Path) -> None:
    # The probe claims a GPU, so the reader really opens the file with PyAV's CUDA hwaccel.
    video = write_h264(tmp_path / "clip.mp4", [i * 100 for i in range(8)])
    reader = PyAVReader("cam-1", offline(video, decoder="nvdec", max_reconnects=0), nvdec_probe=lambda: None)
    frames = list(reader.frames())

    stats = reader.stats()
    assert len(frames) == 8
    assert stats.reconnects == 0
    if NVDEC_HERE:
        assert stats.decoder == "nvdec"
    else:
        assert stats.decoder == "cpu"
        assert stats.decoder_reason.startswith("NVDEC failed while opening (")
        assert stats.decoder_reason.endswith("); decoding on the CPU")


def test_cpu_request_never_probes(tmp_path: Path) -> None:
    def probe() -> str | None:
        raise AssertionError("decoder: cpu must not touch CUDA")

    video = write_h264(tmp_path / "clip.mp4", [0, 100])
    reader = PyAVReader("cam-1", offline(video, decoder="cpu"), nvdec_probe=probe)
    assert len(list(reader.frames())) == 2
    assert (reader.stats().decoder, reader.stats().decoder_reason) == ("cpu", "decoder: cpu in the config")
