"""Client of the Credly Web Service API (v1).

Credly authenticates with an organization's authorization token sent as the
HTTP Basic user name (empty password). Every resource lives under
``organizations/{organization_id}/``, every answer is wrapped in a
``{"data": ..., "metadata": {...}}`` envelope, and lists are paged through an
absolute ``metadata.next_page_url``.

A ``POST badges`` refused with 422 because the learner already holds the badge
raises :class:`~badges_bridge.exceptions.DuplicateAwardError`; the caller then
adopts the existing badge through :meth:`CredlyProvider.find_award`.

Credly has no free key/value store on a badge, so ``IssueRequest.attributes``
is not sent; evidence items are.

A revoked badge cannot be brought back, so a re-award after a revoke creates a
new badge (Credly does not count revoked badges as duplicates).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, urljoin, urlsplit, urlunsplit

import requests
from requests.auth import HTTPBasicAuth

from badges_bridge.exceptions import (
    AuthenticationError,
    ConfigurationError,
    DuplicateAwardError,
    NotFoundError,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
    WebhookPayloadError,
)
from badges_bridge.providers.base import (
    AccountConfig,
    Award,
    AwardState,
    BaseProvider,
    Evidence,
    IssueRequest,
    Recipient,
    RemoteEvent,
    RemoteEventKind,
    RemoteTemplate,
    RevokeMode,
    WebhookNotification,
)
from badges_bridge.providers.http import HttpClient

log = logging.getLogger(__name__)

#: The timestamp format of Credly's issue documentation, e.g. "2025-03-01 10:00:00 +0000".
CREDLY_TIME_FORMAT = "%Y-%m-%d %H:%M:%S %z"
#: Longest evidence description Credly accepts.
MAX_EVIDENCE_DESCRIPTION = 500
#: Template states requested when syncing (Credly's list may default to fewer).
TEMPLATE_STATES = ("draft", "active", "archived")
#: The wording of Credly's duplicate refusal.
DUPLICATE_PHRASE = "already has this badge"
#: Error attributes of a duplicate refusal. ``user_id`` is never a field we send, so an error on it
#: always means "the Credly user holds the badge"; the others also name plain validation errors
#: ("can't be blank"), so they count only with a message in DUPLICATE_HINTS.
DUPLICATE_USER_ATTRIBUTE = "user_id"
DUPLICATE_ATTRIBUTES = frozenset({"recipient_email", "issuer_earner_id"})
DUPLICATE_HINTS = ("already", "duplicate", "taken")
#: Reason sent when the caller gives none: Credly wants a non-empty one.
DEFAULT_REVOKE_REASON = "Revoked by the issuer"
#: Template ids per ``badge_template_id::a,b`` filter, to keep URLs short.
TEMPLATE_IDS_PER_QUERY = 50

#: Credly's event types and what they are about; any other type is RemoteEventKind.OTHER.
EVENT_KINDS = {
    "badge.created": RemoteEventKind.BADGE_CHANGED,
    "badge.state.changed": RemoteEventKind.BADGE_CHANGED,
    "badge.privacy.changed": RemoteEventKind.BADGE_CHANGED,
    "badge.deleted": RemoteEventKind.BADGE_DELETED,
    "badge_template.created": RemoteEventKind.TEMPLATE_CHANGED,
    "badge_template.changed": RemoteEventKind.TEMPLATE_CHANGED,
    "badge_template.deleted": RemoteEventKind.TEMPLATE_DELETED,
}
#: Largest notification body read (Credly sends a stub of four short fields).
MAX_NOTIFICATION_BYTES = 16_384
#: What an event id may look like (Credly's are UUIDs); anything else is refused before any request.
EVENT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")

STATE_MAP = {
    "pending": AwardState.PENDING,
    "accepted": AwardState.ACCEPTED,
    "rejected": AwardState.REJECTED,
    "revoked": AwardState.REVOKED,
    "replaced": AwardState.REPLACED,
    "expired": AwardState.EXPIRED,
}


# -- wire helpers ----------------------------------------------------------------------------------
def map_state(value: Any) -> AwardState:
    """Credly badge state -> AwardState; anything unrecognised is UNKNOWN."""
    return STATE_MAP.get(str(value or "").strip().lower(), AwardState.UNKNOWN)


def format_time(moment: datetime) -> str:
    """A datetime in Credly's issue format, in UTC (naive values are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(CREDLY_TIME_FORMAT)


