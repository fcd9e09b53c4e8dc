"""The one settings object, read from the environment (prefix KCC_) once at start-up."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from api.redis_url import is_sentinel_url, parse_sentinel_url

PLACEHOLDER_SECRET = "change-me-this-dev-secret-is-not-for-production"
PLACEHOLDER_AUTH_TOKEN = "dev-auth-token"
DEFAULT_FLOW = Path(__file__).resolve().parent.parent / "flows" / "kcc.yaml"
# What real Twilio credentials for the browser phone look like (an API key's secret has 32
# characters); anything else in production is a placeholder or a typo.
API_KEY_SID = re.compile(r"SK[0-9a-fA-F]{32}")
TWIML_APP_SID = re.compile(r"AP[0-9a-fA-F]{32}")
MIN_API_KEY_SECRET_LENGTH = 32


class Environment(StrEnum):
    DEV = "dev"
    PRODUCTION = "production"


class InsecureSettings(ValueError):
    """Production was asked to start with a setting that is only fit for a laptop."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KCC_",
        extra="ignore",
        populate_by_name=True,
        env_ignore_empty=True,
        hide_input_in_errors=True,  # a refused URL or token may hold a password
    )

    env: Environment = Environment.DEV
    public_url: str = "http://127.0.0.1:8000"
    # None: an embedded in-process store (one worker only). redis:// or rediss:// for one server,
    # redis+sentinel:// for Redis behind Sentinel (api/redis_url.py).
    redis_url: str | None = None
    # The namespace of every Redis key and pub/sub channel (routing/keys.py): deployments that
    # share a Redis server (staging and production on two databases) need different ones.
    redis_prefix: str = Field(default="kcc", pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    database_url: str = "sqlite:///var/kcc.sqlite3"
    secret_key: str = PLACEHOLDER_SECRET
    flow: Path = DEFAULT_FLOW
    now: datetime | None = None  # starts the clock at this instant (demos, dry runs)
    twilio_account_sid: str = Field(
        default="AC00000000000000000000000000000000",
        validation_alias=AliasChoices("TWILIO_ACCOUNT_SID", "KCC_TWILIO_ACCOUNT_SID"),
    )
    twilio_auth_token: str = Field(
        default=PLACEHOLDER_AUTH_TOKEN,
        validation_alias=AliasChoices("TWILIO_AUTH_TOKEN", "KCC_TWILIO_AUTH_TOKEN"),
    )
    twilio_api_base: str | None = None  # a Twilio-compatible stub for tests and demos
    # The browser phone (docs/twilio.md): an API key signs the Voice SDK's access tokens, and
    # the TwiML App's voice URL (/twilio/outbound) places the calls the browser makes.
    twilio_api_key_sid: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TWILIO_API_KEY_SID", "KCC_TWILIO_API_KEY_SID"),
    )
    twilio_api_key_secret: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TWILIO_API_KEY_SECRET", "KCC_TWILIO_API_KEY_SECRET"),
    )
    twilio_twiml_app_sid: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TWILIO_TWIML_APP_SID", "KCC_TWILIO_TWIML_APP_SID"),
    )
    voice_token_ttl_seconds: int = 3600  # the browser phone renews its token before this ends
    caller_id: str | None = None  # the KCC number, shown when calling back and to advisers' phones
    # Browser phones may call numbers that start with one of these (comma-separated): Dutch
    # numbers by default, so a misused account cannot run up international or premium calls.
    outbound_prefixes: str = Field(default="+31", pattern=r"^\+[0-9]{1,6}(,\+[0-9]{1,6})*$")
    offer_seconds: int = 20  # how long an adviser's phone rings
    # A conversation with nothing heard of it this long is checked with Twilio (REST): one whose
    # callbacks were all lost still ends (docs/operations.md, Faults).
    call_check_seconds: int = Field(default=60, ge=5)
    wrap_up_seconds: int = 30  # after-call work before the adviser is available again
    # The wallboard's service level: the share of calls answered within this many seconds.
    service_level_seconds: int = Field(default=30, ge=1)
    # How long an adviser's desk (and browser phone) may be gone before they are AWAY.
    presence_grace_seconds: int = Field(default=20, ge=1)
    session_ttl_seconds: int = 4 * 3600
    token_ttl_seconds: int = 8 * 3600
    log_level: str = "INFO"
    # One log line per HTTP request (uvicorn's access log). Behind the proxy of docker/compose.yaml
    # the proxy logs every request (with its duration) and the apps turn theirs off: each line
    # is JSON with numbers masked, ~75 us of an app's CPU per request (docs/operations.md).
    access_log: bool = True
    # Call records, wrap-up notes, state changes and monitor sessions are kept this many days;
    # the service deletes older ones once a day (ivr/retention.py, `kcc records purge`).
    record_retention_days: int = Field(default=400, ge=1)
    # Guessing guard of the identity check (see ivr/identity/verifier.py).
    verify_number_failures: int = 5  # failures per application number in 24 h before a lock
    verify_lock_hours: int = 24
    verify_caller_failures: int = 10  # failures per caller number in an hour before a limit
    verify_min_seconds: float = 0.4  # every check takes at least this long
    # Staff sign-in guard (api/sign_in_guard.py): failed sign-ins in 15 minutes before a wait,
    # per account name and per client address; the address is taken from X-Forwarded-For only
    # when the peer is one of these proxies (comma-separated addresses or networks).
    login_account_failures: int = Field(default=5, ge=1)
    login_address_failures: int = Field(default=20, ge=1)
    trusted_proxies: str = ""
    # A request's body must have arrived this long after the request began, or it is answered
    # 408 (a client that stalls its body would hold a connection open; api/web/security.py).
    body_timeout_seconds: float = Field(default=30.0, gt=0)

    @field_validator("redis_url")
    @classmethod
    def _sentinel_url_is_usable(cls, value: str | None) -> str | None:
        if value is not None and is_sentinel_url(value):
            parse_sentinel_url(value)  # refused at start-up, not at the first call
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            ipaddress.ip_network(part, strict=False)  # a ValueError names the bad one
        return value

    @model_validator(mode="after")
    def _production_is_safe(self) -> Self:
        if self.env is not Environment.PRODUCTION:
            return self
        problems = []
        if self.secret_key == PLACEHOLDER_SECRET or len(self.secret_key) < 32:
            problems.append("KCC_SECRET_KEY is a placeholder or shorter than 32 characters")
        if self.twilio_auth_token == PLACEHOLDER_AUTH_TOKEN:
            problems.append("TWILIO_AUTH_TOKEN is a placeholder")
        problems.extend(self._browser_phone_problems())
        if self.redis_url is None:
            problems.append("KCC_REDIS_URL is unset (the embedded store is for one process only)")
        if self.now is not None:
            problems.append("KCC_NOW pins the clock")
        if not self.public_url.startswith("https://"):
            problems.append("KCC_PUBLIC_URL must be https")
        if problems:
            raise InsecureSettings("refusing to start in production: " + "; ".join(problems))
        return self

    def _browser_phone_problems(self) -> list[str]:
        problems = []
        if not API_KEY_SID.fullmatch(self.twilio_api_key_sid or ""):
            problems.append("TWILIO_API_KEY_SID is missing or not an API key SID (SK...)")
        secret = self.twilio_api_key_secret or ""
        if len(secret) < MIN_API_KEY_SECRET_LENGTH:
            problems.append("TWILIO_API_KEY_SECRET is missing or a placeholder")
        if not TWIML_APP_SID.fullmatch(self.twilio_twiml_app_sid or ""):
            problems.append("TWILIO_TWIML_APP_SID is missing or not a TwiML App SID (AP...)")
        return problems

    @property
    def voice_configured(self) -> bool:
        """The browser phone can get access tokens (else the desk keeps the simulated phone)."""
        return bool(
            self.twilio_api_key_sid and self.twilio_api_key_secret and self.twilio_twiml_app_sid
        )

    @property
    def simulated_telephony(self) -> bool:
        """No Twilio account and no stub: the demo simulates the phone on the desk page."""
        return self.twilio_api_base is None and self.twilio_auth_token == PLACEHOLDER_AUTH_TOKEN

    @property
    def public_base(self) -> str:
        return self.public_url.rstrip("/")
