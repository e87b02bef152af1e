"""``central-ingest user ...`` on the real database: each command, its output, and its audit entry."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path

import psycopg
import pytest

from central_ingest.access.passwords import verify_password
from central_ingest.access.totp import secret_base32
from central_ingest.audit import AuditFilter, AuditRecord, list_audit
from central_ingest.cli import main
from central_ingest.store.migrate import apply_migrations

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dsn(pg_dsn: str) -> str:
    apply_migrations(pg_dsn)
    return pg_dsn


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_text("mật-khẩu-đủ-dài-2025\n", encoding="utf-8")
    return path


def audit(dsn: str) -> list[AuditRecord]:
    async def read() -> list[AuditRecord]:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            return await list_audit(conn, AuditFilter(), 1000)

    return asyncio.run(read())


def stored(dsn: str, username: str) -> tuple[str, bytes | None, bool, list[str]]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT password_hash, totp_secret, disabled, roles FROM users WHERE username = %s", (username,)
        ).fetchone()
    assert row is not None
    return row[0], None if row[1] is None else bytes(row[1]), row[2], row[3]


def test_user_lifecycle(dsn: str, password_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = ["--database-url", dsn, "user"]
    assert main([*cli, "add", "Officer.An", "--role", "police", "--password-file", str(password_file)]) == 0
    out = capsys.readouterr().out.splitlines()
    password_hash, secret, disabled, roles = stored(dsn, "officer.an")
    assert secret is not None
    assert out[0] == f"TOTP secret: {secret_base32(secret)}"
    assert out[1].startswith("otpauth://totp/IOC:officer.an?secret=")
    assert verify_password("mật-khẩu-đủ-dài-2025", password_hash)
    assert (disabled, roles) == (False, ["police"])

    assert main([*cli, "add", "operator.chi", "--role", "operator", "--password-file", str(password_file)]) == 0
    assert capsys.readouterr().out == ""  # no TOTP for an operator
    assert main([*cli, "add", "officer.an", "--role", "police", "--password-file", str(password_file)]) == 1
    assert "already exists" in capsys.readouterr().err

    assert main([*cli, "set-roles", "operator.chi", "--role", "operator", "--role", "auditor"]) == 0
    assert main([*cli, "set-roles", "operator.chi", "--role", "admin"]) == 0
    assert "TOTP secret" in capsys.readouterr().out  # admin needs a second factor: one is made
    assert main([*cli, "disable", "operator.chi"]) == 0
    assert main([*cli, "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    whole = "toàn tỉnh / whole province"
    assert listing == [
        f"officer.an\tpolice\tactive\ttotp\t\t{whole}",
        f"operator.chi\tadmin\tdisabled\ttotp\t\t{whole}",
    ]
    assert main([*cli, "enable", "operator.chi"]) == 0

    password_file.write_text("một mật khẩu mới khác hẳn\n", encoding="utf-8")
    assert main([*cli, "set-password", "officer.an", "--password-file", str(password_file)]) == 0
    assert verify_password("một mật khẩu mới khác hẳn", stored(dsn, "officer.an")[0])
    assert main([*cli, "reset-totp", "officer.an"]) == 0
    assert stored(dsn, "officer.an")[1] not in {None, secret}

    password_file.write_text("short\n", encoding="utf-8")
    assert main([*cli, "set-password", "officer.an", "--password-file", str(password_file)]) == 1
    assert "at least 12" in capsys.readouterr().err
    assert main([*cli, "disable", "nobody"]) == 1

    entries = audit(dsn)
    assert [(e.action, e.target["username"]) for e in entries] == [
        ("user_created", "officer.an"),
        ("user_created", "operator.chi"),
        ("user_roles_changed", "operator.chi"),
        ("user_roles_changed", "operator.chi"),
        ("user_disabled", "operator.chi"),
        ("user_enabled", "operator.chi"),
        ("user_password_set", "officer.an"),
        ("user_totp_reset", "officer.an"),
    ]
    assert {(e.actor, e.role) for e in entries} == {(f"cli:{getpass.getuser()}", "cli")}
    assert entries[3].target["previous_roles"] == ["auditor", "operator"]
    for entry in entries:  # never a password, hash or secret in the log
        text = str(entry.target)
        assert "scrypt" not in text
        assert secret_base32(secret) not in text


def test_password_is_never_taken_from_argv_and_needs_a_terminal_to_prompt(
    dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["--database-url", dsn, "user", "add", "x.y", "--role", "operator", "--password", "secret"])
    capsys.readouterr()
    # pytest's stdin is not a terminal: no silent empty password, a clear error instead.
    assert main(["--database-url", dsn, "user", "add", "x.y", "--role", "operator"]) == 1
    assert "--password-file" in capsys.readouterr().err


def test_area_scope_of_a_user(dsn: str, password_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = ["--database-url", dsn, "user"]
    add = [*cli, "add", "xa.phuhoi", "--role", "operator", "--password-file", str(password_file)]
    assert main([*add, "--area", "Huế/Phú Xuân/Phú Hội", "--area", " Huế / Kim Long "]) == 0
    assert "areas: Huế/Phú Xuân/Phú Hội; Huế/Kim Long" in capsys.readouterr().err

    def areas() -> list[str] | None:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT areas FROM users WHERE username = 'xa.phuhoi'").fetchone()
        assert row is not None
        return row[0]  # type: ignore[no-any-return]

    assert areas() == ["Huế/Phú Xuân/Phú Hội", "Huế/Kim Long"]
    assert main([*cli, "set-areas", "xa.phuhoi", "--area", "Huế/Thuận Hóa"]) == 0
    assert areas() == ["Huế/Thuận Hóa"]
    assert main([*cli, "set-areas", "xa.phuhoi", "--area", "Huế//Phú Hội"]) == 1
    assert "no empty part" in capsys.readouterr().err
    assert areas() == ["Huế/Thuận Hóa"]  # a refused change changes nothing
    assert main([*cli, "set-areas", "xa.phuhoi"]) == 0  # no --area: the whole province
    assert areas() is None
    assert main([*cli, "set-areas", "nobody", "--area", "Huế"]) == 1

    changes = [e for e in audit(dsn) if e.action == "user_areas_changed"]
    assert [(e.target["previous_areas"], e.target["areas"]) for e in changes] == [
        (["Huế/Phú Xuân/Phú Hội", "Huế/Kim Long"], ["Huế/Thuận Hóa"]),
        (["Huế/Thuận Hóa"], None),
    ]
    created = next(e for e in audit(dsn) if e.action == "user_created" and e.target["username"] == "xa.phuhoi")
    assert created.target["areas"] == ["Huế/Phú Xuân/Phú Hội", "Huế/Kim Long"]