def parse_time(value: Any) -> datetime | None:
    """Read an ISO-8601 (``Z`` allowed) or Credly-format timestamp; None when unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.strptime(text, CREDLY_TIME_FORMAT)  # noqa: DTZ007 - the format has %z
        except ValueError:
            return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def error_message(body: Any) -> str:
    """Readable message of a Credly error body.

    Looks at ``data.message``, then ``data.errors[]`` (attribute and messages),
    then a top-level ``message`` / ``errors``, then the raw text.
    """
    if isinstance(body, str):
        return body
    if not isinstance(body, dict):
        return json.dumps(body)
    data = body.get("data")
    if isinstance(data, str) and data.strip():
        return data
    for source in (data if isinstance(data, dict) else {}, body):
        message = source["message"] if isinstance(source.get("message"), str) else ""
        parts = [message] if message else []
        # Skip items that only repeat the message (Credly often says the same thing twice).
        parts += [item for item in _error_items(source.get("errors")) if item.split(": ", 1)[-1] not in message]
        if parts:
            return "; ".join(parts)
    return json.dumps(body)


def _error_items(errors: Any) -> list[str]:
    """Flatten Credly's ``errors`` (a list of {attribute, messages} or of strings)."""
    if isinstance(errors, str):
        return [errors]
    if isinstance(errors, dict):
        errors = [{"attribute": key, "messages": value} for key, value in errors.items()]
    if not isinstance(errors, list):
        return []
    items = []
    for error in errors:
        if not isinstance(error, dict):
            items.append(str(error))
            continue
        messages = error.get("messages", error.get("message", ""))
        if isinstance(messages, list):
            messages = ", ".join(str(message) for message in messages)
        attribute = error.get("attribute")
        items.append(f"{attribute}: {messages}" if attribute else str(messages))
    return items


def is_duplicate_answer(body: Any) -> bool:
    """Whether a 422 body says that the recipient already holds the badge.

    True when "already has this badge" appears anywhere, when an error names
    ``user_id``, or when an error on ``recipient_email`` / ``issuer_earner_id``
    says "already", "duplicate" or "taken".
    """
    text = body if isinstance(body, str) else json.dumps(body)
    if DUPLICATE_PHRASE in text.lower():
        return True
    if not isinstance(body, dict):
        return False
    data = body.get("data")
    for source in (data if isinstance(data, dict) else {}, body):
        errors = source.get("errors")
        if isinstance(errors, dict):
            errors = [{"attribute": key, "messages": value} for key, value in errors.items()]
        if isinstance(errors, list) and any(_is_duplicate_error(error) for error in errors):
            return True
    return False


def _is_duplicate_error(error: Any) -> bool:
    if not isinstance(error, dict):
        return False
    attribute = error.get("attribute")
    if attribute == DUPLICATE_USER_ATTRIBUTE:
        return True
    messages = json.dumps(error.get("messages", error.get("message", ""))).lower()
    return attribute in DUPLICATE_ATTRIBUTES and any(hint in messages for hint in DUPLICATE_HINTS)


def api_root(base_url: str) -> str:
    """The configured base URL as the ``.../v1/`` root (``/v1`` is added when missing)."""
    root = base_url.strip().rstrip("/")
    if not root.endswith("/v1"):
        root += "/v1"
    return root + "/"


def evidence_item(evidence: Evidence) -> dict[str, str]:
    """One Credly evidence item: UrlEvidence when there is a URL, IdEvidence otherwise."""
    description = evidence.description[:MAX_EVIDENCE_DESCRIPTION]
    if evidence.url:
        return {"type": "UrlEvidence", "name": evidence.name, "value": evidence.url, "description": description}
    return {"type": "IdEvidence", "title": evidence.name, "description": description}


def template_from(data: dict[str, Any]) -> RemoteTemplate:
    """A RemoteTemplate from a Credly badge template object."""
    image = data.get("image")
    image_url = data.get("image_url") or (image.get("url") if isinstance(image, dict) else "") or ""
    return RemoteTemplate(
        external_id=str(data.get("id")),
        name=str(data.get("name") or ""),
        description=str(data.get("description") or ""),
        image_url=str(image_url),
        url=str(data.get("url") or ""),
        state=str(data.get("state") or "active"),
        allow_duplicates=bool(data.get("allow_duplicate_badges")),
    )


