"""JWTs for the REST API tests, signed as the LMS signs them (the test settings' JWT_AUTH)."""

from __future__ import annotations

import time

import jwt
from django.conf import settings


def jwt_for(user, **claims) -> str:
    """A token for ``user``, valid for ten minutes; ``claims`` override the defaults."""
    issuer = settings.JWT_AUTH["JWT_ISSUERS"][0]
    now = int(time.time())
    payload = {
        "iss": issuer["ISSUER"],
        "aud": issuer["AUDIENCE"],
        "preferred_username": user.username,
        "email": user.email,
        "iat": now,
        "exp": now + 600,
        "version": "1.2.0",
        "filters": [],
        "is_restricted": False,
        **claims,
    }
    return jwt.encode(payload, issuer["SECRET_KEY"], algorithm="HS256")
