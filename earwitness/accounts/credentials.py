"""Password hashing (argon2id) and random tokens with their lookup hashes.

Passwords are chosen by people, so they get a slow, salted, memory-hard hash.
Tokens (API keys, session cookies, login links) are 256 random bits: a plain
SHA-256 is enough to make a stolen table useless, and keeps lookup one index probe.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()
# Verified against when the user does not exist, so a wrong name costs as long as a
# wrong password and timing does not tell which part was wrong.
_DUMMY_HASH = _HASHER.hash("earwitness-no-such-user")
MIN_PASSWORD_CHARS = 8


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches; a missing hash still spends one verification."""
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
