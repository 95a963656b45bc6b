"""Signed, timestamped tokens, mirroring ``Phoenix.Token``.

Phoenix hands the browser a token when it renders a page (usually carrying a
user id) and checks it again when the socket connects, so the socket never has
to rely on cookies. A token is the data plus the time it was signed, sealed
with an HMAC keyed by the application secret and a salt that names the token's
purpose. The cryptography is left to itsdangerous, so this module only
translates between Phoenix's vocabulary (``max_age``, ``:invalid``,
``:expired``) and itsdangerous's. Tokens are signed, not encrypted: whoever
holds one can read its payload.
"""

from __future__ import annotations

import hashlib
from typing import Any

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from channels_core.exceptions import ExpiredToken, InvalidToken

__all__ = ["DEFAULT_MAX_AGE", "sign", "verify"]

#: Phoenix's default ``max_age``: one day, in seconds.
DEFAULT_MAX_AGE: float = 86400


class _Signer(TimestampSigner):
    """A ``TimestampSigner`` that can be told which time to stamp."""

    def __init__(self, *args: Any, signed_at: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._signed_at = signed_at

    def get_timestamp(self) -> int:
        # itsdangerous also calls this for "now" when checking age, so a
        # verifying signer must always be built with signed_at=None.
        if self._signed_at is None:
            return super().get_timestamp()
        return int(self._signed_at)


def _serializer(
    secret_key_base: str, salt: str, signed_at: float | None = None
) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        secret_key_base,
        salt=salt,
        signer=_Signer,
        # Phoenix signs with HMAC-SHA256; itsdangerous would default to SHA-1.
        signer_kwargs={"digest_method": hashlib.sha256, "signed_at": signed_at},
    )


def sign(secret_key_base: str, salt: str, data: Any, *, signed_at: float | None = None) -> str:
    """Sign ``data`` into a URL-safe token.

    Args:
        secret_key_base: The application secret. Anyone who knows it can
            mint tokens, so keep it long, random and out of the repository.
        salt: Names the token's purpose (for example ``"user socket"``), so
            a token minted for one use is rejected by another.
        data: Any JSON-serialisable value. JSON has no tuples, so tuples
            come back from :func:`verify` as lists.
        signed_at: Unix time in seconds to stamp instead of now; tests use
            it to mint tokens that are already old. Fractions of a second
            are dropped, as itsdangerous stamps whole seconds.

    Returns:
        The token, safe to put in a URL or a query string.

    Raises:
        TypeError: If ``data`` is not JSON-serialisable.
    """
    return _serializer(secret_key_base, salt, signed_at).dumps(data)


def verify(
    secret_key_base: str,
    salt: str,
    token: str | None,
    *,
    max_age: float = DEFAULT_MAX_AGE,
) -> Any:
    """Check a token made by :func:`sign` and return its data.

    Args:
        secret_key_base: The secret the token was signed with.
        salt: The salt the token was signed with.
        token: The token as received. ``None`` is accepted because a client
            that sent no token is an everyday case, not a programming error.
        max_age: How old, in seconds, the token may be.

    Returns:
        The data that was signed.

    Raises:
        InvalidToken: If the token is missing, malformed, or was not signed
            with this secret and salt.
        ExpiredToken: If the token is authentic but older than ``max_age``
            (or stamped in the future, which itsdangerous refuses to trust).
    """
    if not token:
        raise InvalidToken("missing token")
    try:
        return _serializer(secret_key_base, salt).loads(token, max_age=max_age)
    except SignatureExpired:
        # itsdangerous checks the signature before the age, so reaching this
        # branch means the token is genuine, merely old.
        raise ExpiredToken("expired token") from None
    except BadData:
        # Drop itsdangerous's error: its message can echo the token back, and
        # callers should only need to know that verification failed.
        raise InvalidToken("invalid token") from None
