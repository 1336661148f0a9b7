"""A stateful fake of the Credly Web Service API (v1), and its test harness.

:class:`FakeCredly` serves ``/v1/organizations/{org}/...`` on loopback for any
number of organizations, each with its own token and isolated stores. It keeps
Credly's envelope, paging links, filters, validation errors, duplicate rule,
revoke/replace/delete behaviour and event store, so that a client which works
against it is exercised on the cases that matter at the real service.

Switches (constructor arguments, restored by :meth:`FakeCredly.reset`):

``page_size``
    Items per list page (Credly serves at most 50). ``per=`` can only lower it.
``revoked_block_duplicates``
    Credly documents the duplicate rule but not whether revoked, replaced or
    rejected badges take part in it (rejecting a badge deletes it for the
    earner). By default they do not, so such a badge can be issued again; set
    this to True to make them block a new badge too.
``strict_filters``
    Answer 422 to ``filter`` keys the fake does not know, instead of ignoring
    them, so that a misspelt key cannot silently widen a search.

``token_expired`` (an attribute) makes every call answer 401, as after the
token's 180 days. Other assumptions where Credly's behaviour is not documented:
an unknown template in ``POST badges`` is a 422; revoking with a blank reason,
or revoking an already revoked or replaced badge, is a 422; a replaced badge
gets the state ``replaced``; a ``+`` in a query string decodes to a space
(standard form decoding, so clients must percent-encode it).

Every change is recorded as an event that ``GET events/{id}`` returns, with the
badge or template as it was then. :meth:`FakeCredly.post_webhook` delivers the
unsigned stub of an event (or a forged one) to a webhook URL, as Credly does.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import math
import re
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import requests

from badges_bridge.providers.base import AwardState
from badges_bridge.testing.harness import ProviderHarness
from badges_bridge.testing.server import BadRequestBodyError, FakeRequest, FakeResponse, FakeServer

ORG = r"/v1/organizations/(?P<org>[^/]+)"
_ORG_PREFIX = re.compile("^" + ORG)

REQUIRED_FIELDS = ("recipient_email", "issued_to_first_name", "issued_to_last_name", "badge_template_id", "issued_at")
LIVE_STATES = ("pending", "accepted")
CLOSED_STATES = ("revoked", "replaced")
#: States whose badges do not block a new one of the same template (unless ``revoked_block_duplicates``).
NON_BLOCKING_STATES = (*CLOSED_STATES, "rejected")
EXTRA_FIELD = "extra_field"
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S %z"


class CredlyRefusalError(Exception):
    """Raised by a route to answer with Credly's error envelope."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.response = FakeResponse(status, {"data": {"message": message, "errors": errors or []}, "metadata": {}})


def single(data: Any, status: int = 200) -> FakeResponse:
    """One object in Credly's envelope."""
    return FakeResponse(status, {"data": data, "metadata": {}})


def invalid(attribute: str, message: str, status: int = 422) -> CredlyRefusalError:
    """A validation refusal naming one attribute."""
    return CredlyRefusalError(status, message, [{"attribute": attribute, "messages": [message]}])


def now() -> datetime:
    """The fake's clock."""
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """Credly's ISO-8601 UTC form with milliseconds, e.g. ``2025-03-01T10:00:00.000Z``."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_wire_time(value: Any) -> datetime | None:
    """Read ``%Y-%m-%d %H:%M:%S %z`` or ISO-8601 (UTC when no offset); None when neither."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        moment = datetime.strptime(text, _TIME_FORMAT)  # noqa: DTZ007 - the format has %z
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def basic_token(header: str) -> str | None:
    """The token of a Basic header, decoded leniently.

    Accepts ``base64(token:)``, ``base64(token)`` and ``base64(token|)``: the
    part before the first ``:`` is kept and one trailing ``|`` is dropped.
    """
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    token = decoded.split(":", 1)[0].removesuffix("|")
    return token or None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _same_email(left: str, right: str) -> bool:
    return bool(left) and left.strip().lower() == right.strip().lower()


def _index_keys(emails: Iterable[str], earner_id: str | None) -> list[str]:
    keys = [f"email:{email.strip().lower()}" for email in emails if email]
    return keys + ([f"earner:{earner_id}"] if earner_id else [])


