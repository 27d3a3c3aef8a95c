"""Development secrets never serve production: the values this repository ships for development, in one place,
and the start-up check that refuses them (and empty secrets) outside DEV_MODE.

A secret setting is a settings field marked `json_schema_extra={"secret": True}`. Outside DEV_MODE every secret
a service's configuration uses must be set and must not be a shipped development value: its field default
(a default of a secret exists only so `make up` runs with no setup) or one of `SHIPPED_DEV_VALUES`. A secret
whose feature is optional (`ServiceSettings.optional_secrets`) is checked only when it is set. The API keys
must not include a shipped development key. The check runs in `serve` before anything connects or listens; a
refusal is one log line naming every offending setting by its environment variable, and exit status 78
(EX_CONFIG): no stack trace, nothing served.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dunning_kit.settings import ServiceSettings

# The shipped development values: settings defaults, the `make up` API keys, what the README's dev stack uses.
DEV_SIGNING_KEY = "dev-only-change-me"
DEV_TWILIO_AUTH_TOKEN = "dev-twilio-auth-token"
DEV_API_KEYS = {"dev-acme-key": ("acme", "api"), "dev-acme-admin": ("acme", "admin")}
# The data-encryption key of `make up` (dunning_kit/data_keys.py): anything sealed under it is readable by anyone.
DEV_DATA_ENCRYPTION_KEYS = "dev-only-do-not-use:G5WI66NDQQijBs1Q2tplVYASfMBZ1uSkgyNq2cpvVd8="
# The workspace's client secret at the development identity provider (`python -m workspace.dev_idp`), and that
# provider's seeded people: username -> (password, role), tenant acme. `make up` prints them.
DEV_OIDC_CLIENT_SECRET = "dev-workspace-client-secret"
DEV_IDP_USERS = {
    "vera": ("vera-dev", "viewer"),
    "colin": ("colin-dev", "collector"),
    "mona": ("mona-dev", "manager"),
    "adam": ("adam-dev", "admin"),
}
# The workspace's Ed25519 key for `Dunning-Actor` (dunning_kit/actor.py) and its public half: whoever reads this
# file can sign as any person, so outside DEV_MODE no service may trust the public half.
DEV_ACTOR_SIGNING_KEY = "ZzshgFpd7x_aGW_5kj5aRKq0aolgUyv-9lGRqvsh-B8"
DEV_ACTOR_VERIFY_KEY = "nYjp6HcJKmqbxlEpe0G30jcGoK-_1mCUy9H081CsgQE"
SHIPPED_DEV_VALUES: frozenset[str] = frozenset(
    {
        DEV_SIGNING_KEY,
        DEV_TWILIO_AUTH_TOKEN,
        DEV_DATA_ENCRYPTION_KEYS,
        DEV_ACTOR_SIGNING_KEY,
        *DEV_API_KEYS,
        DEV_OIDC_CLIENT_SECRET,
    }
    | {password for password, _role in DEV_IDP_USERS.values()}
)

EXIT_CONFIG = 78  # sysexits.h EX_CONFIG: the configuration is wrong, a restart alone will not help

log = logging.getLogger("dunning.dev_secrets")


def secret_settings(settings_cls: type[ServiceSettings]) -> list[str]:
    """Names of the fields marked secret, in declaration order."""
    return [
        name
        for name, field in settings_cls.model_fields.items()
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("secret") is True
    ]


def _is_empty(value: Any) -> bool:
    return value is None or not str(value).strip()


def _entries(value: Any) -> set[str]:
    """A secret may be a list (DATA_ENCRYPTION_KEYS: comma- or line-separated keys): each entry is checked."""
    return {part.strip() for part in str(value).replace("\n", ",").split(",") if part.strip()}


def _is_dev_value(settings_cls: type[ServiceSettings], name: str, value: Any) -> bool:
    """The value, or any entry of it, is a shipped development value or the field's default (a development key
    kept beside a real one still opens everything it sealed)."""
    default = settings_cls.model_fields[name].default
    shipped = SHIPPED_DEV_VALUES | (_entries(default) if not _is_empty(default) else set())
    return str(value) in shipped or bool(_entries(value) & shipped)


def _from_file(settings: ServiceSettings, name: str) -> tuple[str, Any] | None:
    """A secret read from a mounted file when its `<name>_file` sibling is set (the file replaces the value):
    (env of the file setting, the file's text); None when there is no such file setting or it is unset."""
    path = getattr(settings, f"{name}_file", None)
    if path is None:
        return None
    try:
        return f"{name.upper()}_FILE", Path(path).read_text()
    except OSError:
        return None  # the service's own start names an unreadable file


EMPTY = "empty"
DEV_VALUE = "shipped development value"
DEV_API_KEY = "holds a shipped development API key"
DEV_ACTOR_KEY = "trusts the shipped development actor key"


def development_secrets(settings: ServiceSettings) -> dict[str, str]:
    """Each offending setting's environment variable and why it may not serve production; {} when all is well."""
    cls = type(settings)
    optional = settings.optional_secrets()
    problems: dict[str, str] = {}
    for name in secret_settings(cls):
        from_file = _from_file(settings, name)
        if from_file is not None:
            env, text = from_file
            if _is_empty(text):
                problems[env] = EMPTY
            elif _is_dev_value(cls, name, text):
                problems[env] = DEV_VALUE
            continue
        value = getattr(settings, name)
        if name in optional and (name not in settings.model_fields_set or _is_empty(value)):
            continue  # a feature this configuration does not use; a value someone set is still checked
        if _is_empty(value):
            problems[name.upper()] = EMPTY
        elif _is_dev_value(cls, name, value):
            problems[name.upper()] = DEV_VALUE
    problems.update(dict.fromkeys(_development_api_keys(settings), DEV_API_KEY))
    if DEV_ACTOR_VERIFY_KEY in _entries(settings.actor_verify_keys):
        problems["ACTOR_VERIFY_KEYS"] = DEV_ACTOR_KEY
    return problems


def _development_api_keys(settings: ServiceSettings) -> list[str]:
    from dunning_kit.auth import hash_key

    dev_hashes = {hash_key(key) for key in DEV_API_KEYS}
    sources: list[tuple[str, str]] = [("API_KEYS", settings.api_keys)]
    if settings.api_keys_file is not None:
        try:
            sources.append(("API_KEYS_FILE", Path(settings.api_keys_file).read_text()))
        except OSError:
            pass  # the service's own start reports an unreadable key file
    return [env for env, text in sources if any(h in text.lower() for h in dev_hashes)]


def refusal(service: str, problems: dict[str, str]) -> str:
    """The one log line of a refused start. A name is never followed by a space, `:` or `=` (nor is the word
    "secret"): the log redactor would take what follows for a secret's value and hide it."""
    by_reason: dict[str, list[str]] = {}
    for env, reason in problems.items():
        by_reason.setdefault(reason, []).append(env)
    said = "; ".join(f"{reason}: " + ", ".join(envs) for reason, envs in by_reason.items())
    return (
        f"{service} refuses to start outside DEV_MODE, these secrets are not fit for production ({said}). "
        "Set real ones, or DEV_MODE=true on a developer machine only."
    )


def refuse_development_secrets(settings: ServiceSettings, service: str) -> None:
    """Outside DEV_MODE, stop the start (one error line, exit 78) if a secret setting is empty or a dev value."""
    if settings.dev_mode:
        log.warning("%s: DEV_MODE is on, development secrets are accepted (never run production like this)", service)
        return
    problems = development_secrets(settings)
    if problems:
        log.error(refusal(service, problems))
        raise SystemExit(EXIT_CONFIG)
