"""Read an approved plan from the files PMUs keep: CSV (as Excel saves it) or an Excel workbook (.xlsx).

One table, one row per work package, Vietnamese or English headers (a bilingual header such as
"Mã hạng mục / package_id" is read by either half; case and diacritics do not matter):

==============================  =============================================================
column                          holds
==============================  =============================================================
Mã hạng mục / package_id        the package id (required; letters, digits, ``_ . : -``)
Tên hạng mục / name             the name shown on pages
Tỷ trọng / weight               its share: "20%", "20", "20,5" or a %-formatted cell (0.2);
                                normalised over the packages, so only the ratios matter
Bắt đầu / start                 planned start (dd/mm/yyyy, yyyy-mm-dd or a date cell)
Kết thúc / finish               planned finish (on or after the start)
Trọng yếu / critical            x / có / yes / 1 marks a critical package; empty / không / no / 0 not
STT, Ghi chú / note, Đơn vị     ignored
a date (dd/mm/yyyy, ISO, cell)  the cumulative planned % of the package on that date ("35%",
                                "35", "35,5", or a %-formatted cell holding 0.35); may be empty
==============================  =============================================================

Rows above the header (a title) and empty rows are skipped. A row whose id (or, with no id, whose name) is
"*", "Dự án", "Toàn dự án", "Tổng", "Project" or "Total" gives the project's own planned points; its
other cells are ignored. A package without date cells needs start and finish: its S-curve is generated
(``scurve``). Dates are read day first (Vietnamese usage): 01/03/2025 is 1 March.

Every problem is reported with its place (``plan.csv:7:4: ...`` = line 7, column 4;
``plan.xlsx:Kế hoạch!D7: ...``), all of them at once, in ``PlanImportError.issues``.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import math
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException
from pydantic import ValidationError

from central_ingest.alerts.plans import PlanSource
from central_ingest.projects.plan_model import MAX_NAME_CHARS, PROJECT, PackageIn, PlanIn, PlanPointIn
from event_contract.models import IDENTIFIER_PATTERN

MAX_FILE_BYTES = 2 * 1024 * 1024
"""Largest plan file accepted (route and CLI): a plan of hundreds of packages over years is far smaller."""
MAX_XLSX_UNPACKED_BYTES = 64 * 1024 * 1024
"""Largest total of the workbook's unpacked parts: refuses a zip bomb before openpyxl reads it."""
MAX_ROWS = 2_000
MAX_COLUMNS = 1_200
"""About three years of daily date columns."""
MAX_ISSUES = 200
HEADER_SEARCH_ROWS = 30
"""The header must be within the first rows (title rows above it are skipped)."""
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PLAN_SHEET_NAMES = ("ke hoach", "plan")

CellValue = str | float | int | bool | dt.date | dt.datetime | None
Kind = Literal["package_id", "name", "weight", "start", "finish", "critical", "ignored"]

HEADERS: dict[Kind, frozenset[str]] = {
    "package_id": frozenset({"ma hang muc", "ma", "ma goi", "ma cong viec", "package id", "id", "code"}),
    "name": frozenset({"ten hang muc", "ten", "hang muc", "ten cong viec", "noi dung", "name", "package name"}),
    "weight": frozenset({"ty trong", "ti trong", "trong so", "weight", "share"}),
    "start": frozenset({"bat dau", "ngay bat dau", "khoi cong", "start", "planned start"}),
    "finish": frozenset({"ket thuc", "ngay ket thuc", "hoan thanh", "ngay hoan thanh", "finish", "planned finish"}),
    "critical": frozenset({"trong yeu", "quan trong", "gang", "duong gang", "critical", "critical path"}),
    "ignored": frozenset({"stt", "tt", "so thu tu", "no", "ghi chu", "note", "notes", "don vi", "unit"}),
}
PROJECT_MARKERS = frozenset({"*", "du an", "toan du an", "tong", "tong cong", "project", "total"})
TRUE_WORDS = frozenset({"x", "co", "yes", "y", "1", "true", "v", "✓", "✔"})
FALSE_WORDS = frozenset({"", "khong", "no", "n", "0", "false", "-"})
DAY_FIRST = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$")
ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ]00:00(?::00)?)?$")
PACKAGE_ID = re.compile(IDENTIFIER_PATTERN)


