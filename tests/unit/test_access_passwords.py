"""Password hashes (scrypt with stored parameters) and the role list."""

from __future__ import annotations

import pytest

from central_ingest.access.passwords import (
    KdfParams,
    PasswordError,
    check_password_policy,
    hash_password,
    needs_rehash,
    parse_hash,
    verify_password,
)
from central_ingest.access.roles import ROLES, RoleError, parse_roles
from central_ingest.access.settings import AccessSettings, access_settings

FAST = KdfParams(log2_n=10)  # the format is what is under test, not the cost


def test_hash_verifies_only_its_password_and_carries_its_parameters() -> None:
    stored = hash_password("mật khẩu đủ dài 2025", FAST)
    assert stored.startswith("scrypt$ln=10,r=8,p=1$")
    assert verify_password("mật khẩu đủ dài 2025", stored)
    assert not verify_password("mật khẩu đủ dài 2026", stored)
    params, salt, key = parse_hash(stored)
    assert (params, len(salt), len(key)) == (FAST, 16, 32)


def test_same_password_gets_a_fresh_salt() -> None:
    assert hash_password("a long password", FAST) != hash_password("a long password", FAST)


def test_raised_parameters_ask_for_a_rehash_and_old_hashes_still_verify() -> None:
    old = hash_password("a long password", FAST)
    stronger = KdfParams(log2_n=11)
    assert needs_rehash(old, stronger)
    assert not needs_rehash(old, FAST)
    assert verify_password("a long password", old)  # verified with its own parameters
    assert needs_rehash("not-a-hash", FAST)


def test_the_default_cost_is_owasp_minimum() -> None:
    params = KdfParams(AccessSettings().password_kdf_log2_n)
    assert (1 << params.log2_n, params.r, params.p) == (2**17, 8, 1)
    assert params.max_memory > 128 * 8 * 2**17  # hashlib's 32 MiB default would refuse it


@pytest.mark.parametrize("stored", ["", "scrypt$ln=10,r=8,p=1$!!$??", "bcrypt$2b$12$abc", "scrypt$ln=99,r=8,p=1$YQ$YQ"])
def test_foreign_hashes_are_refused(stored: str) -> None:
    with pytest.raises(PasswordError):
        verify_password("whatever", stored)


def test_policy_bounds_length() -> None:
    check_password_policy("x" * 12, 12)
    with pytest.raises(PasswordError, match="at least 12"):
        check_password_policy("x" * 11, 12)
    with pytest.raises(PasswordError, match="at most"):
        check_password_policy("x" * 2000, 12)
    assert not verify_password("x" * 2000, hash_password("short enough", FAST))


def test_roles_are_flat_and_checked() -> None:
    assert ROLES == ("operator", "police", "project_unit", "technician", "admin", "auditor")
    assert parse_roles(["police", "auditor", "police"]) == frozenset({"police", "auditor"})
    with pytest.raises(RoleError, match="roles are"):
        parse_roles(["superuser"])
    with pytest.raises(RoleError):
        parse_roles([])


def test_access_settings_defaults_and_checks() -> None:
    defaults = AccessSettings()
    assert defaults.totp_roles == ("police", "admin")
    assert access_settings(object()) == defaults
    with pytest.raises(ValueError, match="session_absolute_s"):
        AccessSettings(session_idle_s=3600, session_absolute_s=600)
    with pytest.raises(ValueError, match="extra"):
        AccessSettings.model_validate({"session_idle": 60})
