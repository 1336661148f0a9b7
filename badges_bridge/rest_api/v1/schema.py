"""OpenAPI description of the learner API's authentication (drf-spectacular extensions)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object


class EdxJwtScheme(OpenApiAuthenticationExtension):
    """The Open edX JWT: ``Authorization: JWT <token>``."""

    target_class = "edx_rest_framework_extensions.auth.jwt.authentication.JwtAuthentication"
    name = "jwtAuth"

    def get_security_definition(self, auto_schema) -> dict:
        """A bearer scheme with the JWT prefix."""
        prefix = "JWT"  # the Authorization header's scheme word, not a secret
        return build_bearer_security_scheme_object(
            header_name="AUTHORIZATION", token_prefix=prefix, bearer_format="JWT"
        )


class SessionAllowInactiveScheme(OpenApiAuthenticationExtension):
    """The LMS session cookie (edx-drf-extensions' session authentication that admits inactive users)."""

    target_class = "edx_rest_framework_extensions.auth.session.authentication.SessionAuthenticationAllowInactiveUser"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema) -> dict:
        """An API key in the session cookie."""
        from django.conf import settings

        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}
