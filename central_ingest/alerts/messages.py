"""Vietnamese and English alert messages, with the numbers that triggered them.

Vietnamese comes first and is written with its diacritics; numbers follow each language's
convention (``35,0%`` in Vietnamese, ``35.0%`` in English). A message is rendered when an
alert opens or changes level; acknowledging or resolving prefixes the stored message, so
every notice of one alert reads the same numbers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from central_ingest.alerts.lifecycle import Finding
from central_ingest.alerts.rules import (
    ProgressBehindRule,
    Rule,
    SensorRateRule,
    SensorThresholdRule,
    SourceSilentRule,
    ViolationIncreaseRule,
)
from event_contract import METRICS


@dataclass(frozen=True)
class Subject:
    """What an alert is about: ``key`` (e.g. junction:nga-tu-so) and the ids its readers need."""

    key: str
    name_vi: str = ""
    name_en: str = ""
    agent_id: str | None = None
    source_id: str | None = None
    project_id: str | None = None
    package_id: str = ""

    @property
    def label_vi(self) -> str:
        return self.name_vi or self.name_en or self.key.split(":", 1)[-1]

    @property
    def label_en(self) -> str:
        return self.name_en or self.name_vi or self.key.split(":", 1)[-1]


METRIC_NAMES: dict[str, tuple[str, str]] = {
    "water_level_m": ("Mực nước", "Water level"),
    "smoke": ("Khói", "Smoke"),
    "flame": ("Lửa", "Flame"),
    "temperature_c": ("Nhiệt độ", "Temperature"),
    "humidity_pct": ("Độ ẩm", "Humidity"),
    "fire_danger_level": ("Cấp nguy cơ cháy rừng", "Forest fire danger level"),
    "pm2_5": ("Bụi PM2.5", "PM2.5"),
    "pm10": ("Bụi PM10", "PM10"),
    "co": ("Khí CO", "CO"),
    "no2": ("Khí NO2", "NO2"),
    "so2": ("Khí SO2", "SO2"),
    "o3": ("Khí O3", "O3"),
    "noise_db": ("Tiếng ồn", "Noise"),
    "vn_aqi": ("Chỉ số VN_AQI", "VN_AQI"),
}
LEVEL_LABELS: dict[str, tuple[str, str]] = {
    "bao_dong_1": ("báo động 1", "alert level 1"),
    "bao_dong_2": ("báo động 2", "alert level 2"),
    "bao_dong_3": ("báo động 3", "alert level 3"),
    "kem": ("kém", "poor"),
    "xau": ("xấu", "bad"),
    "rat_xau": ("rất xấu", "very bad"),
    "nguy_hai": ("nguy hại", "hazardous"),
    "fire": ("cháy", "fire"),
}
UNITS = {"1": "", "index": "", "level": "", "degC": "°C"}
PREFIX = {"acknowledged": ("[Đã tiếp nhận] ", "[Acknowledged] "), "resolved": ("[Đã đóng] ", "[Resolved] ")}


def number(value: Fraction | Decimal | float | int, digits: int, lang: str) -> str:
    """``digits`` decimals, with a decimal comma in Vietnamese."""
    text = f"{float(value):.{digits}f}"
    return text.replace(".", ",") if lang == "vi" else text


def plain(value: Fraction | Decimal | float | int, lang: str) -> str:
    """As few decimals as the value needs (20 -> 20, 20.5 -> 20,5 / 20.5)."""
    text = f"{Decimal(str(float(value))).normalize():f}"
    return text.replace(".", ",") if lang == "vi" else text


def _unit(metric: str) -> str:
    unit = METRICS[metric].unit
    return UNITS.get(unit, unit)


def _with_unit(value: Fraction | Decimal, metric: str, lang: str) -> str:
    unit = _unit(metric)
    return f"{plain(value, lang)} {unit}".rstrip() if unit else plain(value, lang)


def level_labels(name: str, label_vi: str = "", label_en: str = "") -> tuple[str, str]:
    default_vi, default_en = LEVEL_LABELS.get(name, (name, name))
    return label_vi or default_vi, label_en or default_en


def render(rule: Rule, subject: Subject, finding: Finding) -> tuple[str, str]:
    """The (Vietnamese, English) message of a breach ``finding``."""
    if isinstance(rule, ViolationIncreaseRule):
        return _violation(rule, subject, finding)
    if isinstance(rule, ProgressBehindRule):
        return _progress(rule, subject, finding)
    if isinstance(rule, SensorThresholdRule):
        return _threshold(rule, subject, finding)
    if isinstance(rule, SensorRateRule):
        return _rate(rule, subject, finding)
    return _silent(rule, subject, finding)


def with_prefix(transition: str, message_vi: str, message_en: str) -> tuple[str, str]:
    """An acknowledged or resolved alert's notice: the stored message, marked."""
    vi, en = PREFIX.get(transition, ("", ""))
    return vi + message_vi, en + message_en