class PlanImportError(ValueError):
    """The file is not a usable plan; ``issues`` lists every problem found, each "PLACE: message"."""

    def __init__(self, issues: Sequence[str]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(self.issues))


@dataclass(frozen=True, slots=True)
class Cell:
    value: CellValue
    where: str
    """e.g. "plan.csv:7:4" or "plan.xlsx:Kế hoạch!D7"."""
    percent_format: bool = False
    """An Excel number formatted as a percentage: 0.35 shows as 35 %."""

    @property
    def empty(self) -> bool:
        return self.value is None or (isinstance(self.value, str) and not self.value.strip())


@dataclass
class Issues:
    """The problems found so far, capped at ``MAX_ISSUES`` (the count of the rest is kept)."""

    source: str
    items: list[str] = field(default_factory=list)
    more: int = 0

    def add(self, where: str, message: str) -> None:
        if len(self.items) < MAX_ISSUES:
            self.items.append(f"{where}: {message}")
        else:
            self.more += 1

    def raise_if_any(self) -> None:
        if self.items:
            tail = [f"{self.source}: ... and {self.more} more problems"] if self.more else []
            raise PlanImportError([*self.items, *tail])


def normalise(text: str) -> str:
    """Lower case, no diacritics (đ -> d), words single-spaced, "_" as a space, "(%)" and edge punctuation gone."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(c for c in decomposed if unicodedata.category(c) != "Mn").casefold().replace("_", " ")
    plain = re.sub(r"\(.*?\)", " ", plain)
    return " ".join(plain.split()).strip(" .:%#")


def header_kind(text: str) -> Kind | None:
    """The column a header names; either half of a bilingual "Vietnamese / English" header counts."""
    for part in [text, *text.split("/")]:
        name = normalise(part)
        for kind, names in HEADERS.items():
            if name in names:
                return kind
    return None


def parse_date(value: CellValue) -> dt.date | None:
    """A date cell, "dd/mm/yyyy" (also with - or .) or "yyyy-mm-dd"; None when it is none of these."""
    if isinstance(value, dt.date):
        return value.date() if isinstance(value, dt.datetime) else value
    text = value.strip() if isinstance(value, str) else ""
    iso, day_first = ISO_DATE.fullmatch(text), DAY_FIRST.fullmatch(text)
    try:
        if iso:
            return dt.date(int(iso[1]), int(iso[2]), int(iso[3]))
        return dt.date(int(day_first[3]), int(day_first[2]), int(day_first[1])) if day_first else None
    except ValueError:  # 31/02/2025
        return None


def parse_number(cell: Cell) -> float:
    """A number as PMUs write it: "35%", "35", "35,5" (decimal comma), or a (%-formatted) numeric cell.

    ``ValueError`` with a message fit for the user otherwise. A %-formatted cell is scaled to percent.
    """
    value = cell.value
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value}")
    if isinstance(value, int | float):
        number = float(value) * (100 if cell.percent_format else 1)
    elif isinstance(value, str):
        text = value.strip().replace("\u00a0", "").replace(" ", "").removesuffix("%")
        if "," in text and "." in text:
            raise ValueError(f"{value!r} mixes ',' and '.'; write 35,5 or 35.5")
        try:
            number = float(text.replace(",", "."))
        except ValueError:
            raise ValueError(f"{value!r} is not a number (e.g. 35%, 35 or 35,5)") from None
    else:
        raise ValueError(f"expected a number, got a {type(value).__name__}")
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def parse_flag(value: CellValue) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    word = normalise(str(value)) if value is not None else ""
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{value!r} is not a yes/no mark (x, có, yes, 1 / empty, không, no, 0)")


def _text(value: CellValue) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # an id typed as a number: 1.0 -> "1"
    return str(value).strip()


@dataclass(frozen=True, slots=True)
class Columns:
    """What each column of the header holds: named kinds and dated planned-% columns."""

    kinds: dict[Kind, int]
    dates: list[tuple[int, dt.date]]
    """(column index, date), in date order."""


def _columns(header: Sequence[Cell], issues: Issues) -> Columns:
    kinds: dict[Kind, int] = {}
    dates: dict[dt.date, int] = {}
    for i, cell in enumerate(header):
        if cell.empty:
            continue
        day = parse_date(cell.value)
        if day is not None:
            if day in dates:
                issues.add(cell.where, f"date {day:%d/%m/%Y} appears in two columns")
            dates[day] = i
            continue
        kind = header_kind(_text(cell.value))
        if kind is None:
            issues.add(
                cell.where,
                f"unknown column {_text(cell.value)!r}: expected Mã hạng mục/package_id, Tên hạng mục/name, "
                "Tỷ trọng/weight, Bắt đầu/start, Kết thúc/finish, Trọng yếu/critical, or a date "
                "(dd/mm/yyyy or yyyy-mm-dd)",
            )
        elif kind in kinds and kind != "ignored":
            issues.add(cell.where, f"a second {kind} column (the first is column {kinds[kind] + 1})")
        else:
            kinds.setdefault(kind, i)
    where = header[0].where if header else issues.source
    if "weight" not in kinds:
        issues.add(where, "no Tỷ trọng/weight column")
    if not dates and ("start" not in kinds or "finish" not in kinds):
        issues.add(where, "no date columns and no Bắt đầu/start + Kết thúc/finish columns: nothing is planned")
    if ("start" in kinds) != ("finish" in kinds):
        issues.add(where, "give both Bắt đầu/start and Kết thúc/finish columns, or neither")
    return Columns(kinds, sorted(((i, day) for day, i in dates.items()), key=lambda c: c[1]))


def _find_header(rows: Sequence[Sequence[Cell]]) -> int | None:
    for index, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        if any(
            not c.empty and parse_date(c.value) is None and header_kind(_text(c.value)) == "package_id" for c in row
        ):
            return index
    return None


@dataclass
class _Plan:
    packages: list[PackageIn] = field(default_factory=list)
    points: list[PlanPointIn] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)
    """package id -> where it was first declared."""
    project_row: str | None = None


def _cell(row: Sequence[Cell], index: int | None, blank: Callable[[int], Cell]) -> Cell:
    """The row's cell in column ``index`` (an empty cell there when the row is short or the column absent)."""
    if index is None:
        return blank(0)
    return row[index] if index < len(row) else blank(index)


