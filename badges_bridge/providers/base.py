"""The provider interface every badge service client implements.

Provider clients know nothing of the ORM: they receive an :class:`AccountConfig`
and plain dataclasses, talk HTTP, and answer with plain dataclasses. Errors are
raised from :mod:`badges_bridge.exceptions`.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from badges_bridge.exceptions import ConfigurationError, NotFoundError


class AwardState(enum.StrEnum):
    """The provider-side state of one issued badge, in our own vocabulary."""

    PENDING = "pending"  # issued, waiting for the learner to accept it
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # the learner refused it
    REVOKED = "revoked"
    EXPIRED = "expired"
    DELETED = "deleted"
    REPLACED = "replaced"
    UNKNOWN = "unknown"

    @property
    def is_live(self) -> bool:
        """Whether the badge currently counts as held by the learner."""
        return self in (AwardState.PENDING, AwardState.ACCEPTED, AwardState.UNKNOWN)


class RevokeMode(enum.StrEnum):
    """How a badge is taken back at the provider."""

    DEFAULT = "default"  # the provider's non-destructive revoke (Credly: revoke, Accredible: expire)
    DELETE = "delete"  # remove the badge at the provider


@dataclass(frozen=True)
class AccountConfig:
    """What a provider client needs to reach one account."""

    base_url: str
    token: str
    organization_id: str = ""
    revoke_mode: RevokeMode = RevokeMode.DEFAULT
    timeout: tuple[float, float] = (5.0, 20.0)
    #: Called before every HTTP request; may raise RateLimitedError (client-side limit).
    throttle: Callable[[], None] | None = None
    #: Called before every HTTP request, before ``throttle``; raises LeaseLostError when the caller
    #: no longer owns the work the request is for (the request is then never sent).
    heartbeat: Callable[[], None] | None = None


@dataclass(frozen=True)
class RemoteTemplate:
    """A badge template (Credly) or group (Accredible) as listed by the provider."""

    external_id: str
    name: str
    description: str = ""
    image_url: str = ""
    url: str = ""
    state: str = "active"  # "active", "draft" or "archived"
    allow_duplicates: bool = False


@dataclass(frozen=True)
class Recipient:
    """The learner a badge goes to, with contact data read at issue time."""

    email: str
    first_name: str
    last_name: str
    #: Our stable, non-personal id for the learner, e.g. "openedx-user-42".
    earner_id: str
    #: The full display name when known (a one-word name is not repeated in it).
    name: str = ""

    @property
    def full_name(self) -> str:
        """The display name: ``name``, else first and last name joined."""
        return self.name or " ".join(part for part in (self.first_name, self.last_name) if part)


@dataclass(frozen=True)
class Evidence:
    """One evidence item attached to a badge."""

    name: str
    description: str = ""
    url: str = ""


@dataclass(frozen=True)
class IssueRequest:
    """Everything needed to issue one badge to one learner."""

    template_id: str
    recipient: Recipient
    #: The moment the learner met the criterion (aware datetime).
    issued_at: datetime
    expires_at: datetime | None = None
    suppress_notification: bool = False
    course_name: str = ""
    course_url: str = ""
    evidence: tuple[Evidence, ...] = ()
    #: The learner's final grade in percent (0-100) when the criterion involves one.
    grade: Decimal | None = None
    #: Free key/value pairs (strings) the provider can store with the badge.
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Award:
    """A badge as the provider knows it."""

    external_id: str
    state: AwardState
    template_id: str = ""
    recipient_email: str = ""
    earner_id: str = ""
    public_url: str = ""
    accept_url: str = ""
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    #: For providers that can create a badge without publishing it (Accredible without credits).
    published: bool = True
    #: Whether the learner shows the badge publicly at the provider (None: the provider does not say).
    public: bool | None = None


class RemoteEventKind(enum.StrEnum):
    """What a provider's event is about, in our own vocabulary."""

    BADGE_CHANGED = "badge_changed"  # created, state or privacy changed: the badge snapshot says how it is now
    BADGE_DELETED = "badge_deleted"
    TEMPLATE_CHANGED = "template_changed"  # created or changed
    TEMPLATE_DELETED = "template_deleted"
    OTHER = "other"  # anything else (notification e-mails sent, workforce events...): ignored


@dataclass(frozen=True)
class RemoteEvent:
    """An event fetched back from the provider by its id: the only data a notification is acted on with."""

    event_id: str
    #: The provider's own name of the event type, e.g. "badge.state.changed".
    event_type: str
    kind: RemoteEventKind
    occurred_at: datetime | None = None
    #: The badge as it was when the event occurred (badge events); None when the event carries no badge.
    award: Award | None = None
    #: The provider's id of the badge or template the event is about ('' when none).
    badge_id: str = ""
    template_id: str = ""


@dataclass(frozen=True)
class WebhookNotification:
    """What a notification posted to the webhook claims: only the event id is used (to fetch the event)."""

    event_id: str
    #: The organization the sender names ('' when the provider does not send one).
    organization_id: str = ""


@dataclass(frozen=True)
class BulkOutcome:
    """What became of one request of a bulk create: the badge created, or why it was refused."""

    award: Award | None = None
    #: The refusal of this item (DuplicateAwardError, or another PermanentProviderError).
    error: Exception | None = None


