"""Why a ledger row failed, in an operator's words, and what to do about it.

Every error the plugin raises on purpose carries a cause (see
:mod:`badges_bridge.exceptions`); the ledger stores it with the row's last
error, so that the admin can group dead rows by cause and say what to do next.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class ErrorCause(models.TextChoices):
    """The causes of a failed attempt, from the operator's point of view."""

    NO_EMAIL = "no_email", _("The learner has no e-mail address")
    NO_LEARNER = "no_learner", _("The learner does not exist")
    BADGE_DISABLED = "badge_disabled", _("The course badge is disabled")
    TEMPLATE_INACTIVE = "template_inactive", _("The badge template is not active")
    ACCOUNT = "account", _("The provider account cannot be used")
    TOKEN_REFUSED = "token_refused", _("The provider refused the API token")
    NOT_FOUND = "not_found", _("Not found at the provider")
    REFUSED = "refused", _("The provider refused the request")
    DUPLICATE = "duplicate", _("The provider holds a conflicting badge")
    UNAVAILABLE = "unavailable", _("The provider was unavailable")
    WORKER_LOST = "worker_lost", _("The worker never reported back")
    UNEXPECTED = "unexpected", _("Unexpected error")


#: What an operator does about each cause.
NEXT_STEPS: dict[str, str] = {
    ErrorCause.NO_EMAIL: _("Add an e-mail address to the learner's account, then run Retry now on the row."),
    ErrorCause.NO_LEARNER: _("Nobody can receive this badge: leave the row dead."),
    ErrorCause.BADGE_DISABLED: _(
        "If the badge should be awarded, enable the course badge, then run Retry now; otherwise leave the row dead."
    ),
    ErrorCause.TEMPLATE_INACTIVE: _(
        "Reactivate the template at the provider and sync the account's templates, or disable this course badge "
        "and add one with an active template; then run Retry now."
    ),
    ErrorCause.ACCOUNT: _(
        "Fix the provider account (enable it, enter its API token, check its API base URL), run Test connection, "
        "then run Retry now."
    ),
    ErrorCause.TOKEN_REFUSED: _(
        "Enter a valid API token on the provider account (it may have expired), run Test connection, then run "
        "Retry now."
    ),
    ErrorCause.NOT_FOUND: _(
        "Check the account's organization id and sync its templates (the template may have been removed at the "
        "provider), then run Retry now."
    ),
    ErrorCause.REFUSED: _(
        "Read the provider's message in the last error, fix the cause (at the provider or in the course badge), "
        "sync templates if a template changed, then run Retry now."
    ),
    ErrorCause.DUPLICATE: _(
        "Look up the learner's badges at the provider: delete the old badge there and run Retry now, or leave the "
        "row dead if the learner holds the badge."
    ),
    ErrorCause.UNAVAILABLE: _(
        "Nothing while the row is failing: it is retried automatically. Once it is dead, run Retry now when the "
        "provider answers again (Test connection tells)."
    ),
    ErrorCause.WORKER_LOST: _("Check the Celery worker's log and limits (memory, time limit), then run Retry now."),
    ErrorCause.UNEXPECTED: _("Read the LMS or worker log for the error, then run Retry now."),
}


def next_step(cause: str) -> str:
    """What to do about ``cause`` ('' for an unknown or empty cause)."""
    return str(NEXT_STEPS.get(cause, ""))