def _row_points(
    row: Sequence[Cell], columns: Columns, package_id: str, issues: Issues, blank: Callable[[int], Cell]
) -> list[PlanPointIn]:
    """The planned % cells of one row, checked to be in 0..100 and never to go down."""
    points: list[PlanPointIn] = []
    previous: tuple[float, dt.date] | None = None
    for index, day in columns.dates:
        cell = _cell(row, index, blank)
        if cell.empty:
            continue
        try:
            pct = parse_number(cell)
        except ValueError as error:
            issues.add(cell.where, str(error))
            continue
        if not 0 <= pct <= 100:
            issues.add(cell.where, f"planned {pct:g}% is outside 0..100")
            continue
        if previous is not None and pct < previous[0]:
            issues.add(
                cell.where,
                f"planned {pct:g}% on {day:%d/%m/%Y} is below {previous[0]:g}% on {previous[1]:%d/%m/%Y}: "
                "the planned % is cumulative and cannot go down",
            )
        previous = (pct, day)
        points.append(PlanPointIn(package_id=package_id, date=day, planned_pct=pct))
    return points


def _is_project(ident: str, name: str) -> bool:
    return normalise(ident) in PROJECT_MARKERS or (ident == "" and normalise(name) in PROJECT_MARKERS)


def _weight(cell: Cell, issues: Issues) -> float | None:
    try:
        weight = parse_number(cell) if not cell.empty else 0.0
    except ValueError as error:
        issues.add(cell.where, str(error))
        return None
    if weight <= 0:
        issues.add(cell.where, "missing weight" if cell.empty else f"weight {weight:g} must be above 0")
        return None
    return weight