def award_from(data: dict[str, Any]) -> Award:
    """An Award from a Credly issued badge object."""
    template = data.get("badge_template")
    template_id = template.get("id") if isinstance(template, dict) else data.get("badge_template_id")
    return Award(
        external_id=str(data.get("id")),
        state=map_state(data.get("state")),
        template_id=str(template_id or ""),
        recipient_email=str(data.get("recipient_email") or ""),
        earner_id=str(data.get("issuer_earner_id") or ""),
        public_url=str(data.get("badge_url") or ""),
        accept_url=str(data.get("accept_badge_url") or ""),
        issued_at=parse_time(data.get("issued_at")),
        expires_at=parse_time(data.get("expires_at")),
        public=data["public"] if isinstance(data.get("public"), bool) else None,
    )


def _object(data: dict[str, Any], *names: str) -> dict[str, Any] | None:
    """The first of ``names`` that holds an object with an id."""
    for name in names:
        if _has_id(data.get(name)):
            return data[name]
    return None


def event_from(data: dict[str, Any]) -> RemoteEvent:
    """A RemoteEvent from a Credly event object (``GET events/{id}``).

    Badge events carry the badge under ``badge`` (``issued_badge`` is read too), template
    events the template under ``badge_template``; bare ``badge_id`` / ``badge_template_id``
    keys are read when there is no object.
    """
    event_type = str(data.get("event_type") or "")
    badge = _object(data, "badge", "issued_badge")
    template = _object(data, "badge_template")
    return RemoteEvent(
        event_id=str(data.get("id") or ""),
        event_type=event_type,
        kind=EVENT_KINDS.get(event_type, RemoteEventKind.OTHER),
        occurred_at=parse_time(data.get("occurred_at")),
        award=award_from(badge) if badge is not None else None,
        badge_id=str(badge["id"] if badge is not None else data.get("badge_id") or ""),
        template_id=str(template["id"] if template is not None else data.get("badge_template_id") or ""),
    )


def _has_id(item: Any) -> bool:
    return isinstance(item, dict) and item.get("id") not in (None, "")


def _unreadable(where: str, what: str, status: int | None = None) -> TransientProviderError:
    return TransientProviderError(
        f"{where} sent an unreadable answer to {what}",
        status_code=status,
        next_step="The work is retried automatically; check the account's API base URL if this lasts.",
    )


class CredlyHttpClient(HttpClient):
    """HttpClient that recognises Credly's "already has this badge" 422."""

    def error_for(self, response: requests.Response, method: str, path: str) -> ProviderError:
        """Map an error response; a duplicate 422 becomes DuplicateAwardError."""
        error = super().error_for(response, method, path)
        if response.status_code != 422:
            return error
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        if not is_duplicate_answer(body):
            return error
        return DuplicateAwardError(
            f"{self.where} says the recipient already has this badge",
            status_code=response.status_code,
            provider_message=error.provider_message,
        )


