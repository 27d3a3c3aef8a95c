"""The data-encryption kit (dunning_kit/data_keys.py): envelopes, keyrings, rotation, readiness."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest

from dunning_kit.data_keys import (
    DEV_DATA_ENCRYPTION_KEYS,
    DataKeySettingError,
    DataKeySettings,
    Keyring,
    RotationReport,
    SecretRef,
    StoredSecretsHealth,
    UndecryptableSecret,
    key_id_of,
    reseal,
)

OLD = base64.b64encode(b"o" * 32).decode()
NEW = base64.urlsafe_b64encode(b"\xfb" * 32).decode()  # url-safe alphabet accepted too
REF = SecretRef("connections", "acme", "credentials.refresh_token", connector="quickbooks")


def test_a_sealed_secret_names_its_key_opens_again_and_never_repeats_its_ciphertext() -> None:
    keyring = Keyring.parse(f"old:{OLD}")
    a, b = keyring.seal("rt-123", REF), keyring.seal("rt-123", REF)
    assert a.startswith("v1:old:") and key_id_of(a) == "old"
    assert a != b, "a fresh nonce per seal"
    assert "rt-123" not in a
    assert keyring.open(a, REF) == keyring.open(b, REF) == "rt-123"


def test_the_newest_key_seals_and_any_configured_key_opens() -> None:
    sealed_before = Keyring.parse(f"old:{OLD}").seal("s3cret", REF)
    both = Keyring.parse(f"new:{NEW}, old:{OLD}")
    assert both.primary_id == "new" and both.key_ids == ("new", "old")
    assert both.open(sealed_before, REF) == "s3cret"
    assert key_id_of(both.seal("s3cret", REF)) == "new"
    assert both.is_current(both.seal("x", REF)) and not both.is_current(sealed_before)


@pytest.mark.parametrize(
    "elsewhere",
    [
        SecretRef("connections", "globex", "credentials.refresh_token", connector="quickbooks"),  # other tenant
        SecretRef("connections", "acme", "credentials.refresh_token", connector="xero"),  # other connector
        SecretRef("connections", "acme", "credentials.client_secret", connector="quickbooks"),  # other field
        SecretRef("tenant_settings", "acme", "credentials.refresh_token", connector="quickbooks"),  # other table
    ],
)
def test_a_ciphertext_copied_to_another_record_does_not_open(elsewhere: SecretRef) -> None:
    keyring = Keyring.parse(f"old:{OLD}")
    with pytest.raises(UndecryptableSecret) as e:
        keyring.open(keyring.seal("rt-123", REF), elsewhere)
    assert e.value.ref == elsewhere and e.value.key_id == "old"
    assert str(elsewhere) in str(e.value) and "'old'" in str(e.value)


def test_an_unknown_key_an_altered_value_and_plain_text_each_raise_naming_the_record() -> None:
    sealed = Keyring.parse(f"old:{OLD}").seal("rt-123", REF)
    new_only = Keyring.parse(f"new:{NEW}")
    with pytest.raises(UndecryptableSecret, match=r"key id 'old'\): that key is not configured \(configured: new\)"):
        new_only.open(sealed, REF)
    old = Keyring.parse(f"old:{OLD}")
    altered = sealed[:-6] + ("AAAA" if sealed[-6:-2] != "AAAA" else "BBBB") + sealed[-2:]
    with pytest.raises(UndecryptableSecret, match="authentication failed"):
        old.open(altered, REF)
    same_id_other_key = Keyring.parse(f"old:{NEW}")
    with pytest.raises(UndecryptableSecret, match="authentication failed"):
        same_id_other_key.open(sealed, REF)
    with pytest.raises(UndecryptableSecret, match="plain text") as e:
        old.open("rt-123", REF)
    assert "connections (tenant 'acme', connector 'quickbooks') field credentials.refresh_token" in str(e.value)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("", "no key given"),
        ("  # only a comment\n", "no key given"),
        (OLD, "entry 1 is not `key_id:base64key`"),
        (f"bad id:{OLD}", "entry 1 is not"),
        (f"k1:{OLD},k2:c2hvcnQ=", "key 'k2' must be 32 random bytes"),
        ("k1:not base64 at all!!", "key 'k1' must be 32 random bytes"),
        (f"k1:{OLD},k1:{NEW}", "key id 'k1' appears twice"),
    ],
)
def test_a_malformed_key_setting_is_refused_naming_the_setting_never_the_key(setting: str, message: str) -> None:
    with pytest.raises(DataKeySettingError, match=message) as e:
        Keyring.parse(setting)
    assert str(e.value).startswith("DATA_ENCRYPTION_KEYS: ")
    assert OLD not in str(e.value) and NEW not in str(e.value) and "c2hvcnQ" not in str(e.value)


def test_keys_come_from_the_mounted_file_when_it_is_set(tmp_path: Path) -> None:
    file = tmp_path / "keys"
    file.write_text(f"# newest first\nnew:{NEW}\nold:{OLD}\n")
    keyring = Keyring.from_settings(DataKeySettings(data_encryption_keys_file=file))
    assert keyring.key_ids == ("new", "old")
    with pytest.raises(DataKeySettingError, match="DATA_ENCRYPTION_KEYS_FILE: cannot read"):
        Keyring.from_settings(DataKeySettings(data_encryption_keys_file=tmp_path / "missing"))
    file.write_text("new:short")
    with pytest.raises(DataKeySettingError, match=r"DATA_ENCRYPTION_KEYS_FILE \(.*\): key 'new'"):
        Keyring.from_settings(DataKeySettings(data_encryption_keys_file=file))


def test_the_development_key_is_the_default_is_marked_secret_and_says_it_is_for_development() -> None:
    field = DataKeySettings.model_fields["data_encryption_keys"]
    assert field.default == DEV_DATA_ENCRYPTION_KEYS and field.json_schema_extra == {"secret": True}
    assert Keyring.parse(DEV_DATA_ENCRYPTION_KEYS).primary_id.startswith("dev-only")


def test_reseal_leaves_current_values_re_encrypts_old_ones_and_encrypts_plain_text() -> None:
    old = Keyring.parse(f"old:{OLD}")
    both = Keyring.parse(f"new:{NEW},old:{OLD}")
    report = RotationReport()
    current = both.seal("a", REF)
    assert reseal(both, current, REF, report, leftover="") is None
    again = reseal(both, old.seal("b", REF), REF, report, leftover="")
    assert again is not None and key_id_of(again) == "new" and both.open(again, REF) == "b"
    encrypted = reseal(both, "plain", REF, report, leftover="plain")
    assert encrypted is not None and both.open(encrypted, REF) == "plain"
    assert (report.current, report.resealed, report.encrypted_plaintext) == (1, 1, 1)
    with pytest.raises(UndecryptableSecret):
        reseal(Keyring.parse(f"new:{NEW}"), old.seal("c", REF), REF, report, leftover="")


async def test_readiness_is_false_while_a_stored_secret_does_not_open_and_each_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing = [UndecryptableSecret(REF, "old", "that key is not configured")]

    async def scan() -> list[UndecryptableSecret]:
        return list(failing)

    health = StoredSecretsHealth(scan, rescan_seconds=0)
    caplog.set_level(logging.ERROR, logger="dunning.data_keys")
    assert await health.ready() is False
    assert await health.ready() is False
    health.failed(failing[0])  # a sync meets the same record
    assert [r.getMessage() for r in caplog.records] == [str(failing[0])]
    failing.clear()  # the key is back (or the connector re-configured)
    assert await health.ready() is True
    health.failed(UndecryptableSecret(REF, "old", "again"))
    assert health.failing and len(caplog.records) == 2
    health.opened(REF)
    assert health.failing == []
