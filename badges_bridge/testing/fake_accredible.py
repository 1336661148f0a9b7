"""A contract-faithful fake of the Accredible Credential API.

:class:`FakeAccredible` serves the routes badges_bridge uses (and the
deprecated ones Accredible's own plugins use) with Accredible's envelopes, id
types, error bodies, paging and rate limit. Several accounts, each with its own
API key, keep isolated groups and credentials.

Behaviour the official documentation only implies is kept switchable (the
attribute names the switch):

* ``auth_error_json``: 401 as JSON ``{"success": false, "data": ...}`` instead of
  Rails' plain text ``HTTP Token: Access denied.``;
* ``not_found_body``: index of the 404 body in :data:`NOT_FOUND_BODIES`, or None
  to rotate through all of them;
* ``expired_blocks_duplicates``: whether an expired credential still counts as
  a duplicate of a new one for the same group and e-mail (default: it does not);
* ``update_returns_credential``: whether PUT/PATCH answers with the credential
  (the official spec gives no response body);
* ``bulk_error_key``: ``"errors"`` (default) or ``"error"``, the key of a bulk
  create item's error (the official spec spells it both ways);
* ``FakeAccount.no_credits``: create credentials unpublished (``approve: false``);
* ``rate_limit`` / ``v1_search_rate_limit``: (requests, seconds) or None.

Test knobs: ``clock`` (the rate limiter's time source), ``page_size_cap`` (serve
small pages whatever size is asked for), ``max_result_window`` (the offset
paging limit of the v2 search) and ``duplicates_stored``. Faults and the
request journal come from :class:`~badges_bridge.testing.server.FakeServer`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from operator import ge as operator_ge
from operator import gt as operator_gt
from operator import le as operator_le
from operator import lt as operator_lt
from typing import Any, ClassVar

from badges_bridge.providers.base import AwardState
from badges_bridge.testing.harness import ProviderHarness
from badges_bridge.testing.server import FakeRequest, FakeResponse, FakeServer

#: Rails' default answer to a missing or wrong token.
ACCESS_DENIED_TEXT = "HTTP Token: Access denied.\n"
ACCESS_DENIED_JSON = {"success": False, "data": "issuer_token not valid"}
#: The not-found bodies seen from Accredible, all of them served (see ``not_found_body``).
NOT_FOUND_BODIES: tuple[dict[str, Any], ...] = (
    {"success": False, "data": "No credential with the id given in your account"},
    {"errors": "Doesn't exist"},
    {"error": "Not found"},
)
GROUP_NOT_FOUND_BODY = {"success": False, "data": "Group does not exist"}
DUPLICATE_MESSAGE = (
    "has already been taken. Your group settings do not allow duplicates of this credential "
    "to be sent to the same email."
)
#: Body of a 429 (Rack::Attack's default); no Retry-After header is sent.
THROTTLED_TEXT = "Retry later\n"
#: Most credentials one v2 bulk create may carry.
BULK_LIMIT = 30
EVIDENCE_CATEGORIES = ("file", "url", "video", "grade", "transcript")
DEFAULT_PAGE_SIZE = 50

_EQ_IN = ("eq", "in")
_ALL_OPERATORS = ("eq", "in", "lt", "lte", "gt", "gte")
#: v2 search query keys and the operators each supports; () means an object match.
SEARCH_FIELDS: dict[str, tuple[str, ...]] = {
    "uuid": _EQ_IN,
    "group.id": _EQ_IN,
    "recipient_name": _EQ_IN,
    "recipient_email": _EQ_IN,
    "recipient_id": _EQ_IN,
    "license_id": _EQ_IN,
    "approve": ("eq",),
    "issued_on": _ALL_OPERATORS,
    "expired_on": _ALL_OPERATORS,
    "updated_at": _ALL_OPERATORS,
    "created_at": _ALL_OPERATORS,
    "meta_data": (),
    "recipient_meta_data": (),
    "custom_attributes": (),
}
SORT_FIELDS = ("id", "recipient_name", "group.name", "issued_on", "expired_on")
_QUERY_KEY = re.compile(r"^(?P<field>[a-z_.]+?)(?:\[(?P<op>[a-z]+)\])?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class _ApiError(Exception):
    """Raised inside a route to answer with ``response``."""

    def __init__(self, response: FakeResponse):
        super().__init__(response.status)
        self.response = response


def _invalid_search(message: str) -> _ApiError:
    return _ApiError(
        FakeResponse(400, {"code": 400, "message": message, "status": "invalid_search_query", "errors": {}})
    )


def _unprocessable(errors: Any) -> _ApiError:
    return _ApiError(FakeResponse(422, {"errors": errors}))


def _bulk_error(body: Any) -> dict[str, Any]:
    """The error of a refused bulk item, from the body a single create would have answered."""
    errors = body.get("errors") if isinstance(body, dict) else body
    if isinstance(errors, dict):
        details = [
            {"property": key, "message": "; ".join(map(str, value)) if isinstance(value, list) else str(value)}
            for key, value in errors.items()
        ]
        return {"code": "credential_invalid", "message": "The credential is not valid", "details": details}
    return {"code": "credential_invalid", "message": str(errors), "details": []}


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _day(value: Any, field_name: str) -> str | None:
    """A date field as ``YYYY-MM-DD`` (the deprecated ``DD/MM/YYYY`` accepted); 422 otherwise."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, str) and re.fullmatch(r"\d{2}/\d{2}/\d{4}", value):
            return datetime.strptime(value, "%d/%m/%Y").date().isoformat()  # noqa: DTZ007 - a calendar day
        return date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError as err:
        raise _unprocessable({field_name: ["is not a valid date"]}) from err


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _list_id(value: Any) -> Any:
    """Ids in list answers are numbers when they look like numbers (as Accredible's are)."""
    number = _as_int(value)
    return number if number is not None else value


def _page_meta(total: int, page: int, size: int) -> dict[str, Any]:
    pages = math.ceil(total / size)
    return {
        "current_page": page,
        "next_page": page + 1 if page < pages else None,
        "prev_page": page - 1 if page > 1 else None,
        "total_pages": pages,
        "total_count": total,
    }


def _contains(container: Any, subset: Any) -> bool:
    if not isinstance(subset, dict):
        return False
    container = container if isinstance(container, dict) else {}
    return all(str(container.get(key)) == str(value) for key, value in subset.items())