@dataclass
class CredlyOrganization:
    """One organization: its token and its own templates, badges and events."""

    id: str
    name: str
    token: str
    initial_token: str
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    badges: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Templates deleted in Credly: gone from the API, still named by the badges issued from them.
    deleted_templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Groups of e-mail addresses that belong to one Credly user.
    users: list[set[str]] = field(default_factory=list)
    #: Ids of the badges ever stored under each recipient address ("email:...") and earner id ("earner:..."),
    #: and the order they were stored in, so that look-ups need not scan every badge (entries may be stale:
    #: callers check each badge they get).
    index: dict[str, list[str]] = field(default_factory=dict)
    stored_order: dict[str, int] = field(default_factory=dict)

    def remember(self, badge: dict[str, Any]) -> None:
        """Index a badge just stored."""
        self.stored_order[badge["id"]] = len(self.stored_order)
        for key in _index_keys([badge["recipient_email"]], badge.get("issuer_earner_id")):
            self.index.setdefault(key, []).append(badge["id"])

    def badges_of(self, emails: Iterable[str], earner_id: str | None = None) -> list[dict[str, Any]]:
        """The stored badges of these addresses or this earner id, in the order they were stored."""
        ids = {badge_id for key in _index_keys(emails, earner_id) for badge_id in self.index.get(key, ())}
        ordered = sorted((badge_id for badge_id in ids if badge_id in self.badges), key=self.stored_order.get)
        return [self.badges[badge_id] for badge_id in ordered]

    def clear(self) -> None:
        """Drop every stored object and restore the first token."""
        self.token = self.initial_token
        self.templates.clear()
        self.badges.clear()
        self.events.clear()
        self.deleted_templates.clear()
        self.users.clear()
        self.index.clear()
        self.stored_order.clear()

    def emails_of_user(self, email: str) -> set[str]:
        """Every address of the Credly user owning ``email`` (just itself when unlinked)."""
        email = email.strip().lower()
        for group in self.users:
            if email in group:
                return set(group)
        return {email}


Matcher = Callable[[dict[str, Any], str], bool]


@dataclass(frozen=True)
class ExactField:
    """A matcher comparing one field with the wanted value exactly (lower-cased first with ``lower``).

    Filters built from it test membership in a set, so a filter listing many values over a large
    store stays fast.
    """

    name: str
    lower: bool = False

    def wanted(self, value: str) -> str:
        """The form of a wanted value that the field is compared with."""
        return value.lower() if self.lower else value

    def __call__(self, item: dict[str, Any], wanted: str) -> bool:
        return item[self.name] == self.wanted(wanted)


