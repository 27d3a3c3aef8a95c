"""TLS in front of the embedded broker: Debian's stunnel4 terminates TLS (and checks client certificates for
mutual TLS) and forwards to a Tansu broker that advertises the stunnel port, so every connection a client makes
(bootstrap and the broker it is then sent to) goes through TLS. Tansu 0.6.0 cannot serve TLS itself.

`make test` installs stunnel4 where it is missing (root + apt); elsewhere the tests fail saying so.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dunning_kit.embedded import EmbeddedBroker, free_port, wait_for_port
from tests.security.pki import Pki


def stunnel_binary() -> str:
    found = shutil.which("stunnel4") or shutil.which("stunnel")
    if found is None:
        pytest.fail("Debian's stunnel4 is needed for the Kafka TLS tests: `make test` installs it as root "
                    "(apt-get install -y stunnel4)")  # fmt: skip
    return found


@dataclass
class TlsTerminator:
    pki: Pki
    directory: Path
    mutual: bool  # the terminator demands a client certificate signed by the test CA
    broker_args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    broker: EmbeddedBroker | None = None
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / "stunnel.log"

    def start(self) -> TlsTerminator:
        binary = stunnel_binary()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.broker = EmbeddedBroker(advertised_port=self.port, extra_args=self.broker_args).start()
        client_check = f"CAfile = {self.pki.ca}\nverifyChain = yes\nrequireCert = yes\n" if self.mutual else ""
        config = self.directory / "stunnel.conf"
        config.write_text(
            "foreground = yes\npid =\nsyslog = no\n"
            f"output = {self.log}\n"
            "[kafka]\n"
            f"accept = 127.0.0.1:{self.port}\nconnect = 127.0.0.1:{self.broker.port}\n"
            f"cert = {self.pki.broker.cert}\nkey = {self.pki.broker.key}\n{client_check}"
        )
        self._proc = subprocess.Popen([binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for_port(self.port, 15)
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def refused_handshakes(self) -> list[str]:
        """stunnel's lines for connections it could not accept: a client that spoke plaintext to it, or failed
        TLS. (A connection closed before saying anything, like the start-up port check, is no client.)"""
        lines = self.log.read_text().splitlines()
        return [line for line in lines if "SSL_accept" in line and "unexpected eof while reading" not in line]

    def accepted_client_certificates(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if "Certificate accepted" in line]
