"""Client of the Accredible Credential API.

Accredible calls a badge template a *group* and an issued badge a *credential*.
The account is reached through a regional host (``api.``, ``eu.api.`` or
``sandbox.api.accredible.com``) configured without an API version: each call
names its own ``/v1`` or ``/v2`` path. A base URL that ends in ``/v1`` or
``/v2`` is tolerated and trimmed.

How Accredible's API is mapped onto :class:`BaseProvider`:

* **Issue** is ``POST /v1/credentials``. It is not idempotent: the caller must
  run :meth:`AccredibleProvider.find_award` before retrying a create whose
  answer was lost. A group that refuses duplicates answers 422 "has already
  been taken", raised as :class:`DuplicateAwardError`.
* **Notifications**: the create call has no per-credential switch for the
  recipient's e-mail, so ``IssueRequest.suppress_notification`` cannot be
  honoured here; whether Accredible mails the learner is decided by the
  group's and department's settings in the Accredible dashboard.
* **Unpublished credentials**: an account without credits still creates the
  credential but does not publish it (``approve: false``). The award is then
  returned with ``published=False``; it exists and must never be re-created.
* **States**: Accredible has no acceptance step, so an unexpired credential is
  ``ACCEPTED`` (published or not) and one whose ``expired_on`` is today or
  earlier is ``EXPIRED``. An ``expired_on`` that cannot be read is ``UNKNOWN``.
* **Revoke**: there is no revoke endpoint. The default mode expires the
  credential (``expired_on`` = today, UTC); the delete mode removes it. The
  revocation reason is not sent (Accredible has no field for it).
* **Re-award**: a credential this plugin expired is brought back rather than
  created again (:meth:`AccredibleProvider.reinstate`): its ``expired_on`` is
  cleared (or set to the new award's expiry) and its issue day and attributes
  are updated. This works whether or not Accredible counts an expired
  credential as a duplicate of a new one.
* **Evidence**: Accredible evidence items are links, files, grades or
  transcripts; evidence without a URL is not sent.
* **Listings** follow every page: groups through ``meta.next_page`` (up to
  ``total_pages``), credentials through the v2 search by offset, then by
  cursor beyond the first 10,000 hits. A listing known to be cut short (the
  page limit reached, or no cursor while counted hits remain) raises instead
  of returning a partial list, since a missing item reads as "deleted at the
  provider".
* **Bulk create**: up to 30 credentials in one ``POST /v2/credentials/bulk_create``
  (:meth:`AccredibleProvider.issue_many`), answered 200, 207 (mixed) or 422
  (none created), with one result per credential.
* **Rate limit**: 2,000 requests per 5 minutes per source IP, counted in 30 s
  periods. A 429 without ``Retry-After`` asks the caller to wait one period.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import requests

from badges_bridge.exceptions import (
    DuplicateAwardError,
    NotFoundError,
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)
from badges_bridge.providers.base import (
    AccountConfig,
    Award,
    AwardState,
    BaseProvider,
    BulkOutcome,
    IssueRequest,
    Recipient,
    RemoteTemplate,
    RevokeMode,
)
from badges_bridge.providers.http import HttpClient

log = logging.getLogger(__name__)

#: Groups asked for per page of ``POST /v1/issuer/groups/search``.
GROUPS_PAGE_SIZE = 50
#: Credentials asked for per page of ``POST /v2/credentials/search``.
SEARCH_PAGE_SIZE = 100
#: Offset paging of the v2 search only reaches this many results; the cursor goes further.
OFFSET_WINDOW = 10_000
#: Safety stop for any paged listing.
MAX_PAGES = 10_000
#: Accredible counts requests in periods of this many seconds.
RATE_LIMIT_PERIOD_SECONDS = 30.0
#: The v2 bulk create endpoint (at most ``AccredibleProvider.bulk_size`` credentials a request).
BULK_CREATE_PATH = "v2/credentials/bulk_create"
#: Words that mark a 422 answer to a create as "this recipient already holds the credential".
DUPLICATE_MARKERS = ("already been taken", "duplicate")

_VERSION_SUFFIX = re.compile(r"/v[12]/?$")


class AccredibleTokenAuth(requests.auth.AuthBase):
    """Sends the API key in the documented form ``Authorization: Token token=<key>``."""

    def __init__(self, token: str):
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Token token={self._token}"
        return request

    def __repr__(self) -> str:
        return "AccredibleTokenAuth(token=<hidden>)"


def accredible_error_message(body: Any) -> str:
    """Readable message from any of Accredible's error bodies.

    Looks at ``errors`` (string, field map or list), ``error``, ``message``,
    ``data`` when ``success`` is false, then ``details[].message|reason``;
    a body that is not JSON is used as text.
    """
    if not isinstance(body, dict):
        return _text(body)
    details = _text(body.get("details"))
    for key in ("errors", "error", "message"):
        if body.get(key):
            return _with_details(_text(body[key]), details)
    if body.get("success") is False and body.get("data"):
        return _text(body["data"])
    return details


def _with_details(message: str, details: str) -> str:
    if not details or details in message:
        return message
    return f"{message} ({details})"


def _text(value: Any) -> str:
    """Flatten one error value (string, list, field map or detail object) into a line."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return "; ".join(text for text in map(_text, value) if text)
    if isinstance(value, dict):
        lead = value.get("message") or value.get("reason")
        if isinstance(lead, str):
            prefix = f"{value['property']}: " if value.get("property") else ""
            return _with_details(f"{prefix}{lead.strip()}", _text(value.get("details")))
        parts = ((key, _text(item)) for key, item in value.items())
        return "; ".join(f"{key}: {text}" for key, text in parts if text)
    return str(value)


