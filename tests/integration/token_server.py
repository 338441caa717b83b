"""A token server for the registry tests, in the way of Docker Hub's auth service.

    python token_server.py DIR USER PASSWORD SERVICE ISSUER

Writes DIR/cert.pem (the certificate the registry's `rootcertbundle` trusts),
prints its port, then answers GET /token?service=..&scope=repository:NAME:ACTIONS
with a JWT signed RS256 whose `x5c` header carries that certificate. Basic
credentials that match get every action they ask for; no credentials get an
anonymous token with no access (the registry then refuses); wrong ones get a
401. Each request is logged to DIR/requests.log as a JSON line.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_cert(out: str) -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "corral-test-token")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    with open(out, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert.public_bytes(serialization.Encoding.DER)


def main() -> None:
    out_dir, user, password, service, issuer = sys.argv[1:6]
    key, der = make_cert(os.path.join(out_dir, "cert.pem"))
    log = open(os.path.join(out_dir, "requests.log"), "a", buffering=1)  # noqa: SIM115

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            who = ""
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                if (u, p) != (user, password):
                    log.write(json.dumps({"user": u, "refused": True}) + "\n")
                    self.send_response(401)
                    self.end_headers()
                    return
                who = u
            access = []
            for scope in query.get("scope", []):
                typ, _, rest = scope.partition(":")
                name, _, actions = rest.rpartition(":")
                if who:
                    access.append({"type": typ, "name": name, "actions": actions.split(",")})
            now = int(time.time())
            header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
            claims = {
                "iss": issuer,
                "sub": who,
                "aud": query.get("service", [""])[0],
                "exp": now + 300,
                "nbf": now - 10,
                "iat": now,
                "jti": b64url(os.urandom(12)),
                "access": access,
            }
            signing = (
                b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
            )
            sig = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
            body = json.dumps({"token": signing + "." + b64url(sig)}).encode()
            log.write(json.dumps({"user": who, "scope": query.get("scope", [])}) + "\n")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    del service  # the registry checks it; every token names the one asked for
    server.serve_forever()


if __name__ == "__main__":
    main()
