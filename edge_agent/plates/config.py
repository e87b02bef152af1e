"""Configuration of plate reading: which backend, its model files and thresholds, and the per-track vote."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_agent.perception.detectors.onnx_session import ProviderName

PlateBackend = Literal["ppocr", "onnx"]


class PlateVoteConfig(BaseModel):
    """Which frames of a track are read, and how the reads of one track become its plate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_box_width_px: int = Field(
        default=80,
        ge=1,
        le=10_000,
        description="Read a vehicle only when its box is at least this wide (pixels): a smaller plate has "
        "characters too small to read, and the read would cost time for nothing.",
    )
    min_box_height_px: int = Field(
        default=60, ge=1, le=10_000, description="Read a vehicle only when its box is at least this tall (pixels)."
    )
    edge_margin: float = Field(
        default=0.01,
        ge=0,
        le=0.2,
        description="Skip boxes touching the frame border within this share of the frame: the plate may be cut.",
    )
    min_interval_s: float = Field(
        default=0.4,
        ge=0,
        le=60,
        description="At most one read per track in this many seconds (frames close in time add little).",
    )
    max_reads_per_track: int = Field(
        default=5, ge=1, le=100, description="Stop reading a track after this many reads (its vote is settled)."
    )
    min_confidence: float = Field(
        default=0.5, ge=0, le=1, description="Reads less confident than this are counted but do not vote."
    )
    max_tracks: int = Field(
        default=512,
        ge=1,
        le=100_000,
        description="Tracks remembered at once; beyond it the least recently updated one is evicted (counted).",
    )
    track_ttl_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="``expire`` closes a track not updated (asked or read) for this long and returns its plate.",
    )


class PlateReadingConfig(BaseModel):
    """How plates are found and read on a vehicle crop, and how reads are voted per track."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: PlateBackend = Field(
        default="ppocr",
        description="'ppocr': the PP-OCRv4 text detector and recogniser of the rapidocr-onnxruntime wheel, run "
        "by our own code; 'onnx': your own plate detector and/or recogniser (see docs/plates.md, I/O contract).",
    )
    models_dir: Path | None = Field(
        default=None,
        description="ppocr: folder holding ch_PP-OCRv4_det_infer.onnx and ch_PP-OCRv4_rec_infer.onnx; default: "
        "the installed rapidocr-onnxruntime wheel's models folder.",
    )
    detector_path: Path | None = Field(
        default=None,
        description="onnx: your plate detector (input [1,3,S,S] RGB 0..1 letterboxed; output [N,5] or [1,N,5] "
        "x1,y1,x2,y2,score in input pixels, after NMS). None: the PP-OCR text detector finds the plate.",
    )
    detector_input_size: int = Field(default=320, ge=32, le=2048, description="onnx: square detector input size.")
    detector_score: float = Field(default=0.4, ge=0, le=1, description="onnx: minimum detector score of a plate.")
    recogniser_path: Path | None = Field(
        default=None,
        description="onnx: your recogniser (input [1,3,H,W]; output [1,T,C] CTC probabilities or logits, blank=0).",
    )
    alphabet: str | None = Field(
        default=None,
        description="onnx: the recogniser's characters in class order after the blank (class i+1 = alphabet[i]).",
    )
    recogniser_height: int = Field(default=48, ge=8, le=256, description="onnx: recogniser input height (pixels).")
    recogniser_width: int | None = Field(
        default=None,
        ge=8,
        le=2048,
        description="onnx: fixed recogniser input width; None = keep the aspect ratio (dynamic-width models).",
    )
    recogniser_mean: float = Field(default=0.5, description="onnx: input = (pixel/255 - mean) / std, RGB.")
    recogniser_std: float = Field(default=0.5, gt=0, description="onnx: see recogniser_mean.")
    split_two_line: bool = Field(
        default=True,
        description="onnx: a plate taller than wide/2.5 is cut into its top and bottom halves, read side by side "
        "(for recognisers trained on one-line text).",
    )
    det_max_side: int = Field(
        default=480,
        ge=64,
        le=2048,
        description="ppocr: the vehicle crop is scaled so its longer side is this many pixels (a multiple of 32 "
        "is used) before text detection; larger finds smaller plates and costs more.",
    )
    det_threshold: float = Field(default=0.3, ge=0, le=1, description="ppocr: text-probability threshold (DB).")
    det_box_threshold: float = Field(
        default=0.5, ge=0, le=1, description="ppocr: minimum mean text probability of a detected text box."
    )
    det_unclip_ratio: float = Field(
        default=1.6, ge=1, le=4, description="ppocr: how much a text kernel box is grown (DB 'unclip')."
    )
    min_confidence: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="A reading less confident than this is not returned (read() gives None).",
    )
    max_candidates: int = Field(
        default=8, ge=1, le=64, description="Text lines recognised per crop at most (the most plate-like first)."
    )
    intra_op_threads: int = Field(
        default=1,
        ge=0,
        le=256,
        description="ONNX Runtime threads per inference; 0 = all cores. 1 suits a worker thread beside the video "
        "pipeline; raise it when plate reading has cores of its own.",
    )
    providers: tuple[ProviderName, ...] = Field(
        default=("cuda", "cpu"),
        min_length=1,
        description="ONNX Runtime execution providers to try in order; 'cpu' is always the last resort.",
    )
    device_id: int = Field(default=0, ge=0, le=64, description="GPU index for the cuda/tensorrt providers.")
    vote: PlateVoteConfig = Field(
        default_factory=PlateVoteConfig, description="Which frames are read and how reads become a track's plate."
    )

    @model_validator(mode="after")
    def _backend_files(self) -> PlateReadingConfig:
        if self.backend == "onnx":
            if self.recogniser_path is None:
                raise ValueError("backend 'onnx' needs recogniser_path (and alphabet)")
            if not self.alphabet:
                raise ValueError("backend 'onnx' needs alphabet: the recogniser's characters after the CTC blank")
        return self