class AccredibleHttpClient(HttpClient):
    """The shared HTTP layer, with Accredible's fallback wait for a 429 without Retry-After."""

    not_found_step = (
        "Sync templates in case the group was removed at Accredible, and check that the API base URL names the "
        "account's region (US, EU or sandbox)."
    )

    def error_for(self, response: requests.Response, method: str, path: str) -> ProviderError:
        """Map an error response; a rate-limit answer always carries a wait."""
        error = super().error_for(response, method, path)
        if isinstance(error, RateLimitedError) and error.retry_after is None:
            error.retry_after = RATE_LIMIT_PERIOD_SECONDS
        return error


class AccredibleProvider(BaseProvider):
    """Issues, finds and revokes Accredible credentials for one account (API key)."""

    kind = "accredible"
    display_name = "Accredible"
    base_url_presets = {
        "us": "https://api.accredible.com/",
        "eu": "https://eu.api.accredible.com/",
        "sandbox": "https://sandbox.api.accredible.com/",
    }
    requires_organization_id = False
    default_rate_limit = (2000, 300)
    bulk_size = 30

    def __init__(self, config: AccountConfig):
        super().__init__(config)
        self.http = AccredibleHttpClient(
            _VERSION_SUFFIX.sub("/", config.base_url.strip()),
            auth=AccredibleTokenAuth(config.token),
            timeout=config.timeout,
            provider_name=self.display_name,
            error_parser=accredible_error_message,
            throttle=config.throttle,
            heartbeat=config.heartbeat,
        )

    @property
    def where(self) -> str:
        """Accredible and its API host, for messages."""
        return self.http.where

    # -- account and templates -------------------------------------------------------------------
    def check_connection(self) -> str:
        """Read the issuer details, which any valid key may do."""
        _status, body = self.http.request("GET", "v1/issuer/details")
        issuer = _object(body, "issuer", "GET v1/issuer/details")
        return f"Accredible issuer {issuer.get('name') or issuer.get('id')}"

    def iter_templates(self) -> Iterator[RemoteTemplate]:
        """Yield every group of the account, page by page."""
        for group in self._iter_groups():
            yield _template(group)

    def _iter_groups(self) -> Iterator[dict]:
        page = 1
        for _ in range(MAX_PAGES):
            _status, body = self.http.request(
                "POST", "v1/issuer/groups/search", json_body={"page": page, "page_size": GROUPS_PAGE_SIZE}
            )
            groups = _list(body, "groups", "POST v1/issuer/groups/search")
            yield from groups
            next_page = _next_page(body.get("meta"), page)
            if not groups or next_page is None:
                return
            page = next_page
        raise PermanentProviderError(f"Accredible listed more than {MAX_PAGES} pages of groups; stopped")

    # -- issue and look up -------------------------------------------------------------------------
    def issue(self, request: IssueRequest) -> Award:
        """Create the credential; a 422 "already been taken" raises DuplicateAwardError."""
        try:
            _status, body = self.http.request("POST", "v1/credentials", json_body=self.issue_payload(request))
        except PermanentProviderError as err:
            if err.status_code == 422 and _mentions_duplicate(err.provider_message):
                raise DuplicateAwardError(
                    f"{self.where} says the recipient already holds this credential",
                    status_code=err.status_code,
                    provider_message=err.provider_message,
                ) from err
            raise
        award = _award_from_v1(_object(body, "credential", "POST v1/credentials"))
        if not award.published:
            log.warning("Accredible created credential %s without publishing it (no credits?)", award.external_id)
        log.info("Accredible credential %s created in group %s", award.external_id, request.template_id)
        return award

    @staticmethod
    def issue_payload(request: IssueRequest) -> dict[str, Any]:
        """The JSON body of ``POST /v1/credentials`` for one request."""
        return {"credential": credential_payload(request)}

    def issue_many(self, requests: list[IssueRequest]) -> list[BulkOutcome]:
        """Create up to 30 credentials with ``POST /v2/credentials/bulk_create``; one outcome per request.

        A 200, 207 (mixed) or 422 (none created) answer carries one result per credential, in
        order. A result with a credential is a success (unpublished when it also carries an
        ``insufficient_credits`` error); one without is refused, as a duplicate or with the
        provider's message. Any other answer, or results that do not match the requests, leaves
        the outcome unknown: TransientProviderError.
        """
        if not 0 < len(requests) <= self.bulk_size:
            raise ValueError(f"Accredible bulk create takes 1 to {self.bulk_size} credentials, not {len(requests)}")
        payload = {"credentials": [credential_payload(request) for request in requests]}
        _status, body = self.http.request("POST", BULK_CREATE_PATH, json_body=payload, answers=(422,))
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list) or len(results) != len(requests):
            raise TransientProviderError(
                f"Accredible answered a bulk create of {len(requests)} credentials without one result each"
            )
        return [_bulk_outcome(result) for result in results]

    def find_award(self, template_id: str, recipient: Recipient) -> Award | None:
        """Look the credential up by our recipient id, then by e-mail; unexpired ones first."""
        fallback: Award | None = None
        for key, value in (("recipient_id", recipient.earner_id), ("recipient_email", recipient.email)):
            if not value:
                continue
            query = {"group.id": _group_id(template_id), key: value}
            matches = [
                _award_from_v2(item)
                for item in self._search(query, sort={"id": "desc"})
                if _matches(item, template_id, key, value)
            ]
            live = [award for award in matches if award.state.is_live]
            if live:
                return live[0]
            fallback = fallback or (matches[0] if matches else None)
        return fallback

    def get_award(self, external_id: str) -> Award:
        """Fetch one credential; NotFoundError when Accredible no longer has it."""
        _status, body = self.http.request("GET", _credential_path(external_id))
        return _award_from_v1(_object(body, "credential", "GET v1/credentials/{id}"))

    def reinstate(self, external_id: str, request: IssueRequest) -> Award | None:
        """Un-expire this learner's credential of this group for a new award; None when it is someone else's."""
        current = self.get_award(external_id)
        if not _belongs_to(current, request):
            log.warning("Accredible credential %s belongs to another recipient or group", external_id)
            return None
        if current.state.is_live:
            return current
        payload = credential_payload(request)
        changes = {key: payload.get(key) for key in ("issued_on", "expired_on", "meta_data", "custom_attributes")}
        changes["recipient"] = {"name": payload["recipient"]["name"], "email": payload["recipient"]["email"]}
        _status, body = self.http.request("PUT", _credential_path(external_id), json_body={"credential": changes})
        credential = body.get("credential") if isinstance(body, dict) else None
        award = _award_from_v1(credential) if isinstance(credential, dict) else self.get_award(external_id)
        if not award.state.is_live:
            raise TransientProviderError(
                f"{self.where} did not lift the expiry of credential {external_id}", status_code=200
            )
        log.info("Accredible credential %s reinstated", external_id)
        return award

    def discard(self, external_id: str) -> Award:
        """Delete a credential created twice by mistake."""
        return self._delete(external_id)

    # -- revoke --------------------------------------------------------------------------------------
    def revoke(self, external_id: str, reason: str) -> Award:
        """Expire (default) or delete the credential; both succeed when already done."""
        if self.config.revoke_mode == RevokeMode.DELETE:
            return self._delete(external_id)
        try:
            return self._expire(external_id)
        except NotFoundError:
            return Award(external_id=external_id, state=AwardState.DELETED)

    def _expire(self, external_id: str) -> Award:
        current = self.get_award(external_id)
        if current.state is AwardState.EXPIRED:
            return current
        today = _today().isoformat()
        _status, body = self.http.request(
            "PUT", _credential_path(external_id), json_body={"credential": {"expired_on": today}}
        )
        credential = body.get("credential") if isinstance(body, dict) else None
        if isinstance(credential, dict) and credential.get("expired_on"):
            award = _award_from_v1(credential)
        else:
            award = self.get_award(external_id)
        if award.state is not AwardState.EXPIRED:
            raise TransientProviderError(
                f"{self.where} did not apply the expiry date to credential {external_id}", status_code=200
            )
        log.info("Accredible credential %s expired", external_id)
        return award

    def _delete(self, external_id: str) -> Award:
        try:
            _status, body = self.http.request("DELETE", _credential_path(external_id))
        except NotFoundError:
            return Award(external_id=external_id, state=AwardState.DELETED)
        credential = body.get("credential") if isinstance(body, dict) else None
        log.info("Accredible credential %s deleted", external_id)
        if isinstance(credential, dict) and credential.get("id") is not None:
            return replace(_award_from_v1(credential), state=AwardState.DELETED)
        return Award(external_id=external_id, state=AwardState.DELETED)

    # -- listing -----------------------------------------------------------------------------------
    def iter_awards(self, template_ids: list[str]) -> Iterator[Award]:
        """Yield every credential of these groups, expired ones included, oldest first."""
        if not template_ids:
            return
        query = {"group.id[in]": [_group_id(template_id) for template_id in template_ids]}
        for item in self._search(query, sort={"id": "asc"}):
            yield _award_from_v2(item)

    def _search(self, query: dict[str, Any], *, sort: dict[str, str]) -> Iterator[dict]:
        """Yield every v2 search hit: offset pages first, the cursor beyond the offset window."""
        offset, cursor, seen = 0, None, 0
        for _ in range(MAX_PAGES):
            page: dict[str, Any] = {"cursor": cursor} if cursor else {"from": offset}
            page["size"] = SEARCH_PAGE_SIZE
            _status, body = self.http.request(
                "POST", "v2/credentials/search", json_body={"query": query, "sort": sort, "page": page}
            )
            items = _list(body, "credentials", "POST v2/credentials/search")
            yield from items
            seen += len(items)
            meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
            count = meta.get("count")
            if _search_done(len(items), seen, count):
                return
            if cursor is None and seen + SEARCH_PAGE_SIZE <= OFFSET_WINDOW:
                offset = seen
                continue
            next_cursor = meta.get("cursor")
            if not next_cursor or next_cursor == cursor:
                if isinstance(count, int) and seen < count:
                    raise TransientProviderError(f"{self.where} search stopped after {seen} of {count} credentials")
                return
            cursor = next_cursor
        raise PermanentProviderError(f"Accredible search returned more than {MAX_PAGES} pages; stopped")


