"""The lock (requirements/*.txt, written by scripts/lock) against pyproject.toml: every dependency
is pinned with `==` and hashes, each pin satisfies pyproject's specifier, and the test lock agrees
with the service lock. The checker is tested on deliberately wrong input too."""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from tests.support.paths import ROOT

PYPROJECT = ROOT / "pyproject.toml"
SERVICE_LOCK = ROOT / "requirements" / "service.txt"
TEST_LOCK = ROOT / "requirements" / "test.txt"
BENCH_LOCK = ROOT / "requirements" / "bench.txt"  # the `bench` extra: what bench/ needs besides


class LockError(ValueError):
    """A lock file line that is not `name==version [; marker]` with hashes."""


@dataclass(frozen=True)
class Pin:
    name: NormalizedName
    version: Version
    marker: str
    hashes: tuple[str, ...]


Lock = dict[NormalizedName, Pin]


def parse_lock(text: str) -> Lock:
    """A requirements file as scripts/lock writes it: one `name==version [; marker]` per entry,
    each followed by its `--hash=sha256:...` options (continued with backslashes)."""
    entries: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        entries.append(current + line)
        current = ""
    if current:
        entries.append(current)
    pins: Lock = {}
    for entry in entries:
        words = entry.split()
        options = [word for word in words if word.startswith("-")]
        others = [word for word in options if not word.startswith("--hash=")]
        if others:  # -e, -r, --index-url, --find-links...: the lock must stand on its own
            raise LockError(f"{entry!r}: option {others[0]!r} in a lock file")
        text_of_requirement = " ".join(word for word in words if not word.startswith("-"))
        try:
            requirement = Requirement(text_of_requirement)
        except InvalidRequirement as error:
            raise LockError(f"{entry!r}: {error}") from None
        specs = list(requirement.specifier)
        if (
            requirement.url is not None
            or len(specs) != 1
            or specs[0].operator != "=="
            or "*" in specs[0].version
        ):
            raise LockError(f"{entry!r}: not pinned with == to one version from the index")
        name = canonicalize_name(requirement.name)
        marker = requirement.marker
        if name in pins:
            # A universal lock may pin a package once per Python version (markers that cannot
            # both hold); the pin for this interpreter counts.
            if pins[name].marker == str(marker or "") or marker is None:
                raise LockError(f"{entry!r}: {name} is pinned twice")
            if not marker.evaluate():
                continue
        pins[name] = Pin(
            name=name,
            version=Version(specs[0].version),
            marker=str(requirement.marker or ""),
            hashes=tuple(word.removeprefix("--hash=") for word in options),
        )
    return pins


def lock_problems(
    pyproject: dict[str, Any], service: Lock, test: Lock, others: dict[str, Lock] | None = None
) -> list[str]:
    """What is wrong with the locks for this pyproject.toml; empty when they agree. An extra is
    locked in the test lock, or in its own (`others`: extra -> lock, requirements/EXTRA.txt)."""
    project = pyproject["project"]
    runtime = [*project.get("dependencies", []), *pyproject["build-system"]["requires"]]
    others = others or {}
    problems: list[str] = []

    def check(text: str, lock: Lock, lock_name: str) -> None:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            return
        pin = lock.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{requirement.name}: not in {lock_name}")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{lock_name}: {pin.name}=={pin.version} is outside {text!r}")

    for text in runtime:
        check(text, service, "requirements/service.txt")
        check(text, test, "requirements/test.txt")
    for extra, texts in project.get("optional-dependencies", {}).items():
        lock_name = f"requirements/{extra}.txt" if extra in others else "requirements/test.txt"
        for text in texts:
            check(text, others.get(extra, test), lock_name)
    locks = {
        "requirements/service.txt": service,
        "requirements/test.txt": test,
        **{f"requirements/{extra}.txt": lock for extra, lock in others.items()},
    }
    for lock_name, lock in locks.items():
        problems += [
            f"{lock_name}: {pin.name} has no hash" for pin in lock.values() if not pin.hashes
        ]
    for lock_name, lock in list(locks.items())[1:]:
        for name, pin in service.items():
            other = lock.get(name)
            if other is None:
                problems.append(f"{name}: in requirements/service.txt, not in {lock_name}")
            # The test lock matches the service's exactly; another extra may need a package
            # on more platforms than the service does (a broader marker), at the same version.
            elif other.version != pin.version or (lock is test and other.marker != pin.marker):
                problems.append(
                    f"{name}: {pin.version} in requirements/service.txt, {other.version} in "
                    f"{lock_name}"
                )
    return problems


def _pyproject() -> dict[str, Any]:
    with PYPROJECT.open("rb") as f:
        return tomllib.load(f)


def _lock(path: Path) -> Lock:
    return parse_lock(path.read_text())


def test_the_lock_agrees_with_pyproject() -> None:
    others = {"bench": _lock(BENCH_LOCK)}
    assert lock_problems(_pyproject(), _lock(SERVICE_LOCK), _lock(TEST_LOCK), others) == []


def test_the_extras_of_dependencies_are_locked_too() -> None:
    """uvicorn[standard], psycopg[binary], fakeredis[lua]: what each extra brings is pinned as
    well (read from the installed packages' metadata, which is the lock's when scripts/test
    installed it)."""
    service = _lock(SERVICE_LOCK)
    missing: list[str] = []
    checked = 0
    for text in _pyproject()["project"]["dependencies"]:
        requirement = Requirement(text)
        if not requirement.extras:
            continue
        pin = service[canonicalize_name(requirement.name)]
        try:
            installed = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            continue
        if Version(installed.version) != pin.version:
            continue  # not the locked release: its extras may differ
        for needed_text in installed.requires or []:
            needed = Requirement(needed_text)
            wanted = any(
                needed.marker is not None and needed.marker.evaluate({"extra": extra})
                for extra in requirement.extras
            )
            if wanted and canonicalize_name(needed.name) not in service:
                missing.append(f"{needed.name} (for {text})")
        checked += 1
    if checked == 0:
        pytest.skip("this environment was not installed from the lock")
    assert missing == []