class CredlyProvider(BaseProvider):
    """One Credly organization, reached with its authorization token."""

    kind = "credly"
    display_name = "Credly"
    base_url_presets = {
        "production": "https://api.credly.com/v1/",
        "sandbox": "https://sandbox-api.credly.com/v1/",
    }
    requires_organization_id = True
    accepts_revoke_reason = True
    learner_accepts = True
    default_rate_limit = None
    supports_webhooks = True
    #: Safety net against a listing that never ends (50 items a page: half a million items).
    max_pages = 10_000

    def __init__(self, config: AccountConfig):
        super().__init__(config)
        if not config.organization_id:
            raise ConfigurationError("A Credly account needs its organization id")
        self.http = CredlyHttpClient(
            api_root(config.base_url),
            auth=HTTPBasicAuth(config.token, ""),
            timeout=config.timeout,
            provider_name=self.display_name,
            error_parser=error_message,
            throttle=config.throttle,
            heartbeat=config.heartbeat,
        )
        self.org_path = f"organizations/{quote(config.organization_id, safe='')}"

    @property
    def where(self) -> str:
        """Credly and its API host, for messages."""
        return self.http.where

    # -- plumbing ------------------------------------------------------------------------------------
    def _path(self, *parts: str) -> str:
        return "/".join([self.org_path, *(quote(part, safe="") for part in parts)])

    def _data(self, method: str, path: str, json_body: Any = None) -> dict[str, Any]:
        """Send a request and return its ``data`` object."""
        status, body = self.http.request(method, path, json_body=json_body)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise _unreadable(self.where, f"{method} {path}", status)
        return data

    def _pages(self, path: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Yield the items of every page, following ``metadata.next_page_url``.

        The next URL is followed as given (resolved against the base URL when
        relative) as long as it stays on the API host: the HTTP layer refuses
        any other scheme, host or port. Its query string is passed as parameters
        so that filter values such as e-mail addresses never reach the request log. A listing
        still going after ``max_pages`` raises rather than end short, since a
        missing badge would read as "deleted at the provider".
        """
        url, query = path, dict(params)
        for _ in range(self.max_pages):
            _status, body = self.http.request("GET", url, params=query)
            if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                raise _unreadable(self.where, f"GET {path}")
            yield from (item for item in body["data"] if _has_id(item))
            next_url = self._next_page(body.get("metadata"))
            if next_url is None:
                return
            url, query = _split_url(urljoin(self.http.base_url, next_url))
        raise PermanentProviderError(f"Credly listed more than {self.max_pages} pages of {path}; stopped")

    @staticmethod
    def _next_page(metadata: Any) -> str | None:
        if not isinstance(metadata, dict):
            return None
        next_url = metadata.get("next_page_url")
        if not isinstance(next_url, str) or not next_url.strip():
            return None
        current, total = metadata.get("current_page"), metadata.get("total_pages")
        if isinstance(current, int) and isinstance(total, int) and current >= total:
            return None
        return next_url.strip()

    def _search(self, filters: str, sort: str | None = None) -> Iterator[Award]:
        params = {"filter": filters}
        if sort:
            params["sort"] = sort
        for item in self._pages(self._path("badges"), params):
            yield award_from(item)

    # -- BaseProvider --------------------------------------------------------------------------------
    def check_connection(self) -> str:
        """Read the organization; return its name."""
        data = self._data("GET", self.org_path)
        return f"Credly organization {data.get('name') or data.get('id') or self.config.organization_id}"

    def iter_templates(self) -> Iterator[RemoteTemplate]:
        """Every badge template of the organization, in every state."""
        params = {"filter": f"state::{','.join(TEMPLATE_STATES)}"}
        for item in self._pages(self._path("badge_templates"), params):
            yield template_from(item)

    def get_template(self, external_id: str) -> RemoteTemplate:
        """GET one badge template; NotFoundError when Credly no longer has it."""
        data = self._data("GET", self._path("badge_templates", external_id))
        if not _has_id(data):
            raise _unreadable("GET badge template")
        return template_from(data)

    @classmethod
    def parse_notification(cls, body: bytes) -> WebhookNotification:
        """Read Credly's unsigned stub ``{id, organization_id, event_type, occurred_at}``.

        Only ``id`` and ``organization_id`` are read; the event type and anything else the body
        claims is ignored, since only the event fetched back from Credly is trusted.
        """
        if len(body) > MAX_NOTIFICATION_BYTES:
            raise WebhookPayloadError("the notification is too large")
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise WebhookPayloadError("the notification is not JSON") from err
        if not isinstance(payload, dict):
            raise WebhookPayloadError("the notification is not a JSON object")
        event_id, organization_id = payload.get("id"), payload.get("organization_id", "")
        if not isinstance(event_id, str) or not EVENT_ID_PATTERN.fullmatch(event_id):
            raise WebhookPayloadError("the notification has no valid event id")
        if not isinstance(organization_id, str):
            raise WebhookPayloadError("the notification's organization id is not a string")
        return WebhookNotification(event_id=event_id, organization_id=organization_id.strip())

    def get_event(self, event_id: str) -> RemoteEvent:
        """GET one event of the organization; NotFoundError when Credly does not know it.

        A badge event without the badge itself is completed with the badge as it is now.
        """
        data = self._data("GET", self._path("events", event_id))
        if not _has_id(data):
            raise _unreadable("GET event")
        event = event_from(data)
        if event.kind == RemoteEventKind.BADGE_CHANGED and event.award is None and event.badge_id:
            try:
                return dataclasses.replace(event, award=self.get_award(event.badge_id))
            except NotFoundError:
                return event
        return event

    def issue(self, request: IssueRequest) -> Award:
        """POST the badge; DuplicateAwardError when Credly says the recipient holds it."""
        data = self._data("POST", self._path("badges"), json_body=self.issue_payload(request))
        if not _has_id(data):
            raise _unreadable(self.where, "POST badges")
        return award_from(data)

    @staticmethod
    def issue_payload(request: IssueRequest) -> dict[str, Any]:
        """The JSON body of ``POST badges`` for one request."""
        recipient = request.recipient
        payload: dict[str, Any] = {
            "badge_template_id": request.template_id,
            "recipient_email": recipient.email,
            "issued_to_first_name": recipient.first_name,
            "issued_to_last_name": recipient.last_name,
            "issuer_earner_id": recipient.earner_id,
            "issued_at": format_time(request.issued_at),
            "expires_at": format_time(request.expires_at) if request.expires_at else None,
            "suppress_badge_notification_email": request.suppress_notification,
        }
        evidence = [evidence_item(item) for item in request.evidence]
        if request.grade is not None:
            evidence.append({"type": "IdEvidence", "title": "Final grade", "description": f"{request.grade:f}%"})
        if evidence:
            payload["evidence"] = evidence
        return payload

    def find_award(self, template_id: str, recipient: Recipient) -> Award | None:
        """The recipient's badge of this template: live first, then our earner id, newest first."""
        for email_key in ("recipient_email", "recipient_email_all"):
            filters = f"badge_template_id::{template_id}|{email_key}::{recipient.email}"
            awards = [a for a in self._search(filters, sort="-issued_at") if a.template_id in ("", template_id)]
            if awards:
                return _best_match(awards, recipient.earner_id)
        return None

    def get_award(self, external_id: str) -> Award:
        """GET one badge; NotFoundError when Credly does not know it."""
        data = self._data("GET", self._path("badges", external_id))
        if not _has_id(data):
            raise _unreadable(self.where, "GET badge")
        return award_from(data)

    def revoke(self, external_id: str, reason: str) -> Award:
        """Revoke (or delete, per ``config.revoke_mode``) one badge; idempotent."""
        if self.config.revoke_mode == RevokeMode.DELETE:
            return self._delete(external_id)
        return self._revoke(external_id, reason.strip() or DEFAULT_REVOKE_REASON)

    def _revoke(self, external_id: str, reason: str) -> Award:
        body = {"reason": reason, "suppress_revoke_notification_email": False}
        try:
            _status, answer = self.http.request("PUT", self._path("badges", external_id, "revoke"), json_body=body)
        except (AuthenticationError, NotFoundError):
            raise
        except PermanentProviderError:
            current = self.get_award(external_id)
            if current.state == AwardState.REVOKED:
                return current
            raise
        data = answer.get("data") if isinstance(answer, dict) else None
        if isinstance(data, dict) and _has_id(data):
            return award_from(data)
        return Award(external_id=external_id, state=AwardState.REVOKED)

    def discard(self, external_id: str) -> Award:
        """Delete a badge created twice by mistake."""
        return self._delete(external_id)

    def _delete(self, external_id: str) -> Award:
        try:
            self.http.request("DELETE", self._path("badges", external_id))
        except NotFoundError:
            log.info("Credly badge %s was already gone", external_id)
        return Award(external_id=external_id, state=AwardState.DELETED)

    def iter_awards(self, template_ids: list[str]) -> Iterator[Award]:
        """Every badge of these templates, any state, all pages."""
        for chunk in _chunks(sorted(set(template_ids)), TEMPLATE_IDS_PER_QUERY):
            yield from self._search(f"badge_template_id::{','.join(chunk)}")


def _best_match(awards: list[Award], earner_id: str) -> Award:
    """Live badges first, then those carrying our earner id; order kept otherwise (newest first)."""
    return min(awards, key=lambda award: (not award.state.is_live, award.earner_id != earner_id))


def _split_url(url: str) -> tuple[str, dict[str, Any]]:
    """Split an absolute URL into the URL without query and its query parameters."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query="", fragment="")), parse_qs(parts.query, keep_blank_values=True)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
