"""How to read one camera or file (``ReaderConfig``); every knob has its default and reason here."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from ioc_common.backoff import BackoffConfig

LIVE_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://", "srt://")

DecoderRequest = Literal["auto", "cpu", "nvdec"]
DecodeMode = Literal["all", "keyframes"]
SamplingMode = Literal["stream", "grab"]


class ReaderConfig(BaseModel):
    """How to read one camera or file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        min_length=1,
        description="rtsp://, rtsps://, http(s):// or a local file path (file:// allowed).",
    )
    rtsp_transport: Literal["tcp", "udp"] = Field(
        default="tcp", description="RTSP transport: tcp survives lossy links and NAT; udp has less latency."
    )
    realtime: bool = Field(
        default=True,
        description="Files only: pace frames at their own rate so a file behaves like a camera. "
        "Turn off for offline analysis (as fast as decoding allows).",
    )
    loop: bool = Field(default=False, description="Files only: start again from the beginning at the end.")
    on_end: Literal["reconnect", "stop"] = Field(
        default="reconnect",
        description="When the stream ends (EOF, server closed): reopen it after a backoff, or stop the source. "
        "Failures (cannot open, read timeout) always reconnect unless max_reconnects is reached.",
    )
    open_timeout_s: float = Field(default=10.0, gt=0, le=300, description="Seconds to wait for the source to open.")
    read_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Seconds without any data before an open connection counts as stalled and is reopened; "
        "also bounds how long stop() waits for a blocked read.",
    )
    stall_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds without a decoded frame, while data still arrives, before the stream counts as "
        "stalled and is reopened (with decode: keyframes, without an undamaged video packet).",
    )
    reconnect: BackoffConfig = Field(
        default_factory=lambda: BackoffConfig(base_s=1.0, ceiling_s=30.0),
        description="Backoff between reconnect attempts (exponential, full jitter, ceiling).",
    )
    fast_reconnect_ceiling_s: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="Ceiling of the reconnect delay while the camera was live within fast_reconnect_window_s, "
        "so a camera that comes back gives a frame within about 5 s (delay + open + first keyframe). "
        "Never above reconnect.ceiling_s.",
    )
    fast_reconnect_window_s: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="How long after its last frame a camera is retried with the fast ceiling; 0 = never.",
    )
    max_reconnects: int | None = Field(
        default=None, ge=0, description="Give up after this many reconnects in a row without a frame; null = never."
    )
    start_time: AwareDatetime | None = Field(
        default=None, description="Files only: wall-clock time of the first frame; null = when reading started."
    )
    decoder: DecoderRequest = Field(
        default="auto",
        description="auto: NVDEC when a CUDA device and a decoder for the codec exist, else CPU; "
        "nvdec: ask for NVDEC (falls back to CPU with the reason in the stats, never fails); cpu: software.",
    )
    decode: DecodeMode = Field(
        default="all",
        description="all: every frame; keyframes: only keyframes are decoded (cheap; for cameras that need "
        "about one frame a minute, with max_fps to thin them further).",
    )
    max_fps: float | None = Field(
        default=None,
        gt=0,
        le=240,
        description="Hand analytics at most this many frames per second of stream time (by PTS); the others are "
        "decoded (P-frames need them) but never converted to BGR. With decode: keyframes, only the first keyframe "
        "at or after each due time reaches the decoder (the others are read and dropped, counted): a camera "
        "sampled once a minute costs little more than receiving its stream. null = every decoded frame.",
    )
    max_decode_lag_s: float | None = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Live sources: when decoded frames come out this many seconds later than the stream's own "
        "pace (the box cannot decode the camera in real time), decode keyframes only until caught up, so "
        "latency stays bounded (counted in fell_behind / frames_skipped_behind). null = never skip.",
    )
    corrupt_frames: Literal["drop", "deliver"] = Field(
        default="drop",
        description="Frames FFmpeg decoded with concealed errors (smeared blocks until the next keyframe): "
        "drop keeps them from miscounting; deliver analyses them anyway. Counted either way.",
    )
    timestamps: Literal["sender_report", "arrival"] = Field(
        default="sender_report",
        description="Live sources: sender_report steers timestamps (slewing, never jumping) to the camera's clock "
        "from RTCP sender reports once one has arrived and agrees with ours within max_clock_offset_s; arrival "
        "(and until then) anchors the stream's PTS on our clock at the first frame of each connection.",
    )
    max_clock_offset_s: float = Field(
        default=2.0,
        gt=0,
        le=86_400,
        description="Largest difference between the camera's clock (RTCP) and ours, network delay included, "
        "for the camera's clock to be trusted.",
    )

    sampling: SamplingMode = Field(
        default="stream",
        description="stream: stay connected and read the stream (decode, max_fps apply; with decode: keyframes "
        "and max_fps only the due keyframe is decoded). grab: live sources only; every grab_every_s connect, "
        "decode the first keyframe, disconnect (about 10x less CPU than a connection for one frame a minute; "
        "benchmarks/site_sampling.md). decode, max_fps, on_end and the stall watchdog's cadence do not apply to "
        "grab; failed grabs are retried on later slots after the reconnect backoff.",
    )
    grab_every_s: float = Field(
        default=60.0,
        ge=1,
        le=86_400,
        description="sampling: grab only: seconds between two grabs, on a fixed grid from the first one (a slow "
        "or failed grab never makes the next ones bunch up; missed slots are counted).",
    )

    @model_validator(mode="after")
    def _grab_needs_a_live_source(self) -> ReaderConfig:
        if self.sampling == "grab" and not self.is_live:
            raise ValueError(
                f"sampling: grab needs a live source ({', '.join(LIVE_SCHEMES)}); a file is read with sampling: "
                "stream (decode: keyframes and max_fps to thin it)"
            )
        return self

    @property
    def is_live(self) -> bool:
        return self.url.lower().startswith(LIVE_SCHEMES)

    @property
    def is_rtsp(self) -> bool:
        return self.url.lower().startswith(("rtsp://", "rtsps://"))
