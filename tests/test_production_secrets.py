"""No production start with development secrets: outside DEV_MODE each service's real entry point
(`python -m <package>`) refuses to start when a secret it uses is empty or a shipped development value, naming
the environment variable in one log line and exiting 78 without a stack trace; with real secrets it starts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from dunning_kit.auth import hash_key
from dunning_kit.dev_secrets import (
    DEV_API_KEYS,
    DEV_DATA_ENCRYPTION_KEYS,
    DEV_SIGNING_KEY,
    DEV_TWILIO_AUTH_TOKEN,
    EXIT_CONFIG,
    SHIPPED_DEV_VALUES,
    development_secrets,
    secret_settings,
)
from dunning_kit.embedded import free_port
from dunning_kit.services import SERVICES, spec
from dunning_kit.settings import ServiceSettings
from dunning_kit.testing import poll_until

REPO = Path(__file__).resolve().parents[1]
REAL_API_KEYS = f"acme:admin:{hash_key('a-real-production-key-4c1d')}"
DEV_API_KEYS_ENTRY = ",".join(f"{t}:{s}:{hash_key(k)}" for k, (t, s) in DEV_API_KEYS.items())
# What a production operator sets: every secret the service uses, to real values.
REAL_DATA_KEYS = "prod-2026-12:q0m8cS4tJ2cZbq1w6oZ3oCqS3n7bqk9Yt0mH8d1W2xA="
REAL_SECRETS = {
    "SELF_SERVICE_SIGNING_KEY": "7b0e5f1c2a9d4e8f8a6b3c1d0e2f4a5b",
    "DATA_ENCRYPTION_KEYS": REAL_DATA_KEYS,
    "TWILIO_AUTH_TOKEN": "c2f8e1a47d9b40e6a1f3b5d7c9e0a2b4",
    "API_KEYS": REAL_API_KEYS,
    # The workspace's: the admin key it calls the services with per tenant, its OIDC client's secret.
    "WORKSPACE_API_KEYS": "acme=a-real-production-key-4c1d",
    "WORKSPACE_OIDC_CLIENT_SECRET": "9f3c2b7e5a1d4c8e9b0a6f2d4e1c3b5a",
    # The key it signs Dunning-Actor with (an Ed25519 private key, base64url of 32 bytes).
    "WORKSPACE_ACTOR_SIGNING_KEY": "XKIBR_Ll7Hbmcs0bqPISWCQWX4Jr4lEuwQZG6Tmpjwk",
}


def prod_env(**settings: str) -> dict[str, str]:
    """The environment of a production start: no DEV_MODE, nothing inherited that names a setting, and a
    database and broker nobody listens on (the check comes before any connection)."""
    inherited = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "VIRTUAL_ENV")}
    return {
        **inherited,
        "DATABASE_URL": f"postgresql+asyncpg://dunning@127.0.0.1:{free_port()}/dunning",
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(free_port()),
        "LOG_FORMAT": "json",
        **settings,
    }


def run_entry_point(package: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", package], env=env, capture_output=True, text=True, timeout=120, cwd=REPO
    )


# What each service refuses, as an operator could get it wrong (the make-up environment copied, a token left out).
REFUSALS = {
    "ledger-sync": (
        {"API_KEYS": DEV_API_KEYS_ENTRY, "XERO_WEBHOOK_KEY": DEV_SIGNING_KEY},
        ["API_KEYS", "XERO_WEBHOOK_KEY"],
    ),
    "policy-engine": ({"API_KEYS": DEV_API_KEYS_ENTRY}, ["API_KEYS"]),
    "notifier": (
        {"API_KEYS": REAL_API_KEYS, "TWILIO_AUTH_TOKEN": "", "SMTP_USERNAME": "mailer"},
        ["SELF_SERVICE_SIGNING_KEY", "TWILIO_AUTH_TOKEN", "SMTP_PASSWORD"],
    ),
    "promise-tracker": ({"API_KEYS": REAL_API_KEYS, "SELF_SERVICE_SIGNING_KEY": " "}, ["SELF_SERVICE_SIGNING_KEY"]),
    "insights": ({"API_KEYS": DEV_API_KEYS_ENTRY}, ["API_KEYS"]),  # its only secret: the tenants' API keys
    # No key to call the services with, and the OIDC client secret left at its development default.
    "workspace": ({"WORKSPACE_API_KEYS": " "}, ["WORKSPACE_API_KEYS", "WORKSPACE_OIDC_CLIENT_SECRET"]),
}


@pytest.mark.parametrize("service", [s.name for s in SERVICES])
def test_a_production_start_with_development_secrets_is_refused_naming_the_setting(service: str) -> None:
    settings, named = REFUSALS[service]
    done = run_entry_point(spec(service).package, prod_env(**settings))
    output = done.stdout + done.stderr
    assert done.returncode == EXIT_CONFIG, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if "refuses to start outside DEV_MODE" in line]
    assert len(lines) == 1, output
    for env in named:
        assert env in lines[0], f"{env} not named in: {lines[0]}"
    assert "[REDACTED]" not in lines[0], "the log redactor hid part of the refusal"
    assert "listening" not in output, "nothing may be served before the check"


# Every service with real secrets; the notifier also as `make up` runs it: DEV_MODE on, the development defaults.
STARTS = [(s.name, REAL_SECRETS) for s in SERVICES] + [
    ("notifier", {"DEV_MODE": "true", "API_KEYS": DEV_API_KEYS_ENTRY})
]


@pytest.mark.parametrize(
    ("service", "secrets"), STARTS, ids=[f"{n}-{'dev' if 'DEV_MODE' in e else 'real'}" for n, e in STARTS]
)
async def test_a_start_with_real_secrets_or_in_dev_mode_passes_the_check_and_serves(
    service: str, secrets: dict[str, str], tmp_path: Path
) -> None:
    env = prod_env(**secrets)
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", spec(service).package, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO
        )
    try:

        async def serving() -> bool:
            assert proc.returncode is None, f"{service} exited with {proc.returncode}: {log.read_text()}"
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    return (await http.get(f"http://127.0.0.1:{env['HTTP_PORT']}/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        await poll_until(serving, timeout=60, interval=0.1, what=f"{service} to serve /healthz")
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 60)
    assert "refuses to start" not in log.read_text()


def test_every_secret_default_is_a_listed_development_value() -> None:
    """A secret that ships a default must be a value the check knows (the defaults are for `make up` only)."""
    assert {DEV_SIGNING_KEY, DEV_TWILIO_AUTH_TOKEN} <= SHIPPED_DEV_VALUES
    for s in SERVICES:
        settings_cls = s.bootstrap().Settings
        for name in secret_settings(settings_cls):
            default = settings_cls.model_fields[name].default
            assert default in (None, "") or default in SHIPPED_DEV_VALUES, f"{s.name}.{name}: {default!r}"


def test_the_secret_settings_are_marked() -> None:
    marked = {s.name: set(secret_settings(s.bootstrap().Settings)) for s in SERVICES}
    assert "self_service_signing_key" in secret_settings(ServiceSettings)
    assert {"quickbooks_webhook_verifier_token", "xero_webhook_key"} <= marked["ledger-sync"]
    assert {"twilio_auth_token", "smtp_password", "sendgrid_api_key", "print_api_key"} <= marked["notifier"]


def test_optional_secrets_are_checked_only_when_their_feature_is_used() -> None:
    notifier = spec("notifier").bootstrap().Settings
    base = {
        "self_service_signing_key": REAL_SECRETS["SELF_SERVICE_SIGNING_KEY"],
        "twilio_auth_token": "t0k3n-real",
        "data_encryption_keys": REAL_DATA_KEYS,
    }
    assert development_secrets(notifier(**base)) == {}
    assert development_secrets(notifier(**base, letter_provider="print_api")) == {"PRINT_API_KEY": "empty"}
    assert development_secrets(notifier(**base, smtp_username="mailer", smtp_password="s3cret-real")) == {}
    # a value someone set is checked even for a feature chosen per tenant
    assert development_secrets(notifier(**base, sendgrid_api_key=DEV_TWILIO_AUTH_TOKEN)) == {
        "SENDGRID_API_KEY": "shipped development value"
    }
    ledger = spec("ledger-sync").bootstrap().Settings
    assert development_secrets(ledger(data_encryption_keys=REAL_DATA_KEYS)) == {}, (
        "ledger-sync signs no links and needs no ERP secret to start"
    )


def test_the_development_data_key_is_refused_alone_beside_a_real_key_and_in_a_mounted_file(tmp_path: Path) -> None:
    """A keyring that still holds the development key opens everything sealed under it: refused in any form."""
    ledger = spec("ledger-sync").bootstrap().Settings
    assert development_secrets(ledger()) == {"DATA_ENCRYPTION_KEYS": "shipped development value"}
    beside = f"{REAL_DATA_KEYS},{DEV_DATA_ENCRYPTION_KEYS}"
    assert development_secrets(ledger(data_encryption_keys=beside)) == {
        "DATA_ENCRYPTION_KEYS": "shipped development value"
    }
    mounted = tmp_path / "keys"
    mounted.write_text(f"{REAL_DATA_KEYS}\n{DEV_DATA_ENCRYPTION_KEYS}\n")
    # the file replaces the setting: its default is not read, so not reported; the file's content is
    assert development_secrets(ledger(data_encryption_keys_file=mounted)) == {
        "DATA_ENCRYPTION_KEYS_FILE": "shipped development value"
    }
    mounted.write_text(f"{REAL_DATA_KEYS}\n")
    assert development_secrets(ledger(data_encryption_keys_file=mounted)) == {}