class FakeCredly(FakeServer):
    """A Credly v1 API on loopback. See the module docstring for the switches."""

    name = "credly"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        page_size: int = 50,
        revoked_block_duplicates: bool = False,
        strict_filters: bool = True,
    ):
        self.organizations: dict[str, CredlyOrganization] = {}
        self._defaults = {
            "page_size": page_size,
            "revoked_block_duplicates": revoked_block_duplicates,
            "strict_filters": strict_filters,
        }
        self.page_size = page_size
        self.revoked_block_duplicates = revoked_block_duplicates
        self.strict_filters = strict_filters
        self.token_expired = False
        #: Badges stored while a live badge of the same template and recipient existed.
        self.duplicates_stored = 0
        super().__init__(host, port)

    def reset_state(self) -> None:
        """Empty every organization (they and their first tokens stay) and restore the switches."""
        for org in self.organizations.values():
            org.clear()
        for name, value in self._defaults.items():
            setattr(self, name, value)
        self.token_expired = False
        self.duplicates_stored = 0

    # -- set-up and inspection ------------------------------------------------------------------------
    def add_organization(self, name: str, *, token: str, org_id: str | None = None) -> CredlyOrganization:
        """Register an organization reachable with ``token``."""
        with self.lock:
            org = CredlyOrganization(org_id or str(uuid.uuid4()), name, token, token)
            self.organizations[org.id] = org
            return org

    def organization(self, org_id: str) -> CredlyOrganization:
        """A registered organization (KeyError when unknown)."""
        return self.organizations[org_id]

    def add_template(
        self,
        org_id: str,
        name: str,
        *,
        state: str = "active",
        allow_duplicate_badges: bool = False,
        description: str = "",
    ) -> dict[str, Any]:
        """Create a badge template and record a ``badge_template.created`` event."""
        with self.lock:
            org = self.organization(org_id)
            stamp = iso(now())
            template = {
                "id": str(uuid.uuid4()),
                "name": name,
                "description": description or f"Awarded for {name}.",
                "state": state,
                "allow_duplicate_badges": allow_duplicate_badges,
                "public": True,
                "skills": [],
                "vanity_slug": re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"),
                "created_at": stamp,
                "updated_at": stamp,
            }
            org.templates[template["id"]] = template
            self._event(org, "badge_template.created", badge_template=template)
            return copy.deepcopy(template)

    def set_template_state(self, org_id: str, template_id: str, state: str) -> None:
        """Change a template's state (e.g. archive it), as an admin would in Credly."""
        with self.lock:
            org = self.organization(org_id)
            template = org.templates[template_id]
            template.update(state=state, updated_at=iso(now()))
            self._event(org, "badge_template.changed", badge_template=template)

    def delete_template(self, org_id: str, template_id: str) -> None:
        """Delete a template, as an admin would in Credly (its badges stay)."""
        with self.lock:
            org = self.organization(org_id)
            template = org.templates.pop(template_id)
            org.deleted_templates[template_id] = template
            self._event(org, "badge_template.deleted", badge_template=template)

    def set_badge_privacy(self, org_id: str, badge_id: str, public: bool) -> None:
        """Show or hide a badge on the earner's public profile, as the earner would."""
        with self.lock:
            org = self.organization(org_id)
            badge = org.badges[badge_id]
            badge.update(public=public, updated_at=iso(now()))
            self._event(org, "badge.privacy.changed", badge=badge)

    def link_emails(self, org_id: str, *emails: str) -> None:
        """Declare that these addresses belong to one Credly user (``recipient_email_all``)."""
        with self.lock:
            self.organization(org_id).users.append({email.strip().lower() for email in emails})

    def set_badge_state(self, org_id: str, badge_id: str, state: str, *, reason: str = "") -> None:
        """Move a badge to any wire state, as the earner or an admin would (unknown states allowed)."""
        with self.lock:
            org = self.organization(org_id)
            badge = org.badges[badge_id]
            moment = now()
            badge.update(state=state, state_updated_at=iso(moment), updated_at=iso(moment))
            if state == "revoked":
                badge["revocation_reason"] = reason or "Revoked in Credly"
            if state == "expired" and badge["expires_at"] is None:
                badge.update(expires_at=iso(moment), expires_at_date=moment.date().isoformat())
            self._event(org, "badge.state.changed", badge=badge)

    def delete_badge(self, org_id: str, badge_id: str) -> None:
        """Remove a badge, as ``DELETE badges/{id}`` does."""
        with self.lock:
            org = self.organization(org_id)
            badge = org.badges.pop(badge_id)
            self._event(org, "badge.deleted", badge=badge)

    def events_of(self, org_id: str) -> list[dict[str, Any]]:
        """The organization's events, oldest first (stored form)."""
        with self.lock:
            return copy.deepcopy(list(self.organization(org_id).events.values()))

    # -- webhooks -------------------------------------------------------------------------------------
    @staticmethod
    def webhook_stub(event: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        """The unsigned stub Credly posts for a stored event; ``overrides`` forge or add fields."""
        stub = {key: event[key] for key in ("id", "organization_id", "event_type", "occurred_at")}
        return {**stub, **overrides}

    @staticmethod
    def post_webhook(url: str, stub: Any, post: Callable[[str, bytes], int] | None = None) -> int:
        """POST a stub (or any JSON) to a webhook URL as Credly does; returns the HTTP status.

        ``post(url, body)`` sends it another way (e.g. through a test client); by default it goes
        over HTTP, with Credly's short patience.
        """
        body = stub if isinstance(stub, bytes) else json.dumps(stub).encode()
        if post is not None:
            return post(url, body)
        return requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10).status_code

    # -- authentication -------------------------------------------------------------------------------
    def _token_holder(self, request: FakeRequest) -> CredlyOrganization | None:
        token = basic_token(request.headers.get("authorization", ""))
        if token is None or self.token_expired:
            return None
        for org in self.organizations.values():
            if secrets.compare_digest(org.token.encode(), token.encode()):
                return org
        return None

    def authenticate(self, request: FakeRequest) -> FakeResponse | None:
        """401 unless the token is valid and, for an organization's routes, is that organization's."""
        with self.lock:
            holder = self._token_holder(request)
            match = _ORG_PREFIX.match(request.path)
            target = match["org"] if match and match["org"] in self.organizations else None
        if holder is None or target not in (None, holder.id):
            return CredlyRefusalError(401, "You must provide a valid authorization token").response
        return None

    # -- framework hooks ------------------------------------------------------------------------------
    def dispatch(self, request: FakeRequest) -> FakeResponse:
        """Route the request; a CredlyRefusalError raised by a route becomes its error answer."""
        try:
            return super().dispatch(request)
        except CredlyRefusalError as refusal:
            return refusal.response

    def not_found(self, request: FakeRequest) -> FakeResponse:
        """Credly-shaped 404 for unknown paths."""
        return CredlyRefusalError(404, "Not found").response

    def bad_body(self, request: FakeRequest, error: BadRequestBodyError) -> FakeResponse:
        """Credly-shaped 400 for a body that is not JSON."""
        return CredlyRefusalError(400, f"The request body is not valid JSON: {error}").response

    # -- helpers --------------------------------------------------------------------------------------
    def _org(self, org_id: str) -> CredlyOrganization:
        org = self.organizations.get(org_id)
        if org is None:
            raise CredlyRefusalError(404, "Organization not found")
        return org

    @staticmethod
    def _badge(org: CredlyOrganization, badge_id: str) -> dict[str, Any]:
        badge = org.badges.get(badge_id)
        if badge is None:
            raise CredlyRefusalError(404, "Badge not found")
        return badge

    @staticmethod
    def _json_object(request: FakeRequest, *, optional: bool = False) -> dict[str, Any]:
        if optional and not request.body.strip():
            return {}
        body = request.json()
        if not isinstance(body, dict):
            raise CredlyRefusalError(400, "The request body must be a JSON object")
        return body

    def _event(self, org: CredlyOrganization, event_type: str, **subject: dict[str, Any]) -> None:
        event = {
            "id": str(uuid.uuid4()),
            "organization_id": org.id,
            "event_type": event_type,
            "occurred_at": iso(now()),
            **{key: copy.deepcopy(value) for key, value in subject.items()},
        }
        org.events[event["id"]] = event

    # -- rendering ------------------------------------------------------------------------------------
    def _render_org(self, org: CredlyOrganization, base: str) -> dict[str, Any]:
        return {
            "id": org.id,
            "name": org.name,
            "vanity_url": f"{base}org/{org.id}",
            "photo_url": f"{base}images/organizations/{org.id}.png",
            "webhook_url": None,
            "allowed_webhooks": [],
            "verified": True,
            "contact_email": "issuer@example.com",
            EXTRA_FIELD: "ignore me",
        }

    def _render_template(self, org: CredlyOrganization, template: dict[str, Any], base: str) -> dict[str, Any]:
        image_url = f"{base}images/badge_templates/{template['id']}.png"
        return {
            **copy.deepcopy(template),
            "image_url": image_url,
            "image": {"id": template["id"], "url": image_url},
            "url": f"{base}org/{org.id}/badge/{template['vanity_slug']}",
            "owner": {"type": "Organization", "id": org.id, "name": org.name},
            EXTRA_FIELD: "ignore me",
        }

    def _render_badge(self, org: CredlyOrganization, badge: dict[str, Any], base: str) -> dict[str, Any]:
        template_id = badge["badge_template_id"]
        template = org.templates.get(template_id) or org.deleted_templates[template_id]
        rendered = {key: copy.deepcopy(value) for key, value in badge.items() if key != "badge_template_id"}
        rendered.update(
            badge_template=self._render_template(org, template, base),
            badge_url=f"{base}badges/{badge['id']}",
            accept_badge_url=f"{base}earner/accept/{badge['id']}" if badge["state"] == "pending" else None,
            image_url=f"{base}images/badges/{badge['id']}.png",
            image={"url": f"{base}images/badges/{badge['id']}.png"},
        )
        rendered[EXTRA_FIELD] = "ignore me"
        return rendered

    def _render_event(self, org: CredlyOrganization, event: dict[str, Any], base: str) -> dict[str, Any]:
        rendered = {key: value for key, value in event.items() if key not in ("badge", "badge_template")}
        if "badge" in event:
            rendered["badge"] = self._render_badge(org, event["badge"], base)
        if "badge_template" in event:
            rendered["badge_template"] = self._render_template(org, event["badge_template"], base)
        return rendered

    # -- lists: paging, filters, sort -----------------------------------------------------------------
    def _page(
        self, request: FakeRequest, items: list[Any], render: Callable[[Any], Any] = lambda item: item
    ) -> FakeResponse:
        """The page the request asks for; only its own items are rendered."""
        per = self.page_size
        requested_per = request.param("per", "")
        if requested_per.isdigit() and int(requested_per) > 0:
            per = min(per, int(requested_per))
        page_param = request.param("page", "1")
        page = int(page_param) if page_param.isdigit() and int(page_param) > 0 else 1
        total_pages = max(1, math.ceil(len(items) / per))
        chunk = [render(item) for item in items[(page - 1) * per : page * per]]
        metadata = {
            "count": len(chunk),
            "current_page": page,
            "total_count": len(items),
            "total_pages": total_pages,
            "per": per,
            "previous_page_url": self._page_url(request, page - 1) if page > 1 else None,
            "next_page_url": self._page_url(request, page + 1) if page < total_pages else None,
        }
        return FakeResponse(200, {"data": chunk, "metadata": metadata})

    @staticmethod
    def _page_url(request: FakeRequest, page: int) -> str:
        query = {key: values for key, values in request.query.items() if key != "page"}
        query["page"] = [str(page)]
        return f"{request.base_url}{request.path.lstrip('/')}?{urlencode(query, doseq=True)}"

    def _filtered(self, request: FakeRequest, items: list[dict], matchers: dict[str, tuple[Matcher, bool]]) -> list:
        """Apply ``filter=k::v|k2::v2`` (AND of keys, comma OR within a key when the key allows it)."""
        for clause in (request.param("filter") or "").split("|"):
            if not clause.strip():
                continue
            key, separator, value = clause.partition("::")
            if not separator:
                raise invalid("filter", f"Invalid filter {clause!r}: use key::value")
            if key.strip() not in matchers:
                if self.strict_filters:
                    raise invalid("filter", f"Unknown filter key {key.strip()!r}")
                continue
            matcher, comma_list = matchers[key.strip()]
            values = [part.strip() for part in value.split(",")] if comma_list else [value.strip()]
            if isinstance(matcher, ExactField):
                accepted = {matcher.wanted(wanted) for wanted in values}
                items = [item for item in items if item[matcher.name] in accepted]
            else:
                items = [item for item in items if any(matcher(item, wanted) for wanted in values)]
        return items

    @staticmethod
    def _sorted(request: FakeRequest, items: list[dict]) -> list[dict]:
        """Apply ``sort=key1|-key2`` (a leading ``-`` sorts descending)."""
        keys = [key.strip() for key in (request.param("sort") or "").split("|") if key.strip()]
        for key in reversed(keys):
            name = key.lstrip("-")
            items = sorted(
                items,
                key=lambda item, name=name: (item.get(name) is None, str(item.get(name) or "")),
                reverse=key.startswith("-"),
            )
        return items

    def _template_matchers(self) -> dict[str, tuple[Matcher, bool]]:
        def name(template: dict, wanted: str) -> bool:
            if len(wanted) >= 2 and wanted.startswith('"') and wanted.endswith('"'):
                return template["name"] == wanted[1:-1]
            return wanted.lower() in template["name"].lower()

        return {
            "state": (ExactField("state", lower=True), True),
            "name": (name, False),
            "query": (
                lambda template, wanted: wanted.lower() in f"{template['name']} {template['description']}".lower(),
                False,
            ),
            "public": (lambda template, wanted: str(template["public"]).lower() == wanted.lower(), False),
        }

    @staticmethod
    def _candidates(request: FakeRequest, org: CredlyOrganization) -> list[dict[str, Any]]:
        """The badges a listing may return: those of the addresses its filter names, if it names any, else all."""
        for clause in (request.param("filter") or "").split("|"):
            key, _separator, value = clause.partition("::")
            emails = [part.strip() for part in value.split(",")]
            if key.strip() == "recipient_email":
                return org.badges_of(emails)
            if key.strip() == "recipient_email_all":
                return org.badges_of([address for email in emails for address in org.emails_of_user(email)])
        return list(org.badges.values())

    def _badge_matchers(self, org: CredlyOrganization) -> dict[str, tuple[Matcher, bool]]:
        def query(badge: dict, wanted: str) -> bool:
            template_name = org.templates.get(badge["badge_template_id"], {}).get("name", "")
            haystack = f"{badge['issued_to']} {badge['recipient_email']} {template_name}".lower()
            return wanted.lower() in haystack

        return {
            "state": (ExactField("state", lower=True), True),
            "badge_template_id": (ExactField("badge_template_id"), True),
            "recipient_email": (lambda badge, wanted: _same_email(badge["recipient_email"], wanted), True),
            "recipient_email_all": (
                lambda badge, wanted: badge["recipient_email"].lower() in org.emails_of_user(wanted),
                True,
            ),
            "public": (lambda badge, wanted: str(badge["public"]).lower() == wanted.lower(), False),
            "query": (query, False),
        }

    # -- issuing --------------------------------------------------------------------------------------
    def _validated_issue(self, org: CredlyOrganization, fields: dict[str, Any]) -> dict[str, Any]:
        """Check an issue (or replace) body; return the template and the parsed dates."""
        missing = [name for name in REQUIRED_FIELDS if not _text(fields.get(name))]
        if missing:
            raise CredlyRefusalError(
                422,
                "Validation failed: " + ", ".join(f"{name} can't be blank" for name in missing),
                [{"attribute": name, "messages": ["can't be blank"]} for name in missing],
            )
        template = org.templates.get(_text(fields["badge_template_id"]))
        if template is None:
            raise invalid("badge_template_id", "Badge template is invalid")
        if template["state"] != "active":
            raise invalid("badge_template_id", f"Badge template is {template['state']} and cannot issue badges")
        issued_at = parse_wire_time(fields["issued_at"])
        if issued_at is None:
            raise invalid("issued_at", "Issued at is not a valid date")
        expires_raw = fields.get("expires_at")
        expires_at = None
        if expires_raw is not None and expires_raw is not False:
            expires_at = parse_wire_time(expires_raw)
            if expires_at is None:
                raise invalid("expires_at", "Expires at is not a valid date")
        evidence = fields.get("evidence", [])
        if not isinstance(evidence, list) or not all(isinstance(item, dict) for item in evidence):
            raise invalid("evidence", "Evidence must be a list of objects")
        return {"template": template, "issued_at": issued_at, "expires_at": expires_at, "evidence": evidence}

    def _check_duplicate(self, org: CredlyOrganization, template: dict, fields: dict, ignore: str = "") -> None:
        """422 when the recipient already holds a badge of this template (Credly's rule)."""
        if template["allow_duplicate_badges"]:
            return
        closed = () if self.revoked_block_duplicates else NON_BLOCKING_STATES
        email = _text(fields["recipient_email"])
        earner_id = _text(fields.get("issuer_earner_id"))
        user_emails = org.emails_of_user(email)
        for badge in org.badges_of([email, *user_emails], earner_id):
            if badge["badge_template_id"] != template["id"] or badge["id"] == ignore or badge["state"] in closed:
                continue
            if _same_email(badge["recipient_email"], email):
                raise CredlyRefusalError(
                    422,
                    "Recipient email already has this badge",
                    [{"attribute": "recipient_email", "messages": ["already has this badge"]}],
                )
            same_user = badge["recipient_email"].lower() in user_emails
            if same_user or (earner_id and badge["issuer_earner_id"] == earner_id):
                raise CredlyRefusalError(
                    422,
                    "User already has this badge",
                    [{"attribute": "user_id", "messages": ["already has this badge"]}],
                )

    def _is_live_duplicate(self, org: CredlyOrganization, badge: dict[str, Any]) -> bool:
        for other in org.badges_of([badge["recipient_email"]], badge["issuer_earner_id"]):
            if other["badge_template_id"] != badge["badge_template_id"] or other["state"] not in LIVE_STATES:
                continue
            same_earner = badge["issuer_earner_id"] and other["issuer_earner_id"] == badge["issuer_earner_id"]
            if _same_email(other["recipient_email"], badge["recipient_email"]) or same_earner:
                return True
        return False

    def _store_badge(self, org: CredlyOrganization, fields: dict[str, Any], checked: dict[str, Any]) -> dict:
        badge = self._badge_record(fields, checked)
        if self._is_live_duplicate(org, badge):
            self.duplicates_stored += 1
        org.badges[badge["id"]] = badge
        org.remember(badge)
        self._event(org, "badge.created", badge=badge)
        return badge

    @staticmethod
    def _badge_record(fields: dict[str, Any], checked: dict[str, Any], state: str = "pending") -> dict[str, Any]:
        """A new badge in stored form, from issue fields and what _validated_issue read of them."""
        moment = now()
        first, middle, last = (
            _text(fields.get(name)) for name in ("issued_to_first_name", "issued_to_middle_name", "issued_to_last_name")
        )
        issued_at, expires_at = checked["issued_at"], checked["expires_at"]
        return {
            "id": str(uuid.uuid4()),
            "state": state,
            "badge_template_id": checked["template"]["id"],
            "recipient_email": _text(fields["recipient_email"]),
            "issuer_earner_id": _text(fields.get("issuer_earner_id")) or None,
            "issued_to": " ".join(part for part in (first, middle, last) if part),
            "issued_to_first_name": first,
            "issued_to_middle_name": middle or None,
            "issued_to_last_name": last,
            "locale": _text(fields.get("locale")) or "en",
            "issued_at": iso(issued_at),
            "issued_at_date": issued_at.astimezone(UTC).date().isoformat(),
            "expires_at": iso(expires_at),
            "expires_at_date": expires_at.astimezone(UTC).date().isoformat() if expires_at else None,
            "created_at": iso(moment),
            "updated_at": iso(moment),
            "state_updated_at": iso(moment),
            "public": True,
            "suppress_badge_notification_email": bool(fields.get("suppress_badge_notification_email")),
            "evidence": copy.deepcopy(checked["evidence"]),
            "revocation_reason": None,
            "replacement_badge_id": None,
            "replaces_badge_id": None,
            "user": None,
        }

    def store_badge(
        self, org_id: str, template_id: str, *, email: str, first_name: str = "Seeded", last_name: str = "Learner"
    ) -> dict[str, Any]:
        """Store an accepted badge with no request, event or duplicate check: bulk seeding for tests and benchmarks."""
        with self.lock:
            org = self.organization(org_id)
            fields = {"recipient_email": email, "issued_to_first_name": first_name, "issued_to_last_name": last_name}
            checked = {"template": org.templates[template_id], "issued_at": now(), "expires_at": None, "evidence": []}
            badge = self._badge_record(fields, checked, state="accepted")
            org.badges[badge["id"]] = badge
            org.remember(badge)
            return badge

    # -- routes ---------------------------------------------------------------------------------------
    @FakeServer.route("GET", r"/v1/organizations")
    def list_organizations(self, request: FakeRequest) -> FakeResponse:
        """The organizations the token can see (here: its own)."""
        holder = self._token_holder(request)  # authenticate() already made sure there is one
        return self._page(request, [holder], lambda org: self._render_org(org, request.base_url))

    @FakeServer.route("GET", ORG)
    def get_organization(self, request: FakeRequest, org: str) -> FakeResponse:
        """The organization profile."""
        return single(self._render_org(self._org(org), request.base_url))

    @FakeServer.route("GET", ORG + r"/badge_templates")
    def list_templates(self, request: FakeRequest, org: str) -> FakeResponse:
        """Templates, filtered, sorted and paged."""
        organization = self._org(org)
        templates = self._filtered(request, list(organization.templates.values()), self._template_matchers())
        return self._page(
            request,
            self._sorted(request, templates),
            lambda template: self._render_template(organization, template, request.base_url),
        )

    @FakeServer.route("GET", ORG + r"/badge_templates/(?P<template_id>[^/]+)")
    def get_template(self, request: FakeRequest, org: str, template_id: str) -> FakeResponse:
        """One template."""
        organization = self._org(org)
        template = organization.templates.get(template_id)
        if template is None:
            raise CredlyRefusalError(404, "Badge template not found")
        return single(self._render_template(organization, template, request.base_url))

    @FakeServer.route("POST", ORG + r"/badges")
    def issue_badge(self, request: FakeRequest, org: str) -> FakeResponse:
        """Issue a badge: validation, duplicate rule, 201 with the pending badge."""
        organization = self._org(org)
        fields = self._json_object(request)
        checked = self._validated_issue(organization, fields)
        self._check_duplicate(organization, checked["template"], fields)
        badge = self._store_badge(organization, fields, checked)
        return single(self._render_badge(organization, badge, request.base_url), 201)

    @FakeServer.route("GET", ORG + r"/badges")
    def list_badges(self, request: FakeRequest, org: str) -> FakeResponse:
        """Issued badges, filtered, sorted and paged."""
        organization = self._org(org)
        badges = self.cached_listing(
            ("badges", org, request.param("filter"), request.param("sort")),
            lambda: self._sorted(
                request,
                self._filtered(request, self._candidates(request, organization), self._badge_matchers(organization)),
            ),
        )
        return self._page(
            request,
            badges,
            lambda badge: self._render_badge(organization, badge, request.base_url),
        )

    @FakeServer.route("GET", ORG + r"/badges/(?P<badge_id>[^/]+)")
    def get_badge(self, request: FakeRequest, org: str, badge_id: str) -> FakeResponse:
        """One issued badge."""
        organization = self._org(org)
        badge = self._badge(organization, badge_id)
        return single(self._render_badge(organization, badge, request.base_url))

    @FakeServer.route("PUT", ORG + r"/badges/(?P<badge_id>[^/]+)/revoke")
    def revoke_badge(self, request: FakeRequest, org: str, badge_id: str) -> FakeResponse:
        """Revoke with a non-blank reason (JSON body or query); 422 when already revoked or replaced."""
        organization = self._org(org)
        body = self._json_object(request, optional=True)
        reason = _text(body.get("reason")) or _text(request.param("reason"))
        if not reason:
            raise invalid("reason", "Reason can't be blank")
        badge = self._badge(organization, badge_id)
        if badge["state"] in CLOSED_STATES:
            raise invalid("state", f"Badge has already been {badge['state']}")
        moment = iso(now())
        badge.update(state="revoked", revocation_reason=reason, state_updated_at=moment, updated_at=moment)
        self._event(organization, "badge.state.changed", badge=badge)
        return single(self._render_badge(organization, badge, request.base_url))

    @FakeServer.route("POST", ORG + r"/badges/(?P<badge_id>[^/]+)/replace")
    def replace_badge(self, request: FakeRequest, org: str, badge_id: str) -> FakeResponse:
        """Issue a new badge to the same earner in place of an old one, which becomes ``replaced``."""
        organization = self._org(org)
        old = self._badge(organization, badge_id)
        if old["state"] in CLOSED_STATES:
            raise invalid("state", f"Badge has already been {old['state']}")
        body = self._json_object(request, optional=True)
        fields = {
            **{key: old[key] for key in ("issued_to_first_name", "issued_to_last_name", "issuer_earner_id")},
            "badge_template_id": old["badge_template_id"],
            "issued_at": old["issued_at"],
            **body,
            "recipient_email": old["recipient_email"],
        }
        checked = self._validated_issue(organization, fields)
        self._check_duplicate(organization, checked["template"], fields, ignore=old["id"])
        moment = iso(now())
        old.update(state="replaced", state_updated_at=moment, updated_at=moment)
        new = self._store_badge(organization, fields, checked)
        new["replaces_badge_id"] = old["id"]
        old["replacement_badge_id"] = new["id"]
        self._event(organization, "badge.state.changed", badge=old)
        return single(self._render_badge(organization, new, request.base_url), 201)

    @FakeServer.route("DELETE", ORG + r"/badges/(?P<badge_id>[^/]+)")
    def delete_badge_route(self, request: FakeRequest, org: str, badge_id: str) -> FakeResponse:
        """Delete a badge: 204 without a body."""
        organization = self._org(org)
        self._badge(organization, badge_id)
        self.delete_badge(organization.id, badge_id)
        return FakeResponse(204)

    @FakeServer.route("GET", ORG + r"/events/(?P<event_id>[^/]+)")
    def get_event(self, request: FakeRequest, org: str, event_id: str) -> FakeResponse:
        """One event of the organization's feed."""
        organization = self._org(org)
        event = organization.events.get(event_id)
        if event is None:
            raise CredlyRefusalError(404, "Event not found")
        return single(self._render_event(organization, event, request.base_url))

    @FakeServer.route("POST", ORG + r"/authorization_tokens/rotate")
    def rotate_token(self, request: FakeRequest, org: str) -> FakeResponse:
        """Issue a new token; the old one stops working at once."""
        organization = self._org(org)
        organization.token = secrets.token_hex(16)
        return single({"token": organization.token})


