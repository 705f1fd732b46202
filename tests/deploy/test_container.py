"""The lock file, the Containerfile and its build context, read as the tools read them.

The build itself (podman/buildah) takes tens of seconds, so it runs only with
``BONDBOT_IMAGE_BUILD=1`` (tests/deploy/test_image_build.py).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
LOCK = DEPLOY / "requirements.lock"
CONTAINERFILE = DEPLOY / "Containerfile"


def _locked() -> dict[str, tuple[Version, set[str], int]]:
    """name -> (version, extras, number of hashes), from the lock's requirement lines."""
    out: dict[str, tuple[Version, set[str], int]] = {}
    text = LOCK.read_text()
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        first = block.strip().splitlines()[0] if block.strip() else ""
        if not first or first.startswith("#"):
            continue
        req = Requirement(first.rstrip(" \\"))
        (spec,) = req.specifier
        assert spec.operator == "==", f"{req.name} is not pinned: {first}"
        out[canonicalize_name(req.name)] = (Version(spec.version), set(req.extras), block.count("--hash=sha256:"))
    return out


def _runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


def test_lock_pins_and_hashes_every_package() -> None:
    locked = _locked()
    assert len(locked) > 10
    unhashed = [n for n, (_, _, hashes) in locked.items() if hashes == 0]
    assert not unhashed, f"pins without --hash (pip --require-hashes refuses them): {unhashed}"


def test_lock_covers_every_runtime_dependency() -> None:
    """Each [project.dependencies] entry is locked at a version its specifier allows.

    If this fails after a dependency was added or changed in pyproject.toml: run deploy/lock.sh.
    """
    locked = _locked()
    for req in _runtime_requirements():
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is in pyproject.toml but not in deploy/requirements.lock: run deploy/lock.sh"
        version, extras, _ = locked[name]
        assert req.specifier.contains(version, prereleases=True), (
            f"{req.name}: locked {version} does not satisfy {req.specifier}: run deploy/lock.sh")
        assert set(req.extras) <= extras, f"{req.name}: extras {req.extras} not locked: run deploy/lock.sh"
    # setuptools: the build backend, so installs need no build isolation (nothing unpinned fetched)
    assert "setuptools" in locked


def test_containerfile_pins_its_base_and_installs_from_the_lock() -> None:
    text = CONTAINERFILE.read_text()
    base = re.search(r"^ARG BASE=(\S+)$", text, re.M)
    assert base, "the base is an ARG with a default"
    assert re.fullmatch(r"docker\.io/library/python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", base.group(1))
    assert re.search(r"^FROM \$\{BASE\}$", text, re.M)
    assert "pip install --no-deps --require-hashes -r /opt/bondbot/requirements.lock" in text
    assert "--no-build-isolation" in text
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert "useradd --system --uid 10001" in text
    assert "install -d -o bondbot -g bondbot -m 0700 /var/lib/bondbot" in text
    assert re.search(r"^VOLUME /var/lib/bondbot$", text, re.M)
    assert re.search(r'^HEALTHCHECK .*\n\s+CMD \["/opt/bondbot/venv/bin/python", "-m", "bot.health"\]$', text, re.M)
    assert "BONDBOT_HEALTH_PORT=8081" in text and "BONDBOT_HEALTH_HOST=0.0.0.0" in text


def test_containerfile_copies_every_package_the_distribution_ships() -> None:
    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in include}
    copied = set(re.findall(r"^COPY (\w+) /opt/bondbot/src/\1$", CONTAINERFILE.read_text(), re.M))
    assert packages == copied, f"pyproject.toml ships {sorted(packages)}, the Containerfile copies {sorted(copied)}"


def _context_rules(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_build_context_excludes_everything_but_what_is_copied() -> None:
    rules = _context_rules(REPO / ".containerignore")
    assert rules[0] == "*", "start from nothing: the .venv, .git and lab images never enter the context"
    reincluded = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    sources: set[str] = set()
    for line in re.findall(r"^COPY (.+) \S+$", CONTAINERFILE.read_text(), re.M):
        sources.update(line.split())
    assert sources == reincluded, f"COPY sources {sorted(sources)} vs re-included {sorted(reincluded)}"
    for name in (".venv", ".git", "tests", "bench"):
        assert name not in reincluded
    # docker reads <Containerfile>.dockerignore next to the file; podman/buildah read .containerignore
    assert (DEPLOY / "Containerfile.dockerignore").read_text() == (REPO / ".containerignore").read_text()
