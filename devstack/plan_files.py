"""The example plan files under ``configs/plans/``: one plan, as a PMU keeps it in CSV and in Excel.

    python -m devstack.plan_files [--out configs/plans]

Both files hold the same plan of a small building (the commune cultural house of Tân Lập): five work
packages with weights, planned start/finish and critical marks; two of them also carry monthly planned
percentages, the others get the generated S-curve. The CSV is the form Excel saves with a Vietnamese
locale (semicolons, decimal commas, dd/mm/yyyy, UTF-8 with BOM); the workbook has a title row, bilingual
headers, real date cells and %-formatted cells on a sheet named "Kế hoạch". The workbook is written
byte-for-byte reproducibly (fixed document times and zip entry times), so a test can check the committed
files are what this script writes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from openpyxl import Workbook

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "configs" / "plans"
CSV_NAME = "example_plan.csv"
XLSX_NAME = "example_plan.xlsx"
PROJECT_ID = "nha-van-hoa-tan-lap"
PROJECT_NAME_VI = "Nhà văn hoá xã Tân Lập"
PROJECT_NAME_EN = "Tân Lập commune cultural house"
FIXED_TIME = dt.datetime(2025, 2, 20, 1, 0, 0, tzinfo=dt.UTC)
"""Document and zip entry times of the workbook: the plan's (fictional) approval day."""
MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")


@dataclass(frozen=True)
class Package:
    id: str
    name: str
    weight_pct: float
    start: dt.date
    finish: dt.date
    critical: bool
    monthly: tuple[float | None, ...] = ()
    """Planned % at each of MONTH_ENDS (None: no figure that month); () = generated S-curve."""


MONTH_ENDS = (
    dt.date(2025, 3, 31),
    dt.date(2025, 4, 30),
    dt.date(2025, 5, 31),
    dt.date(2025, 6, 30),
    dt.date(2025, 7, 31),
    dt.date(2025, 8, 31),
    dt.date(2025, 9, 30),
    dt.date(2025, 10, 31),
)
PACKAGES = (
    Package("mong", "Móng", 15, dt.date(2025, 3, 3), dt.date(2025, 4, 11), True, (62.5, 100)),
    Package("khung-t1", "Cột, dầm, sàn tầng 1", 20, dt.date(2025, 4, 14), dt.date(2025, 5, 30), True, (None, 30, 100)),
    Package("khung-t2", "Cột, dầm, sàn tầng 2", 20, dt.date(2025, 6, 2), dt.date(2025, 7, 18), False),
    Package("mai", "Mái", 15, dt.date(2025, 7, 21), dt.date(2025, 8, 29), True),
    Package("hoan-thien", "Hoàn thiện", 30, dt.date(2025, 8, 4), dt.date(2025, 10, 31), False),
)


def _vn_number(value: float) -> str:
    return f"{value:g}".replace(".", ",")


def plan_csv() -> str:
    """The CSV text (without the BOM, which ``write_plan_files`` adds as Excel does)."""
    header = ["STT", "Mã hạng mục", "Tên hạng mục", "Tỷ trọng (%)", "Bắt đầu", "Kết thúc", "Trọng yếu"]
    lines = [";".join(header + [f"{day:%d/%m/%Y}" for day in MONTH_ENDS])]
    for number, p in enumerate(PACKAGES, start=1):
        cells = [str(number), p.id, p.name, _vn_number(p.weight_pct) + "%", f"{p.start:%d/%m/%Y}"]
        cells += [f"{p.finish:%d/%m/%Y}", "x" if p.critical else ""]
        monthly = [*p.monthly, *([None] * (len(MONTH_ENDS) - len(p.monthly)))]
        cells += ["" if pct is None else _vn_number(pct) + "%" for pct in monthly]
        lines.append(";".join(cells))
    return "\r\n".join(lines) + "\r\n"


def plan_workbook_bytes() -> bytes:
    """The .xlsx file's bytes, the same every run."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Kế hoạch"
    sheet.append([f"KẾ HOẠCH TIẾN ĐỘ / SCHEDULE: {PROJECT_NAME_VI}"])
    header: list[object] = ["Mã hạng mục / Package ID", "Tên hạng mục / Name", "Tỷ trọng / Weight"]
    header += ["Bắt đầu / Start", "Kết thúc / Finish", "Trọng yếu / Critical", *MONTH_ENDS]
    sheet.append(header)
    for p in PACKAGES:
        monthly = [*p.monthly, *([None] * (len(MONTH_ENDS) - len(p.monthly)))]
        row: list[object] = [p.id, p.name, p.weight_pct / 100, p.start, p.finish, "có" if p.critical else "không"]
        sheet.append(row + [None if pct is None else pct / 100 for pct in monthly])
    for cells in sheet.iter_rows(min_row=2):
        for cell in cells:
            if isinstance(cell.value, dt.date):
                cell.number_format = "dd/mm/yyyy"
            elif isinstance(cell.value, float):
                cell.number_format = "0.0%"
    workbook.properties.created = FIXED_TIME
    workbook.properties.modified = FIXED_TIME
    raw = io.BytesIO()
    workbook.save(raw)
    return _fixed_zip_times(raw.getvalue())


def _fixed_zip_times(data: bytes) -> bytes:
    """The same archive with every entry and the document's "modified" dated ``FIXED_TIME``.

    openpyxl stamps both with the current time when it saves.
    """
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME.timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            content = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = MODIFIED.sub(rb"\g<1>" + stamp + rb"\g<2>", content)
            target.writestr(entry, content)
    return out.getvalue()


def write_plan_files(out: Path = DEFAULT_OUT) -> tuple[Path, Path]:
    """Write both example files into ``out``; returns their paths (csv, xlsx)."""
    out.mkdir(parents=True, exist_ok=True)
    csv_path, xlsx_path = out / CSV_NAME, out / XLSX_NAME
    csv_path.write_bytes(b"\xef\xbb\xbf" + plan_csv().encode("utf-8"))
    xlsx_path.write_bytes(plan_workbook_bytes())
    return csv_path, xlsx_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.plan_files", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"directory (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    for path in write_plan_files(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