class CredlyHarness(ProviderHarness):
    """Harness over :class:`FakeCredly`: one organization per account name."""

    kind = "credly"
    server: FakeCredly

    #: (method, path regex) of each abstract operation; "revoke" is the default (PUT) revoke.
    ROUTES = {
        "list_templates": ("GET", r"/badge_templates/?$"),
        "issue": ("POST", r"/badges/?$"),
        "find": ("GET", r"/badges/?$"),
        "get": ("GET", r"/badges/[^/]+/?$"),
        "revoke": ("PUT|DELETE", r"/badges/[^/]+(/revoke)?/?$"),
        "any": ("*", r"^/v1/"),
    }
    _NAMESPACE = uuid.UUID("5b0f4a8e-3c1d-4e2f-9a7b-6c5d4e3f2a1b")

    def make_server(self) -> FakeCredly:
        """A FakeCredly with the default switches."""
        return FakeCredly()

    def organization(self, account: str = "main") -> CredlyOrganization:
        """The fake organization behind an account name, created on first use."""
        org_id = str(uuid.uuid5(self._NAMESPACE, account))
        with self.server.lock:
            if org_id not in self.server.organizations:
                token = self.token if account == "main" else f"{self.token}-{account}"
                self.server.add_organization(f"{account.capitalize()} Organization", token=token, org_id=org_id)
            return self.server.organization(org_id)

    def account_fields(self, account: str = "main") -> dict[str, str]:
        """Base URL (ending in /v1/), current token and organization id of an account."""
        org = self.organization(account)
        return {"base_url": f"{self.server.base_url}v1/", "token": org.token, "organization_id": org.id}

    def set_page_size(self, size: int) -> None:
        """Serve lists ``size`` items a page (until the next reset)."""
        self.server.page_size = size

    def seed_template(
        self, name: str, *, account: str = "main", state: str = "active", allow_duplicates: bool = False
    ) -> str:
        """Create a badge template and return its id."""
        org = self.organization(account)
        return self.server.add_template(org.id, name, state=state, allow_duplicate_badges=allow_duplicates)["id"]

    def seed_award(self, template_id: str, email: str, account: str = "main") -> str:
        """Store an accepted badge of the template for the address, without a request; return its id."""
        return self.server.store_badge(self.organization(account).id, template_id, email=email)["id"]

    def _badges(self, account: str) -> list[dict[str, Any]]:
        with self.server.lock:
            return copy.deepcopy(list(self.organization(account).badges.values()))

    def live_awards(self, template_id: str, email: str, account: str = "main") -> list[dict]:
        """Pending or accepted badges of the template for the address."""
        return [
            badge
            for badge in self._badges(account)
            if badge["badge_template_id"] == template_id
            and _same_email(badge["recipient_email"], email)
            and badge["state"] in LIVE_STATES
        ]

    def all_awards(self, account: str = "main") -> list[dict]:
        """Every badge of the account, any state (stored form)."""
        return self._badges(account)

    def live_awards_by_email(self, template_id: str, account: str = "main") -> dict[str, list[dict]]:
        """Pending or accepted badges of the template, by lower-cased recipient e-mail."""
        found: dict[str, list[dict]] = {}
        for badge in self._badges(account):
            if badge["badge_template_id"] == template_id and badge["state"] in LIVE_STATES:
                found.setdefault(badge["recipient_email"].lower(), []).append(badge)
        return found

    def award_email(self, award: dict) -> str:
        """The recipient address of a stored badge."""
        return award["recipient_email"]

    def award_state(self, external_id: str, account: str = "main") -> AwardState:
        """The badge's state; DELETED when the fake no longer has it."""
        with self.server.lock:
            badge = self.organization(account).badges.get(external_id)
            if badge is None:
                return AwardState.DELETED
            try:
                return AwardState(badge["state"])
            except ValueError:
                return AwardState.UNKNOWN

    def set_award_state(self, external_id: str, state: AwardState, account: str = "main") -> None:
        """Accept, reject, revoke, expire, replace-mark or delete a badge at the fake."""
        org = self.organization(account)
        if state == AwardState.DELETED:
            self.server.delete_badge(org.id, external_id)
        elif state == AwardState.UNKNOWN:
            raise ValueError("Use FakeCredly.set_badge_state() to set an unrecognised wire state")
        else:
            self.server.set_badge_state(org.id, external_id, state.value)

    def duplicates_created(self) -> int:
        """Badges stored while a live one of the same template and recipient existed."""
        return self.server.duplicates_stored

    def events(self, account: str = "main", event_type: str | None = None) -> list[dict[str, Any]]:
        """The account's events (of one type), oldest first."""
        found = self.server.events_of(self.organization(account).id)
        return [event for event in found if event_type is None or event["event_type"] == event_type]

    def notify(
        self,
        url: str,
        event: dict[str, Any] | None = None,
        *,
        account: str = "main",
        post: Callable[[str, bytes], int] | None = None,
        **overrides: Any,
    ) -> int:
        """Post the stub of ``event`` (default: the account's latest event) to a webhook URL; the HTTP status."""
        event = event if event is not None else self.events(account)[-1]
        return self.server.post_webhook(url, self.server.webhook_stub(event, **overrides), post)

    def operation_route(self, operation: str) -> tuple[str, str]:
        """(method, path regex) of an abstract operation."""
        try:
            return self.ROUTES[operation]
        except KeyError:
            raise ValueError(f"Unknown operation {operation!r}; use one of {', '.join(self.ROUTES)}") from None
