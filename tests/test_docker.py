"""The image installs what CI tested: the service lock with hashes, then the project alone."""

from __future__ import annotations

from tests.support.paths import ROOT


def test_the_image_installs_the_service_lock_with_hashes() -> None:
    lines = [line.strip() for line in (ROOT / "docker" / "Dockerfile").read_text().splitlines()]
    runs = [line for line in lines if line.startswith("RUN ")]
    assert "RUN pip install --require-hashes -r requirements/service.txt" in runs
    project = [run for run in runs if "pip install" in run and "requirements" not in run]
    assert project and all("--no-deps" in run for run in project)
    assert "COPY requirements/service.txt ./requirements/service.txt" in lines
    assert (ROOT / "requirements" / "service.txt").is_file()
