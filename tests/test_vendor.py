"""The browser files copied from npm (api/web/static/vendor/, refreshed by scripts/vendor) are
the versions the lock file names, under their license, and ship in the package."""

from __future__ import annotations

import json
import re
import tomllib

from tests.support.paths import ROOT

ASSETS = ROOT / "api" / "web" / "assets"
STATIC = ROOT / "api" / "web" / "static"
SWAGGER = STATIC / "vendor" / "swagger-ui"
TWILIO_VOICE = STATIC / "vendor" / "twilio-voice"
CHARTJS = STATIC / "vendor" / "chartjs"


def _locked(package: str) -> str:
    lock = json.loads((ASSETS / "package-lock.json").read_text())
    version = lock["packages"][f"node_modules/{package}"]["version"]
    assert isinstance(version, str)
    return version


def test_package_json_pins_the_exact_version_the_lock_holds() -> None:
    wanted = json.loads((ASSETS / "package.json").read_text())["dependencies"]
    assert wanted == {  # exact, no ^ or ~
        "swagger-ui-dist": _locked("swagger-ui-dist"),
        "@twilio/voice-sdk": _locked("@twilio/voice-sdk"),
        "chart.js": _locked("chart.js"),
    }


def test_the_committed_swagger_ui_is_the_locked_version() -> None:
    bundle = (SWAGGER / "swagger-ui-bundle.js").read_text(encoding="utf-8")
    versions = set(re.findall(r'PACKAGE_VERSION:"([^"]+)"', bundle))
    assert versions == {_locked("swagger-ui-dist")}, "run scripts/vendor after changing the lock"
    css = (SWAGGER / "swagger-ui.css").read_text(encoding="utf-8")
    assert ".swagger-ui" in css
    assert (SWAGGER / "favicon-32x32.png").read_bytes().startswith(b"\x89PNG")


def test_only_what_is_needed_is_copied_with_its_license() -> None:
    assert {p.name for p in SWAGGER.iterdir()} == {
        "swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE", "NOTICE",
    }  # fmt: skip
    assert "Apache License" in (SWAGGER / "LICENSE").read_text()
    assert "Version 2.0" in (SWAGGER / "LICENSE").read_text()


def test_the_committed_twilio_voice_sdk_is_the_locked_version() -> None:
    bundle = (TWILIO_VOICE / "twilio.min.js").read_text(encoding="utf-8")
    versions = set(re.findall(r'RELEASE_VERSION="([^"]+)"', bundle))
    assert versions == {_locked("@twilio/voice-sdk")}, "run scripts/vendor after changing the lock"
    assert "Device" in bundle


def test_the_twilio_voice_sdk_comes_with_its_license_and_nothing_else() -> None:
    assert {p.name for p in TWILIO_VOICE.iterdir()} == {"twilio.min.js", "LICENSE.md"}
    license_text = (TWILIO_VOICE / "LICENSE.md").read_text(encoding="utf-8")
    assert "Twilio" in license_text
    assert "Apache License" in license_text


def test_the_committed_chartjs_is_the_locked_version_with_its_license_and_nothing_else() -> None:
    bundle = (CHARTJS / "chart.umd.min.js").read_text(encoding="utf-8")
    banner = re.match(r"/\*!\s*\* Chart\.js v(\S+)", bundle)
    assert banner is not None
    assert banner.group(1) == _locked("chart.js"), "run scripts/vendor after changing the lock"
    assert {p.name for p in CHARTJS.iterdir()} == {"chart.umd.min.js", "LICENSE.md"}
    assert "MIT License" in (CHARTJS / "LICENSE.md").read_text(encoding="utf-8")


def test_every_static_file_is_package_data() -> None:
    """pyproject.toml ships static/ and its subfolders (a wheel without them has a blank /docs)."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["api.web"]
    files = [p.relative_to(STATIC.parent) for p in STATIC.rglob("*") if p.is_file()]
    assert any(p.parts[:2] == ("static", "vendor") for p in files)
    missing = [str(p) for p in files if not any(p.match(glob) for glob in globs)]
    assert missing == []


def test_node_stays_out_of_the_top_level() -> None:
    for name in ("package.json", "package-lock.json", "node_modules"):
        assert not (ROOT / name).exists(), name
    assert not (ASSETS / "node_modules").exists()
