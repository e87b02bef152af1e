"""Violation and incident accuracy on generated scenes with ground truth: precision and recall per rule.

    python -m benchmarks.violation_accuracy [--scenes N] [--rules red_light,wrong_way] [--variants clean,noisy]
        [--seed-offset N] [--out FILE]

Every scene of ``devstack.violation_scenes`` (N per rule, default 45) is run as the product runs it: boxes
WITHOUT ids -> the real ``ByteTracker(TrackerConfig())`` -> ``ViolationEngine`` with the scene's rules, frame by
frame at 10 fps, in two variants: ``clean`` (the exact boxes) and ``noisy`` (box jitter, missed detections,
false-positive boxes, class flicker; ``violation_scenes.NoiseConfig``). A finding is a true positive when an
unmatched truth of the same rule id holds its time within the truth's window and one of the truth's vehicles
has a box at that time with IoU >= 0.3 with the finding's box; every other finding is a false positive, every
unmatched truth a false negative. Results per rule and variant are printed and saved (plain keys: precision,
recall, true_positives, false_positives, false_negatives) to ``benchmarks/results/violations_accuracy.json``.

Target (issue 7): precision and recall >= 0.95 per rule on clean scenes; the noisy variant is reported as is.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS_DIR, save_result
from devstack.violation_scenes import FPS, GENERATORS, HEIGHT, WIDTH, NoiseConfig, Scene, noisy, scenes
from edge_agent.perception.tracker import ByteTracker, TrackerConfig
from edge_agent.perception.types import Detections
from edge_agent.violations import Finding, ViolationEngine
from edge_agent.violations.tracks import box_iou
from event_contract.taxonomy import VEHICLE_CLASSES

TARGET = 0.95
MIN_IOU = 0.3
VARIANTS = ("clean", "noisy")


@dataclass(frozen=True, slots=True)
class SceneResult:
    scene: str
    rule: str
    true_positives: int
    false_positives: tuple[str, ...]
    false_negatives: tuple[str, ...]
    frames: int
    engine_s: float


def run_scene(scene: Scene) -> tuple[list[Finding], float]:
    """The scene's detections through ByteTracker and the engine; returns the findings and the engine's time."""
    tracker = ByteTracker(TrackerConfig())
    engine = ViolationEngine(scene.config, WIDTH, HEIGHT)
    rng = np.random.default_rng(70_000 + scene.seed)
    extra: dict[int, list[tuple[tuple[float, float, float, float], int]]] = {}
    for frame, box, class_id in scene.extra_boxes:
        extra.setdefault(frame, []).append((box, class_id))
    findings: list[Finding] = []
    engine_s = 0.0
    for frame in range(scene.n_frames):
        present = np.flatnonzero(~np.isnan(scene.boxes[:, frame, 0]))
        spurious = extra.get(frame, [])
        xyxy = np.concatenate(
            [scene.boxes[present, frame], np.array([b for b, _ in spurious], dtype=np.float64).reshape(-1, 4)]
        )
        class_ids = np.concatenate(
            [scene.classes[present, frame], np.array([c for _, c in spurious], dtype=np.int64)]
        ).astype(np.int64)
        confidence = np.concatenate([rng.uniform(0.5, 0.95, len(present)), rng.uniform(0.3, 0.6, len(spurious))])
        detections = Detections(xyxy.astype(np.float32), confidence.astype(np.float32), class_ids, VEHICLE_CLASSES)
        tracked = tracker.update(detections, frame / FPS)
        started = time.perf_counter()
        step = engine.update(tracked, scene.timestamp(frame), scene.signals[frame])
        engine_s += time.perf_counter() - started
        findings.extend(step.findings)
    return findings, engine_s


def score_scene(scene: Scene, truth_scene: Scene, findings: Sequence[Finding]) -> tuple[int, list[str], list[str]]:
    """(true positives, false-positive notes, false-negative notes); boxes are matched against ``truth_scene``."""
    matched: set[int] = set()
    false_positives: list[str] = []
    true_positives = 0
    for finding in sorted(findings, key=lambda f: f.time):
        t = (finding.time - scene.start).total_seconds()
        frame = min(max(round(t * FPS), 0), scene.n_frames - 1)
        hit = None
        for index, truth in enumerate(scene.truths):
            if index in matched or truth.rule_id != finding.rule_id or not truth.earliest_s <= t <= truth.latest_s:
                continue
            if any(_iou_at(truth_scene, vehicle, frame, finding.box_xyxy) >= MIN_IOU for vehicle in truth.vehicles):
                hit = index
                break
        if hit is None:
            false_positives.append(f"{scene.name}: {finding.rule_id} track {finding.track_id} at {t:.1f} s")
        else:
            matched.add(hit)
            true_positives += 1
    false_negatives = [
        f"{scene.name}: {truth.rule_id} [{truth.earliest_s:.1f}, {truth.latest_s:.1f}] s ({truth.note})"
        for index, truth in enumerate(scene.truths)
        if index not in matched
    ]
    return true_positives, false_positives, false_negatives


def _iou_at(scene: Scene, vehicle: int, frame: int, box: tuple[float, float, float, float]) -> float:
    """IoU with the vehicle's true box at ``frame`` or, if it is out of view then, the nearest frame within 1 s."""
    for offset in range(FPS + 1):
        for candidate in {frame - offset, frame + offset}:
            if 0 <= candidate < scene.n_frames and not math.isnan(scene.boxes[vehicle, candidate, 0]):
                x1, y1, x2, y2 = (float(v) for v in scene.boxes[vehicle, candidate])
                return box_iou((x1, y1, x2, y2), box)
    return 0.0