def _schedule(start_cell: Cell, finish_cell: Cell, issues: Issues) -> tuple[dt.date | None, dt.date | None] | None:
    """(start, finish), both or neither given; None after reporting a problem."""
    dates = [parse_date(cell.value) for cell in (start_cell, finish_cell)]
    bad = [cell for cell, day in zip((start_cell, finish_cell), dates, strict=True) if not cell.empty and day is None]
    for cell in bad:
        issues.add(cell.where, f"{_text(cell.value)!r} is not a date (dd/mm/yyyy or yyyy-mm-dd)")
    start, finish = dates
    if bad:
        return None
    if (start is None) != (finish is None):
        issues.add((start_cell if start is None else finish_cell).where, "give both start and finish, or neither")
        return None
    if start and finish and finish < start:
        issues.add(finish_cell.where, f"finish {finish:%d/%m/%Y} is before start {start:%d/%m/%Y}")
        return None
    return start, finish


def _package(
    row: Sequence[Cell], columns: Columns, ident: Cell, blank: Callable[[int], Cell], issues: Issues
) -> PackageIn | None:
    """The package a row declares, or None after reporting every problem with it."""
    kinds = columns.kinds
    package_id = _text(ident.value)
    ok = PACKAGE_ID.fullmatch(package_id) is not None
    if not ok:
        issues.add(ident.where, f"package id {package_id!r}: use 1-64 letters, digits, '_', '.', ':' or '-'")
    name_cell = _cell(row, kinds.get("name"), blank)
    name = _text(name_cell.value)
    if len(name) > MAX_NAME_CHARS:
        issues.add(name_cell.where, f"name longer than {MAX_NAME_CHARS} characters")
        ok = False
    weight = _weight(_cell(row, kinds["weight"], blank), issues) if "weight" in kinds else None
    schedule: tuple[dt.date | None, dt.date | None] | None = (None, None)
    if "start" in kinds and "finish" in kinds:
        schedule = _schedule(_cell(row, kinds["start"], blank), _cell(row, kinds["finish"], blank), issues)
    critical = False
    if "critical" in kinds:
        cell = _cell(row, kinds["critical"], blank)
        try:
            critical = parse_flag(cell.value)
        except ValueError as error:
            issues.add(cell.where, str(error))
            ok = False
    if not ok or weight is None or schedule is None:
        return None
    start, finish = schedule
    return PackageIn(
        id=package_id, name=name, weight=weight, planned_start=start, planned_finish=finish, critical=critical
    )


def plan_from_rows(rows: Sequence[Sequence[Cell]], blank_at: Callable[[int, int], Cell], source: str) -> PlanIn:
    """Read the plan table from ``rows`` of cells; ``blank_at(row, column)`` is the empty cell at a place.

    Raises ``PlanImportError`` with every problem found.
    """
    issues = Issues(source)
    header_index = _find_header(rows)
    if header_index is None:
        raise PlanImportError(
            [f"{source}: no header row with a Mã hạng mục/package_id column in the first {HEADER_SEARCH_ROWS} rows"]
        )
    columns = _columns(rows[header_index], issues)
    id_column = columns.kinds["package_id"]
    plan = _Plan()
    for row_index in range(header_index + 1, len(rows)):
        row = rows[row_index]
        if all(cell.empty for cell in row):
            continue

        def blank(column: int, row_index: int = row_index) -> Cell:
            return blank_at(row_index, column)

        ident = _cell(row, id_column, blank)
        name = _text(_cell(row, columns.kinds.get("name"), blank).value)
        if _is_project(_text(ident.value), name):
            if plan.project_row is not None:
                issues.add(ident.where, f"a second project row (the first is at {plan.project_row})")
                continue
            plan.project_row = ident.where
            plan.points += _row_points(row, columns, PROJECT, issues, blank)
            continue
        if ident.empty:
            issues.add(ident.where, "missing package id (Mã hạng mục)")
            continue
        package = _package(row, columns, ident, blank, issues)
        package_id = _text(ident.value)
        if package_id in plan.seen:
            issues.add(ident.where, f"package {package_id} is already declared at {plan.seen[package_id]}")
            continue
        plan.seen[package_id] = ident.where
        reported = len(issues.items) + issues.more
        points = _row_points(row, columns, package_id, issues, blank)
        if package is None:
            continue
        if not points and package.planned_start is None and reported == len(issues.items) + issues.more:
            issues.add(ident.where, f"package {package_id} has no planned % by date and no start/finish")
        plan.packages.append(package)
        plan.points += points
    if not plan.seen and plan.project_row is None:
        issues.add(rows[header_index][0].where if rows[header_index] else source, "the table has no package rows")
    issues.raise_if_any()
    try:
        return PlanIn(points=tuple(plan.points), packages=tuple(plan.packages))
    except ValidationError as error:
        raise PlanImportError([f"{source}: {e['msg']}" for e in error.errors()]) from None