# -- payloads ----------------------------------------------------------------------------------------
def credential_payload(request: IssueRequest) -> dict[str, Any]:
    """The ``credential`` object of ``POST /v1/credentials`` for one issue request."""
    recipient = request.recipient
    person = {"name": recipient.full_name or recipient.email, "email": recipient.email}
    if recipient.earner_id:
        person["id"] = recipient.earner_id
    attributes = {str(key): str(value) for key, value in request.attributes.items()}
    credential: dict[str, Any] = {
        "recipient": person,
        "group_id": _group_id(request.template_id),
        "issued_on": _day_of(request.issued_at).isoformat(),
        "complete": True,
        "meta_data": {"source": "badges_bridge", **attributes},
    }
    if request.expires_at is not None:
        credential["expired_on"] = _day_of(request.expires_at).isoformat()
    if attributes:
        credential["custom_attributes"] = attributes
    evidence = _evidence_items(request)
    if evidence:
        credential["evidence_items"] = evidence
    return credential


def _evidence_items(request: IssueRequest) -> list[dict[str, str]]:
    """Evidence items: the course page first, each evidence that has a URL, then the final grade."""
    items = []
    if request.course_url:
        items.append({"description": request.course_name or "Course", "url": request.course_url, "category": "url"})
    for evidence in request.evidence:
        if evidence.url and evidence.url != request.course_url:
            description = evidence.name or evidence.description or evidence.url
            items.append({"description": description, "url": evidence.url, "category": "url"})
    if request.grade is not None:
        items.append({"description": "Final grade", "category": "grade", "string_object": f"{request.grade:f}"})
    return items


