"""A throw-away CA, a server certificate for 127.0.0.1 and a client
certificate, as dockerd's --tlsverify guide makes them (with cryptography)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(k) -> bytes:
    return k.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert(subject: str, key, issuer_name, issuer_key, *, ca=False, usage=None, san=None):
    now = datetime.datetime.now(datetime.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage:
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_certs(d: Path) -> Path:
    (d / "client").mkdir(parents=True)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "corral-test-ca")])
    ca = _cert("corral-test-ca", ca_key, ca_name, ca_key, ca=True)
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    server_key = _key()
    server = _cert(
        "127.0.0.1", server_key, ca_name, ca_key,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
    )  # fmt: skip
    client_key = _key()
    client = _cert("client", client_key, ca_name, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    (d / "ca.pem").write_bytes(ca_pem)
    (d / "server-cert.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (d / "server-key.pem").write_bytes(_pem_key(server_key))
    (d / "client" / "ca.pem").write_bytes(ca_pem)
    (d / "client" / "cert.pem").write_bytes(client.public_bytes(serialization.Encoding.PEM))
    (d / "client" / "key.pem").write_bytes(_pem_key(client_key))
    return d
