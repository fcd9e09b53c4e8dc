"""The image and the compose stack, read and parsed (no Docker engine needed): what they start,
where they listen, what they check and which settings they pass match the app."""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml
from pydantic import AliasChoices

from api.cli.main import app as kcc_cli
from api.settings import Settings
from api.web.app import API_ROUTERS, OTHER_ROUTERS
from tests.support.paths import ROOT

DOCKER = ROOT / "docker"
APPS = ("app-1", "app-2")
# ${NAME}, ${NAME:-default}, ${NAME:?message}: compose's interpolation.
VARIABLE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::?([-?])([^}]*))?\}")
URL = re.compile(r"http://[^'\" ]+")
# What the production validator demands (api/settings.py) with values that look real.
REAL_LOOKING = {
    "KCC_PUBLIC_URL": "https://ivr.example.nl",
    "KCC_SECRET_KEY": "s" * 48,
    "POSTGRES_PASSWORD": "pg-password",
    "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
    "TWILIO_AUTH_TOKEN": "a-real-looking-auth-token",
    "TWILIO_API_KEY_SID": "SK" + "2" * 32,
    "TWILIO_API_KEY_SECRET": "k" * 32,
    "TWILIO_TWIML_APP_SID": "AP" + "3" * 32,
}


# -- the Dockerfile ---------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in (DOCKER / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined]


def stages() -> dict[str, list[tuple[str, str]]]:
    named: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for instruction, args in instructions():
        if instruction == "FROM":
            current = named.setdefault(args.split()[-1], [])
        current.append((instruction, args))
    return named


def last(stage: list[tuple[str, str]], instruction: str) -> str:
    return [args for name, args in stage if name == instruction][-1]


def serve_parameters(command: list[str]) -> dict[str, Any]:
    """`command` parsed by the real `kcc` command line: a renamed option fails here."""
    assert command[:2] == ["kcc", "serve"]
    cli = typer.main.get_command(kcc_cli)
    serve = cli.commands["serve"]  # type: ignore[attr-defined]
    return dict(serve.make_context("serve", command[2:]).params)


def routes() -> set[str]:
    return {route.path for router in (*API_ROUTERS, *OTHER_ROUTERS) for route in router.routes}  # type: ignore[attr-defined]


def test_the_image_builds_from_the_lock_in_one_stage_and_runs_in_another() -> None:
    builder, runtime = stages()["builder"], stages()["runtime"]
    runs = [args for name, args in builder if name == "RUN"]
    assert "pip install --require-hashes -r requirements/service.txt" in runs
    assert ("COPY", "requirements/service.txt ./requirements/service.txt") in builder
    project = [run for run in runs if "pip" in run and "requirements" not in run]
    assert project and all("--no-deps" in run for run in project)
    assert (ROOT / "requirements" / "service.txt").is_file()
    # The runtime installs nothing: it gets the builder's environment.
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in runtime
    assert not [args for name, args in runtime if name == "RUN" and "pip" in args]
    assert "PATH=/opt/venv/bin:$PATH" in last(runtime, "ENV")


def test_the_image_runs_as_a_user_without_rights() -> None:
    runtime = stages()["runtime"]
    user = last(runtime, "USER")
    assert user not in ("root", "0") and not user.startswith(("root:", "0:"))
    position = {name: i for i, (name, _) in enumerate(runtime)}
    assert position["USER"] < position["CMD"]
    assert any(name == "RUN" and "useradd" in args and user in args for name, args in runtime)


def test_the_start_command_the_port_and_the_health_check_agree_with_the_app() -> None:
    runtime = stages()["runtime"]
    command = yaml.safe_load(last(runtime, "CMD"))  # the exec form is a JSON list
    serve = serve_parameters(command)
    assert serve["host"] == "0.0.0.0"  # reachable from outside the container
    assert last(runtime, "EXPOSE") == str(serve["port"])
    health = URL.findall(last(runtime, "HEALTHCHECK"))
    assert len(health) == 1
    url = urlsplit(health[0])
    assert url.port == serve["port"]
    assert url.path == "/healthz" and url.path in routes()


# -- the compose stack ------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return loaded


def services() -> dict[str, Any]:
    named: dict[str, Any] = compose()["services"]
    return named


