"""The one exception hierarchy of badges_bridge.

Everything the plugin raises on purpose derives from :class:`BadgesBridgeError`.
Each error carries a *cause* (one of :class:`~badges_bridge.causes.ErrorCause`)
that the ledger stores with a failed row. Provider errors also carry the HTTP
status, the provider's own message and the next step an operator can take, so
that the ledger, the logs and the admin all show a readable reason.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from badges_bridge.causes import ErrorCause


class BadgesBridgeError(Exception):
    """Root of every error raised by badges_bridge."""

    #: The cause recorded on a ledger row that fails with this error (see ErrorCause).
    cause: str = ErrorCause.UNEXPECTED

    def __init__(self, *args, cause: str | None = None):
        super().__init__(*args)
        if cause is not None:
            self.cause = cause


class ConfigurationError(BadgesBridgeError, ImproperlyConfigured):
    """The plugin or a provider account is set up wrongly (unknown provider, missing key...)."""

    cause = ErrorCause.ACCOUNT


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

    cause = ErrorCause.NO_LEARNER


class ProviderError(BadgesBridgeError):
    """A badge provider refused a request or could not be reached."""

    cause = ErrorCause.REFUSED

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        provider_message: str = "",
        next_step: str = "",
        cause: str | None = None,
    ):
        super().__init__(message, cause=cause)
        self.status_code = status_code
        self.provider_message = provider_message
        #: What an operator can do about it, in plain words ('' when nothing useful can be said).
        self.next_step = next_step

    def __str__(self) -> str:
        text = super().__str__()
        if self.status_code is not None:
            text = f"{text} (HTTP {self.status_code})"
        if self.provider_message:
            text = f"{text}: {self.provider_message}"
        if self.next_step:
            text = f"{text.rstrip('.')}. {self.next_step}"
        return text


class TransientProviderError(ProviderError):
    """Worth retrying later: timeouts, connection errors, 5xx, 429, unreadable answers."""

    cause = ErrorCause.UNAVAILABLE

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class RateLimitedError(TransientProviderError):
    """The provider (or our own client-side limit) asked us to slow down."""


class PermanentProviderError(ProviderError):
    """Retrying the same request cannot succeed (validation errors and other 4xx)."""


class AuthenticationError(PermanentProviderError):
    """The provider rejected the account's credentials (401/403)."""

    cause = ErrorCause.TOKEN_REFUSED


class NotFoundError(PermanentProviderError):
    """The organization, template or badge does not exist at the provider."""

    cause = ErrorCause.NOT_FOUND


class DuplicateAwardError(PermanentProviderError):
    """The provider says the recipient already holds this badge."""

    cause = ErrorCause.DUPLICATE


class WebhookPayloadError(BadgesBridgeError):
    """A notification posted to a webhook is malformed (it is answered with 400)."""


class ManualAwardError(BadgesBridgeError):
    """A manual award cannot start at all (no such course badge, too many lines)."""
