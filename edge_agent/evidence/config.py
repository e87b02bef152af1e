"""The ``evidence:`` section of a site config: where keyframes live at the edge, how much, how long, what is uploaded.

Evidence is personal data (a vehicle and its plate; workers on a site), so it is bounded twice: by bytes (the oldest
files go first) and by age (``max_age_days``), and leaves the box only by the ``upload`` policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ioc_common.backoff import BackoffConfig

MIB = 1024 * 1024

UploadPolicy = Literal["never", "violations", "all"]
"""never: evidence stays at the edge unless an officer asks for it (``upload_on_request``); violations:
keyframes of violations and incidents, and the daily construction timelapse keyframes, go to central at once;
all: plate-pass keyframes too."""

EvidencePurpose = Literal["violation", "plate_pass", "timelapse"]
"""Which kind of event a keyframe proves; decides whether the upload policy sends it. timelapse: the daily
keyframe of a construction site camera, referenced by its progress events (one a camera a day)."""

_UPLOADED_UNDER_VIOLATIONS: frozenset[EvidencePurpose] = frozenset({"violation", "timelapse"})


def should_upload(policy: UploadPolicy, purpose: EvidencePurpose) -> bool:
    """Whether a keyframe made for ``purpose`` goes on the upload list under ``policy``.

    The timelapse goes with violations: one small picture a camera a day, which the project page shows.
    """
    return policy == "all" or (policy == "violations" and purpose in _UPLOADED_UNDER_VIOLATIONS)


class EvidenceConfig(BaseModel):
    """Keyframes (JPEG) proving violations and plate passes, kept at the edge and uploaded by policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dir: Path = Field(
        default=Path("evidence"),
        description="Directory of the keyframes (<sha256>.jpg) and their index (index.sqlite); a relative path is "
        "inside the agent's state_dir.",
    )
    max_bytes: int = Field(
        default=2048 * MIB,
        ge=MIB,
        description="Cap on the keyframes' total bytes; over it the OLDEST files are deleted (counted as evicted), "
        "uploaded or not.",
    )
    max_age_days: float = Field(
        default=30.0,
        gt=0,
        le=3650,
        description="Keyframes older than this are deleted (counted as expired): the retention of personal data "
        "at the edge.",
    )
    jpeg_quality: int = Field(default=85, ge=30, le=100, description="JPEG quality of keyframes (OpenCV 0..100).")
    max_width: int = Field(
        default=1920,
        ge=320,
        le=7680,
        description="Keyframes wider than this are scaled down (aspect kept) before they are stored.",
    )
    upload: UploadPolicy = Field(
        default="violations",
        description="never: keep evidence at the edge only; violations: upload keyframes of violations and "
        "incidents, and the daily construction timelapse keyframes, to central (PUT /api/v1/evidence/{sha256}); "
        "all: plate-pass keyframes too. Needs central transport http.",
    )
    upload_on_request: bool = Field(
        default=True,
        description="Upload keyframes central asks for (an officer's request, carried by the ack of a batch) "
        "whatever `upload` says; false: a request is counted and ignored, nothing leaves the box.",
    )
    upload_backoff: BackoffConfig = Field(
        default_factory=lambda: BackoffConfig(base_s=1.0, ceiling_s=300.0),
        description="Delay between failed uploads: exponential, full jitter, this ceiling (Retry-After honoured).",
    )
    upload_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="HTTP timeout of one upload (connect and read)."
    )
    pending_max: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Most keyframes waiting for upload; over it the oldest waiting one leaves the list (policy "
        "drop_oldest, counted as pending_dropped; its file stays until evicted or expired).",
    )
    synchronous: Literal["full", "normal"] = Field(
        default="normal",
        description="The index's SQLite synchronous level. normal: the last index rows before a power cut may be "
        "lost (the files are rescanned into the index at start); full: one fsync per keyframe.",
    )
    recheck_disk_s: float = Field(
        default=5.0, ge=0, le=3600, description="How often an index whose disk failed tries it again."
    )
    integrity_check_on_open: bool = Field(
        default=True, description="Check the index at start; a damaged one is quarantined and rebuilt from the files."
    )
    keep_quarantined: int = Field(
        default=1, ge=0, le=100, description="Damaged index files kept for inspection; older ones are deleted."
    )
