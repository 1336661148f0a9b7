"""The one exception hierarchy of badges_bridge.

Everything the plugin raises on purpose derives from :class:`BadgesBridgeError`.
Provider errors carry the HTTP status and the provider's own message so that the
ledger can record a readable reason.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


class BadgesBridgeError(Exception):
    """Root of every error raised by badges_bridge."""


class ConfigurationError(BadgesBridgeError, ImproperlyConfigured):
    """The plugin or a provider account is set up wrongly (unknown provider, missing key...)."""


class LeaseLostError(BadgesBridgeError):
    """The worker no longer owns the ledger row it works on: another worker took it over."""


class LearnerHoldError(BadgesBridgeError):
    """The learner withdrew consent or opted out while a worker was issuing: nothing more may be sent."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        #: Why: one of the reasons of :mod:`badges_bridge.privacy`.
        self.reason = reason


class InvalidEventError(BadgesBridgeError):
    """An incoming learning event is malformed or incomplete."""


class LearnerError(BadgesBridgeError):
    """The learner cannot receive a badge (no such user, no e-mail address)."""


class ProviderError(BadgesBridgeError):
    """A badge provider refused a request or could not be reached."""

    def __init__(self, message: str, *, status_code: int | None = None, provider_message: str = ""):
        super().__init__(message)
        self.status_code = status_code
        self.provider_message = provider_message

    def __str__(self) -> str:
        text = super().__str__()
        if self.status_code is not None:
            text = f"{text} (HTTP {self.status_code})"
        if self.provider_message:
            text = f"{text}: {self.provider_message}"
        return text


class TransientProviderError(ProviderError):
    """Worth retrying later: timeouts, connection errors, 5xx, 429, unreadable answers."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class RateLimitedError(TransientProviderError):
    """The provider (or our own client-side limit) asked us to slow down."""


class PermanentProviderError(ProviderError):
    """Retrying the same request cannot succeed (validation errors and other 4xx)."""


class AuthenticationError(PermanentProviderError):
    """The provider rejected the account's credentials (401/403)."""


class NotFoundError(PermanentProviderError):
    """The organization, template or badge does not exist at the provider."""


class DuplicateAwardError(PermanentProviderError):
    """The provider says the recipient already holds this badge."""