# --- CSV ---------------------------------------------------------------------------------------


def _csv_records(text: str, delimiter: str, limit: int | None = None) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) of each record; ``csv.Error`` on malformed quoting."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    line = 1
    for count, fields in enumerate(reader):
        if limit is not None and count >= limit:
            return
        yield line, fields
        line = reader.line_num + 1


def _delimiter(text: str) -> str:
    """The delimiter splitting a header row into the most columns, one a package id; else the most frequent."""
    best: tuple[int, str] | None = None
    for delimiter in (";", ",", "\t"):
        try:
            records = list(_csv_records(text, delimiter, HEADER_SEARCH_ROWS))
        except csv.Error:
            continue
        for _, fields in records:
            if len(fields) > 1 and any(parse_date(f) is None and header_kind(f) == "package_id" for f in fields):
                if best is None or len(fields) > best[0]:
                    best = (len(fields), delimiter)
                break
    if best is not None:
        return best[1]
    sample = "\n".join(text.splitlines()[:HEADER_SEARCH_ROWS])
    return max((";", ",", "\t"), key=sample.count)


def parse_plan_csv(text: str, source: str) -> PlanIn:
    """The plan in a CSV file's text (UTF-8 with or without BOM; ``;``, ``,`` or tab separated)."""
    text = text.removeprefix("\ufeff")
    delimiter = _delimiter(text)
    rows: list[list[Cell]] = []
    lines: list[int] = []
    used = 0
    try:
        for line, fields in _csv_records(text, delimiter):
            used += any(field.strip() for field in fields)
            if used > MAX_ROWS:
                raise PlanImportError([f"{source}:{line}: more than {MAX_ROWS} rows"])
            if len(fields) > MAX_COLUMNS:
                raise PlanImportError([f"{source}:{line}: more than {MAX_COLUMNS} columns"])
            rows.append([Cell(value, f"{source}:{line}:{col}") for col, value in enumerate(fields, start=1)])
            lines.append(line)
    except csv.Error as error:
        raise PlanImportError([f"{source}: not a readable CSV file ({error})"]) from None
    return plan_from_rows(rows, lambda r, c: Cell(None, f"{source}:{lines[r]}:{c + 1}"), source)


