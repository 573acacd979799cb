"""RS256 JSON Web Tokens and JWKS, with nothing but ``cryptography``."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


class InvalidToken(Exception):
    pass


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def load_private(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA key")
    return key


def key_id(public: rsa.RSAPublicKey) -> str:
    """The kid kube-apiserver gives its service-account signing key (sha256 of the DER SPKI)."""
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64url(hashlib.sha256(der).digest())


def jwk(public: rsa.RSAPublicKey) -> dict[str, str]:
    numbers = public.public_numbers()

    def encode_int(value: int) -> str:
        return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    return {
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": key_id(public),
        "n": encode_int(numbers.n),
        "e": encode_int(numbers.e),
    }


def public_from_jwk(data: dict[str, Any]) -> rsa.RSAPublicKey:
    n = int.from_bytes(b64url_decode(data["n"]), "big")
    e = int.from_bytes(b64url_decode(data["e"]), "big")
    return rsa.RSAPublicNumbers(e, n).public_key()


def sign(claims: dict[str, Any], key: rsa.RSAPrivateKey) -> str:
    header = {"alg": "RS256", "typ": "JWT", "kid": key_id(key.public_key())}
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(signature)


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, without checking anything. Raises InvalidToken if malformed."""
    try:
        head, body, _sig = token.split(".")
        header = json.loads(b64url_decode(head))
        claims = json.loads(b64url_decode(body))
    except (ValueError, json.JSONDecodeError) as exc:
        raise InvalidToken("malformed token") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidToken("malformed token")
    return header, claims


def verify(token: str, public: rsa.RSAPublicKey) -> dict[str, Any]:
    """Claims of a token whose RS256 signature checks out against ``public``."""
    header, claims = unverified(token)
    if header.get("alg") != "RS256":
        raise InvalidToken("unsupported alg")
    head, body, sig = token.split(".")
    try:
        public.verify(b64url_decode(sig), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except Exception as exc:  # cryptography raises InvalidSignature; anything else is as bad
        raise InvalidToken("signature does not verify") from exc
    return claims
