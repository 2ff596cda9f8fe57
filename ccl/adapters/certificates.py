"""A small private CA for one site and the server certificates it signs (``ccl tls init``).

ECDSA P-256 keys, SHA-256 signatures, made with the ``cryptography`` package (the one
pyOpenSSL uses). Keys are written 0600 and never overwritten: the CA of a site is made once
and every later run signs with it. A plant with a CA of its own does not need any of this
(docs/operations.md, "TLS").
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT = "ca.pem"
CA_KEY = "ca.key"


class CertificateError(RuntimeError):
    """The site directory holds something we cannot use; the message says what."""


@attrs.frozen
class IssuedCertificate:
    cert: Path
    key: Path
    names: tuple[str, ...]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CCL plant server"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    # Created 0600 from the start: the key is never readable by others, not even for a moment.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def make_ca(site: Path, *, now: datetime.datetime, days: int = 3650, common_name: str = "CCL site CA") -> Path:
    """The CA of ``site`` (made if missing); returns the CA certificate's path."""
    site.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = site / CA_CERT, site / CA_KEY
    if cert_path.exists() and key_path.exists():
        return cert_path
    if cert_path.exists() or key_path.exists():
        raise CertificateError(f"{site} holds only one of {CA_CERT} and {CA_KEY}; remove it or restore the other")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return cert_path


def subject_alt_names(hosts: list[str]) -> list[x509.GeneralName]:
    """DNS names and IP addresses as a certificate names them."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if not host or any(c.isspace() or c in "/:," for c in host):
                raise CertificateError(f"{host!r} is neither a host name nor an IP address") from None
            names.append(x509.DNSName(host))
    return names


def issue_server_certificate(site: Path, name: str, hosts: list[str], *, now: datetime.datetime,
                             days: int = 825) -> IssuedCertificate:
    """``<name>.pem`` and ``<name>.key`` in ``site``, signed by its CA, for ``hosts`` (SANs).
    An existing pair is replaced (a new key too): re-issuing is how the host list changes."""
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise CertificateError(f"certificate name {name!r}: letters, digits, - and _ only")
    if name == "ca":
        raise CertificateError("the name ca is the CA's own")
    ca_cert = x509.load_pem_x509_certificate((site / CA_CERT).read_bytes())
    ca_key = serialization.load_pem_private_key((site / CA_KEY).read_bytes(), password=None)
    sans = subject_alt_names(hosts)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = site / f"{name}.pem", site / f"{name}.key"
    key_path.unlink(missing_ok=True)
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return IssuedCertificate(cert_path, key_path, tuple(hosts))


def endpoint_string(port: int, issued: IssuedCertificate, interface: str | None = None) -> str:
    """The ``ssl:`` server endpoint string for a listener with ``issued`` (colons in paths escaped)."""
    def quoted(path: Path) -> str:
        return str(path).replace("\\", "\\\\").replace(":", "\\:")

    text = f"ssl:{port}:privateKey={quoted(issued.key)}:certKey={quoted(issued.cert)}"
    if interface:
        text += f":interface={interface}"
    return text