def decode_csv(data: bytes, source: str) -> str:
    """The text of a CSV file's bytes; ``PlanImportError`` unless UTF-8 (Excel: "CSV UTF-8")."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PlanImportError(
            [f"{source}: byte {error.start} is not UTF-8; save the sheet as 'CSV UTF-8 (Comma delimited)'"]
        ) from None


# --- Excel -------------------------------------------------------------------------------------


def _check_zip(data: bytes, source: str) -> None:
    if len(data) > MAX_FILE_BYTES:
        raise PlanImportError([f"{source}: {len(data)} bytes, larger than the {MAX_FILE_BYTES} bytes accepted"])
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise PlanImportError([f"{source}: not an Excel .xlsx workbook (an .xls file? save it as .xlsx)"]) from None
    if unpacked > MAX_XLSX_UNPACKED_BYTES:
        raise PlanImportError([f"{source}: the workbook unpacks to {unpacked} bytes, over {MAX_XLSX_UNPACKED_BYTES}"])


def parse_plan_xlsx(data: bytes, source: str) -> PlanIn:
    """The plan in an Excel workbook: the sheet named "Kế hoạch" or "Plan", else the first sheet.

    Values are read as last calculated (``data_only``): a formula cell holds what Excel showed.
    """
    _check_zip(data, source)
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, KeyError, ValueError, OSError, zipfile.BadZipFile) as error:
        raise PlanImportError([f"{source}: not a readable Excel workbook ({error})"]) from None
    try:
        sheets = workbook.worksheets
        if not sheets:
            raise PlanImportError([f"{source}: the workbook has no sheet"])
        sheet = next((s for s in sheets if normalise(s.title) in PLAN_SHEET_NAMES), sheets[0])
        title = sheet.title

        def where(row: int, column: int) -> str:
            return f"{source}:{title}!{get_column_letter(column + 1)}{row + 1}"

        # The stored dimension may be stale (some tools write "A1"): read what the sheet really holds.
        reset = getattr(sheet, "reset_dimensions", None)
        if callable(reset):
            reset()
        rows: list[Sequence[Cell]] = []
        used = 0
        for r, values in enumerate(sheet.iter_rows()):
            cells = list(values)
            while cells and getattr(cells[-1], "value", None) is None:
                cells.pop()  # trailing empty (perhaps only formatted) cells
            if not cells:
                rows.append(())
                continue
            used += 1
            if used > MAX_ROWS:
                raise PlanImportError([f"{source}:{title}: more than {MAX_ROWS} rows"])
            if len(cells) > MAX_COLUMNS:
                raise PlanImportError([f"{where(r, len(cells) - 1)}: more than {MAX_COLUMNS} columns"])
            rows.append(
                [
                    Cell(getattr(cell, "value", None), where(r, c), "%" in str(getattr(cell, "number_format", "")))
                    for c, cell in enumerate(cells)
                ]
            )
    finally:
        workbook.close()
    return plan_from_rows(rows, lambda r, c: Cell(None, where(r, c)), source)


def parse_plan_file(data: bytes, source: str, kind: Literal["csv", "xlsx"]) -> PlanIn:
    """Either format from its bytes (CSV must be UTF-8); ``PlanImportError`` with every problem found."""
    if len(data) > MAX_FILE_BYTES:
        raise PlanImportError([f"{source}: {len(data)} bytes, larger than the {MAX_FILE_BYTES} bytes accepted"])
    if kind == "xlsx":
        return parse_plan_xlsx(data, source)
    return parse_plan_csv(decode_csv(data, source), source)


@dataclass(frozen=True, slots=True)
class ApprovalDetails:
    """What the approver adds to a plan file: the decision's note, when, and the project's names."""

    note: str = ""
    approved_at: dt.datetime | None = None
    project_name_vi: str = ""
    project_name_en: str = ""


def plan_from_file(
    data: bytes, source: str, kind: Literal["csv", "xlsx"], details: ApprovalDetails
) -> tuple[PlanIn, PlanSource]:
    """The plan a file holds with the approver's details, and the file's name and SHA-256 for the version;
    ``PlanImportError`` for a bad file, ``ValidationError`` for details the plan refuses (the HTTP route and the
    CLI both come through here)."""
    parsed = parse_plan_file(data, source, kind)
    plan = PlanIn.model_validate(
        parsed.model_dump()
        | {
            "note": details.note,
            "approved_at": details.approved_at,
            "project_name_vi": details.project_name_vi,
            "project_name_en": details.project_name_en,
        }
    )
    return plan, PlanSource(source, hashlib.sha256(data).hexdigest())
