"""Password checks for cleartext, md5 and SCRAM-SHA-256 (RFC 5802/7677), I/O-free.

The SCRAM exchange is a small object fed the client's messages.  The user name comes
from the startup message: libpq sends an empty ``n=`` in the client-first message.

``auth_query`` (PgBouncer's): a client not in ``[[users]]`` is checked against the secret
PostgreSQL stores for it (``pg_shadow.passwd``), parsed by :func:`parse_secret`: a SCRAM
verifier ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``, an md5 hash
``md5<hex>``, or (rarely) a plain password.  The proxy never learns the plaintext, so it
logs in upstream as that client with what the check left it (:class:`StoredSecret`):

* SCRAM: the exchange runs with the verifier's salt and iteration count; the client's proof
  XOR ``HMAC(StoredKey, AuthMessage)`` is the ClientKey (checked: ``H(ClientKey) =
  StoredKey``).  Upstream, which has the same verifier, the ClientKey answers a new
  challenge: proof = ClientKey XOR ``HMAC(StoredKey, AuthMessage')``, and the ServerKey
  checks the upstream's signature (PgBouncer's SCRAM pass-through, ``scram_keys``).
* md5: the hash is what both md5 challenges need: the client's answer is
  ``"md5" + md5(hex + salt)``, and so is the proxy's answer upstream.

>>> md5_password("secret", "app", b"salt")[:3]
'md5'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlsluice.errors import InvalidPassword, ProtocolViolation

SCRAM_ITERATIONS = 4096


@dataclass(frozen=True, repr=False)
class ScramVerifier:
    """A parsed ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``."""

    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes

    def __repr__(self) -> str:
        return f"ScramVerifier(iterations={self.iterations}, ...)"


def parse_secret(text: str | None) -> ScramVerifier | str | None:
    """What ``pg_shadow.passwd`` holds: a :class:`ScramVerifier`, an md5 hash (``"md5<hex>"``,
    kept as text), a plain password (text), or None (no password: nobody logs in with one).

    >>> v = parse_secret(scram_verifier("pw", salt=b"s" * 16))
    >>> v.iterations, v.salt
    (4096, b'ssssssssssssssss')
    >>> parse_secret("md5" + "0" * 32)[:3], parse_secret("SCRAM-SHA-256$x") is None
    ('md5', True)
    """
    if text is None or text == "":
        return None
    if text.startswith("SCRAM-SHA-256$"):
        try:
            head, keys = text[len("SCRAM-SHA-256$"):].split("$", 1)
            it, salt = head.split(":", 1)
            stored, server = keys.split(":", 1)
            v = ScramVerifier(int(it), base64.b64decode(salt, validate=True), base64.b64decode(stored, validate=True),
                              base64.b64decode(server, validate=True))
        except (ValueError, binascii.Error):
            return None  # malformed: nobody logs in with it
        return v if v.iterations > 0 and len(v.stored_key) == len(v.server_key) == 32 else None
    return text


def is_md5_hash(secret: str) -> bool:
    return len(secret) == 35 and secret.startswith("md5") and all(c in "0123456789abcdef" for c in secret[3:])


def scram_keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes, bytes]:
    """(ClientKey, StoredKey, ServerKey) of ``password`` (RFC 5802, SASLprep left out as libpq
    does for ASCII passwords)."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = _hmac(salted, b"Client Key")
    return client_key, hashlib.sha256(client_key).digest(), _hmac(salted, b"Server Key")


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The verifier PostgreSQL stores for ``password`` (``SCRAM-SHA-256$4096:...``)."""
    salt = salt or secrets.token_bytes(16)
    _, stored, server = scram_keys(password, salt, iterations)
    b64 = base64.b64encode
    return f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}${b64(stored).decode()}:{b64(server).decode()}"


def md5_hash_answer(md5_hash: str, salt: bytes) -> str:
    """The answer to an md5 challenge from the stored hash (``"md5" + md5(password + user)``).

    >>> md5_hash_answer("md5" + hashlib.md5(b"secretapp").hexdigest(), b"salt") == md5_password("secret", "app", b"salt")
    True
    """
    return "md5" + hashlib.md5(md5_hash[3:].encode() + salt).hexdigest()


def check_cleartext(sent: str, secret: ScramVerifier | str, user: str) -> bool:
    """A cleartext password against a stored secret (verifier, md5 hash or plain password)."""
    if isinstance(secret, ScramVerifier):
        _, stored, _ = scram_keys(sent, secret.salt, secret.iterations)
        return hmac.compare_digest(stored, secret.stored_key)
    if is_md5_hash(secret):
        want = "md5" + hashlib.md5((sent + user).encode()).hexdigest()
        return hmac.compare_digest(want.encode(), secret.encode())
    return hmac.compare_digest(sent.encode(), secret.encode())


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

    def __init__(self, password: str | ScramVerifier, *, salt: bytes | None = None,
                 iterations: int = SCRAM_ITERATIONS) -> None:
        if isinstance(password, ScramVerifier):  # auth_query: the stored verifier, no plaintext
            self.salt, self.iterations = password.salt, password.iterations
            self.stored_key, self.server_key = password.stored_key, password.server_key
        else:
            self.salt = salt or secrets.token_bytes(16)
            self.iterations = iterations
            _, self.stored_key, self.server_key = scram_keys(password, self.salt, iterations)
        self.client_key = b""  # recovered from the client's proof once :meth:`final` accepted it
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
        signature = _hmac(self.stored_key, auth_message)
        if len(proof) != len(signature):
            raise InvalidPassword("password authentication failed")
        recovered = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.sha256(recovered).digest(), self.stored_key):
            raise InvalidPassword("password authentication failed")
        self.client_key = recovered
        return b"v=" + base64.b64encode(_hmac(self.server_key, auth_message))


class StoredSecret(str):
    """A client's password stand-in after an ``auth_query`` check: what the proxy needs to log
    in upstream as that client without the plaintext.  The text is the stored secret (the
    verifier or md5 hash; never logged: ``repr`` hides it); ``client_key`` is the ClientKey
    recovered from the client's SCRAM proof (empty for md5).

    It is a ``str`` so that it travels where a password does (``conn.password``, the upstream
    target) without changing those types; :mod:`sqlsluice.middleware.upstream_auth` answers
    the upstream's challenge with it instead of using it as a password.
    """

    client_key: bytes
    verifier: ScramVerifier | None

    def __new__(cls, secret: str, *, verifier: ScramVerifier | None = None, client_key: bytes = b"") -> StoredSecret:
        self = super().__new__(cls, secret)
        self.verifier = verifier
        self.client_key = client_key
        return self

    def __repr__(self) -> str:
        return "StoredSecret('***')"

    def __str__(self) -> str:
        return "***"


def scram_client_proof(client_key: bytes, stored_key: bytes, auth_message: bytes) -> bytes:
    """The client proof for ``auth_message`` from the ClientKey (no password needed)."""
    signature = _hmac(stored_key, auth_message)
    return bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