@dataclass
class FakeAccount:
    """One Accredible account (one API key) with its own groups, designs and credentials."""

    name: str
    token: str
    issuer_id: int
    groups: dict[int, dict[str, Any]] = field(default_factory=dict)
    designs: dict[int, dict[str, Any]] = field(default_factory=dict)
    credentials: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: The account has no credits: credentials are created but not published.
    no_credits: bool = False
    #: Ids of the credentials ever stored under each recipient e-mail ("email:...") and id ("id:..."),
    #: so that look-ups need not scan every credential (entries may be stale: callers check each one).
    index: dict[str, set[int]] = field(default_factory=dict)

    def remember(self, credential: dict[str, Any]) -> None:
        """Index a credential just stored or updated under its recipient e-mail and id."""
        for key in _index_keys(credential["recipient"].get("email"), credential["recipient"].get("id")):
            self.index.setdefault(key, set()).add(credential["id"])

    def credentials_of(self, emails: Iterable[Any] = (), recipient_ids: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """The stored credentials that may have one of these e-mails or recipient ids, in storage order."""
        keys = [key for email in emails for key in _index_keys(email, None)]
        keys += [key for recipient_id in recipient_ids for key in _index_keys(None, recipient_id)]
        ids = set().union(*(self.index.get(key, ()) for key in keys))
        return [self.credentials[number] for number in sorted(ids) if number in self.credentials]


def _index_keys(email: Any, recipient_id: Any) -> list[str]:
    """Index keys normalised as the search compares them (e-mails without case)."""
    keys = [f"email:{_normal('recipient_email', email)}"] if email else []
    return keys + ([f"id:{_normal('recipient_id', recipient_id)}"] if recipient_id is not None else [])


class _RateWindow:
    """A request counter over ``period`` seconds, kept in buckets of ``bucket`` seconds."""

    def __init__(self, limit: int, period: float, bucket: float):
        self.limit, self.period, self.bucket = limit, period, bucket
        self.counts: dict[int, int] = {}

    def admit(self, now: float) -> bool:
        """Count one request; False when the window is already full."""
        current = int(now // self.bucket)
        oldest = current - max(1, int(self.period // self.bucket)) + 1
        self.counts = {key: count for key, count in self.counts.items() if key >= oldest}
        if sum(self.counts.values()) >= self.limit:
            return False
        self.counts[current] = self.counts.get(current, 0) + 1
        return True


class FakeAccredible(FakeServer):
    """Accredible's Credential API on loopback (see the module docstring for its switches)."""

    name = "fake-accredible"

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._tokens: dict[str, str] = {}
        self._issuer_ids = itertools.count(4897)
        #: Time source of the rate limiter; tests may replace it.
        self.clock: Callable[[], float] = time.monotonic
        super().__init__(host, port)

    def reset_state(self) -> None:
        """Empty every account (the accounts and their keys stay) and restore the default switches."""
        self.accounts: dict[str, FakeAccount] = {
            name: FakeAccount(name, token, next(self._issuer_ids)) for name, token in self._tokens.items()
        }
        self._group_ids = itertools.count(12472)
        self._design_ids = itertools.count(501)
        self._credential_ids = itertools.count(10000001)
        self._evidence_ids = itertools.count(801)
        self._not_found_turn = itertools.count()
        self._rate_windows: dict[str, _RateWindow] = {}
        #: How many times a credential was stored while a live one existed for its group and recipient.
        self.duplicates_stored = 0
        self.auth_error_json = False
        self.not_found_body: int | None = None
        self.expired_blocks_duplicates = False
        self.update_returns_credential = True
        self.bulk_error_key = "errors"
        self.rate_limit: tuple[int, float] | None = (2000, 300)
        self.v1_search_rate_limit: tuple[int, float] | None = (100, 60)
        self.rate_bucket_seconds = 30.0
        self.max_result_window = 10_000
        #: Largest page served by every listing, whatever size the client asks for (None: as asked).
        self.page_size_cap: int | None = None

    # -- accounts and seeding -----------------------------------------------------------------------
    def add_account(self, name: str, token: str) -> FakeAccount:
        """Register an account with its API key (kept across resets); return it."""
        with self.lock:
            if any(other == token for key, other in self._tokens.items() if key != name):
                raise ValueError("Each fake account needs its own key")
            self._tokens[name] = token
            self.accounts[name] = FakeAccount(name, token, next(self._issuer_ids))
            return self.accounts[name]

    def account(self, name: str = "main") -> FakeAccount:
        """The account called ``name``, created with its own key on first use."""
        with self.lock:
            if name not in self.accounts:
                return self.add_account(name, f"accredible-key-{name}")
            return self.accounts[name]

    def add_group(
        self,
        name: str,
        *,
        account: str = "main",
        course_name: str | None = None,
        allow_duplicate_credentials: bool = False,
        with_design: bool = True,
        meta_data: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create a group (and its design unless ``with_design`` is false); return it."""
        with self.lock:
            owner = self.account(account)
            design_id = next(self._design_ids) if with_design else None
            if design_id is not None:
                owner.designs[design_id] = {"id": design_id, "name": f"{name} design"}
            now = _timestamp()
            group = {
                "id": next(self._group_ids),
                "name": name,
                "course_name": course_name if course_name is not None else name.replace("-", " ").title(),
                "course_description": f"Awarded for completing {name}.",
                "course_link": f"https://courses.example.com/{name}",
                "language": "en",
                "primary_design_id": design_id,
                "allow_duplicate_credentials": allow_duplicate_credentials,
                "meta_data": dict(meta_data or {}),
                "created_at": now,
                "updated_at": now,
            }
            owner.groups[group["id"]] = group
            return group

    def seed_groups(self, count: int, *, account: str = "main", prefix: str = "group") -> list[int]:
        """Create ``count`` groups, every third one without a design; return their ids."""
        return [
            self.add_group(f"{prefix}-{index:03d}", account=account, with_design=index % 3 != 0)["id"]
            for index in range(1, count + 1)
        ]

    def credential(self, credential_id: Any, account: str = "main") -> dict[str, Any] | None:
        """The stored credential (internal form), or None."""
        number = _as_int(credential_id)
        return None if number is None else self.account(account).credentials.get(number)

    # -- representations ----------------------------------------------------------------------------
    def group_json(self, owner: FakeAccount, group: dict[str, Any]) -> dict[str, Any]:
        """A group with every key the official spec requires."""
        design_id = group["primary_design_id"]
        return {
            "id": group["id"],
            "name": group["name"],
            "course_description": group["course_description"],
            "course_name": group["course_name"],
            "learning_outcomes": [],
            "attach_pdf": False,
            "course_link": group["course_link"],
            "language": group["language"],
            "design_name": owner.designs[design_id]["name"] if design_id else "",
            "updated_at": group["updated_at"],
            "created_at": group["created_at"],
            "design_id": design_id,
            "blockchain": False,
            "certificate_design_id": design_id,
            "badge_design_id": None,
            "primary_design_id": design_id,
            "department_id": owner.issuer_id * 10,
            "meta_data": dict(group["meta_data"]),
            "generate_private_credential": False,
            "auto_expiry": None,
            "signup_url_show": False,
            "signup_url": "",
            "course_link_show": True,
            "organization_link_show": True,
            "skill_category": {"id": 1, "name": "General"},
            "achievement_type": None,
            "collections": [],
            "allow_duplicate_credentials": group["allow_duplicate_credentials"],
            "extra_field": "unknown fields must be ignored",
        }

    def credential_json(
        self, owner: FakeAccount, credential: dict[str, Any], base_url: str, *, in_list: bool = False
    ) -> dict[str, Any]:
        """A v1 credential: string ids from create/show, numeric ids in lists."""
        number = credential["id"]
        group = owner.groups[credential["group_id"]]
        recipient = dict(credential["recipient"])
        if in_list:
            recipient["id"] = _list_id(recipient.get("id"))
        return {
            "id": number if in_list else str(number),
            "name": credential["name"],
            "description": credential["description"],
            "approve": credential["approve"],
            "grade": None,
            "complete": credential["complete"],
            "issued_on": credential["issued_on"],
            "course_link": group["course_link"],
            "custom_attributes": dict(credential["custom_attributes"]),
            "expired_on": credential["expired_on"],
            "group_name": group["name"],
            "group_id": group["id"],
            "url": f"https://www.credential.net/{number}",
            "encoded_id": str(number),
            "private": credential["private"],
            "allow_supplemental_evidence": True,
            "allow_supplemental_references": True,
            "seo_image": f"{base_url}v1/frontend/credential_seo_image/{number}",
            "certificate": {"image": {"preview": f"{base_url}v1/frontend/credential_certificate_image/{number}"}},
            "badge": {"image": {"preview": f"{base_url}v1/frontend/credential_badge_image/{number}"}},
            "evidence_items": [dict(item) for item in credential["evidence_items"]],
            "references": [],
            "recipient": recipient,
            "issuer": {
                "id": owner.issuer_id,
                "name": f"Fake issuer {owner.name}",
                "url": base_url,
                "description": None,
            },
            "meta_data": dict(credential["meta_data"]),
            "extra_field": "unknown fields must be ignored",
        }

    def search_item_json(self, owner: FakeAccount, credential: dict[str, Any], base_url: str) -> dict[str, Any]:
        """A flat v2 search item with a numeric id."""
        number = credential["id"]
        group = owner.groups[credential["group_id"]]
        recipient = credential["recipient"]
        return {
            "id": number,
            "uuid": credential["uuid"],
            "encoded_id": str(number),
            "name": credential["name"],
            "recipient_name": recipient["name"],
            "recipient_email": recipient["email"],
            "recipient_id": None if recipient.get("id") is None else str(recipient["id"]),
            "recipient_meta_data": recipient.get("meta_data"),
            "group": {
                "id": group["id"],
                "name": group["name"],
                "course_name": group["course_name"],
                "badge_design_id": None,
                "certificate_design_id": group["primary_design_id"],
            },
            "issued_on": credential["issued_on"],
            "expired_on": credential["expired_on"],
            "approve": credential["approve"],
            "private": credential["private"],
            "published_on": credential["issued_on"] if credential["approve"] else None,
            "license_id": credential["license_id"],
            "meta_data": dict(credential["meta_data"]),
            "custom_attributes": dict(credential["custom_attributes"]),
            "grade": None,
            "issuer_id": owner.issuer_id,
            "seo_image": f"{base_url}v1/frontend/credential_seo_image/{number}",
            "recipient_opened": False,
            "recipient_engaged": False,
            "created_at": credential["created_at"],
            "updated_at": credential["updated_at"],
            "extra_field": "unknown fields must be ignored",
        }

    # -- plumbing -----------------------------------------------------------------------------------
    def changes_nothing(self, request: FakeRequest) -> bool:
        """GET requests and the search routes (POST) only read."""
        return super().changes_nothing(request) or request.path.rstrip("/").endswith("/search")

    def dispatch(self, request: FakeRequest) -> FakeResponse:
        """Apply the rate limit, then authenticate and route; a route may raise _ApiError."""
        with self.lock:
            if not self._admit(request):
                return FakeResponse(429, THROTTLED_TEXT)
        try:
            return super().dispatch(request)
        except _ApiError as err:
            return err.response

    def _admit(self, request: FakeRequest) -> bool:
        limits = [("all", self.rate_limit)]
        if request.method == "POST" and re.fullmatch(r"/v1/credentials/search/?", request.path):
            limits.append(("v1_search", self.v1_search_rate_limit))
        now = self.clock()
        windows = [self._window(name, limit) for name, limit in limits if limit is not None]
        return all(window.admit(now) for window in windows)

    def _window(self, name: str, limit: tuple[int, float]) -> _RateWindow:
        key = f"{name}:{limit[0]}:{limit[1]}:{self.rate_bucket_seconds}"
        if key not in self._rate_windows:
            self._rate_windows[key] = _RateWindow(limit[0], limit[1], self.rate_bucket_seconds)
        return self._rate_windows[key]

    def account_for(self, request: FakeRequest) -> FakeAccount | None:
        """The account whose key the Authorization header carries, in any accepted form."""
        token = _token_from(request.headers.get("authorization", ""))
        if not token:
            return None
        with self.lock:
            return next((owner for owner in self.accounts.values() if owner.token == token), None)

    def authenticate(self, request: FakeRequest) -> FakeResponse | None:
        """401 in Rails' plain-text form (or the JSON variant) without a known key."""
        if self.account_for(request) is not None:
            return None
        headers = {"WWW-Authenticate": 'Token realm="Application"'}
        if self.auth_error_json:
            return FakeResponse(401, dict(ACCESS_DENIED_JSON), headers)
        return FakeResponse(401, ACCESS_DENIED_TEXT, headers)

    def _owner(self, request: FakeRequest) -> FakeAccount:
        owner = self.account_for(request)
        if owner is None:
            raise _ApiError(self.authenticate(request) or FakeResponse(401, ACCESS_DENIED_TEXT))
        return owner

    def _body(self, request: FakeRequest, *, required: bool = True) -> dict[str, Any]:
        """The JSON object body; 400 for another content type, bad JSON or a non-object."""
        if not request.body:
            if required:
                raise _ApiError(FakeResponse(400, {"errors": "A JSON body is required"}))
            return {}
        if "json" not in request.headers.get("content-type", ""):
            raise _ApiError(FakeResponse(400, {"errors": "Content-Type must be application/json"}))
        body = request.json()
        if not isinstance(body, dict):
            raise _ApiError(FakeResponse(400, {"errors": "The JSON body must be an object"}))
        return body

    def _wrapped(self, request: FakeRequest) -> dict[str, Any]:
        """The ``credential`` object of a create/update body."""
        credential = self._body(request).get("credential")
        if not isinstance(credential, dict) or not credential:
            raise _ApiError(FakeResponse(400, {"errors": "param is missing or the value is empty: credential"}))
        return credential

    def _not_found(self) -> FakeResponse:
        index = self.not_found_body
        if index is None:
            index = next(self._not_found_turn) % len(NOT_FOUND_BODIES)
        return FakeResponse(404, dict(NOT_FOUND_BODIES[index]))

    def _stored(self, owner: FakeAccount, credential_id: str) -> dict[str, Any]:
        number = _as_int(credential_id)
        if number is None or number not in owner.credentials:
            raise _ApiError(self._not_found())
        return owner.credentials[number]

    def _group(self, owner: FakeAccount, group_id: Any) -> dict[str, Any]:
        number = _as_int(group_id)
        if number is None or number not in owner.groups:
            raise _unprocessable("Invalid Group")
        return owner.groups[number]

    @staticmethod
    def is_live(credential: dict[str, Any]) -> bool:
        """Not expired: no expiry day, or one still in the future."""
        return credential["expired_on"] is None or credential["expired_on"] > _today()

    # -- credentials --------------------------------------------------------------------------------
    @FakeServer.route("POST", r"/v1/credentials")
    def create_credential(self, request: FakeRequest) -> FakeResponse:
        """Create a credential; 422 for missing recipient data, unknown group or a duplicate."""
        owner = self._owner(request)
        credential = self._store_new(owner, self._wrapped(request))
        return FakeResponse(200, {"credential": self.credential_json(owner, credential, request.base_url)})

    @FakeServer.route("POST", r"/v2/credentials/bulk_create")
    def bulk_create(self, request: FakeRequest) -> FakeResponse:
        """Create up to BULK_LIMIT credentials, each on its own: 200 (all clean), 207 (mixed) or 422 (none created).

        Results carry numeric ids, as the official spec declares. Items are stored in order, so a
        second item for the same group and e-mail is a duplicate of the first. A credential created
        without credits carries an ``insufficient_credits`` error.
        """
        owner = self._owner(request)
        items = self._body(request).get("credentials")
        if not isinstance(items, list) or not items:
            raise _ApiError(FakeResponse(400, {"errors": "param is missing or the value is empty: credentials"}))
        if len(items) > BULK_LIMIT:
            raise _ApiError(
                FakeResponse(400, {"errors": f"A maximum of {BULK_LIMIT} credentials can be sent per request"})
            )
        results = [self._bulk_item(owner, item, request.base_url) for item in items]
        created = [result for result in results if "credential" in result]
        clean = [result for result in created if self.bulk_error_key not in result]
        status = 200 if len(clean) == len(results) else 207 if created else 422
        return FakeResponse(status, {"results": results})

    def _bulk_item(self, owner: FakeAccount, item: Any, base_url: str) -> dict[str, Any]:
        try:
            if not isinstance(item, dict):
                raise _unprocessable("Each credential must be an object")
            credential = self._store_new(owner, item)
        except _ApiError as err:
            return {self.bulk_error_key: _bulk_error(err.response.body)}
        result: dict[str, Any] = {"credential": self.credential_json(owner, credential, base_url, in_list=True)}
        if not credential["approve"]:
            result[self.bulk_error_key] = {
                "code": "insufficient_credits",
                "message": "The credential was created but not published.",
            }
        return result

    def _store_new(self, owner: FakeAccount, data: dict[str, Any]) -> dict[str, Any]:
        """Validate and store one credential of a create body; _ApiError (422) when it is refused."""
        recipient = data.get("recipient")
        if not isinstance(recipient, dict) or not recipient.get("name") or not recipient.get("email"):
            raise _unprocessable("Can not create credential without recipient data")
        group = self._group(owner, data.get("group_id"))
        issued_on = _day(data.get("issued_on"), "issued_on") or _today()
        expired_on = _day(data.get("expired_on"), "expired_on")
        email = str(recipient["email"]).strip()
        self._check_duplicate(owner, group, email)
        evidence = self._evidence(data.get("evidence_items"))
        credential = self._credential_record(owner, group, {**data, "recipient": {**recipient, "email": email}})
        credential.update(issued_on=issued_on, expired_on=expired_on, evidence_items=evidence)
        if self._has_live_twin(owner, credential):
            self.duplicates_stored += 1
        owner.credentials[credential["id"]] = credential
        owner.remember(credential)
        return credential

    def _credential_record(self, owner: FakeAccount, group: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """A new credential in stored form, issued today without expiry or evidence, from a create body."""
        recipient = data["recipient"]
        now = _timestamp()
        return {
            "id": next(self._credential_ids),
            "uuid": str(uuid.uuid4()),
            "group_id": group["id"],
            "recipient": {
                "name": str(recipient["name"]),
                "email": recipient["email"],
                "id": recipient.get("id"),
                "phone_number": recipient.get("phone_number"),
                "meta_data": recipient.get("meta_data"),
            },
            "name": data.get("name") or group["course_name"],
            "description": data.get("description") or group["course_description"],
            "issued_on": _today(),
            "expired_on": None,
            "complete": bool(data.get("complete", True)),
            "approve": bool(data.get("approve", True)) and not owner.no_credits,
            "private": bool(data.get("private", False)),
            "custom_attributes": dict(data.get("custom_attributes") or {}),
            "meta_data": dict(data.get("meta_data") or {}),
            "evidence_items": [],
            "license_id": data.get("id"),
            "created_at": now,
            "updated_at": now,
        }

    def store_credential(
        self, group_id: int, *, email: str, name: str = "Seeded Learner", account: str = "main"
    ) -> dict:
        """Store a credential with no request or duplicate check: bulk seeding for tests and benchmarks."""
        with self.lock:
            owner = self.account(account)
            credential = self._credential_record(
                owner, owner.groups[group_id], {"recipient": {"name": name, "email": email}}
            )
            owner.credentials[credential["id"]] = credential
            owner.remember(credential)
            return credential

    def _check_duplicate(self, owner: FakeAccount, group: dict[str, Any], email: str) -> None:
        if group["allow_duplicate_credentials"]:
            return
        for other in owner.credentials_of([email]):
            if other["group_id"] != group["id"] or other["recipient"]["email"].lower() != email.lower():
                continue
            if self.expired_blocks_duplicates or self.is_live(other):
                raise _unprocessable({"recipient.email": [DUPLICATE_MESSAGE]})

    def _has_live_twin(self, owner: FakeAccount, credential: dict[str, Any]) -> bool:
        recipient = credential["recipient"]
        recipient_ids = [recipient["id"]] if recipient.get("id") is not None else []
        for other in owner.credentials_of([recipient["email"]], recipient_ids):
            if other["group_id"] != credential["group_id"] or not self.is_live(other):
                continue
            same_email = other["recipient"]["email"].lower() == recipient["email"].lower()
            same_id = recipient.get("id") is not None and str(other["recipient"].get("id")) == str(recipient["id"])
            if same_email or same_id:
                return True
        return False

    def _evidence(self, items: Any) -> list[dict[str, Any]]:
        if items is None:
            return []
        if not isinstance(items, list):
            raise _unprocessable({"evidence_items": ["must be a list"]})
        evidence = []
        for position, item in enumerate(items, start=1):
            if not isinstance(item, dict) or not item.get("description"):
                raise _unprocessable({"evidence_items.description": ["can't be blank"]})
            if item.get("category") not in EVIDENCE_CATEGORIES:
                raise _unprocessable({"evidence_items.category": ["is not included in the list"]})
            grade = None
            if item["category"] == "grade":
                try:
                    grade = {"grade": float(str(item.get("string_object")))}
                except ValueError:
                    raise _unprocessable({"evidence_items.string_object": ["is not a number"]}) from None
            evidence.append(
                {
                    "id": next(self._evidence_ids),
                    "description": str(item["description"]),
                    "preview_image_url": None,
                    "link_url": item.get("url") or item.get("file"),
                    "type": item["category"],
                    "string_object": grade,
                    "supplemental": False,
                    "position": position,
                }
            )
        return evidence

    @FakeServer.route("GET", r"/v1/credentials/(?P<credential_id>[^/]+)")
    def show_credential(self, request: FakeRequest, credential_id: str) -> FakeResponse:
        """One credential, with a string id."""
        owner = self._owner(request)
        credential = self._stored(owner, credential_id)
        return FakeResponse(200, {"credential": self.credential_json(owner, credential, request.base_url)})

    @FakeServer.route("PUT", r"/v1/credentials/(?P<credential_id>[^/]+)")
    def put_credential(self, request: FakeRequest, credential_id: str) -> FakeResponse:
        """Update a credential (expiring it sets ``expired_on``)."""
        return self._update(request, credential_id)

    @FakeServer.route("PATCH", r"/v1/credentials/(?P<credential_id>[^/]+)")
    def patch_credential(self, request: FakeRequest, credential_id: str) -> FakeResponse:
        """PATCH behaves as PUT."""
        return self._update(request, credential_id)

    def _update(self, request: FakeRequest, credential_id: str) -> FakeResponse:
        owner = self._owner(request)
        credential = self._stored(owner, credential_id)
        changes = self._wrapped(request)
        updated = dict(credential)
        for key in ("name", "description", "complete", "approve", "private"):
            if key in changes:
                updated[key] = changes[key]
        for key in ("custom_attributes", "meta_data"):
            if key in changes:
                updated[key] = dict(changes[key] or {})
        for key in ("issued_on", "expired_on"):
            if key in changes:
                updated[key] = _day(changes[key], key)
        if "group_id" in changes:
            updated["group_id"] = self._group(owner, changes["group_id"])["id"]
        if isinstance(changes.get("recipient"), dict):
            updated["recipient"] = {**credential["recipient"], **changes["recipient"]}
        updated["issued_on"] = updated["issued_on"] or credential["issued_on"]
        updated["updated_at"] = _timestamp()
        owner.credentials[credential["id"]] = updated
        owner.remember(updated)
        if not self.update_returns_credential:
            return FakeResponse(200, {"success": True})
        return FakeResponse(200, {"credential": self.credential_json(owner, updated, request.base_url)})

    @FakeServer.route("DELETE", r"/v1/credentials/(?P<credential_id>[^/]+)")
    def delete_credential(self, request: FakeRequest, credential_id: str) -> FakeResponse:
        """Delete a credential and answer with it; later calls get 404."""
        owner = self._owner(request)
        credential = self._stored(owner, credential_id)
        body = {"credential": self.credential_json(owner, credential, request.base_url)}
        del owner.credentials[credential["id"]]
        return FakeResponse(200, body)

    # -- credential search --------------------------------------------------------------------------
    @FakeServer.route("POST", r"/v2/credentials/search")
    def search_v2(self, request: FakeRequest) -> FakeResponse:
        """The v2 search: operators, whitelisted sort, offset or cursor paging, flat items."""
        owner = self._owner(request)
        body = self._body(request)
        query = body.get("query")
        if not isinstance(query, dict):
            raise _invalid_search("query is required")
        predicates = [self._predicate(key, value) for key, value in query.items()]
        sort = self._sort_keys(body.get("sort"))
        fingerprint = hashlib.sha256(json.dumps([query, body.get("sort")], sort_keys=True).encode()).hexdigest()[:16]
        candidates = self._search_candidates(owner, query)
        hits = self.cached_listing(
            ("search", owner.name, fingerprint), lambda: _hits(owner, candidates, predicates, sort)
        )
        start, size, offset_mode = self._page(body.get("page"), fingerprint)
        page = hits[start : start + size]
        cursor = _encode_cursor(start + len(page), fingerprint) if page else None
        return FakeResponse(
            200,
            {
                "credentials": [self.search_item_json(owner, c, request.base_url) for c in page],
                "meta": {"count": len(hits), "from": start if offset_mode else None, "size": size, "cursor": cursor},
            },
        )

    @staticmethod
    def _search_candidates(owner: FakeAccount, query: dict[str, Any]) -> Iterable[dict[str, Any]]:
        """The credentials a query may match: those of its recipient e-mail or id when it names one, else all."""
        for key, value in query.items():
            match = _QUERY_KEY.match(key)
            field_name, operator = (match["field"], match["op"] or "eq") if match else (key, "eq")
            if field_name not in ("recipient_email", "recipient_id") or operator not in ("eq", "in"):
                continue
            values = value if operator == "in" and isinstance(value, list) else [value]
            if field_name == "recipient_email":
                return owner.credentials_of(emails=values)
            return owner.credentials_of(recipient_ids=values)
        return owner.credentials.values()

    @staticmethod
    def _predicate(key: str, expected: Any) -> Callable[[dict[str, Any]], bool]:
        match = _QUERY_KEY.match(key)
        field_name = match["field"] if match else key
        if field_name not in SEARCH_FIELDS:
            raise _invalid_search(f"Query field {key} is not supported")
        operators = SEARCH_FIELDS[field_name]
        operator = match["op"] if match else None
        if not operators:
            if operator is not None or not isinstance(expected, dict):
                raise _invalid_search(f"Query field {field_name} only supports an object match")
            return lambda c: _contains(_field_value(c, field_name), expected)
        operator = operator or "eq"
        if operator not in operators:
            raise _invalid_search(f"Operation {operator} is not supported for {field_name}")
        if operator == "in" and not isinstance(expected, list):
            raise _invalid_search(f"{key} expects a list")
        if operator in ("lt", "lte", "gt", "gte") and not (isinstance(expected, str) and _DATE.match(expected)):
            raise _invalid_search(f"{key} expects a date in the format YYYY-MM-DD")
        return _comparison(field_name, operator, expected)

    @staticmethod
    def _sort_keys(sort: Any) -> list[tuple[str, bool]]:
        if sort is None:
            return [("id", False)]
        if not isinstance(sort, dict):
            raise _invalid_search("sort must be an object")
        keys = []
        for key, order in sort.items():
            if key not in SORT_FIELDS:
                raise _invalid_search(f"Sort field {key} is not supported")
            if order not in ("asc", "desc"):
                raise _invalid_search(f"Sort order {order} is not supported")
            keys.append((key, order == "desc"))
        return keys

    def _page(self, page: Any, fingerprint: str) -> tuple[int, int, bool]:
        """(start, size, offset mode) of a ``page`` object."""
        page = page if page is not None else {}
        if not isinstance(page, dict):
            raise _invalid_search("page must be an object")
        if "from" in page and "cursor" in page:
            raise _invalid_search("from and cursor cannot be used together")
        size = page.get("size", DEFAULT_PAGE_SIZE)
        if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= self.max_result_window:
            raise _invalid_search(f"size must be between 1 and {self.max_result_window}")
        size = min(size, self.page_size_cap or size)
        if "cursor" in page:
            return _decode_cursor(page["cursor"], fingerprint), size, False
        start = page.get("from", 0)
        if not isinstance(start, int) or isinstance(start, bool) or start < 0:
            raise _invalid_search("from must be a positive number")
        if start + size > self.max_result_window:
            raise _invalid_search(
                f"Result window is too large, from + size must be less than or equal to {self.max_result_window}; "
                "use the cursor to page further"
            )
        return start, size, True

    def _page_numbers(self, filters: dict[str, Any]) -> tuple[int, int]:
        """(page, page size) of a v1 listing, 1-based, the size capped by ``page_size_cap``."""
        page = _as_int(filters.get("page", 1)) or 1
        size = max(_as_int(filters.get("page_size", DEFAULT_PAGE_SIZE)) or DEFAULT_PAGE_SIZE, 1)
        return max(page, 1), min(size, self.page_size_cap or size)

    @FakeServer.route("GET", r"/v1/all_credentials")
    def all_credentials(self, request: FakeRequest) -> FakeResponse:
        """Deprecated v1 listing, filtered by query parameters."""
        owner = self._owner(request)
        filters = {key: values[0] for key, values in request.query.items() if values}
        return self._v1_list(owner, request, filters, email_key="email", id_key="recipient_id")

    @FakeServer.route("POST", r"/v1/credentials/search")
    def search_v1(self, request: FakeRequest) -> FakeResponse:
        """Deprecated v1 search (strictly rate limited), filtered by the JSON body."""
        owner = self._owner(request)
        filters = self._body(request, required=False)
        return self._v1_list(owner, request, filters, email_key="recipient.email", id_key="recipient.id")

    def _v1_list(
        self, owner: FakeAccount, request: FakeRequest, filters: dict[str, Any], *, email_key: str, id_key: str
    ) -> FakeResponse:
        page, size = self._page_numbers(filters)
        hits = sorted(
            (c for c in owner.credentials.values() if _v1_matches(c, filters, email_key, id_key)),
            key=lambda c: c["id"],
        )
        items = hits[(page - 1) * size : page * size]
        return FakeResponse(
            200,
            {
                "credentials": [self.credential_json(owner, c, request.base_url, in_list=True) for c in items],
                "meta": _page_meta(len(hits), page, size),
            },
        )

    # -- groups, designs, issuer --------------------------------------------------------------------
    @FakeServer.route("GET", r"/v1/issuer/all_groups")
    def all_groups(self, request: FakeRequest) -> FakeResponse:
        """Deprecated group listing; parameters in the query string (or a JSON body)."""
        owner = self._owner(request)
        filters = {**self._body(request, required=False), **{k: v[0] for k, v in request.query.items() if v}}
        return self._group_list(owner, filters)

    @FakeServer.route("POST", r"/v1/issuer/groups/search")
    def search_groups(self, request: FakeRequest) -> FakeResponse:
        """Group search: ids, partial names, meta_data, update dates, paging."""
        owner = self._owner(request)
        return self._group_list(owner, self._body(request, required=False))

    def _group_list(self, owner: FakeAccount, filters: dict[str, Any]) -> FakeResponse:
        page, size = self._page_numbers(filters)
        hits = [g for g in sorted(owner.groups.values(), key=lambda g: g["id"]) if _group_matches(g, filters)]
        items = hits[(page - 1) * size : page * size]
        return FakeResponse(
            200, {"groups": [self.group_json(owner, g) for g in items], "meta": _page_meta(len(hits), page, size)}
        )

    @FakeServer.route("GET", r"/v1/issuer/groups/(?P<group_id>[^/]+)")
    def show_group(self, request: FakeRequest, group_id: str) -> FakeResponse:
        """One group."""
        owner = self._owner(request)
        number = _as_int(group_id)
        if number is None or number not in owner.groups:
            return FakeResponse(404, dict(GROUP_NOT_FOUND_BODY))
        return FakeResponse(200, {"group": self.group_json(owner, owner.groups[number])})

    @FakeServer.route("GET", r"/v1/designs/(?P<design_id>[^/]+)")
    def show_design(self, request: FakeRequest, design_id: str) -> FakeResponse:
        """One design, with the URL of its rendered image."""
        owner = self._owner(request)
        number = _as_int(design_id)
        if number is None or number not in owner.designs:
            return self._not_found()
        design = owner.designs[number]
        return FakeResponse(
            200,
            {
                "design": {
                    "id": number,
                    "name": design["name"],
                    "rasterized_content_url": f"{request.base_url}v1/frontend/designs/{number}.png",
                    "extra_field": "unknown fields must be ignored",
                }
            },
        )

    @FakeServer.route("GET", r"/v1/issuer/details")
    def issuer_details(self, request: FakeRequest) -> FakeResponse:
        """The issuer of the key's account."""
        owner = self._owner(request)
        return FakeResponse(
            200,
            {
                "issuer": {
                    "id": owner.issuer_id,
                    "name": f"Fake issuer {owner.name}",
                    "email": f"issuer-{owner.name}@example.com",
                    "certificate_left": 0 if owner.no_credits else 1000,
                    "language": "en",
                    "url": request.base_url,
                    "spiderable": True,
                    "whitelisted_domain": "",
                    "linkedin_company_id": None,
                    "linkedin_school_id": None,
                    "extra_field": "unknown fields must be ignored",
                }
            },
        )


# -- search helpers ----------------------------------------------------------------------------------
def _token_from(header: str) -> str:
    """The key of ``Token token=K``, ``Token token="K"``, ``Token K`` or ``Bearer K``."""
    scheme, _, rest = header.strip().partition(" ")
    rest = rest.strip()
    if scheme.lower() == "bearer":
        return rest
    if scheme.lower() != "token":
        return ""
    if rest.lower().startswith("token="):
        rest = rest[len("token=") :].split(",", 1)[0].strip()
        return rest[1:-1] if len(rest) >= 2 and rest[0] == rest[-1] == '"' else rest
    return rest


#: How each searchable field is read from a stored credential.
_FIELD_GETTERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "uuid": lambda c: c["uuid"],
    "group.id": lambda c: c["group_id"],
    "recipient_name": lambda c: c["recipient"]["name"],
    "recipient_email": lambda c: c["recipient"]["email"],
    "recipient_id": lambda c: c["recipient"].get("id"),
    "license_id": lambda c: c["license_id"],
    "approve": lambda c: c["approve"],
    "issued_on": lambda c: c["issued_on"],
    "expired_on": lambda c: c["expired_on"],
    "updated_at": lambda c: c["updated_at"][:10],
    "created_at": lambda c: c["created_at"][:10],
    "meta_data": lambda c: c["meta_data"],
    "recipient_meta_data": lambda c: c["recipient"].get("meta_data"),
    "custom_attributes": lambda c: c["custom_attributes"],
}


def _field_value(credential: dict[str, Any], field_name: str) -> Any:
    return _FIELD_GETTERS[field_name](credential)


def _normal(field_name: str, value: Any) -> Any:
    """Compare e-mails without case, booleans as booleans and everything else as text."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip()
    return text.lower() if field_name == "recipient_email" else text


def _comparison(field_name: str, operator: str, expected: Any) -> Callable[[dict[str, Any]], bool]:
    """A test of one credential; the expected values are normalised once, not per credential."""
    read = _FIELD_GETTERS[field_name]
    if operator in ("eq", "in"):
        accepted = {_normal(field_name, item) for item in (expected if operator == "in" else [expected])}
        return lambda credential: _normal(field_name, read(credential)) in accepted
    compare = {"lt": operator_lt, "lte": operator_le, "gt": operator_gt, "gte": operator_ge}[operator]

    def test(credential: dict[str, Any]) -> bool:
        actual = _normal(field_name, read(credential))
        return actual is not None and compare(actual, expected)

    return test


#: How each sort key is read from a stored credential (the group name needs the owner's groups).
_SORT_GETTERS: dict[str, Callable[[FakeAccount, dict[str, Any]], Any]] = {
    "id": lambda owner, c: c["id"],
    "recipient_name": lambda owner, c: c["recipient"]["name"].lower(),
    "group.name": lambda owner, c: owner.groups[c["group_id"]]["name"].lower(),
    "issued_on": lambda owner, c: c["issued_on"],
    "expired_on": lambda owner, c: c["expired_on"] or "",
}


def _hits(
    owner: FakeAccount,
    candidates: Iterable[dict[str, Any]],
    predicates: list[Callable[[dict], bool]],
    sort: list[tuple[str, bool]],
) -> list[dict]:
    """The candidate credentials that pass every predicate, sorted by the sort keys."""
    hits = [c for c in candidates if all(test(c) for test in predicates)]
    for key, descending in reversed(sort):
        hits.sort(key=lambda c, key=key: _sort_value(owner, c, key), reverse=descending)
    return hits


def _sort_value(owner: FakeAccount, credential: dict[str, Any], key: str) -> tuple[bool, Any]:
    return (key == "expired_on" and credential["expired_on"] is None, _SORT_GETTERS[key](owner, credential))


def _encode_cursor(position: int, fingerprint: str) -> str:
    return base64.b64encode(json.dumps([position, fingerprint]).encode()).decode()


def _decode_cursor(cursor: Any, fingerprint: str) -> int:
    try:
        position, owner_fingerprint = json.loads(base64.b64decode(str(cursor), validate=True))
    except (binascii.Error, ValueError, TypeError) as err:
        raise _invalid_search("cursor is not valid") from err
    if owner_fingerprint != fingerprint or not isinstance(position, int) or position < 0:
        raise _invalid_search("cursor does not belong to this query")
    return position


def _v1_matches(credential: dict[str, Any], filters: dict[str, Any], email_key: str, id_key: str) -> bool:
    recipient = credential["recipient"]
    checks: Iterable[tuple[str, Any]] = (
        ("group_id", credential["group_id"]),
        (email_key, recipient["email"].lower()),
        (id_key, recipient.get("id")),
        ("recipient.name", recipient["name"]),
        ("license_id", credential["license_id"]),
    )
    for key, actual in checks:
        wanted = filters.get(key)
        if wanted in (None, ""):
            continue
        wanted = str(wanted).lower() if key == email_key else str(wanted)
        if str(actual) != wanted:
            return False
    ranges = (
        ("start_date", "end_date", credential["issued_on"]),
        ("start_updated_date", "end_updated_date", credential["updated_at"][:10]),
    )
    for start_key, end_key, actual in ranges:
        if filters.get(start_key) and actual < str(filters[start_key]):
            return False
        if filters.get(end_key) and actual > str(filters[end_key]):
            return False
    return True


def _group_matches(group: dict[str, Any], filters: dict[str, Any]) -> bool:
    ids = filters.get("ids")
    if isinstance(ids, list) and group["id"] not in {_as_int(item) for item in ids}:
        return False
    for key in ("name", "course_name"):
        if filters.get(key) and str(filters[key]).lower() not in group[key].lower():
            return False
    if filters.get("meta_data") and not _contains(group["meta_data"], filters["meta_data"]):
        return False
    updated = group["updated_at"][:10]
    if filters.get("start_updated_date") and updated < str(filters["start_updated_date"]):
        return False
    return not (filters.get("end_updated_date") and updated > str(filters["end_updated_date"]))


class AccredibleHarness(ProviderHarness):
    """Harness of :class:`FakeAccredible` for the conformance suite, integration tests and the demo."""

    kind = "accredible"
    #: Path of any single credential (show, update, delete).
    CREDENTIAL_PATH = r"^/v1/credentials/(?!search/?$)[^/]+/?$"
    OPERATION_ROUTES: ClassVar[dict[str, tuple[str, str]]] = {
        "list_templates": ("POST", r"^/v1/issuer/groups/search/?$"),
        "issue": ("POST", r"^/v1/credentials/?$"),
        "bulk_issue": ("POST", r"^/v2/credentials/bulk_create/?$"),
        "find": ("POST", r"^/v2/credentials/search/?$"),
        "get": ("GET", CREDENTIAL_PATH),
        "revoke": ("PUT|PATCH|DELETE", CREDENTIAL_PATH),
        "any": ("*", r"^/"),
    }

    server: FakeAccredible

    def make_server(self) -> FakeAccredible:
        """A fake whose ``main`` account uses the harness token."""
        server = FakeAccredible()
        server.add_account("main", self.token)
        return server

    def account_fields(self, account: str = "main") -> dict[str, str]:
        """Base URL and key of one fake account (Accredible has no organization id)."""
        return {"base_url": self.server.base_url, "token": self.server.account(account).token, "organization_id": ""}

    def seed_template(
        self, name: str, *, account: str = "main", state: str = "active", allow_duplicates: bool = False
    ) -> str:
        """Create a group; Accredible groups have no draft or archived state."""
        if state != "active":
            raise ValueError(f"Accredible groups have no {state!r} state")
        group = self.server.add_group(name, account=account, allow_duplicate_credentials=allow_duplicates)
        return str(group["id"])

    def seed_award(self, template_id: str, email: str, account: str = "main") -> str:
        """Store a credential of the group for the address, without a request; return its id."""
        return str(self.server.store_credential(int(template_id), email=email, account=account)["id"])

    def _credentials(self, account: str) -> list[dict[str, Any]]:
        owner = self.server.account(account)
        with self.server.lock:
            return [self.server.credential_json(owner, c, self.server.base_url) for c in owner.credentials.values()]

    def live_awards(self, template_id: str, email: str, account: str = "main") -> list[dict]:
        """Unexpired credentials of this group for this e-mail."""
        return [
            c
            for c in self._credentials(account)
            if str(c["group_id"]) == str(template_id)
            and c["recipient"]["email"].lower() == email.lower()
            and FakeAccredible.is_live(c)
        ]

    def all_awards(self, account: str = "main") -> list[dict]:
        """Every credential of the account, expired ones included."""
        return self._credentials(account)

    def live_awards_by_email(self, template_id: str, account: str = "main") -> dict[str, list[dict]]:
        """Unexpired credentials of the group, by lower-cased recipient e-mail."""
        found: dict[str, list[dict]] = {}
        for credential in self._credentials(account):
            if str(credential["group_id"]) == str(template_id) and FakeAccredible.is_live(credential):
                found.setdefault(credential["recipient"]["email"].lower(), []).append(credential)
        return found

    def award_email(self, award: dict) -> str:
        """The recipient address of a credential."""
        return award["recipient"]["email"]

    def award_state(self, external_id: str, account: str = "main") -> AwardState:
        """EXPIRED from the expiry day on, DELETED when gone, ACCEPTED otherwise."""
        credential = self.server.credential(external_id, account)
        if credential is None:
            return AwardState.DELETED
        return AwardState.ACCEPTED if FakeAccredible.is_live(credential) else AwardState.EXPIRED

    def set_award_state(self, external_id: str, state: AwardState, account: str = "main") -> None:
        """Expire, delete or restore a credential as an administrator would in the dashboard."""
        with self.server.lock:
            credential = self.server.credential(external_id, account)
            if credential is None:
                raise KeyError(f"No credential {external_id} in account {account!r}")
            if state is AwardState.DELETED:
                del self.server.account(account).credentials[credential["id"]]
                return
            if state in (AwardState.EXPIRED, AwardState.REVOKED):
                credential["expired_on"] = _today()
            elif state in (AwardState.ACCEPTED, AwardState.PENDING):
                credential["expired_on"] = None
            else:
                raise ValueError(f"Accredible credentials cannot be {state}")
            credential["updated_at"] = _timestamp()

    def set_page_size(self, size: int) -> None:
        """Serve every listing ``size`` items a page until the next reset."""
        self.server.page_size_cap = size

    def duplicates_created(self) -> int:
        """How many second live credentials the fake stored for one group and recipient."""
        return self.server.duplicates_stored

    def operation_route(self, operation: str) -> tuple[str, str]:
        """(method, path regex) of an abstract operation; "revoke" is the PUT, PATCH or DELETE on one credential."""
        if operation not in self.OPERATION_ROUTES:
            raise ValueError(f"Unknown operation {operation!r}")
        return self.OPERATION_ROUTES[operation]
