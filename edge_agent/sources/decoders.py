"""Which decoder a camera uses: NVDEC (through FFmpeg's CUDA hwaccel) when asked and usable, else the CPU.

NVDEC is reached through PyAV's hardware acceleration: ``av.open(url, hwaccel=HWAccel("cuda"))``
gives each stream's native FFmpeg decoder (h264, hevc) a CUDA device context, so the
bitstream is decoded by NVDEC and each picture is copied back to system memory (NV12)
before the BGR conversion. It is chosen over the ``h264_cuvid``/``hevc_cuvid`` wrapper
decoders because it keeps FFmpeg's own parser, ``skip_frame`` (keyframe-only decode) and
error concealment, and needs no per-codec decoder name.

Whether NVDEC is usable is decided by really creating a CUDA device context once per
process (``probe_nvdec``): the FFmpeg build may lack CUDA, the driver may be missing, or
the box has no GPU (here: ``PermissionError: Operation not permitted`` from
``av_hwdevice_ctx_create``). ``auto`` and ``nvdec`` then fall back to the CPU, and the
reason travels in the reader's stats (``decoder``, ``decoder_reason``); nothing fails.
A stream whose codec NVDEC cannot decode (PyAV leaves its context without hwaccel) is
decoded on the CPU with that reason too. An open that fails with NVDEC for a reason other
than an unreachable source (device out of memory or sessions) is retried at once on the
CPU, and an NVDEC that fails while decoding makes the reader use the CPU from its next
connection on; either way the reader stays on the CPU and says why.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import av
import av.codec.hwaccel
import av.error

from edge_agent.sources.config import DecoderRequest
from edge_agent.sources.status import DecoderKind

NvdecProbe = Callable[[], str | None]
"""Returns None when NVDEC can be used, else why not."""

PROBE_CODEC = "h264"
"""Every NVIDIA GPU with NVDEC decodes H.264; HEVC support is then checked per stream."""


@dataclass(frozen=True, slots=True)
class DecoderChoice:
    kind: DecoderKind
    reason: str


@functools.cache
def probe_nvdec() -> str | None:
    """None when a CUDA device context can be created for decoding here, else the reason (cached)."""
    if "cuda" not in av.codec.hwaccel.hwdevices_available():
        return "this FFmpeg build has no CUDA support"
    try:
        av.codec.hwaccel.HWAccel("cuda", allow_software_fallback=False).create(av.Codec(PROBE_CODEC, "r"))
    except Exception as error:  # any failure means "no NVDEC here"; the reason is kept
        return f"no usable CUDA device ({type(error).__name__}: {error})"
    return None


def choose_decoder(requested: DecoderRequest, probe: NvdecProbe) -> DecoderChoice:
    """The decoder for the next connection; never fails, a fallback says why."""
    if requested == "cpu":
        return DecoderChoice("cpu", "decoder: cpu in the config")
    problem = probe()
    if problem is None:
        return DecoderChoice("nvdec", f"decoder: {requested}, CUDA device available")
    return DecoderChoice("cpu", f"decoder: {requested}, but NVDEC is unavailable: {problem}; decoding on the CPU")


def hwaccel_for(choice: DecoderChoice) -> av.codec.hwaccel.HWAccel | None:
    """What to pass to ``av.open``; software fallback lets FFmpeg decode a profile NVDEC rejects."""
    if choice.kind != "nvdec":
        return None
    return av.codec.hwaccel.HWAccel("cuda", allow_software_fallback=True)


def confirm_for_stream(choice: DecoderChoice, codec_name: str, is_hwaccel: bool) -> DecoderChoice:
    """After opening: NVDEC was requested, but does this stream's decoder really use it?"""
    if choice.kind == "nvdec" and not is_hwaccel:
        return DecoderChoice("cpu", f"NVDEC cannot decode {codec_name}; decoding on the CPU")
    return choice


def nvdec_failed(error: BaseException, stage: str) -> DecoderChoice:
    """NVDEC failed at ``stage`` (opening, decoding): the CPU from now on, with the error as the reason."""
    return DecoderChoice("cpu", f"NVDEC failed while {stage} ({type(error).__name__}: {error}); decoding on the CPU")


def is_source_failure(error: BaseException) -> bool:
    """True for errors that say the SOURCE is unreachable (then the CPU would fail the same way)."""
    return isinstance(
        error, av.error.ExitError | ConnectionError | TimeoutError | FileNotFoundError | av.error.HTTPError
    )