def _violation(rule: ViolationIncreaseRule, subject: Subject, f: Finding) -> tuple[str, str]:
    count, baseline = f.value or 0, f.baseline or 0
    thr_vi, thr_en = plain(rule.threshold_pct, "vi"), plain(rule.threshold_pct, "en")
    unit_vi, unit_en = ("ngày", "day") if rule.period == "1d" else ("giờ", "hour")
    n = rule.window_periods
    increase = f.facts.get("increase_pct")
    if increase is None:
        return (
            f"Vi phạm tại nút giao {subject.label_vi}: {count} trong khi trung bình {n} {unit_vi} là "
            f"{number(baseline, 1, 'vi')} (ngưỡng {thr_vi}%)",
            f"Violations at {subject.label_en} junction: {count} against a {n}-{unit_en} average of "
            f"{number(baseline, 1, 'en')} (threshold {thr_en}%)",
        )
    return (
        f"Vi phạm tại nút giao {subject.label_vi} tăng {number(increase, 1, 'vi')}% so với trung bình {n} {unit_vi} "
        f"({count} so với {number(baseline, 1, 'vi')}; ngưỡng {thr_vi}%)",
        f"Violations at {subject.label_en} junction up {number(increase, 1, 'en')}% on the {n}-{unit_en} average "
        f"({count} vs {number(baseline, 1, 'en')}; threshold {thr_en}%)",
    )


CAMERA_METHODS = frozenset({"camera_visual", "activity", "packages"})
"""Methods whose unconfirmed figures come from cameras (``packages``: a project summed from its packages)."""


def _progress_names(subject: Subject, f: Finding) -> tuple[str, str]:
    """("Dự án X" | "Hạng mục Y của dự án X", the English) with the plan's names when it gives them."""
    project = subject.project_id or subject.label_vi
    project_vi = f.facts.get("project_name_vi") or f.facts.get("project_name_en") or project
    project_en = f.facts.get("project_name_en") or f.facts.get("project_name_vi") or project
    if not subject.package_id:
        return f"Dự án {project_vi}", f"Project {project_en}"
    package = f.facts.get("package_name") or subject.package_id
    return f"Hạng mục {package} của dự án {project_vi}", f"Package {package} of project {project_en}"


def _progress_basis(f: Finding) -> tuple[str, str]:
    """What the actual figure rests on: a confirmation, a calibrated camera estimate, or an estimate."""
    basis, method = f.facts.get("basis"), f.facts.get("method", "")
    if basis == "confirmed" or (basis is None and f.facts.get("confirmed")):
        vi, en = "số liệu đã xác nhận", "confirmed figure"
    elif basis == "partly_confirmed":
        vi, en = "một phần đã xác nhận, phần còn lại ước tính từ camera", "partly confirmed, the rest camera estimates"
    elif basis == "calibrated":
        vi, en = (
            "ước tính từ camera, hiệu chỉnh theo lần xác nhận gần nhất",
            "camera estimate calibrated to the last confirmation",
        )
    elif method in CAMERA_METHODS:
        vi, en = "ước tính từ camera", "camera estimate"
    else:
        vi, en = "số liệu chưa xác nhận", "unconfirmed figure"
    coverage = f.facts.get("coverage")
    if coverage is not None and coverage < 1:
        missing = (1 - Fraction(coverage)) * 100
        vi += f"; {number(missing, 0, 'vi')}% khối lượng chưa có số liệu"
        en += f"; no figure yet for {number(missing, 0, 'en')}% of the work"
    return vi, en


