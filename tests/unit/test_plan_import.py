"""Reading plans from PMU files: CSV variants, Excel workbooks made here with openpyxl, errors with places."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook

from central_ingest.projects import plan_import
from central_ingest.projects.plan_import import (
    PlanImportError,
    decode_csv,
    header_kind,
    parse_plan_csv,
    parse_plan_file,
    parse_plan_xlsx,
)
from central_ingest.projects.plan_model import PackageIn, PlanIn, PlanPointIn
from devstack import plan_files

EXAMPLES = Path(__file__).resolve().parents[2] / "configs" / "plans"


def issues_of(call: object, *args: object) -> list[str]:
    assert callable(call)
    with pytest.raises(PlanImportError) as caught:
        call(*args)
    return list(caught.value.issues)


def test_english_comma_csv_with_iso_dates() -> None:
    text = (
        "package_id,name,weight,start,finish,critical,2025-03-31,2025-04-30\n"
        "mong,Foundation,40,2025-03-03,2025-04-11,yes,50,100\n"
        "mai,Roof,60,2025-04-14,2025-05-30,no,,20.5\n"
    )
    plan = parse_plan_csv(text, "plan.csv")
    assert plan.packages == (
        PackageIn(
            id="mong", name="Foundation", weight=40, planned_start=dt.date(2025, 3, 3),
            planned_finish=dt.date(2025, 4, 11), critical=True,
        ),
        PackageIn(
            id="mai", name="Roof", weight=60, planned_start=dt.date(2025, 4, 14),
            planned_finish=dt.date(2025, 5, 30), critical=False,
        ),
    )  # fmt: skip
    assert plan.points == (
        PlanPointIn(package_id="mong", date=dt.date(2025, 3, 31), planned_pct=50),
        PlanPointIn(package_id="mong", date=dt.date(2025, 4, 30), planned_pct=100),
        PlanPointIn(package_id="mai", date=dt.date(2025, 4, 30), planned_pct=20.5),
    )


def test_vietnamese_semicolon_csv_with_bom_title_row_decimal_commas_and_a_project_row() -> None:
    text = (
        "\ufeffKẾ HOẠCH TIẾN ĐỘ;;;;;\n"
        "\n"
        "STT;Mã hạng mục;Tên hạng mục;Tỷ trọng (%);Trọng yếu;31/03/2025;30/04/2025\n"
        "1;km0-1;Nền đường km 0-1;35,5%;x;10%;35,5\n"
        "2;km1-2;Nền đường km 1-2;64,5%;có;;20%\n"
        ";Toàn dự án;;;;3,6%;28%\n"
    )
    plan = parse_plan_csv(text, "ke-hoach.csv")
    assert [(p.id, p.weight, p.critical, p.name) for p in plan.packages] == [
        ("km0-1", 35.5, True, "Nền đường km 0-1"),
        ("km1-2", 64.5, True, "Nền đường km 1-2"),
    ]
    assert [(p.package_id, p.date.day, p.planned_pct) for p in plan.points] == [
        ("km0-1", 31, 10),
        ("km0-1", 30, 35.5),
        ("km1-2", 30, 20),
        ("", 31, 3.6),
        ("", 30, 28),
    ]


def test_bilingual_headers_tabs_and_generated_packages() -> None:
    text = (
        "Mã hạng mục / package_id\tTên / Name\tTỉ trọng / Weight\tBắt đầu / Start\tKết thúc / Finish\n"
        "a\tMóng\t1\t03/03/2025\t11/04/2025\n"
    )
    plan = parse_plan_csv(text, "p.tsv")
    assert plan.points == ()
    assert plan.packages[0].planned_finish == dt.date(2025, 4, 11)


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("Mã hạng mục", "package_id"),
        ("MA HANG MUC", "package_id"),
        ("Mã hạng mục/package_id", "package_id"),
        ("Tỷ trọng (%)", "weight"),
        ("weight", "weight"),
        ("Ngày kết thúc", "finish"),
        ("planned_start", "start"),
        ("Đường găng", "critical"),
        ("Ghi chú", "ignored"),
        ("Giá trị", None),
    ],
)
def test_header_names(header: str, kind: str | None) -> None:
    assert header_kind(header) == kind


def test_csv_problems_are_all_reported_with_line_and_column() -> None:
    text = (
        "Mã hạng mục;Tên hạng mục;Tỷ trọng;Bắt đầu;Kết thúc;Trọng yếu;Giá trị;31/03/2025;30/04/2025\n"  # line 1
        "mong;Móng;abc;03/03/2025;11/04/2025;x;;50%;40%\n"  # 2: weight not a number, % goes down
        "mai;Mái;10;14/04/2025;01/04/2025;hmm;;;\n"  # 3: finish before start, bad critical mark
        "mong;Móng lần 2;10;;;;;;\n"  # 4: duplicate id
        ";Không mã;10;;;;;;\n"  # 5: missing id
        "bad id!;X;10;;;;;;120\n"  # 6: bad id, % above 100
        "cot;Cột;0;03/03/2025;31/02/2025;;;;\n"  # 7: weight 0, 31/02 is not a date
    )
    issues = issues_of(parse_plan_csv, text, "plan.csv")
    assert issues == [
        "plan.csv:1:7: unknown column 'Giá trị': expected Mã hạng mục/package_id, Tên hạng mục/name, "
        "Tỷ trọng/weight, Bắt đầu/start, Kết thúc/finish, Trọng yếu/critical, or a date (dd/mm/yyyy or yyyy-mm-dd)",
        "plan.csv:2:3: 'abc' is not a number (e.g. 35%, 35 or 35,5)",
        "plan.csv:2:9: planned 40% on 30/04/2025 is below 50% on 31/03/2025: the planned % is cumulative and "
        "cannot go down",
        "plan.csv:3:5: finish 01/04/2025 is before start 14/04/2025",
        "plan.csv:3:6: 'hmm' is not a yes/no mark (x, có, yes, 1 / empty, không, no, 0)",
        "plan.csv:4:1: package mong is already declared at plan.csv:2:1",
        "plan.csv:5:1: missing package id (Mã hạng mục)",
        "plan.csv:6:1: package id 'bad id!': use 1-64 letters, digits, '_', '.', ':' or '-'",
        "plan.csv:6:9: planned 120% is outside 0..100",
        "plan.csv:7:3: weight 0 must be above 0",
        "plan.csv:7:5: '31/02/2025' is not a date (dd/mm/yyyy or yyyy-mm-dd)",
    ]


def test_quoted_multiline_cells_keep_line_numbers_right() -> None:
    text = 'package_id,name,weight,2025-03-31\na,"Móng\nkhối A",1,10\nb,Mái,1,x\n'
    assert issues_of(parse_plan_csv, text, "p.csv") == ["p.csv:4:4: 'x' is not a number (e.g. 35%, 35 or 35,5)"]


@pytest.mark.parametrize(
    ("text", "issue"),
    [
        ("name,weight\nMóng,1\n", "p.csv: no header row with a Mã hạng mục/package_id column in the first 30 rows"),
        ("package_id,name\na,Móng\n", "p.csv:1:1: no Tỷ trọng/weight column"),
        ("package_id,weight\na,1\n", "p.csv:1:1: no date columns and no Bắt đầu/start + Kết thúc/finish columns"),
        ("package_id,weight,2025-01-01\n", "p.csv:1:1: the table has no package rows"),
        ("package_id,weight,start,finish\na,1,,\n", "p.csv:2:1: package a has no planned % by date and no start"),
        ("package_id,weight,start,finish\na,1,01/01/2025,\n", "p.csv:2:4: give both start and finish, or neither"),
        ("package_id,weight,01/01/2025,2025-01-01\na,1,1,2\n", "p.csv:1:4: date 01/01/2025 appears in two columns"),
        ('package_id,weight,2025-01-01\na,"1,5.0",1\n', "p.csv:2:2: '1,5.0' mixes ',' and '.'"),
    ],
)
def test_table_level_problems(text: str, issue: str) -> None:
    issues = issues_of(parse_plan_csv, text, "p.csv")
    assert any(i.startswith(issue) for i in issues), issues


def test_csv_must_be_utf8_and_size_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    latin = "package_id,name,weight,2025-01-01\na,Móng,1,5\n".encode("cp1258")
    [issue] = issues_of(decode_csv, latin, "p.csv")
    assert issue.startswith("p.csv: byte ")
    assert "CSV UTF-8" in issue
    assert (
        parse_plan_file(b"\xef\xbb\xbfpackage_id,weight,2025-01-01\na,1,5\n", "p.csv", "csv").points[0].planned_pct == 5
    )
    monkeypatch.setattr(plan_import, "MAX_FILE_BYTES", 10)
    assert issues_of(parse_plan_file, b"x" * 11, "p.csv", "csv") == [
        "p.csv: 11 bytes, larger than the 10 bytes accepted"
    ]
    monkeypatch.setattr(plan_import, "MAX_ROWS", 2)
    text = "package_id,weight,2025-01-01\na,1,5\nb,1,5\n"
    assert issues_of(parse_plan_csv, text, "p.csv") == ["p.csv:3: more than 2 rows"]


def excel_time(year: int, month: int, day: int) -> dt.datetime:
    """A date-time cell as openpyxl gives it back: Excel has no time zones."""
    return dt.datetime.combine(dt.date(year, month, day), dt.time())


def workbook_bytes(*sheets: tuple[str, list[list[object]]], percent: tuple[str, ...] = ()) -> bytes:
    """An .xlsx with the given sheets (title, rows); cells named in ``percent`` (e.g. "Plan!C3") get a % format."""
    book = Workbook()
    first = book.active
    assert first is not None
    book.remove(first)
    for title, rows in sheets:
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    for ref in percent:
        title, cell = ref.split("!")
        book[title][cell].number_format = "0.0%"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_xlsx_sheet_choice_real_dates_and_percent_cells() -> None:
    rows: list[list[object]] = [
        ["Kế hoạch tiến độ cầu Tân Lập"],
        ["Mã hạng mục", "Tên hạng mục", "Tỷ trọng", "Bắt đầu", "Kết thúc", "Trọng yếu", dt.date(2025, 3, 31),
         excel_time(2025, 4, 30), "31/05/2025"],
        ["tru-1", "Trụ T1", 0.25, excel_time(2025, 3, 3), "11/04/2025", True, 0.35, "60%", 100],
        [101, "Dầm", "75", "2025-04-14", dt.date(2025, 5, 30), 0, None, 0.1, "35,5"],
    ]  # fmt: skip
    data = workbook_bytes(("Ghi chú", [["not the plan"]]), ("Plan", rows), percent=("Plan!C3", "Plan!G3", "Plan!H4"))
    plan = parse_plan_xlsx(data, "plan.xlsx")
    assert [(p.id, p.weight, p.planned_start, p.planned_finish, p.critical) for p in plan.packages] == [
        ("tru-1", 25, dt.date(2025, 3, 3), dt.date(2025, 4, 11), True),
        ("101", 75, dt.date(2025, 4, 14), dt.date(2025, 5, 30), False),
    ]
    assert [(p.package_id, p.date, p.planned_pct) for p in plan.points] == [
        ("tru-1", dt.date(2025, 3, 31), 35),
        ("tru-1", dt.date(2025, 4, 30), 60),
        ("tru-1", dt.date(2025, 5, 31), 100),
        ("101", dt.date(2025, 4, 30), 10),
        ("101", dt.date(2025, 5, 31), 35.5),
    ]
    # Without a sheet named Kế hoạch / Plan, the first sheet is the plan.
    first_only = workbook_bytes(("Sheet1", rows), ("Khác", [["x"]]), percent=("Sheet1!C3", "Sheet1!G3", "Sheet1!H4"))
    assert parse_plan_xlsx(first_only, "p.xlsx") == plan


def test_xlsx_with_a_stale_dimension_is_read_whole() -> None:
    rows: list[list[object]] = [["package_id", "weight", "2025-01-01", "2025-02-01"], ["a", 1, 5, 50], ["b", 1, 7, 70]]
    data = workbook_bytes(("Plan", rows))
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                assert b'<dimension ref="A1:D3" />' in content
                content = content.replace(b'<dimension ref="A1:D3" />', b'<dimension ref="A1" />')
            target.writestr(info, content)
    plan = parse_plan_xlsx(out.getvalue(), "p.xlsx")
    assert [(p.package_id, p.planned_pct) for p in plan.points] == [("a", 5), ("a", 50), ("b", 7), ("b", 70)]


def test_xlsx_problems_point_at_sheet_and_cell() -> None:
    rows: list[list[object]] = [
        ["KẾ HOẠCH"],
        [],
        ["STT", "Mã hạng mục", "Tỷ trọng", "Bắt đầu", "Kết thúc", dt.date(2025, 3, 31), dt.date(2025, 4, 30)],
        [1, "mong", 20, dt.date(2025, 3, 3), dt.date(2025, 4, 11), 50, 60],
        [2, "mai", -5, dt.date(2025, 4, 14), dt.date(2025, 4, 1), None, None],
        [3, "cot", 10, None, None, 70, 30],
        [4, "san", 10, "đầu tháng 3", dt.date(2025, 4, 11), "năm mươi", None],
    ]
    issues = issues_of(parse_plan_xlsx, workbook_bytes(("Kế hoạch", rows)), "plan.xlsx")
    assert issues == [
        "plan.xlsx:Kế hoạch!C5: weight -5 must be above 0",
        "plan.xlsx:Kế hoạch!E5: finish 01/04/2025 is before start 14/04/2025",
        "plan.xlsx:Kế hoạch!G6: planned 30% on 30/04/2025 is below 70% on 31/03/2025: the planned % is cumulative "
        "and cannot go down",
        "plan.xlsx:Kế hoạch!D7: 'đầu tháng 3' is not a date (dd/mm/yyyy or yyyy-mm-dd)",
        "plan.xlsx:Kế hoạch!F7: 'năm mươi' is not a number (e.g. 35%, 35 or 35,5)",
    ]


def test_files_that_are_not_workbooks_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    [issue] = issues_of(parse_plan_xlsx, b"package_id,weight\n", "plan.xlsx")
    assert issue == "plan.xlsx: not an Excel .xlsx workbook (an .xls file? save it as .xlsx)"
    other_zip = io.BytesIO()
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    [issue] = issues_of(parse_plan_xlsx, other_zip.getvalue(), "plan.xlsx")
    assert issue.startswith("plan.xlsx: not a readable Excel workbook")
    data = workbook_bytes(("Plan", [["package_id", "weight", "2025-01-01"], ["a", 1, 5]]))
    monkeypatch.setattr(plan_import, "MAX_XLSX_UNPACKED_BYTES", 1000)
    [issue] = issues_of(parse_plan_xlsx, data, "plan.xlsx")
    assert issue.startswith("plan.xlsx: the workbook unpacks to ")
    assert issue.endswith("over 1000")
    monkeypatch.setattr(plan_import, "MAX_XLSX_UNPACKED_BYTES", 10**8)
    monkeypatch.setattr(plan_import, "MAX_ROWS", 1)
    assert issues_of(parse_plan_xlsx, data, "plan.xlsx") == ["plan.xlsx:Plan: more than 1 rows"]


def test_issues_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_import, "MAX_ISSUES", 3)
    text = "package_id,weight,2025-01-01\n" + "".join(f"p{i},x,1\n" for i in range(5))
    issues = issues_of(parse_plan_csv, text, "p.csv")
    assert issues[:3] == [f"p.csv:{line}:2: 'x' is not a number (e.g. 35%, 35 or 35,5)" for line in (2, 3, 4)]
    assert issues[3] == "p.csv: ... and 2 more problems"


def test_example_files_hold_the_same_plan_and_are_what_the_generator_writes(tmp_path: Path) -> None:
    csv_path, xlsx_path = plan_files.write_plan_files(tmp_path)
    assert csv_path.read_bytes() == (EXAMPLES / "example_plan.csv").read_bytes()
    assert xlsx_path.read_bytes() == (EXAMPLES / "example_plan.xlsx").read_bytes()
    from_csv = parse_plan_file(csv_path.read_bytes(), "example_plan.csv", "csv")
    from_xlsx = parse_plan_file(xlsx_path.read_bytes(), "example_plan.xlsx", "xlsx")
    assert from_csv == from_xlsx
    assert isinstance(from_csv, PlanIn)
    assert [p.id for p in from_csv.packages] == [p.id for p in plan_files.PACKAGES]
    assert [p.id for p in from_csv.packages if p.critical] == ["mong", "khung-t1", "mai"]
