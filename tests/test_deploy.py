"""The files that run the daemon as a service (deploy/) and the packaging metadata.

The static checks always run; ``systemd-analyze verify`` and the image build run where those tools work
and are skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from aggregator.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "aggregator.service"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"


# --- Readers ---------------------------------------------------------------------------------------


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit as {section: {key: [values in order]}} (keys may repeat, as SystemCallFilter does)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, f"{path.name}:{number}: not a key=value line in a section"
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def read_dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def instruction(instructions: list[tuple[str, str]], keyword: str) -> list[str]:
    return [arguments for name, arguments in instructions if name == keyword]


# --- systemd unit ----------------------------------------------------------------------------------


def test_unit_runs_the_daemon_as_a_dedicated_user_and_restarts_on_failure() -> None:
    unit = read_unit(UNIT)
    assert set(unit) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    [command] = service["ExecStart"]
    program, *arguments = shlex.split(command)
    assert Path(program).name == "aggregator"
    assert build_parser().parse_args(arguments).command == "run"  # the CLI accepts the unit's arguments
    assert service["Restart"] == ["on-failure"]
    assert service["User"] == ["aggregator"] and service["Group"] == ["aggregator"]
    assert service["StateDirectory"] == ["aggregator"]
    assert service["WorkingDirectory"] == ["/var/lib/aggregator"]  # where the SQLite file and digests go
    assert "network-online.target" in unit["Unit"]["After"][0]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_unit_is_hardened() -> None:
    service = read_unit(UNIT)["Service"]
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "RestrictSUIDSGID": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectControlGroups": "yes",
    }
    assert {key: service.get(key, ["(missing)"])[-1] for key in expected} == expected
    assert set(service["RestrictAddressFamilies"][0].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert service["SystemCallFilter"] == ["@system-service", "~@privileged"]


def _verifiable_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists here (verify checks that it does)."""
    installed = Path(sys.executable).parent / "aggregator"
    program = installed if installed.exists() else Path(sys.executable)
    text = UNIT.read_text(encoding="utf-8").replace("/opt/aggregator/bin/aggregator", str(program))
    copy = tmp_path / UNIT.name
    copy.write_text(text, encoding="utf-8")
    return copy


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(_verifiable_copy(tmp_path))],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert UNIT.name not in result.stderr, result.stderr  # no complaint about our unit, not even a warning


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_exposure_is_low(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(_verifiable_copy(tmp_path))],
        capture_output=True, text=True, timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    if found is None:
        pytest.skip(f"systemd-analyze security --offline is not supported here: {result.stderr.strip()[:200]}")
    assert float(found.group(1)) <= 2.0, result.stdout  # systemd rates up to 3.9 as "OK"


# --- Dockerfile ------------------------------------------------------------------------------------


def test_dockerfile_runs_aggregator_as_an_unprivileged_user_with_postgres_support() -> None:
    instructions = read_dockerfile(DOCKERFILE)
    [base] = instruction(instructions, "FROM")
    major_minor = re.match(r"python:(\d+)\.(\d+)", base)
    assert major_minor and tuple(map(int, major_minor.groups())) >= (3, 11)
    assert json.loads(instruction(instructions, "ENTRYPOINT")[-1]) == ["aggregator"]
    default = json.loads(instruction(instructions, "CMD")[-1])
    assert build_parser().parse_args(default).command == "run"
    installs = [run for run in instruction(instructions, "RUN") if "pip install" in run]
    assert any("[postgres]" in run for run in installs)
    user = instruction(instructions, "USER")[-1]
    assert user not in ("root", "0")
    assert any(f" {user}" in run and "useradd" in run for run in instruction(instructions, "RUN"))


def test_dockerfile_copies_only_files_that_exist() -> None:
    for arguments in instruction(read_dockerfile(DOCKERFILE), "COPY"):
        *sources, _destination = arguments.split()
        for source in sources:
            assert (ROOT / source).exists(), source  # the build context is the repository root


