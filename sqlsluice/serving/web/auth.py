"""Console login: admin users of ``[[users]]``, a signed session cookie, CSRF tokens.

The password a browser posts is checked by running the wire protocol's own SCRAM-SHA-256
exchange (:class:`sqlsluice.middleware.auth.ScramExchange`, the server side, keyed by the
configured password) against a SCRAM client (``scramp``) keyed by the posted one: the same
verifier code as ``psql`` logins, and no plain comparison of passwords.  A user not marked
``admin = true`` cannot log in.

The session is a cookie ``<payload>.<signature>``: payload ``{"u": user, "exp": unix time,
"n": nonce, "p": a digest of the user's password}``, signed with HMAC-SHA-256 under a secret
drawn when the server starts (a restart logs everyone out; a password change or losing
``admin`` on SIGHUP ends that user's sessions at the next request; logging out revokes the
session's nonce).  Every POST carries a
CSRF token (HMAC of the session nonce) in a hidden field; the cookie is ``HttpOnly`` and
``SameSite=Strict``.

>>> keys = SessionKeys()
>>> cookie = keys.sign("ann", "pw")
>>> keys.verify(cookie, lambda u: "pw") == "ann", keys.verify(cookie, lambda u: "changed")
(True, None)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable

from sqlsluice.errors import SluiceError

COOKIE = "sluice_console"
SESSION_S = 12 * 3600.0


def check_password(configured: str, sent: str, user: str = "") -> bool:
    """True when ``sent`` is ``configured``, proved through a SCRAM-SHA-256 exchange."""
    import scramp

    from sqlsluice.middleware.auth import ScramExchange

    try:
        client = scramp.ScramClient(["SCRAM-SHA-256"], user, sent)
        server = ScramExchange(configured)
        client.set_server_first(server.first(client.get_client_first().encode()).decode())
        client.set_server_final(server.final(client.get_client_final().encode()).decode())
    except (SluiceError, scramp.ScramException):
        return False
    return True


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class SessionKeys:
    """The per-server secret and what is signed with it."""

    def __init__(self, secret: bytes | None = None, lifetime_s: float = SESSION_S) -> None:
        self.secret = secret or secrets.token_bytes(32)
        self.lifetime_s = lifetime_s
        self._revoked: dict[str, float] = {}  # nonce -> expiry: sessions logged out before they expire

    def _mac(self, what: str, data: bytes) -> bytes:
        return hmac.new(self.secret, what.encode() + b"\0" + data, hashlib.sha256).digest()

    def _pw(self, password: str) -> str:
        return _b64(self._mac("password", password.encode())[:12])

    def sign(self, user: str, password: str) -> str:
        payload = json.dumps({"u": user, "exp": time.time() + self.lifetime_s, "n": secrets.token_hex(12),
                              "p": self._pw(password)}, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._mac('session', payload))}"

    def _payload(self, cookie: str | None) -> dict[str, object] | None:
        if not cookie or "." not in cookie:
            return None
        body, _, sig = cookie.partition(".")
        try:
            payload = _unb64(body)
            ok = hmac.compare_digest(_unb64(sig), self._mac("session", payload))
            data = json.loads(payload) if ok else None
        except (ValueError, TypeError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("exp"), int | float) or data["exp"] < time.time():
            return None
        if str(data.get("n", "")) in self._revoked:
            return None
        return data

    def revoke(self, cookie: str | None) -> None:
        """Log a session out: its cookie opens nothing from now on (until this server restarts,
        which ends every session anyway)."""
        data = self._payload(cookie)
        if data is None:
            return
        now = time.time()
        self._revoked = {n: exp for n, exp in self._revoked.items() if exp >= now}
        self._revoked[str(data.get("n", ""))] = float(data["exp"])  # type: ignore[arg-type]

    def verify(self, cookie: str | None, password_of: Callable[[str], str | None]) -> str | None:
        """The user a valid session cookie names, or None.  ``password_of(user)``: the user's
        password now, None when the user is gone or no longer an admin."""
        data = self._payload(cookie)
        if data is None:
            return None
        user = str(data.get("u", ""))
        pw = password_of(user)
        if pw is None or not hmac.compare_digest(str(data.get("p", "")), self._pw(pw)):
            return None
        return user

    def csrf(self, cookie: str | None) -> str:
        """The CSRF token of a session (empty without one)."""
        data = self._payload(cookie)
        if data is None:
            return ""
        return _b64(self._mac("csrf", str(data.get("n", "")).encode()))

    def check_csrf(self, cookie: str | None, token: str) -> bool:
        want = self.csrf(cookie)
        return bool(want) and hmac.compare_digest(want.encode(), token.encode())