# -- answers -----------------------------------------------------------------------------------------
def _award_from_v1(credential: dict) -> Award:
    """Award from a v1 credential (``recipient`` object, ``group_id``, string or numeric id)."""
    recipient = credential.get("recipient") if isinstance(credential.get("recipient"), dict) else {}
    return Award(
        external_id=_credential_id(credential),
        state=_state(credential.get("expired_on")),
        template_id=_str(credential.get("group_id")),
        recipient_email=recipient.get("email") or "",
        earner_id=_str(recipient.get("id")),
        public_url=credential.get("url") or "",
        issued_at=_moment(credential.get("issued_on")),
        expires_at=_moment(credential.get("expired_on")),
        published=credential.get("approve") is not False,
    )


def _award_from_v2(item: dict) -> Award:
    """Award from a flat v2 search item (``recipient_email``, ``group: {id}``, numeric id)."""
    group = item.get("group") if isinstance(item.get("group"), dict) else {}
    return Award(
        external_id=_credential_id(item),
        state=_state(item.get("expired_on")),
        template_id=_str(group.get("id")),
        recipient_email=item.get("recipient_email") or "",
        earner_id=_str(item.get("recipient_id")),
        public_url=item.get("url") or "",
        issued_at=_moment(item.get("issued_on")),
        expires_at=_moment(item.get("expired_on")),
        published=item.get("approve") is not False,
    )