def test_dockerignore_keeps_the_copied_files() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for arguments in instruction(read_dockerfile(DOCKERFILE), "COPY"):
        *sources, _destination = arguments.split()
        assert not ignored.intersection(sources)


def _docker_daemon() -> str | None:
    """Why the image cannot be built here, or None when it can."""
    if shutil.which("docker") is None:
        return "docker is not installed"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        return "no Docker daemon is reachable"
    return None


@pytest.mark.slow
def test_image_builds_and_runs_the_cli() -> None:
    reason = _docker_daemon()
    if reason:
        pytest.skip(reason)
    tag = "aggregator-test:latest"
    build = subprocess.run(
        ["docker", "build", "-f", str(DOCKERFILE), "-t", tag, str(ROOT)], capture_output=True, text=True, timeout=1800
    )
    assert build.returncode == 0, build.stderr[-3000:]
    try:
        ran = subprocess.run(["docker", "run", "--rm", tag, "--help"], capture_output=True, text=True, timeout=300)
        assert ran.returncode == 0 and "run" in ran.stdout, ran.stderr
        check = "import psycopg, aggregator; print('ok')"
        ran = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "python", tag, "-c", check],
            capture_output=True, text=True, timeout=300,
        )
        assert ran.stdout.strip() == "ok", ran.stderr
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=300)


# --- Compose file ----------------------------------------------------------------------------------


def test_compose_runs_the_image_beside_postgres() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"postgres", "aggregator", "worker"}
    postgres, app = services["postgres"], services["aggregator"]
    assert postgres["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    context = (COMPOSE.parent / app["build"]["context"]).resolve()
    assert context == ROOT and (context / app["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert app["environment"]["AGGREGATOR_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in app["environment"]["AGGREGATOR_DATABASE_URL"]
    assert build_parser().parse_args(app["command"]).command == "run"
    config_mount = next(v for v in app["volumes"] if v.split(":")[1] == "/etc/aggregator/feeds.yaml")
    assert (COMPOSE.parent / config_mount.split(":")[0]).resolve() == ROOT / "feeds.yaml"
    named = {v.split(":")[0] for s in services.values() for v in s.get("volumes", []) if not v.startswith(".")}
    assert named <= set(compose["volumes"])


def test_compose_workers_scale_beside_the_one_run() -> None:
    """`docker compose up --scale worker=4`: the worker is the same image on the same database, with nothing
    that two copies of it could not share (a fixed container name or a published port)."""
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    app, worker = services["aggregator"], services["worker"]
    assert worker["build"] == app["build"] and worker["image"] == app["image"]
    assert worker["environment"]["AGGREGATOR_DATABASE_URL"] == app["environment"]["AGGREGATOR_DATABASE_URL"]
    assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert build_parser().parse_args(worker["command"]).command == "worker"
    assert "container_name" not in worker and "ports" not in worker
    assert not any(v.split(":")[0] in ("aggregator-data", "postgres-data") for v in worker.get("volumes", []))
    assert worker["restart"] == "on-failure" and worker["init"] is True


@pytest.mark.skipif(shutil.which("docker") is None, reason="docker is not installed")
def test_compose_file_passes_docker_compose_config() -> None:
    result = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
                            capture_output=True, text=True, timeout=120)
    if "is not a docker command" in result.stderr or "unknown shorthand flag" in result.stderr:
        pytest.skip("the docker compose plugin is not installed")
    assert result.returncode == 0, result.stderr


# --- Packaging -------------------------------------------------------------------------------------


def test_licence_is_an_spdx_expression_with_its_file() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject["project"]
    assert project["license"] == "MIT"  # a string: the table form draws setuptools' deprecation banner
    assert project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License\n")
    requirement = next(r for r in pyproject["build-system"]["requires"] if r.startswith("setuptools"))
    assert re.fullmatch(r"setuptools>=(\d+)", requirement) and int(requirement.split(">=")[1]) >= 77


def test_default_digest_dir_is_ignored_by_git() -> None:
    from aggregator.config import Settings

    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert f"/{Settings().digest_dir}/" in ignored
