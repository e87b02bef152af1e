"""Settings of the motion backend (background subtraction), embedded in ``DetectorConfig.motion``.

Sizes are fractions of the frame so one config fits every resolution; kernel sizes are in
pixels of the downscaled image the backend works on (``process_width`` wide).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from event_contract.taxonomy import VehicleClass

Subtractor = Literal["mog2", "knn"]


class SizeClass(BaseModel):
    """Blobs whose box covers at most ``max_area`` of the frame get ``label`` (first match wins)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: VehicleClass = Field(description="Taxonomy class given to blobs of this size.")
    max_area: float = Field(
        gt=0, le=1, description="Upper bound of the box area, as a fraction of the frame area, for this class."
    )


class MotionConfig(BaseModel):
    """How moving blobs are found and turned into vehicle boxes (backend ``motion``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subtractor: Subtractor = Field(
        default="mog2",
        description="OpenCV background model: 'mog2' (measured best on the sample clips: one clean blob per car) "
        "or 'knn' (misses most of each car on the top-down sample; kept for comparison).",
    )
    process_width: int = Field(
        default=320,
        ge=64,
        le=1920,
        description="Frames are downscaled to this width (aspect kept) before any work: cost and noise both drop.",
    )
    blur_kernel: int = Field(
        default=5, ge=1, le=31, description="Gaussian blur before subtraction (odd, pixels; 1 = none): sensor noise."
    )
    history: int = Field(
        default=500,
        ge=10,
        le=100_000,
        description="Frames the background model remembers; the steady learning rate is 1/history unless "
        "learning_rate is set.",
    )
    learning_rate: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Steady background learning rate per frame; None = 1/history. Higher forgets parked cars "
        "sooner but also absorbs slow traffic into the background.",
    )
    warmup_frames: int = Field(
        default=12,
        ge=1,
        le=10_000,
        description="Frames after start (and after a global change) that only teach the background model: no "
        "detections, learning rate 1/(frames seen) so the young model is an even average of them; the steady "
        "rate applies from then on, so a car entering a young model is not learnt as background.",
    )
    hold_confidence: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Blobs at least this confident are held out of the background update (the model learns the "
        "background it already has there instead), so a vehicle that stops on the line, in a queue or at a red "
        "light stays one whole blob instead of fading into the road piece by piece and leaving a ghost when it "
        "drives off. 1 = never hold (every pixel learns at the steady rate).",
    )
    hold_frames: int = Field(
        default=600,
        ge=0,
        le=1_000_000,
        description="A pixel is held back at most this many consecutive frames (600: 2 minutes at 5 analysed "
        "frames/s); then it is learnt like any other, so a parked car or a ghost left by a car that stood "
        "there during warm-up joins the background after hold_frames plus the ordinary absorption time.",
    )
    background_ratio: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="MOG2: share of a pixel's history its background must explain. A vehicle that stops is "
        "absorbed once the road's share falls below this, after ln(ratio)/ln(1 - rate) frames (53 at 0.9 and "
        "1/500, 170 at 0.7): lower keeps queues at a red light in view longer, but on footage with automatic "
        "exposure it also turns flickering road pixels into false blobs (0.7 put blobs on 43 % of the empty "
        "frames of the sample clip, 0.9 on 4 %).",
    )
    var_threshold: float = Field(
        default=16.0, gt=0, description="MOG2: squared Mahalanobis distance above which a pixel is foreground."
    )
    knn_dist2_threshold: float = Field(
        default=400.0, gt=0, description="KNN: squared colour distance above which a pixel is foreground."
    )
    detect_shadows: bool = Field(
        default=True,
        description="Label pixels that are a darker copy of the background as shadow and drop them, so a car's "
        "shadow neither enlarges its box nor joins two cars.",
    )
    shadow_threshold: float = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="A pixel between this fraction of the background's brightness and the background itself "
        "(same colour) counts as shadow.",
    )
    compensate_exposure: bool = Field(
        default=True,
        description="Undo the camera's automatic exposure before subtraction: each frame is fitted robustly to "
        "the background as (gain plane) * background + offset. A white car entering a top-down view "
        "darkens the whole picture by half; without this every such frame is foreground.",
    )
    open_kernel: int = Field(
        default=3, ge=1, le=31, description="Morphological opening (pixels; 1 = none): removes speckle."
    )
    close_kernel: int = Field(
        default=5,
        ge=1,
        le=63,
        description="Morphological closing (pixels; 1 = none): fills windows and seams. Larger kernels also join "
        "neighbouring vehicles in dense traffic (9 undercounted queues and motorbikes beside buses).",
    )
    min_fragment_area: float = Field(
        default=0.0002,
        ge=0,
        lt=1,
        description="Connected components smaller than this fraction of the frame are noise, dropped before "
        "fragments are merged.",
    )
    merge_gap: float = Field(
        default=0.005,
        ge=0,
        lt=1,
        description="Fragments whose boxes are closer than this fraction of the frame width (in both x and y) "
        "merge into one vehicle box (boxes that overlap always merge). 0.005 joins only fragments that nearly "
        "touch; wider gaps join a car split by its dark rear window but also a motorbike riding beside a bus.",
    )
    stack_gap: float = Field(
        default=0.02,
        ge=0,
        lt=1,
        description="Fragments stacked one above the other (x ranges overlapping by stack_overlap) merge across "
        "a vertical gap up to this fraction of the frame width (0 = only merge_gap): a road-grey van or car is "
        "seen as its dark rear window over its lights, with the grey panel between them missing. Side by side "
        "neighbours do not overlap in x, so they stay apart. Measured on the scenario clips (0.02 against 0): "
        "per-direction count errors 8 against 12 vehicles on the tuning seeds, 15 against 18 on held-out seeds. "
        "Assumes traffic runs roughly up and down the picture (pole and top-down views).",
    )
    stack_overlap: float = Field(
        default=0.6, gt=0, le=1, description="Least x overlap, as a share of the narrower box, for stack_gap."
    )
    min_area: float = Field(
        default=0.001,
        gt=0,
        lt=1,
        description="Least foreground area of a (merged) blob, as a fraction of the frame area (0.001: about a "
        "motorbike at the middle of a 960x540 pole view); smaller ones are dropped. The largest box kept is the "
        "detector's max_box_area_fraction.",
    )
    max_foreground_fraction: float = Field(
        default=0.6,
        gt=0,
        le=1,
        description="When more of the frame than this differs from the background (foreground or shadow: lights "
        "switched on, camera moved), the frame "
        "gives no detections and the model warms up again (counted in global_changes).",
    )
    default_class: VehicleClass = Field(
        default="other_vehicle", description="Class of blobs larger than every size class (all blobs by default)."
    )
    size_classes: tuple[SizeClass, ...] = Field(
        default=(),
        description="Optional class by box size, smallest first, e.g. motorbike up to 0.01, car up to 0.06 "
        "(larger: default_class, e.g. truck). Sizes shrink with distance, so use it on top-down or "
        "near-orthogonal views only.",
    )

    @model_validator(mode="after")
    def _check(self) -> MotionConfig:
        if self.blur_kernel % 2 == 0:
            raise ValueError(f"blur_kernel must be odd (Gaussian kernels are centred), got {self.blur_kernel}")
        limits = [size.max_area for size in self.size_classes]
        if limits != sorted(set(limits)):
            raise ValueError(f"size_classes must be ordered by strictly increasing max_area, got {limits}")
        if self.min_fragment_area > self.min_area:
            raise ValueError("min_fragment_area must not exceed min_area")
        return self

    @property
    def steady_learning_rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else 1.0 / self.history
