"""Request identity: signing every request to a deployment, as Restate does ("request identity v1").

Services exposed on a network check that requests come from their server: an SDK configured with
identity keys (``restate.app(..., identity_keys=["publickeyv1_..."])``) answers 401 to anything
unsigned. quill signs discovery and every attempt (HTTP/1.1 and HTTP/2 alike) with the same key
format, headers and token as restate-server 1.7 (byte for byte: ed25519 signatures are
deterministic, and the header and claims are serialised in Restate's order):

    x-restate-signature-scheme: v1
    x-restate-jwt-v1: <compact JWS>
    JWS header  {"typ":"JWT","alg":"EdDSA","kid":"publickeyv1_<base58 public key>"}
    JWS claims  {"aud":<path>,"exp":now+L,"iat":now,"nbf":now-L[,"sub":<object key>]}

``aud`` is the protocol path, ``/discover`` or ``/invoke/{service}/{handler}``, without the
deployment URL's base path; ``L`` is the expiration (default 60 s, at least 1 s); ``sub`` is the
virtual object or workflow key, only for keyed targets. The key file is what Restate reads from
``request-identity-private-key-pem-file``: exactly one PKCS#8 ed25519 private key in PEM
(``openssl genpkey -algorithm ed25519``).
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import base58
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key

SCHEME_HEADER = "x-restate-signature-scheme"
JWT_HEADER = "x-restate-jwt-v1"
DISCOVER_PATH = "/discover"
PUBLIC_KEY_PREFIX = "publickeyv1_"
DEFAULT_EXPIRATION = 60.0

_json = msgspec.json.Encoder()


class IdentityKeyError(ValueError):
    """The key file cannot be read, or does not hold exactly one ed25519 private key."""


class RequestSigner:
    def __init__(self, key: Ed25519PrivateKey, expiration: float = DEFAULT_EXPIRATION) -> None:
        self._key = key
        self._leeway = max(1, int(expiration))
        self.public_key = public_key_string(key)
        # The JWS header never changes: encode it once.
        self._header = _b64url(_json.encode({"typ": "JWT", "alg": "EdDSA", "kid": self.public_key}))

    @classmethod
    def from_pem_file(cls, path: str | Path, expiration: float = DEFAULT_EXPIRATION) -> RequestSigner:
        return cls(load_private_key(path), expiration)

    def token(self, aud: str, sub: str | None = None, now: int | None = None) -> str:
        issued = int(time.time()) if now is None else now
        claims: dict[str, object] = {
            "aud": aud,
            "exp": issued + self._leeway,
            "iat": issued,
            "nbf": max(0, issued - self._leeway),
        }
        if sub is not None:
            claims["sub"] = sub
        signing_input = f"{self._header}.{_b64url(_json.encode(claims))}"
        return f"{signing_input}.{_b64url(self._key.sign(signing_input.encode('ascii')))}"

    def headers(self, path: str, sub: str | None = None) -> list[tuple[str, str]]:
        """The two headers for a request to protocol ``path`` (signed now: one per request)."""
        return [(SCHEME_HEADER, "v1"), (JWT_HEADER, self.token(path, sub))]


def invoke_path(service: str, handler: str) -> str:
    return f"/invoke/{service}/{handler}"


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise IdentityKeyError(f"cannot read the request identity key {path}: {exc.strerror}") from exc
    blocks = data.count(b"-----BEGIN ")
    if blocks != 1:
        # Restate's words for the same mistake.
        raise IdentityKeyError(f"{path}: only one private key in PEM format is expected, found {blocks}")
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise IdentityKeyError(f"{path}: not a PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise IdentityKeyError(f"{path}: expected an ed25519 private key, found {type(key).__name__}")
    return key


def public_key_string(key: Ed25519PrivateKey) -> str:
    """``publickeyv1_`` + base58 of the raw public key: what SDKs take as an identity key."""
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return PUBLIC_KEY_PREFIX + base58.b58encode(raw).decode("ascii")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
