"""Tokens and identifiers: what the client may send, and how secrets are kept.

Annotator tokens are 32 random bytes, shown once and stored only as a SHA-256 digest (a high-entropy
secret needs no slow hash). Images are named by random opaque ids, so no request ever carries a path.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
OPAQUE_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,39}")
COOKIE = "unitscope_annotator"


def new_token() -> str:
    """A fresh annotator token (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def new_opaque_id() -> str:
    """A fresh id for an image or a form (22 URL-safe characters)."""
    return secrets.token_urlsafe(16)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def valid_token(token: str | None) -> bool:
    return token is not None and TOKEN_PATTERN.fullmatch(token) is not None


def valid_opaque(value: str | None) -> bool:
    return value is not None and OPAQUE_PATTERN.fullmatch(value) is not None


def same_secret(a: str, b: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(a.encode(), b.encode())