def test_the_venv_of_scripts_test_holds_the_lock() -> None:
    """The .venv that scripts/test installed (its stamp says so) has the locked releases: a skipped
    install would show here. Skipped in any other environment (a lowest-versions trial, say)."""
    stamp = ROOT / ".venv" / ".lock-stamp"
    if Path(sys.prefix).resolve() != stamp.parent.resolve() or not stamp.is_file():
        pytest.skip("not the .venv of scripts/test")
    if not stamp.read_text().startswith("test "):
        pytest.skip("the .venv holds requirements/service.txt only")
    different = []
    for pin in _lock(TEST_LOCK).values():
        if pin.marker and not Marker(pin.marker).evaluate():
            continue
        try:
            version = Version(metadata.version(pin.name))
        except metadata.PackageNotFoundError:
            different.append(f"{pin.name}: not installed")
            continue
        if version != pin.version:
            different.append(f"{pin.name}: {version} installed, {pin.version} locked")
    assert different == []


# The checker itself, on deliberately wrong input.

SNIPPET = """
[build-system]
requires = ["setuptools>=77"]

[project]
name = "example"
dependencies = ["redis>=8.0,<9", "fastapi>=0.164"]

[project.optional-dependencies]
test = ["pytest>=8.4"]
"""
HASH = "--hash=sha256:" + "0" * 64
SERVICE = f"""# written by scripts/lock
redis==8.2.0 \\
    {HASH}
    # via example
fastapi==0.165.0 \\
    {HASH}
setuptools==84.2.1 \\
    {HASH}
colorama==0.4.6 ; sys_platform == 'win32' \\
    {HASH}
"""
TEST = SERVICE + f"pytest==9.2.0 \\\n    {HASH}\n"


def _problems(pyproject: str = SNIPPET, service: str = SERVICE, test: str = TEST) -> list[str]:
    return lock_problems(tomllib.loads(pyproject), parse_lock(service), parse_lock(test))


def test_the_checker_accepts_a_matching_lock() -> None:
    assert _problems() == []
    assert parse_lock(SERVICE)[canonicalize_name("colorama")].marker == 'sys_platform == "win32"'


def test_the_checker_refuses_a_pin_outside_the_specifier() -> None:
    assert _problems(SNIPPET.replace("redis>=8.0,<9", "redis>=9")) == [
        "requirements/service.txt: redis==8.2.0 is outside 'redis>=9'",
        "requirements/test.txt: redis==8.2.0 is outside 'redis>=9'",
    ]
    assert _problems(SNIPPET.replace("pytest>=8.4", "pytest<9")) == [
        "requirements/test.txt: pytest==9.2.0 is outside 'pytest<9'"
    ]
    assert _problems(SNIPPET.replace("setuptools>=77", "setuptools<80")) == [
        "requirements/service.txt: setuptools==84.2.1 is outside 'setuptools<80'",
        "requirements/test.txt: setuptools==84.2.1 is outside 'setuptools<80'",
    ]


def test_the_checker_refuses_a_dependency_missing_from_the_lock() -> None:
    problems = _problems(SNIPPET.replace('"fastapi>=0.164"', '"fastapi>=0.164", "alembic>=1.13"'))
    assert problems == [
        "alembic: not in requirements/service.txt",
        "alembic: not in requirements/test.txt",
    ]
    assert _problems(SNIPPET.replace('"pytest>=8.4"', '"pytest>=8.4", "ruff"')) == [
        "ruff: not in requirements/test.txt"
    ]


def test_the_checker_refuses_locks_that_disagree() -> None:
    test = TEST.replace("redis==8.2.0", "redis==8.1.0")
    assert _problems(test=test) == [
        "redis: 8.2.0 in requirements/service.txt, 8.1.0 in requirements/test.txt"
    ]
    without_fastapi = TEST.replace(f"fastapi==0.165.0 \\\n    {HASH}\n", "")
    assert "fastapi: in requirements/service.txt, not in requirements/test.txt" in _problems(
        test=without_fastapi
    )


def test_the_checker_refuses_a_pin_without_hashes() -> None:
    service = SERVICE.replace(f"redis==8.2.0 \\\n    {HASH}", "redis==8.2.0")
    assert _problems(service=service) == ["requirements/service.txt: redis has no hash"]


@pytest.mark.parametrize(
    "line",
    [
        "redis>=8.0",
        "redis==8.*",
        "redis",
        "redis @ https://example.org/redis-8.2.0-py3-none-any.whl",
        "-e .",
        "--index-url https://example.org/simple",
        "--find-links /somewhere",
        "-r other.txt",
    ],
)
def test_the_parser_refuses_what_is_not_a_locked_pin(line: str) -> None:
    with pytest.raises(LockError):
        parse_lock(f"{line} \\\n    {HASH}\n")


def test_the_parser_refuses_a_package_pinned_twice() -> None:
    with pytest.raises(LockError, match="pinned twice"):
        parse_lock(f"redis==8.2.0 {HASH}\nRedis==8.1.0 {HASH}\n")
