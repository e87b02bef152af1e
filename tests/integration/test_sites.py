"""The camera/sensor site registry: the YAML file (errors at FILE:LINE), `central-ingest cameras import`, and
the table it fills, on the real TimescaleDB."""

from __future__ import annotations

import hashlib
from pathlib import Path

import psycopg
import pytest

from central_ingest.cli import main
from central_ingest.sites.config import load_sites
from central_ingest.store.migrate import apply_migrations
from ioc_common.yaml_files import ConfigError

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "sites.example.yaml"
TWO_SITES = """\
sites:
  - id: cam-a
    agent_id: agent-1
    name: "Ngã tư A"
    lat: 16.46
    lon: 107.59
  - id: cam-b
    agent_id: agent-1
    kind: camera
    name: "Cầu B"
    lat: 16.47
    lon: 107.58
    area: "Phường Phú Hội"
"""


def write(tmp_path: Path, text: str, name: str = "sites.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def issues_of(path: Path) -> list[tuple[int, str, str]]:
    with pytest.raises(ConfigError) as caught:
        load_sites(path)
    return [(issue.line, issue.loc, issue.message) for issue in caught.value.issues]


def rows(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT agent_id, id, kind, name, lat, lon, area FROM camera_sites ORDER BY id").fetchall()


def test_example_file_is_valid() -> None:
    sites = load_sites(EXAMPLE).sites
    assert len(sites) >= 3
    assert {site.kind for site in sites} == {"camera", "sensor"}
    assert all(15 < site.lat < 17 and 107 < site.lon < 108 for site in sites)  # Huế


def test_errors_point_at_the_line(tmp_path: Path) -> None:
    bad_lat = TWO_SITES.replace("lat: 16.47", "lat: 96.47")
    assert issues_of(write(tmp_path, bad_lat)) == [(11, "sites.1.lat", "Input should be less than or equal to 90")]
    unknown = TWO_SITES.replace("    area:", "    zone: x\n    area:")
    [(line, loc, message)] = issues_of(write(tmp_path, unknown))
    assert (line, loc) == (13, "sites.1.zone")
    assert "Extra inputs" in message
    missing = TWO_SITES.replace('    name: "Ngã tư A"\n', "")
    [(line, loc, _)] = issues_of(write(tmp_path, missing))
    assert (line, loc) == (2, "sites.0.name")
    bad_id = TWO_SITES.replace("id: cam-b", "id: 'cam b'")
    [(line, loc, _)] = issues_of(write(tmp_path, bad_id))
    assert (line, loc) == (7, "sites.1.id")


def test_duplicate_site_points_at_the_repeat(tmp_path: Path) -> None:
    twice = TWO_SITES.replace("id: cam-b", "id: cam-a")
    [(line, loc, message)] = issues_of(write(tmp_path, twice))
    assert (line, loc) == (7, "sites.1.id")
    assert message == "site agent-1/cam-a is listed twice (first at sites.0)"
    # The same id under another agent is another site.
    load_sites(write(tmp_path, twice.replace("agent_id: agent-1\n    kind", "agent_id: agent-2\n    kind")))


def test_a_province_uses_one_scheme_of_levels(tmp_path: Path) -> None:
    mixed = TWO_SITES.replace(
        "    lon: 107.59\n", '    lon: 107.59\n    province: "Huế"\n    district: "Phú Xuân"\n    commune: "Phú Hội"\n'
    ).replace('    area: "Phường Phú Hội"\n', '    province: "Huế"\n    commune: "Phú Xuân"\n')
    [(line, loc, message)] = issues_of(write(tmp_path, mixed))
    # Reported at the site of the minority form (here a tie: the one with a district), at its district line.
    assert (line, loc) == (8, "sites.0.district")
    assert "mixes sites with and without a district" in message
    assert "sites.1" in message
    one_scheme = mixed.replace('    district: "Phú Xuân"\n', "")
    assert [site.commune for site in load_sites(write(tmp_path, one_scheme)).sites] == ["Phú Hội", "Phú Xuân"]


def test_cameras_import_upserts_and_prunes(pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    apply_migrations(pg_dsn)
    path = write(tmp_path, TWO_SITES)
    assert main(["--database-url", pg_dsn, "cameras", "import", str(path)]) == 0
    assert "2 added, 0 updated, 0 unchanged, 0 removed" in capsys.readouterr().out
    assert rows(pg_dsn) == [
        ("agent-1", "cam-a", "camera", "Ngã tư A", 16.46, 107.59, None),
        ("agent-1", "cam-b", "camera", "Cầu B", 16.47, 107.58, "Phường Phú Hội"),
    ]

    assert main(["--database-url", pg_dsn, "cameras", "import", str(path)]) == 0
    assert "0 added, 0 updated, 2 unchanged, 0 removed" in capsys.readouterr().out

    moved = write(tmp_path, TWO_SITES.replace("lat: 16.46", "lat: 16.4601"), "moved.yaml")
    assert main(["--database-url", pg_dsn, "cameras", "import", str(moved)]) == 0
    assert "0 added, 1 updated, 1 unchanged, 0 removed" in capsys.readouterr().out
    assert rows(pg_dsn)[0][4] == 16.4601

    only_a = write(tmp_path, TWO_SITES.split("  - id: cam-b", maxsplit=1)[0], "only_a.yaml")
    assert main(["--database-url", pg_dsn, "cameras", "import", str(only_a)]) == 0  # without --prune: kept
    assert [row[1] for row in rows(pg_dsn)] == ["cam-a", "cam-b"]
    assert main(["--database-url", pg_dsn, "cameras", "import", str(only_a), "--prune"]) == 0
    assert "1 removed" in capsys.readouterr().out
    assert [row[1] for row in rows(pg_dsn)] == ["cam-a"]

    # The registry decides who sees what: every import is in the audit log, with the file's digest and counts.
    with psycopg.connect(pg_dsn) as conn:
        imports = conn.execute(
            "SELECT actor, target FROM audit_log WHERE action = 'sites_imported' ORDER BY seq"
        ).fetchall()
    assert len(imports) == 5
    actor, last = imports[-1]
    assert actor.startswith("cli:")
    assert (last["file"], last["prune"], last["removed"]) == ("only_a.yaml", True, 1)
    assert last["sha256"] == hashlib.sha256(only_a.read_bytes()).hexdigest()


def test_cameras_import_of_a_bad_file_changes_nothing(
    pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    apply_migrations(pg_dsn)
    before = rows(pg_dsn)
    bad = write(tmp_path, TWO_SITES.replace("lon: 107.58", "lon: east"), "bad.yaml")
    assert main(["--database-url", pg_dsn, "cameras", "import", str(bad), "--prune"]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:12:10: sites.1.lon:" in err
    assert rows(pg_dsn) == before