def _template(group: dict) -> RemoteTemplate:
    return RemoteTemplate(
        external_id=_str(group.get("id")),
        name=str(group.get("course_name") or group.get("name") or group.get("id")),
        description=group.get("course_description") or "",
        url=group.get("course_link") or "",
        state="active",
        allow_duplicates=bool(group.get("allow_duplicate_credentials")),
    )


def _matches(item: dict, template_id: str, key: str, value: str) -> bool:
    """Whether a search hit really is this group's credential for this recipient."""
    group = item.get("group") if isinstance(item.get("group"), dict) else {}
    if _str(group.get("id")) != template_id.strip():
        return False
    if key == "recipient_email":
        return str(item.get("recipient_email") or "").strip().lower() == value.strip().lower()
    return _str(item.get(key)) == value


def _bulk_outcome(result: Any) -> BulkOutcome:
    """One bulk create result: the credential created, or the refusal (the error key is spelt both ways)."""
    if not isinstance(result, dict):
        raise TransientProviderError("Accredible sent an unreadable bulk create result")
    error = result.get("errors") or result.get("error")
    credential = result.get("credential")
    if isinstance(credential, dict) and credential.get("id") is not None:
        award = _award_from_v1(credential)
        unpublished = isinstance(error, dict) and error.get("code") == "insufficient_credits"
        return BulkOutcome(award=replace(award, published=award.published and not unpublished))
    message = accredible_error_message(error) or "refused without a reason"
    if _mentions_duplicate(message):
        return BulkOutcome(
            error=DuplicateAwardError(
                "Accredible says the recipient already holds this credential", status_code=422, provider_message=message
            )
        )
    return BulkOutcome(
        error=PermanentProviderError("Accredible refused the credential", status_code=422, provider_message=message)
    )


