"""Certificates for TLS tests: our site's CA and server certificate, and a second, foreign CA."""

from __future__ import annotations

import datetime
from pathlib import Path

import attrs

from ccl.adapters.certificates import CA_CERT, IssuedCertificate, endpoint_string, issue_server_certificate, make_ca


@attrs.frozen
class Site:
    ca: Path
    server: IssuedCertificate

    def endpoint(self, port: int = 0) -> str:
        """An ssl: server endpoint string on loopback with this site's server certificate."""
        return endpoint_string(port, self.server, interface="127.0.0.1")


def _present() -> datetime.datetime:
    # OpenSSL checks validity against the machine's real clock, so the certificates must be
    # valid around the real present; nothing a test asserts depends on what time that is.
    return datetime.datetime.now(datetime.timezone.utc)


def make_site(testcase, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), name: str = "server") -> Site:
    """A CA and a server certificate for ``hosts`` in a fresh temp directory."""
    directory = Path(testcase.mktemp()).absolute()
    ca = make_ca(directory, now=_present())
    return Site(ca, issue_server_certificate(directory, name, list(hosts), now=_present()))


def make_foreign_ca(testcase) -> Path:
    """A second CA that signed nothing of ours (what a client trusting the wrong CA holds)."""
    directory = Path(testcase.mktemp()).absolute()
    return make_ca(directory, now=_present(), common_name="Some other CA")


def server_options(site: Site):
    """Twisted server TLS options with the site's server certificate (for listeners made in tests)."""
    from twisted.internet import ssl

    pem = site.server.key.read_bytes() + site.server.cert.read_bytes()
    return ssl.PrivateCertificate.loadPEM(pem).options()
