"""Packaging checks: the Dockerfiles lint clean and install what pyproject.toml declares, and the lock covers it.

The images cannot be built here (no image registry), so these checks are what keeps them honest.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = ("Dockerfile.edge", "Dockerfile.central")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@dataclass
class Stage:
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse_dockerfile(path: Path) -> list[Stage]:
    """Split a Dockerfile into stages of (INSTRUCTION, arguments), continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.search(r"\bAS\s+(\S+)", args, flags=re.IGNORECASE)
            stages.append(Stage(name=match.group(1) if match else str(len(stages))))
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
    return stages


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def declared_packages() -> set[str]:
    project = PYPROJECT["project"]
    names = {requirement_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        names |= {requirement_name(r) for r in extra}
    return names


def pip_install_arguments(stage: Stage) -> list[list[str]]:
    found = []
    for keyword, args in stage.instructions:
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;", args):
            words = shlex.split(command)
            if "pip" in words and "install" in words:
                found.append(words[words.index("install") + 1 :])
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_passes_hadolint(dockerfile: str) -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(ROOT / dockerfile)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_is_multistage_nonroot_and_healthchecked(dockerfile: str) -> None:
    stages = parse_dockerfile(ROOT / dockerfile)
    assert len(stages) >= 2, "build and runtime must be separate stages"
    final = stages[-1]
    users = [args for keyword, args in final.instructions if keyword == "USER"]
    assert users, "the runtime stage must switch to a non-root user"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert any(keyword == "HEALTHCHECK" for keyword, _ in final.instructions)
    assert not any(keyword == "RUN" and "pip install" in args for keyword, args in final.instructions), (
        "the runtime stage copies a built environment; it installs nothing itself"
    )


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_installs_what_pyproject_declares(dockerfile: str) -> None:
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    declared = declared_packages()
    installs = [args for stage in parse_dockerfile(ROOT / dockerfile) for args in pip_install_arguments(stage)]
    assert installs, "the image must install the project"
    for args in installs:
        assert "-c" in args, f"pip install without the lock file: {args}"
        assert args[args.index("-c") + 1] == "constraints.txt"
        targets = [a for i, a in enumerate(args) if not a.startswith("-") and args[i - 1] != "-c"]
        for target in targets:
            project = re.fullmatch(r"\.\[([a-z,]+)\]", target)
            if project:
                assert set(project.group(1).split(",")) <= extras, f"unknown extra in {target}"
            else:
                assert requirement_name(target) in declared, f"{dockerfile} installs {target}, not in pyproject.toml"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_entrypoint_is_a_declared_console_script(dockerfile: str) -> None:
    final = parse_dockerfile(ROOT / dockerfile)[-1]
    entrypoints = [args for keyword, args in final.instructions if keyword == "ENTRYPOINT"]
    assert entrypoints
    program = re.findall(r'"([^"]+)"', entrypoints[-1])[0]
    assert program in PYPROJECT["project"]["scripts"]


def test_lock_file_pins_every_declared_dependency() -> None:
    pinned = {}
    for raw in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pinned[requirement_name(name)] = version
    missing = sorted(declared_packages() - set(pinned))
    assert not missing, f"constraints.txt lacks pins for {missing}: regenerate it (see README, Development)"
    assert all(pinned.values()), "every line of constraints.txt must be an exact == pin"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "./run test" in readme
    commands = [line.strip() for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert commands[-1] == "./run test"
