"""How our clients trust our TLS listeners: the CA of ``[tls] ca_file``, never no verification.

Every client of a listener of ours (the orchestrator's health checks and scrapes, the UI's
calls to the orchestrator, ``ccl ctl``, the scripts, the 고기원 link when it is TLS) builds its
trust here, so that one setting says which CA signs the site's certificates. An empty
``ca_file`` means the system's trust store (a plant CA already installed there).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from twisted.internet import ssl as twisted_ssl
from twisted.web.client import BrowserLikePolicyForHTTPS

from ccl.config import Config, ConfigError


def ca_file(config: Config) -> str | None:
    """``[tls] ca_file`` as an absolute path (None: the system's trust store), checked to load."""
    if not config.get("tls", "ca_file"):
        return None
    path = config.get_path("tls", "ca_file")
    try:
        load_trust_root(str(path))
    except (OSError, ValueError) as error:
        raise ConfigError(f"{config.where('tls', 'ca_file')}: cannot load a CA certificate from {path}: {error}") from None
    return str(path)


def load_trust_root(path: str | None):
    """A Twisted trust root: every CA certificate in the PEM file ``path`` (a bundle may hold
    several roots), or the platform's store when None."""
    if path is None:
        return twisted_ssl.platformTrust()
    pem = Path(path).read_bytes()
    end = b"-----END CERTIFICATE-----"
    blocks = [block[block.index(b"-----BEGIN CERTIFICATE-----"):] + end
              for block in pem.split(end) if b"-----BEGIN CERTIFICATE-----" in block]
    if not blocks:
        raise ValueError("no PEM certificate in the file")
    return twisted_ssl.trustRootFromCertificates([twisted_ssl.Certificate.loadPEM(block) for block in blocks])


def https_policy(path: str | None) -> BrowserLikePolicyForHTTPS:
    """For ``twisted.web.client.Agent(contextFactory=...)``: https URLs are verified against ``path``."""
    return BrowserLikePolicyForHTTPS(trustRoot=load_trust_root(path))


def client_options(host: str, path: str | None):
    """Twisted client TLS options for ``host`` (DNS name or IP address, checked against the
    certificate's subjectAltName) trusting ``path``; for ``wrapClientTLS``."""
    return twisted_ssl.optionsForClientTLS(host, trustRoot=load_trust_root(path))


def stdlib_context(path: str | None) -> ssl.SSLContext:
    """For urllib (``ccl ctl``, the scripts): verified, with the hostname checked."""
    return ssl.create_default_context(cafile=path)