class BaseProvider(abc.ABC):
    """Abstract client of one badge provider account."""

    #: Registry key, stored on ProviderAccount.provider.
    kind: ClassVar[str]
    #: Human-readable provider name.
    display_name: ClassVar[str]
    #: Named API base URLs offered in the admin ("production", "sandbox", ...).
    base_url_presets: ClassVar[dict[str, str]] = {}
    #: Whether the account needs an organization id (Credly) or not (Accredible).
    requires_organization_id: ClassVar[bool] = False
    #: Default client-side rate limit as (requests, per seconds), or None.
    default_rate_limit: ClassVar[tuple[int, int] | None] = None
    #: Most badges one ``issue_many`` request creates; 0 when the provider has no bulk create.
    bulk_size: ClassVar[int] = 0
    #: Whether the provider notifies a webhook of changes (then it implements ``parse_notification`` and
    #: ``get_event``); providers without webhooks are polled by the drift check only.
    supports_webhooks: ClassVar[bool] = False

    #: Whether the provider keeps the reason given with a revoke (it is always kept in the ledger).
    accepts_revoke_reason: ClassVar[bool] = False
    #: Whether learners accept a new badge at the provider (Credly sends a claim e-mail) before it counts.
    learner_accepts: ClassVar[bool] = False

    def __init__(self, config: AccountConfig):
        self.config = config

    @property
    def where(self) -> str:
        """The provider, and its host when known, for messages (e.g. "Credly (api.credly.com)")."""
        return self.display_name

    @abc.abstractmethod
    def check_connection(self) -> str:
        """Verify the account is reachable and authorised; return a short description of it."""

    @abc.abstractmethod
    def iter_templates(self) -> Iterator[RemoteTemplate]:
        """Yield every template of the account, following all pages."""

    @abc.abstractmethod
    def issue(self, request: IssueRequest) -> Award:
        """Create the badge. Raises DuplicateAwardError when the provider says it exists."""

    @staticmethod
    @abc.abstractmethod
    def issue_payload(request: IssueRequest) -> dict:
        """The JSON body of the request that ``issue`` sends for ``request``; pure (no HTTP, no account).

        ``issue`` must send exactly this body, so that a preview of it (the course staff page) shows
        what the provider receives.
        """

    @abc.abstractmethod
    def find_award(self, template_id: str, recipient: Recipient) -> Award | None:
        """Return the recipient's existing badge for this template, live ones first, or None."""

    @abc.abstractmethod
    def get_award(self, external_id: str) -> Award:
        """Fetch one badge by the provider's id. Raises NotFoundError when it is gone."""

    @abc.abstractmethod
    def revoke(self, external_id: str, reason: str) -> Award:
        """Take the badge back according to ``config.revoke_mode``; idempotent.

        Returns the badge's final state (REVOKED, EXPIRED or DELETED).
        """

    def issue_many(self, requests: list[IssueRequest]) -> list[BulkOutcome]:
        """Create several badges in one request (at most ``bulk_size``); one outcome per request, in order.

        Each item succeeds or fails on its own. Raises a TransientProviderError when the outcome
        of the whole request is unknown (timeout, lost or unreadable answer): any of the badges
        may then exist. Only providers whose ``bulk_size`` is above 0 implement it.
        """
        raise ConfigurationError(f"{self.display_name} has no bulk create")

    def reinstate(self, external_id: str, request: IssueRequest) -> Award | None:
        """Bring back a badge this plugin revoked, updated for a new award of the same template and learner.

        Returns the live badge, or None when the provider cannot bring a revoked badge back (a new
        one is then created) or the badge is not this learner's badge of this template.
        Raises NotFoundError when the badge is gone.
        """
        return None

    def discard(self, external_id: str) -> Award:
        """Remove a badge that was created twice by mistake; idempotent.

        Providers that can delete a badge delete it; the default is the account's revoke.
        """
        return self.revoke(external_id, "Issued twice by mistake.")

    def get_template(self, external_id: str) -> RemoteTemplate:
        """One template as the provider has it now. Raises NotFoundError when it is gone.

        The default reads the whole listing; providers with a direct route override it.
        """
        for template in self.iter_templates():
            if template.external_id == external_id:
                return template
        raise NotFoundError(f"{self.display_name} has no template {external_id}")

    @classmethod
    def parse_notification(cls, body: bytes) -> WebhookNotification:
        """Read a notification posted to the webhook; WebhookPayloadError when it is malformed.

        Only providers that ``supports_webhooks`` implement it.
        """
        raise ConfigurationError(f"{cls.display_name} sends no webhooks")

    def get_event(self, event_id: str) -> RemoteEvent:
        """Fetch one event by its id with the account's credentials. Raises NotFoundError when unknown.

        Only providers that ``supports_webhooks`` implement it.
        """
        raise ConfigurationError(f"{self.display_name} sends no webhooks")

    @abc.abstractmethod
    def iter_awards(self, template_ids: list[str]) -> Iterator[Award]:
        """Yield every badge of these templates that the provider still holds, all pages.

        Used to detect drift: a badge the ledger calls issued but that is missing
        here was deleted at the provider.
        """
