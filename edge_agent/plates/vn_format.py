"""Vietnamese licence-plate formats: normalise an OCR string, validate it, and give the printed form.

Formats (Circular 58/2020/TT-BCA, Circular 24/2023/TT-BCA and Circular 79/2024/TT-BCA, which kept the
layouts): a 2-digit province code, a series, and a 4-digit (older) or 5-digit number printed ``123.45``.

- car, one line 520x110 mm or two lines 330x165 mm: ``30A-123.45`` (series: one letter), ``30A-1234`` (old);
- car, special series of two letters (``LD`` foreign-invested/leased, ``KT`` military-run enterprise,
  ``NG``/``NN``/``QT`` diplomatic, foreign, international, ``DA`` old project plates): ``51LD-123.45``;
- motorbike, two lines 190x140 mm: ``59-X1`` over ``234.56``, normalised ``59X1-234.56`` (series: a letter
  and a digit 1-9); mopeds under 50 cc use two letters (``29AA-123.45``); electric motorbikes ``MĐ`` + a
  digit, written ``29MD1-123.45`` here (plain ASCII, as the event contract's plate pattern requires).

Normalisation fixes the confusions OCR makes between look-alike glyphs by position: a letter is
expected where the format has a letter and a digit where it has a digit (``O``/``D``/``Q`` -> ``0``,
``I``/``L`` -> ``1``, ``Z`` -> ``2``, ``S`` -> ``5``, ``B`` -> ``8``, ``G`` -> ``6`` and back). Among the
formats the characters could fit, the one needing the fewest such fixes wins; separators the OCR kept
(the dash after the series, the dot before the last two digits, a line break of a two-line plate) and
the layout hint break ties. Military (red) plates and the diplomatic ``80-NG-123-45`` style are not
modelled: they come back ``valid=False`` with their cleaned text, so nothing read is lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from event_contract.traffic import PlateLayout

VehicleKind = Literal["car", "motorbike", "moped", "special"]

PROVINCES: dict[str, str] = {
    "11": "Cao Bằng",
    "12": "Lạng Sơn",
    "14": "Quảng Ninh",
    "15": "Hải Phòng",
    "16": "Hải Phòng",
    "17": "Thái Bình",
    "18": "Nam Định",
    "19": "Phú Thọ",
    "20": "Thái Nguyên",
    "21": "Yên Bái",
    "22": "Tuyên Quang",
    "23": "Hà Giang",
    "24": "Lào Cai",
    "25": "Lai Châu",
    "26": "Sơn La",
    "27": "Điện Biên",
    "28": "Hòa Bình",
    "29": "Hà Nội",
    "30": "Hà Nội",
    "31": "Hà Nội",
    "32": "Hà Nội",
    "33": "Hà Nội",
    "34": "Hải Dương",
    "35": "Ninh Bình",
    "36": "Thanh Hóa",
    "37": "Nghệ An",
    "38": "Hà Tĩnh",
    "40": "Hà Nội",
    "41": "TP. Hồ Chí Minh",
    "43": "Đà Nẵng",
    "47": "Đắk Lắk",
    "48": "Đắk Nông",
    "49": "Lâm Đồng",
    "50": "TP. Hồ Chí Minh",
    "51": "TP. Hồ Chí Minh",
    "52": "TP. Hồ Chí Minh",
    "53": "TP. Hồ Chí Minh",
    "54": "TP. Hồ Chí Minh",
    "55": "TP. Hồ Chí Minh",
    "56": "TP. Hồ Chí Minh",
    "57": "TP. Hồ Chí Minh",
    "58": "TP. Hồ Chí Minh",
    "59": "TP. Hồ Chí Minh",
    "60": "Đồng Nai",
    "61": "Bình Dương",
    "62": "Long An",
    "63": "Tiền Giang",
    "64": "Vĩnh Long",
    "65": "Cần Thơ",
    "66": "Đồng Tháp",
    "67": "An Giang",
    "68": "Kiên Giang",
    "69": "Cà Mau",
    "70": "Tây Ninh",
    "71": "Bến Tre",
    "72": "Bà Rịa - Vũng Tàu",
    "73": "Quảng Bình",
    "74": "Quảng Trị",
    "75": "Thừa Thiên Huế",
    "76": "Quảng Ngãi",
    "77": "Bình Định",
    "78": "Phú Yên",
    "79": "Khánh Hòa",
    "80": "Cục CSGT (central agencies)",
    "81": "Gia Lai",
    "82": "Kon Tum",
    "83": "Sóc Trăng",
    "84": "Trà Vinh",
    "85": "Ninh Thuận",
    "86": "Bình Thuận",
    "88": "Vĩnh Phúc",
    "89": "Hưng Yên",
    "90": "Hà Nam",
    "92": "Quảng Nam",
    "93": "Bình Phước",
    "94": "Bạc Liêu",
    "95": "Hậu Giang",
    "97": "Bắc Kạn",
    "98": "Bắc Giang",
    "99": "Bắc Ninh",
}
"""Registration codes in use (Circular 24/2023/TT-BCA appendix). 33 is the former Hà Tây, merged into Hà Nội
in 2008, and still issued there. The 2025 merger of provinces (Resolution 202/2025/QH15) re-registers no
vehicle: plates keep their codes, so this table stays the list of codes a camera will see."""

UNUSED_CODES: frozenset[str] = frozenset({"13", "39", "42", "44", "45", "46", "87", "91", "96"})
"""Two-digit codes never or no longer issued (13: the former Hà Bắc); a read with one is invalid."""

SERIES_LETTERS = frozenset("ABCDEFGHKLMNPSTUVXYZ")
"""Series letters of domestic plates; I, J, O, Q, W are not issued (they look like 1, 0 or each other)."""
TRAILER_LETTER = "R"
"""Trailers and semi-trailers: a car-format plate with series R (``51R-123.45``)."""
SPECIAL_SERIES = frozenset({"LD", "KT", "NG", "NN", "QT", "DA", "CV", "TD"})
"""Two-letter car series with their own meaning (leased/foreign-invested, military enterprise, diplomatic,
foreign, international, project, ...); ``TD`` is ``TĐ`` (economic zones) written in ASCII."""
MOPED_FIRST_LETTER = "A"
"""Mopeds under 50 cc: two letters starting with A (``AA``, ``AB``, ...)."""
ELECTRIC_MOTORBIKE = "MD"
"""``MĐ`` (electric motorbikes) followed by a digit; ``Đ`` is written ``D``."""

TO_DIGIT: dict[str, str] = {"O": "0", "D": "0", "Q": "0", "I": "1", "L": "1", "J": "1", "T": "1"}
TO_DIGIT.update({"Z": "2", "S": "5", "B": "8", "G": "6", "A": "4"})
TO_LETTER: dict[str, str] = {"0": "D", "1": "T", "2": "Z", "5": "S", "8": "B", "6": "G", "4": "A", "7": "T"}

SEPARATORS = "-. \n|_:,"
_CLEAN = re.compile(r"[^0-9A-Z]")


@dataclass(frozen=True, slots=True)
class PlateParse:
    """One OCR string understood as a plate: the printed form and its parts, or why it is not a plate.

    ``text`` is the normalised printed form when ``valid`` (``30A-123.45``, ``59X1-234.56``), else the
    upper-case letters and digits of the input (nothing read is thrown away: the caller decides).
    """

    text: str
    layout: PlateLayout | None
    province_code: str | None
    series: str | None
    number: str | None
    valid: bool
    vehicle_kind: VehicleKind | None = None
    province: str | None = None
    corrections: int = 0
    """How many characters were changed between look-alike letters and digits."""
    reason: str | None = None
    """Why the text is not a valid plate (None when valid)."""

    @property
    def compact(self) -> str:
        """Letters and digits only (``30A12345``): the form for exact matching and the blind index."""
        return _CLEAN.sub("", self.text)


@dataclass(frozen=True, slots=True)
class _Template:
    kind: VehicleKind
    series: str  # classes of the series: "L" letter, "D" digit
    digits: int


_TEMPLATES = (
    _Template("car", "L", 5),
    _Template("car", "L", 4),
    _Template("motorbike", "LD", 5),
    _Template("motorbike", "LD", 4),
    _Template("special", "LL", 5),
    _Template("special", "LL", 4),
    _Template("motorbike", "LLD", 5),
    _Template("motorbike", "LLD", 4),
)


@dataclass(frozen=True, slots=True)
class _Candidate:
    parse: PlateParse
    cost: float


def compact_text(raw: str) -> str:
    """Upper-case letters and digits of ``raw`` (``Đ`` read as ``D``): what the format is matched against."""
    return _CLEAN.sub("", raw.upper().replace("Đ", "D"))


def printed_form(province: str, series: str, number: str) -> str:
    """``30A-123.45`` / ``59X1-2345``: the dash after the series, the dot before the last two of five digits."""
    digits = f"{number[:3]}.{number[3:]}" if len(number) == 5 else number
    return f"{province}{series}-{digits}"


def _coerce(char: str, want: str) -> tuple[str, int] | None:
    """``char`` as the class ``want`` ("L"/"D"), with 1 when it had to be changed; None when it cannot be."""
    if want == "D":
        if char.isdigit():
            return char, 0
        fixed = TO_DIGIT.get(char)
        return (fixed, 1) if fixed else None
    if char.isalpha():
        return char, 0
    fixed = TO_LETTER.get(char)
    return (fixed, 1) if fixed else None


def _series_problem(series: str, kind: VehicleKind) -> tuple[VehicleKind, str | None]:
    """The refined kind and a reason when the series is not one that is issued."""
    if kind == "car":
        ok = series in SERIES_LETTERS or series == TRAILER_LETTER
        return kind, None if ok else f"series letter {series!r} is not issued"
    if kind == "motorbike" and len(series) == 2:
        ok = series[0] in SERIES_LETTERS and series[1] != "0"
        return kind, None if ok else f"motorbike series {series!r} is not issued (letter + digit 1-9)"
    if kind == "motorbike":
        ok = series[:2] == ELECTRIC_MOTORBIKE and series[2] != "0"
        return kind, None if ok else f"series {series!r}: only MĐ (MD) + digit has three characters"
    if series in SPECIAL_SERIES:
        return "special", None
    if series[0] == MOPED_FIRST_LETTER and series[1] in SERIES_LETTERS:
        return "moped", None
    return kind, f"two-letter series {series!r} is not issued"


def _split_hints(raw: str) -> tuple[int | None, int | None, bool]:
    """Where the OCR put a dash or line break (compact index after the series), where the dot is (compact
    index of the first of the last two digits), and whether there was a line break."""
    upper = raw.upper().replace("Đ", "D").strip()
    series_end: int | None = None
    dot_at: int | None = None
    count = 0
    two_lines = "\n" in upper
    for i, char in enumerate(upper):
        if char.isalnum():
            count += 1
            continue
        if char in "-\n " and series_end is None and 2 < count < 6:
            series_end = count
        if char == "." and count > 4:
            tail = _CLEAN.sub("", upper[i + 1 :])
            if len(tail) == 2:
                dot_at = count
    return series_end, dot_at, two_lines


def _try(compact: str, template: _Template) -> _Candidate | None:
    want = "DD" + template.series + "D" * template.digits
    if len(compact) != len(want):
        return None
    fixed: list[str] = []
    corrections = 0
    for char, cls in zip(compact, want, strict=True):
        coerced = _coerce(char, cls)
        if coerced is None:
            return None
        fixed.append(coerced[0])
        corrections += coerced[1]
    text = "".join(fixed)
    province, series, number = text[:2], text[2 : 2 + len(template.series)], text[2 + len(template.series) :]
    kind, problem = _series_problem(series, template.kind)
    if province not in PROVINCES:
        why = "retired" if province in UNUSED_CODES else "unknown"
        problem = problem or f"province code {province} is {why}"
    layout: PlateLayout | None = "two_line" if kind in ("motorbike", "moped") else None
    parse = PlateParse(
        text=printed_form(province, series, number),
        layout=layout,
        province_code=province,
        series=series,
        number=number,
        valid=problem is None,
        vehicle_kind=kind,
        province=PROVINCES.get(province),
        corrections=corrections,
        reason=problem,
    )
    return _Candidate(parse, corrections + (0 if problem is None else 100))


def _tie_break(
    candidate: _Candidate, series_end: int | None, dot_at: int | None, layout_hint: PlateLayout | None
) -> float:
    parse = candidate.parse
    assert parse.series is not None
    assert parse.number is not None
    cost = candidate.cost
    if series_end is not None and series_end != 2 + len(parse.series):
        cost += 0.5
    if dot_at is not None and (len(parse.number) != 5 or dot_at != 2 + len(parse.series) + 3):
        cost += 0.5
    if layout_hint == "one_line" and parse.vehicle_kind in ("motorbike", "moped"):
        cost += 0.75
    if layout_hint == "two_line" and parse.vehicle_kind == "car" and len(parse.number) == 4:
        cost += 0.25  # an old 4-digit two-line plate is more often a motorbike's
    # Newer plates (5 digits) outnumber old ones: a last, tiny preference.
    return cost + (0.01 if len(parse.number) == 4 else 0.0)


def parse_plate(raw: str, *, layout_hint: PlateLayout | None = None) -> PlateParse:
    """Understand an OCR string (``"30A-123.45"``, ``"59-X1\\n234.56"``, ``"3OA12345"``) as a Vietnamese plate.

    Never raises: text that fits no format comes back with ``valid=False`` and a ``reason``.
    ``layout_hint`` (what the reader saw: one line or two) breaks ties such as ``59X12345``, which is a
    car ``59X-123.45`` on one line and more likely an old motorbike ``59X1-2345`` on two.
    """
    compact = compact_text(raw)
    if not compact:
        return PlateParse("", layout_hint, None, None, None, valid=False, reason="no letters or digits read")
    series_end, dot_at, two_lines = _split_hints(raw)
    hint = layout_hint or ("two_line" if two_lines else None)
    candidates = [c for t in _TEMPLATES if (c := _try(compact, t)) is not None]
    if not candidates:
        return PlateParse(
            compact,
            hint,
            None,
            None,
            None,
            valid=False,
            reason=f"{len(compact)} characters fit no plate format (2-digit province, series, 4-5 digits)",
        )
    best = min(candidates, key=lambda c: _tie_break(c, series_end, dot_at, hint))
    parse = best.parse
    layout = parse.layout if parse.layout is not None else hint
    if not parse.valid:
        # Keep the parts for the caller's diagnosis, but not a corrected text that was never validated.
        return PlateParse(
            compact,
            layout,
            parse.province_code,
            parse.series,
            parse.number,
            False,
            parse.vehicle_kind,
            parse.province,
            parse.corrections,
            parse.reason,
        )
    return PlateParse(
        parse.text,
        layout,
        parse.province_code,
        parse.series,
        parse.number,
        True,
        parse.vehicle_kind,
        parse.province,
        parse.corrections,
        None,
    )
