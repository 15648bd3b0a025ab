"""Password checks for cleartext, md5 and SCRAM-SHA-256 (RFC 5802/7677), I/O-free.

The SCRAM exchange is a small object fed the client's messages.  The user name comes
from the startup message: libpq sends an empty ``n=`` in the client-first message.

>>> md5_password("secret", "app", b"salt")[:3]
'md5'
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from sqlsluice.errors import InvalidPassword, ProtocolViolation

SCRAM_ITERATIONS = 4096


def md5_password(password: str, user: str, salt: bytes) -> str:
    """What a client sends for md5 auth: ``"md5" + md5(md5(password + user) + salt)``."""
    inner = hashlib.md5((password + user).encode()).hexdigest()
    return "md5" + hashlib.md5(inner.encode() + salt).hexdigest()


def check_md5(sent: str, password: str, user: str, salt: bytes) -> bool:
    return hmac.compare_digest(sent.encode(), md5_password(password, user, salt).encode())


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def _attrs(msg: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in msg.split(","):
        if len(part) >= 2 and part[1] == "=":
            out[part[0]] = part[2:]
    return out


class ScramExchange:
    """Server side of SCRAM-SHA-256 without channel binding.

    ``first(client_first) -> server_first``; ``final(client_final) -> server_final``
    (raises :class:`InvalidPassword` when the proof is wrong).
    """

    def __init__(self, password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> None:
        self.salt = salt or secrets.token_bytes(16)
        self.iterations = iterations
        self.salted = hashlib.pbkdf2_hmac("sha256", password.encode(), self.salt, iterations)
        self.server_nonce = base64.b64encode(secrets.token_bytes(18)).decode()
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""

    def first(self, client_first: bytes) -> bytes:
        try:
            msg = client_first.decode()
        except UnicodeDecodeError as e:
            raise ProtocolViolation("malformed SCRAM message") from e
        if msg.startswith("p="):
            raise ProtocolViolation("channel binding is not supported", sqlstate="28000")
        if not msg.startswith(("n,", "y,")):
            raise ProtocolViolation("malformed SCRAM message (bad GS2 header)")
        # gs2 header: cbind-flag "," [authzid] ","
        parts = msg.split(",", 2)
        if len(parts) < 3:
            raise ProtocolViolation("malformed SCRAM message")
        self._client_first_bare = parts[2]
        attrs = _attrs(self._client_first_bare)
        cnonce = attrs.get("r")
        if not cnonce:
            raise ProtocolViolation("malformed SCRAM message (no nonce)")
        self._nonce = cnonce + self.server_nonce
        self._server_first = (f"r={self._nonce},s={base64.b64encode(self.salt).decode()},"
                              f"i={self.iterations}")
        return self._server_first.encode()

    def final(self, client_final: bytes) -> bytes:
        try:
            msg = client_final.decode()
        except UnicodeDecodeError as e:
            raise ProtocolViolation("malformed SCRAM message") from e
        idx = msg.rfind(",p=")
        if idx < 0:
            raise ProtocolViolation("malformed SCRAM message (no proof)")
        without_proof = msg[:idx]
        attrs = _attrs(msg)
        if attrs.get("r") != self._nonce:
            raise ProtocolViolation("SCRAM nonce mismatch")
        try:
            proof = base64.b64decode(attrs.get("p", ""), validate=True)
        except ValueError as e:
            raise ProtocolViolation("malformed SCRAM proof") from e
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        client_key = _hmac(self.salted, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        signature = _hmac(stored_key, auth_message)
        if len(proof) != len(signature):
            raise InvalidPassword("password authentication failed")
        recovered = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.sha256(recovered).digest(), stored_key):
            raise InvalidPassword("password authentication failed")
        server_key = _hmac(self.salted, b"Server Key")
        return b"v=" + base64.b64encode(_hmac(server_key, auth_message))