def _belongs_to(award: Award, request: IssueRequest) -> bool:
    """Whether a credential is in the request's group and was issued to its recipient."""
    if award.template_id != str(request.template_id).strip():
        return False
    recipient = request.recipient
    same_id = bool(recipient.earner_id) and award.earner_id == recipient.earner_id
    return same_id or award.recipient_email.strip().lower() == recipient.email.strip().lower()


def _search_done(page_length: int, seen: int, count: Any) -> bool:
    """Whether a v2 search has no more hits: an empty page, every counted hit seen, or a short page.

    ``count`` is trusted only below the offset window, as a search engine may cap the total it reports
    there; a page shorter than asked for ends the search only when no trusted count says otherwise.
    """
    if page_length == 0:
        return True
    if isinstance(count, int) and not isinstance(count, bool) and count < OFFSET_WINDOW:
        return seen >= count
    return page_length < SEARCH_PAGE_SIZE


def _mentions_duplicate(message: str) -> bool:
    lowered = (message or "").lower()
    return any(marker in lowered for marker in DUPLICATE_MARKERS)


def _next_page(meta: Any, page: int) -> int | None:
    """The next page number of a groups listing, or None on the last page."""
    if not isinstance(meta, dict):
        return None
    try:
        next_page = int(meta["next_page"])
        current = int(meta.get("current_page") or page)
    except (KeyError, TypeError, ValueError):
        return None
    total = meta.get("total_pages")
    if next_page <= current or (isinstance(total, int) and current >= total):
        return None
    return next_page


def _object(body: Any, key: str, call: str) -> dict:
    value = body.get(key) if isinstance(body, dict) else None
    if not isinstance(value, dict):
        raise TransientProviderError(f"Accredible answered {call} without a {key!r} object")
    return value


def _list(body: Any, key: str, call: str) -> list[dict]:
    value = body.get(key) if isinstance(body, dict) else None
    if not isinstance(value, list):
        raise TransientProviderError(f"Accredible answered {call} without a {key!r} list")
    return [item for item in value if isinstance(item, dict)]


def _credential_id(credential: dict) -> str:
    external_id = _str(credential.get("id"))
    if not external_id:
        raise TransientProviderError("Accredible sent a credential without an id")
    return external_id


def _credential_path(external_id: str) -> str:
    return f"v1/credentials/{quote(str(external_id).strip(), safe='')}"


def _group_id(template_id: str) -> int | str:
    """Group ids are numbers; send them as such when they look like one."""
    text = str(template_id).strip()
    return int(text) if text.isdigit() else text


def _str(value: Any) -> str:
    """Ids come as strings or numbers; compare and store them as strings."""
    return "" if value is None else str(value).strip()


# -- dates -------------------------------------------------------------------------------------------
def _today() -> date:
    return datetime.now(UTC).date()


def _day_of(moment: datetime) -> date:
    """The UTC calendar day of an aware datetime (a naive one is taken as is)."""
    return (moment.astimezone(UTC) if moment.tzinfo else moment).date()


def _parse_day(value: Any) -> date | None:
    """Read ``YYYY-MM-DD`` (or a timestamp starting with it, or the deprecated ``DD/MM/YYYY``)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        pass
    try:
        return datetime.strptime(text, "%d/%m/%Y").date()  # noqa: DTZ007 - a calendar day, no time
    except ValueError:
        return None


def _moment(value: Any) -> datetime | None:
    day = _parse_day(value)
    return None if day is None else datetime(day.year, day.month, day.day, tzinfo=UTC)


def _state(expired_on: Any) -> AwardState:
    """EXPIRED from the expiry day on (day granularity), ACCEPTED before or without one."""
    if expired_on is None or expired_on == "":
        return AwardState.ACCEPTED
    day = _parse_day(expired_on)
    if day is None:
        return AwardState.UNKNOWN
    return AwardState.EXPIRED if day <= _today() else AwardState.ACCEPTED