def evaluate(rules: Sequence[str], count: int, variants: Sequence[str], seed_offset: int = 0) -> dict[str, Any]:
    """Run and score every scene; the result document (without machine info)."""
    per_rule: dict[str, dict[str, Any]] = {}
    for rule in rules:
        per_rule[rule] = {}
        generated = scenes(rule, count, seed_offset=seed_offset)
        for variant in variants:
            results: list[SceneResult] = []
            for scene in generated:
                seen = scene if variant == "clean" else noisy(scene, NoiseConfig())
                findings, engine_s = run_scene(seen)
                tp, fps, fns = score_scene(seen, scene, findings)
                results.append(SceneResult(scene.name, rule, tp, tuple(fps), tuple(fns), scene.n_frames, engine_s))
            per_rule[rule][variant] = _summary(results)
    return {
        "target": {"precision": TARGET, "recall": TARGET, "applies_to": "clean"},
        "scenes_per_rule": count,
        "seed_offset": seed_offset,
        "fps": FPS,
        "frame_size": [WIDTH, HEIGHT],
        "noise": _noise_dict(),
        "rules": per_rule,
        "meets_target": all(
            per_rule[r]["clean"]["precision"] >= TARGET and per_rule[r]["clean"]["recall"] >= TARGET
            for r in rules
            if "clean" in per_rule[r]
        ),
    }


def _noise_dict() -> dict[str, float]:
    noise = NoiseConfig()
    return {name: getattr(noise, name) for name in NoiseConfig.__slots__}


def _summary(results: Sequence[SceneResult]) -> dict[str, Any]:
    tp = sum(r.true_positives for r in results)
    fp = sum(len(r.false_positives) for r in results)
    fn = sum(len(r.false_negatives) for r in results)
    frames = sum(r.frames for r in results)
    return {
        "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "scenes": len(results),
        "frames": frames,
        "engine_us_per_frame": round(sum(r.engine_s for r in results) / max(frames, 1) * 1e6, 1),
        "false_positive_examples": [x for r in results for x in r.false_positives][:10],
        "false_negative_examples": [x for r in results for x in r.false_negatives][:10],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scenes", type=int, default=45, help="scenes per rule")
    parser.add_argument("--rules", default=",".join(GENERATORS), help="comma-separated rules")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seed-offset", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "violations_accuracy.json")
    args = parser.parse_args(argv)
    rules = [r for r in args.rules.split(",") if r]
    unknown = [r for r in rules if r not in GENERATORS]
    if unknown:
        parser.error(f"unknown rules {unknown}; choose from {list(GENERATORS)}")
    started = time.perf_counter()
    result = evaluate(rules, args.scenes, [v for v in args.variants.split(",") if v], args.seed_offset)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    print(f"{'rule':<18} {'variant':<7} {'precision':>9} {'recall':>7} {'TP':>4} {'FP':>4} {'FN':>4} {'us/frame':>8}")
    for rule, variants in result["rules"].items():
        for variant, s in variants.items():
            print(
                f"{rule:<18} {variant:<7} {s['precision']:>9.3f} {s['recall']:>7.3f} {s['true_positives']:>4} "
                f"{s['false_positives']:>4} {s['false_negatives']:>4} {s['engine_us_per_frame']:>8.0f}"
            )
    path = save_result(args.out.stem, result, args.out.parent)
    print(f"saved {path}; clean target met: {result['meets_target']}")
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