def _progress(rule: ProgressBehindRule, subject: Subject, f: Finding) -> tuple[str, str]:
    what_vi, what_en = _progress_names(subject, f)
    basis_vi, basis_en = _progress_basis(f)
    gap, actual, planned = f.facts["gap"], f.value or 0, f.baseline or 0
    day: dt.date = f.facts["date"]
    thr = rule.threshold_points
    if f.level == "needs_confirmation":
        conf, least = f.facts["confidence"], rule.min_confidence
        return (
            f"Cần xác nhận: ước tính cho thấy {what_vi[0].lower() + what_vi[1:]} có thể chậm tiến độ "
            f"{number(gap, 1, 'vi')} điểm phần trăm (thực tế {number(actual, 1, 'vi')}% so với kế hoạch "
            f"{number(planned, 1, 'vi')}% ngày {day:%d/%m/%Y}; {basis_vi}); độ tin cậy {number(conf, 2, 'vi')} "
            f"thấp hơn {number(least, 2, 'vi')}: đề nghị Ban QLDA xác nhận",
            f"Needs confirmation: an estimate suggests {what_en[0].lower() + what_en[1:]} may be "
            f"{number(gap, 1, 'en')} percentage points behind schedule ({number(actual, 1, 'en')}% actual vs "
            f"{number(planned, 1, 'en')}% planned on {day:%Y-%m-%d}; {basis_en}); confidence {number(conf, 2, 'en')} "
            f"below {number(least, 2, 'en')}: the PMU is asked to confirm",
        )
    return (
        f"{what_vi} chậm tiến độ {number(gap, 1, 'vi')} điểm phần trăm: thực tế {number(actual, 1, 'vi')}% "
        f"({basis_vi}) so với kế hoạch {number(planned, 1, 'vi')}% ngày {day:%d/%m/%Y} "
        f"(ngưỡng {plain(thr, 'vi')} điểm)",
        f"{what_en} is {number(gap, 1, 'en')} percentage points behind schedule: {number(actual, 1, 'en')}% actual "
        f"({basis_en}) vs {number(planned, 1, 'en')}% planned on {day:%Y-%m-%d} (threshold {plain(thr, 'en')} points)",
    )


def _threshold(rule: SensorThresholdRule, subject: Subject, f: Finding) -> tuple[str, str]:
    name_vi, name_en = METRIC_NAMES.get(rule.metric, (rule.metric, rule.metric))
    label_vi, label_en = level_labels(
        f.level or "", f.facts.get("level_label_vi", ""), f.facts.get("level_label_en", "")
    )
    value, limit = f.value or Fraction(0), f.threshold or Fraction(0)
    return (
        f"{name_vi} tại cảm biến {subject.label_vi} là {_with_unit(value, rule.metric, 'vi')}, đạt mức {label_vi} "
        f"({_with_unit(limit, rule.metric, 'vi')})",
        f"{name_en} at sensor {subject.label_en} is {_with_unit(value, rule.metric, 'en')}, at {label_en} "
        f"({_with_unit(limit, rule.metric, 'en')})",
    )


def _rate(rule: SensorRateRule, subject: Subject, f: Finding) -> tuple[str, str]:
    name_vi, name_en = METRIC_NAMES.get(rule.metric, (rule.metric, rule.metric))
    rise, limit = f.value or Fraction(0), f.threshold or Fraction(0)
    minutes = Fraction(rule.window_s, 60)
    fire_vi, fire_en = (", nguy cơ cháy", ", possible fire") if rule.metric == "temperature_c" else ("", "")
    return (
        f"{name_vi} tại cảm biến {subject.label_vi} tăng {_with_unit(rise, rule.metric, 'vi')} trong "
        f"{plain(minutes, 'vi')} phút (ngưỡng {_with_unit(limit, rule.metric, 'vi')}){fire_vi}",
        f"{name_en} at sensor {subject.label_en} rose {_with_unit(rise, rule.metric, 'en')} in "
        f"{plain(minutes, 'en')} min (threshold {_with_unit(limit, rule.metric, 'en')}){fire_en}",
    )


def _silent(rule: SourceSilentRule, subject: Subject, f: Finding) -> tuple[str, str]:
    is_sensor = f.facts.get("family") == "sensor_readings"  # a source_last_seen family: the root table
    what_vi, what_en = ("Cảm biến", "Sensor") if is_sensor else ("Camera", "Camera")
    limit_min = Fraction(rule.silent_after_s, 60)
    if f.value is None:
        return (
            f"{what_vi} mất tín hiệu: {subject.label_vi} chưa từng gửi dữ liệu (ngưỡng {plain(limit_min, 'vi')} phút)",
            f"{what_en} silent: {subject.label_en} has never sent data (threshold {plain(limit_min, 'en')} min)",
        )
    silent_min = f.value / 60
    return (
        f"{what_vi} mất tín hiệu: {subject.label_vi} không gửi dữ liệu {number(silent_min, 0, 'vi')} phút "
        f"(ngưỡng {plain(limit_min, 'vi')} phút)",
        f"{what_en} silent: {subject.label_en} sent nothing for {number(silent_min, 0, 'en')} min "
        f"(threshold {plain(limit_min, 'en')} min)",
    )
