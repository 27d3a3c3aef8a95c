"""A throwaway certificate authority for the Kafka security tests: a CA, the broker's certificate (SAN
127.0.0.1 and localhost), a client certificate, an expired one, and a second CA nobody trusts.

Built with `cryptography` (already a locked dependency) in a temporary directory; EC P-256 keys, so the whole
set takes milliseconds.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA bundle clients and the terminator trust
    broker: Issued  # the terminator's certificate, signed by `ca`
    client: Issued  # a client certificate signed by `ca` (mutual TLS)
    expired_client: Issued  # signed by `ca`, expired yesterday
    stranger_ca: Path  # a CA that signed nothing the broker presents


class _Authority:
    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                    key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip

    def issue(
        self, common_name: str, *, server: bool, valid_from: datetime, valid_until: datetime
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid_from)
            .not_valid_after(valid_until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return builder.sign(self.key, hashes.SHA256()), key


def _write(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return Issued(cert_path, key_path)


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca, stranger = _Authority("dunning test CA"), _Authority("a CA nobody trusts")
    (directory / "ca.crt").write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    (directory / "stranger-ca.crt").write_bytes(stranger.cert.public_bytes(serialization.Encoding.PEM))
    valid = {"valid_from": now - timedelta(hours=1), "valid_until": now + timedelta(days=7)}
    broker = _write(directory, "broker", *ca.issue("broker", server=True, **valid))
    client = _write(directory, "client", *ca.issue("dunning-client", server=False, **valid))
    expired = _write(
        directory,
        "expired-client",
        *ca.issue(
            "dunning-expired", server=False, valid_from=now - timedelta(days=30), valid_until=now - timedelta(days=1)
        ),
    )
    return Pki(directory / "ca.crt", broker, client, expired, directory / "stranger-ca.crt")
