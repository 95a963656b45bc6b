from __future__ import annotations

import re
import time

import pytest

from channels_core import token
from channels_core.exceptions import ChannelsError, ExpiredToken, InvalidToken, TokenError

SECRET = "s" * 64
SALT = "user socket"
DAY = 86400


@pytest.mark.parametrize(
    "data",
    [42, "alice", None, True, [1, 2, 3], {"user_id": 7, "roles": ["admin"]}],
)
def test_round_trip(data: object) -> None:
    signed = token.sign(SECRET, SALT, data)
    assert token.verify(SECRET, SALT, signed) == data


def test_token_is_url_safe_text() -> None:
    signed = token.sign(SECRET, SALT, {"user_id": 7, "name": "zoë / ü?&="})
    assert isinstance(signed, str)
    assert re.fullmatch(r"[A-Za-z0-9_\-.]+", signed)


def test_tuples_come_back_as_lists() -> None:
    signed = token.sign(SECRET, SALT, (1, "a"))
    assert token.verify(SECRET, SALT, signed) == [1, "a"]


def test_unserialisable_data_raises_type_error() -> None:
    with pytest.raises(TypeError):
        token.sign(SECRET, SALT, {1, 2})


def test_default_max_age_is_one_day() -> None:
    assert token.DEFAULT_MAX_AGE == 86400


def test_tampered_signature_is_invalid() -> None:
    signed = token.sign(SECRET, SALT, {"user_id": 7})
    payload, timestamp, signature = signed.split(".")
    # Change the first character: the last one carries unused base64 bits,
    # so altering it may not change the decoded signature at all.
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    with pytest.raises(InvalidToken) as excinfo:
        token.verify(SECRET, SALT, f"{payload}.{timestamp}.{flipped}")
    assert str(excinfo.value) == "invalid token"


def test_swapped_payload_is_invalid() -> None:
    signed = token.sign(SECRET, SALT, {"user_id": 7})
    forged = token.sign("attacker secret", SALT, {"user_id": 1})
    _, timestamp, signature = signed.split(".")
    forged_payload = forged.split(".")[0]
    with pytest.raises(InvalidToken) as excinfo:
        token.verify(SECRET, SALT, f"{forged_payload}.{timestamp}.{signature}")
    assert str(excinfo.value) == "invalid token"


def test_wrong_salt_is_invalid() -> None:
    signed = token.sign(SECRET, SALT, {"user_id": 7})
    with pytest.raises(InvalidToken) as excinfo:
        token.verify(SECRET, "admin socket", signed)
    assert str(excinfo.value) == "invalid token"


def test_wrong_secret_is_invalid() -> None:
    signed = token.sign(SECRET, SALT, {"user_id": 7})
    with pytest.raises(InvalidToken) as excinfo:
        token.verify("t" * 64, SALT, signed)
    assert str(excinfo.value) == "invalid token"


def test_expired_token() -> None:
    signed = token.sign(SECRET, SALT, "alice", signed_at=time.time() - 3600)
    with pytest.raises(ExpiredToken) as excinfo:
        token.verify(SECRET, SALT, signed, max_age=60)
    assert str(excinfo.value) == "expired token"


def test_expired_under_default_max_age() -> None:
    signed = token.sign(SECRET, SALT, "alice", signed_at=time.time() - DAY - 60)
    with pytest.raises(ExpiredToken):
        token.verify(SECRET, SALT, signed)


def test_not_yet_expired() -> None:
    signed = token.sign(SECRET, SALT, "alice", signed_at=time.time() - 30)
    assert token.verify(SECRET, SALT, signed, max_age=60) == "alice"


def test_not_yet_expired_under_default_max_age() -> None:
    signed = token.sign(SECRET, SALT, "alice", signed_at=time.time() - DAY + 60)
    assert token.verify(SECRET, SALT, signed) == "alice"


def test_old_token_with_bad_signature_is_invalid_not_expired() -> None:
    # Authenticity is checked first: an attacker must not learn anything
    # about a token's age without holding the secret.
    signed = token.sign("t" * 64, SALT, "alice", signed_at=time.time() - 3600)
    with pytest.raises(InvalidToken):
        token.verify(SECRET, SALT, signed, max_age=60)


def test_token_from_the_future_is_refused() -> None:
    signed = token.sign(SECRET, SALT, "alice", signed_at=time.time() + 3600)
    with pytest.raises(ExpiredToken):
        token.verify(SECRET, SALT, signed)


@pytest.mark.parametrize("missing", [None, ""])
def test_missing_token(missing: str | None) -> None:
    with pytest.raises(InvalidToken) as excinfo:
        token.verify(SECRET, SALT, missing)
    assert str(excinfo.value) == "missing token"


@pytest.mark.parametrize(
    "garbage",
    [" ", "garbage", "a.b", "a.b.c", "...", "é.ü.ö", "🙂", "a" * 500, "eyJ1Ijo3fQ.AAAA.AAAA"],
)
def test_garbage_is_invalid(garbage: str) -> None:
    with pytest.raises(InvalidToken) as excinfo:
        token.verify(SECRET, SALT, garbage)
    assert str(excinfo.value) == "invalid token"


def test_errors_share_a_hierarchy() -> None:
    assert issubclass(InvalidToken, TokenError)
    assert issubclass(ExpiredToken, TokenError)
    assert issubclass(TokenError, ChannelsError)
    assert issubclass(ChannelsError, Exception)
    assert not issubclass(InvalidToken, ExpiredToken)
    assert not issubclass(ExpiredToken, InvalidToken)


def test_error_does_not_chain_itsdangerous_details() -> None:
    with pytest.raises(InvalidToken) as excinfo:
        token.verify(SECRET, SALT, "garbage")
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__suppress_context__ is True