def interpolate(value: str, env: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if name in env:
            return env[name]
        if kind == "?":
            raise KeyError(name)
        return rest or ""

    return VARIABLE.sub(one, value)


def setting_names() -> dict[str, set[str]]:
    """Each setting's environment names: its aliases, else KCC_ and the field's name."""
    names: dict[str, set[str]] = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names[field_name] = {str(choice) for choice in alias.choices}
        else:
            names[field_name] = {f"KCC_{field_name.upper()}"}
    return names


def every_setting_name() -> set[str]:
    return set().union(*setting_names().values())


def compose_variables() -> set[str]:
    return {match[0] for match in VARIABLE.findall((DOCKER / "compose.yaml").read_text())}


@pytest.mark.parametrize("app", APPS)
def test_each_instance_listens_where_the_image_does_and_checks_a_route_it_has(app: str) -> None:
    port = int(last(stages()["runtime"], "EXPOSE"))
    service = services()[app]
    assert [mapping.rsplit(":", 1)[1] for mapping in service["ports"]] == [str(port)]
    health = URL.findall(" ".join(service["healthcheck"]["test"]))
    assert [(urlsplit(u).port, urlsplit(u).path) for u in health] == [(port, "/healthz")]
    assert "/healthz" in routes()


@pytest.mark.parametrize("app", APPS)
def test_the_database_is_upgraded_before_the_instances_start(app: str) -> None:
    migrate = services()["migrate"]
    assert migrate["command"] == ["kcc", "db", "upgrade"]
    assert migrate["image"] == services()[app]["image"]
    assert migrate["environment"] == services()[app]["environment"]
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services()[app]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "redis": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
    }


def test_every_variable_given_to_the_instances_is_a_setting() -> None:
    for app in APPS:
        assert set(services()[app]["environment"]) <= every_setting_name()


def test_the_instances_settings_pass_the_production_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the required variables filled in, the settings compose gives an instance are valid
    for production; and every variable the production check demands is required by compose."""
    environment = services()["app-1"]["environment"]
    assert environment["KCC_ENV"] == "production"
    values = {name: interpolate(str(value), REAL_LOOKING) for name, value in environment.items()}
    for name in list(os.environ):
        if name.startswith(("KCC_", "TWILIO_")):
            monkeypatch.delenv(name)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.database_url.startswith("postgresql://kcc:pg-password@postgres:5432/")
    assert settings.offer_seconds == 20  # an empty pass-through keeps the default
    for required in REAL_LOOKING:
        missing = {k: v for k, v in REAL_LOOKING.items() if k != required}
        with pytest.raises(KeyError, match=required):
            [interpolate(str(value), missing) for value in environment.values()]


def test_the_proxy_sends_to_both_instances_on_their_port() -> None:
    port = last(stages()["runtime"], "EXPOSE")
    caddyfile = (DOCKER / "Caddyfile").read_text()
    upstreams = re.findall(r"^\s*reverse_proxy\s+([^{]+)\{", caddyfile, re.MULTILINE)
    assert len(upstreams) == 1
    assert sorted(upstreams[0].split()) == [f"{app}:{port}" for app in APPS]
    assert re.search(r"^\s*health_uri /healthz$", caddyfile, re.MULTILINE)
    proxy = services()["proxy"]
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]
    assert {"443:443", "80:80"} <= set(proxy["ports"])
    assert proxy["depends_on"] == {app: {"condition": "service_healthy"} for app in APPS}


def test_redis_keeps_an_append_only_file_synced_every_second_on_a_volume() -> None:
    redis = services()["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_postgres_keeps_its_data_on_a_volume_and_says_when_it_is_ready() -> None:
    postgres = services()["postgres"]
    assert "pgdata:/var/lib/postgresql/data" in postgres["volumes"]
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert set(compose()["volumes"]) >= {"pgdata", "redis-data"}


# -- .env.example -----------------------------------------------------------------------------


def example_lines() -> list[str]:
    return (ROOT / ".env.example").read_text().splitlines()


def example_names() -> dict[str, bool]:
    """Each name in .env.example and whether it is set (not commented out); each must have a
    comment right above it (or above the name it is grouped with)."""
    names: dict[str, bool] = {}
    explained = False
    for line in example_lines():
        match = re.fullmatch(r"(# )?([A-Z][A-Z0-9_]*)=(.*)", line)
        if match:
            assert explained, f"{match[2]} in .env.example has no comment above it"
            names[match[2]] = match[1] is None
        else:
            explained = line.startswith("# ") and not line.startswith("# ---")
            if not line.strip():
                explained = False
    return names


def test_env_example_explains_every_setting_and_nothing_else() -> None:
    documented = set(example_names())
    for field, names in setting_names().items():
        assert documented & names, f"setting {field} ({sorted(names)}) is not in .env.example"
    assert documented - every_setting_name() <= compose_variables()


def test_what_env_example_sets_reaches_the_instances_and_compose_needs_nothing_else() -> None:
    set_names = {name for name, is_set in example_names().items() if is_set}
    environment = services()["app-1"]["environment"]
    passed = compose_variables() | set(environment)
    assert set_names <= passed
    assert compose_variables() <= set(example_names())
