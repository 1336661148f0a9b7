"""The Credly client against the fake Credly over real HTTP on loopback."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from badges_bridge.exceptions import (
    AuthenticationError,
    ConfigurationError,
    DuplicateAwardError,
    NotFoundError,
    PermanentProviderError,
    TransientProviderError,
    WebhookPayloadError,
)
from badges_bridge.providers import get_provider_class
from badges_bridge.providers.base import AwardState, Evidence, IssueRequest, Recipient, RevokeMode
from badges_bridge.providers.credly import CredlyProvider
from badges_bridge.testing.conformance import issue_request, recipient
from badges_bridge.testing.fake_credly import CredlyHarness, FakeCredly
from badges_bridge.testing.server import FakeServer

BADGE = r"/badges/[^/]+$"
REVOKE = r"/badges/[^/]+/revoke$"
#: The fake behind the ``harness`` and ``fake`` fixtures (see conftest.py).
HARNESS_CLASS = CredlyHarness
#: The learner a test issues to when it names no other.
LEARNER = recipient(42)


@pytest.fixture
def org_id(harness: CredlyHarness, fake: FakeCredly) -> str:
    return harness.organization().id


@pytest.fixture
def provider(harness: CredlyHarness, fake: FakeCredly) -> CredlyProvider:
    return CredlyProvider(harness.account_config())


@pytest.fixture
def template_id(harness: CredlyHarness, fake: FakeCredly) -> str:
    return harness.seed_template("Python Basics")


def single(data: dict) -> dict:
    return {"data": data, "metadata": {}}


# -- registry, configuration, connection ------------------------------------------------------------
def test_registered_under_its_kind():
    assert get_provider_class("credly") is CredlyProvider
    assert CredlyProvider.requires_organization_id is True
    assert CredlyProvider.default_rate_limit is None
    assert CredlyProvider.base_url_presets == {
        "production": "https://api.credly.com/v1/",
        "sandbox": "https://sandbox-api.credly.com/v1/",
    }


def test_organization_id_is_required(harness: CredlyHarness):
    with pytest.raises(ConfigurationError):
        CredlyProvider(harness.account_config(organization_id=""))


def test_check_connection_names_the_organization(provider: CredlyProvider):
    assert provider.check_connection() == "Credly organization Main Organization"


@pytest.mark.parametrize("suffix", ["", "/", "v1", "v1/", "v1//"])
def test_base_url_is_treated_as_ending_in_v1(harness: CredlyHarness, fake: FakeCredly, suffix: str):
    provider = CredlyProvider(harness.account_config(base_url=fake.base_url + suffix))

    provider.check_connection()

    assert fake.journal[-1].path == f"/v1/organizations/{harness.organization().id}"


def test_sends_standard_basic_auth_and_json_headers(harness: CredlyHarness, fake: FakeCredly, provider):
    provider.check_connection()

    headers = fake.journal[-1].headers
    expected = base64.b64encode(f"{harness.token}:".encode()).decode()
    assert headers["authorization"] == f"Basic {expected}"
    assert headers["accept"] == "application/json"
    assert headers["content-type"] == "application/json"


def test_expired_token_is_an_authentication_error(fake: FakeCredly, provider: CredlyProvider):
    fake.token_expired = True

    with pytest.raises(AuthenticationError) as caught:
        provider.check_connection()

    assert caught.value.status_code == 401
    assert "valid authorization token" in caught.value.provider_message


def test_unknown_organization_is_not_found(harness: CredlyHarness, fake: FakeCredly):
    provider = CredlyProvider(harness.account_config(organization_id="00000000-0000-0000-0000-000000000000"))

    with pytest.raises(NotFoundError):
        provider.check_connection()


# -- templates -------------------------------------------------------------------------------------
def test_templates_are_mapped(harness: CredlyHarness, fake: FakeCredly, provider: CredlyProvider):
    template = harness.seed_template("Data Science", allow_duplicates=True)

    [synced] = provider.iter_templates()

    assert synced.external_id == template
    assert synced.name == "Data Science"
    assert synced.description == "Awarded for Data Science."
    assert synced.image_url == f"{fake.base_url}images/badge_templates/{template}.png"
    assert synced.url.startswith(fake.base_url)
    assert synced.state == "active"
    assert synced.allow_duplicates is True


def test_templates_of_every_state_are_requested(harness: CredlyHarness, fake, provider: CredlyProvider):
    for state in ("draft", "active", "archived"):
        harness.seed_template(f"{state} badge", state=state)

    states = sorted(template.state for template in provider.iter_templates())

    assert states == ["active", "archived", "draft"]
    assert fake.requests_to("GET", "badge_templates")[0].query["filter"] == ["state::draft,active,archived"]


def test_template_image_falls_back_to_image_url_object(harness: CredlyHarness, fake, provider: CredlyProvider):
    page = {
        "data": [{"id": 7, "name": "Legacy", "image": {"url": "https://cdn.example.com/legacy.png"}}],
        "metadata": {"current_page": 1, "total_pages": 1, "next_page_url": None},
    }
    harness.inject("list_templates", status=200, body=page)

    [template] = provider.iter_templates()

    assert template.external_id == "7"
    assert template.image_url == "https://cdn.example.com/legacy.png"
    assert template.state == "active"


def test_paging_follows_absolute_next_page_urls(harness: CredlyHarness, fake: FakeCredly, provider):
    harness.set_page_size(2)
    seeded = {harness.seed_template(f"Badge {number}") for number in range(5)}

    assert {template.external_id for template in provider.iter_templates()} == seeded

    pages = fake.requests_to("GET", "badge_templates")
    assert [entry.query.get("page") for entry in pages] == [None, ["2"], ["3"]]
    assert all(entry.query["filter"] == ["state::draft,active,archived"] for entry in pages)


@pytest.fixture
def bystander():
    """Another server on loopback, which must never receive a request."""
    with FakeServer() as server:
        yield server


def _next_page_to(harness: CredlyHarness, next_url: str) -> None:
    first = {"data": [], "metadata": {"current_page": 1, "total_pages": 2, "next_page_url": next_url}}
    harness.inject("list_templates", status=200, body=first)


def test_next_page_url_on_another_server_is_not_followed(harness: CredlyHarness, fake, provider, bystander):
    harness.seed_template("Second page badge")
    _next_page_to(harness, f"{bystander.base_url}v1/organizations/{harness.organization().id}/badge_templates?page=2")

    with pytest.raises(PermanentProviderError, match="not the configured API host") as refused:
        list(provider.iter_templates())

    assert bystander.journal == []
    assert len(fake.journal) == 1
    assert bystander.base_url.rstrip("/") in str(refused.value)
    assert "page=2" not in str(refused.value)


@pytest.mark.parametrize(
    "next_url",
    [
        "http://evil.example/v1/organizations/o/badge_templates?page=2",
        "https://{host}:{port}/v1/organizations/o/badge_templates?page=2",  # same host and port, other scheme
        "http://localhost:{port}/v1/organizations/o/badge_templates?page=2",  # another name of the same machine
        "http://{host}:1/v1/organizations/o/badge_templates?page=2",  # same host, other port
        "//evil.example/v1/organizations/o/badge_templates?page=2",  # scheme-relative
    ],
)
def test_next_page_url_must_keep_scheme_host_and_port(harness: CredlyHarness, fake, provider, next_url):
    host, port = fake.base_url.split("//")[1].rstrip("/").split(":")
    _next_page_to(harness, next_url.format(host=host, port=port))

    with pytest.raises(PermanentProviderError, match="not the configured API host"):
        list(provider.iter_templates())

    assert len(fake.journal) == 1


def test_relative_next_page_url_is_resolved(harness: CredlyHarness, fake: FakeCredly, provider):
    harness.seed_template("Second page badge")
    path = f"/v1/organizations/{harness.organization().id}/badge_templates?page=1"
    harness.inject(
        "list_templates", status=200, body={"data": [], "metadata": {"total_pages": 2, "next_page_url": path}}
    )

    assert [template.name for template in provider.iter_templates()] == ["Second page badge"]
    assert fake.requests_to("GET", "badge_templates")[1].path == path.split("?")[0]


def test_paging_stops_at_the_last_page_even_with_a_next_url(harness: CredlyHarness, fake, provider):
    page = {
        "data": [{"id": "t1", "name": "Only"}],
        "metadata": {"current_page": 3, "total_pages": 3, "next_page_url": fake.base_url + "v1/elsewhere?page=4"},
    }
    harness.inject("list_templates", status=200, body=page)

    assert [template.name for template in provider.iter_templates()] == ["Only"]
    assert len(fake.journal) == 1


def test_endless_listing_stops_at_the_page_cap_and_raises(harness: CredlyHarness, fake, provider):
    looping = f"{fake.base_url}v1/organizations/{harness.organization().id}/badge_templates?page=2"
    page = {"data": [{"id": "t1", "name": "Again"}], "metadata": {"next_page_url": looping}}
    harness.inject("list_templates", status=200, body=page, times=None)
    provider.max_pages = 4
    seen = []

    with pytest.raises(PermanentProviderError, match="more than 4 pages"):
        seen.extend(provider.iter_templates())

    assert len(seen) == 4
    assert len(fake.journal) == 4


def test_list_page_without_data_is_unreadable(harness: CredlyHarness, fake, provider: CredlyProvider):
    harness.inject("list_templates", status=200, body={"metadata": {}})

    with pytest.raises(TransientProviderError, match="unreadable"):
        list(provider.iter_templates())


def test_list_items_without_id_are_skipped(harness: CredlyHarness, fake, provider: CredlyProvider):
    page = {"data": [{"name": "No id"}, "junk", {"id": "t2", "name": "Fine", "surprise": [1]}], "metadata": {}}
    harness.inject("list_templates", status=200, body=page)

    assert [template.name for template in provider.iter_templates()] == ["Fine"]


# -- issuing ---------------------------------------------------------------------------------------
def test_issue_body_follows_credly(fake: FakeCredly, provider: CredlyProvider, template_id: str):
    paris = timezone(timedelta(hours=2))
    request = IssueRequest(
        template_id=template_id,
        recipient=LEARNER,
        issued_at=datetime(2025, 3, 1, 12, 0, tzinfo=paris),
        expires_at=datetime(2027, 3, 1, 0, 0, tzinfo=UTC),
        suppress_notification=True,
        evidence=(
            Evidence("Course", "x" * 600, "https://lms.example.com/courses/c1"),
            Evidence("Grade", "Final grade 92%"),
        ),
        attributes={"grade": "92"},
    )

    provider.issue(request)

    body = fake.requests_to("POST", "badges$")[0].json()
    assert body == {
        "badge_template_id": template_id,
        "recipient_email": "learner42@example.com",
        "issued_to_first_name": "Ada",
        "issued_to_last_name": "Lovelace42",
        "issuer_earner_id": "openedx-user-42",
        "issued_at": "2025-03-01 10:00:00 +0000",
        "expires_at": "2027-03-01 00:00:00 +0000",
        "suppress_badge_notification_email": True,
        "evidence": [
            {
                "type": "UrlEvidence",
                "name": "Course",
                "value": "https://lms.example.com/courses/c1",
                "description": "x" * 500,
            },
            {"type": "IdEvidence", "title": "Grade", "description": "Final grade 92%"},
        ],
    }


def test_issue_without_expiry_sends_null(fake: FakeCredly, provider: CredlyProvider, template_id: str):
    provider.issue(issue_request(template_id, LEARNER))

    body = fake.requests_to("POST", "badges$")[0].json()
    assert body["expires_at"] is None
    assert body["suppress_badge_notification_email"] is False
    assert "evidence" not in body


def test_issue_maps_the_created_badge(fake: FakeCredly, provider: CredlyProvider, template_id: str):
    award = provider.issue(issue_request(template_id, LEARNER, expires_at=datetime(2027, 1, 1, tzinfo=UTC)))

    assert award.state == AwardState.PENDING
    assert award.template_id == template_id
    assert award.recipient_email == "learner42@example.com"
    assert award.earner_id == "openedx-user-42"
    assert award.public_url == f"{fake.base_url}badges/{award.external_id}"
    assert award.accept_url.startswith(fake.base_url)
    assert award.issued_at == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    assert award.expires_at == datetime(2027, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("status", [200, 201, 202])
def test_issue_accepts_any_2xx(harness: CredlyHarness, fake, provider, template_id: str, status: int):
    harness.inject("issue", status=status, body=single({"id": 12345, "state": "accepted"}))

    award = provider.issue(issue_request(template_id, LEARNER))

    assert award.external_id == "12345"
    assert award.state == AwardState.ACCEPTED


@pytest.mark.parametrize(
    "body", [{"metadata": {}}, {"data": None}, {"data": {"state": "pending"}}, [1, 2], "", "<html>ok</html>"]
)
def test_unreadable_issue_answer_is_transient(harness: CredlyHarness, fake, provider, template_id: str, body):
    harness.inject("issue", status=201, body=body)

    with pytest.raises(TransientProviderError):
        provider.issue(issue_request(template_id, LEARNER))


def test_fake_duplicate_by_email_is_reported(provider: CredlyProvider, template_id: str):
    provider.issue(issue_request(template_id, LEARNER))

    with pytest.raises(DuplicateAwardError) as caught:
        provider.issue(issue_request(template_id, LEARNER))

    assert caught.value.status_code == 422
    assert "already has this badge" in caught.value.provider_message


def test_fake_duplicate_by_earner_id_is_reported(provider: CredlyProvider, template_id: str):
    provider.issue(issue_request(template_id, recipient(42)))

    with pytest.raises(DuplicateAwardError, match="User already has this badge"):
        provider.issue(issue_request(template_id, Recipient("new.address@example.com", "Ada", "L", "openedx-user-42")))


@pytest.mark.parametrize(
    "body",
    [
        single({"message": "x", "errors": [{"attribute": "user_id", "messages": ["is not unique"]}]}),
        single({"errors": [{"attribute": "recipient_email", "messages": ["has already been issued"]}]}),
        single({"errors": [{"attribute": "issuer_earner_id", "message": "duplicate badge"}]}),
        single({"errors": {"recipient_email": ["has already been taken"]}}),
        single({"message": "User already has this badge"}),
        {"message": "Recipient already has this badge"},
        {"errors": [{"attribute": "user_id", "messages": []}]},
        "Recipient Already Has This Badge",
    ],
    ids=["user_id", "recipient_email", "issuer_earner_id", "errors-dict", "message", "top-level", "bare", "text"],
)
def test_duplicate_422_variants(harness: CredlyHarness, fake, provider, template_id: str, body):
    harness.inject("issue", status=422, body=body)

    with pytest.raises(DuplicateAwardError):
        provider.issue(issue_request(template_id, LEARNER))


@pytest.mark.parametrize(
    "body",
    [
        single({"message": "Validation failed", "errors": [{"attribute": "recipient_email", "messages": ["blank"]}]}),
        single({"message": "Badge template is archived"}),
        "Unprocessable Entity",
    ],
)
def test_other_422_is_a_permanent_validation_error(harness: CredlyHarness, fake, provider, template_id, body):
    harness.inject("issue", status=422, body=body)

    with pytest.raises(PermanentProviderError) as caught:
        provider.issue(issue_request(template_id, LEARNER))

    assert type(caught.value) is PermanentProviderError


def test_archived_template_is_refused(harness: CredlyHarness, fake, provider: CredlyProvider):
    archived = harness.seed_template("Old badge", state="archived")

    with pytest.raises(PermanentProviderError) as caught:
        provider.issue(issue_request(archived, LEARNER))

    assert "archived" in caught.value.provider_message
    assert not isinstance(caught.value, DuplicateAwardError)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (single({"message": "Issued at is not a valid date"}), "Issued at is not a valid date"),
        (
            single({"message": "Invalid", "errors": [{"attribute": "issued_at", "messages": ["bad", "old"]}]}),
            "Invalid; issued_at: bad, old",
        ),
        (single({"errors": [{"attribute": "locale", "messages": ["is not included in the list"]}]}), "locale: is"),
        (single({"errors": ["first problem", "second problem"]}), "first problem; second problem"),
        ({"message": "Top-level message"}, "Top-level message"),
        ({"errors": {"badge_template_id": ["is invalid"]}}, "badge_template_id: is invalid"),
        ({"data": "Plain data message"}, "Plain data message"),
        ({"unexpected": True}, '{"unexpected": true}'),
        ("Something went wrong", "Something went wrong"),
    ],
)
def test_error_bodies_are_parsed(harness: CredlyHarness, fake, provider, template_id: str, body, expected: str):
    harness.inject("issue", status=400, body=body)

    with pytest.raises(PermanentProviderError) as caught:
        provider.issue(issue_request(template_id, LEARNER))

    assert caught.value.provider_message.startswith(expected)


def test_html_error_page_is_not_kept(harness: CredlyHarness, fake, provider: CredlyProvider):
    harness.inject("any", status=502, body="<html><body>" + "x" * 2000 + "</body></html>")

    with pytest.raises(TransientProviderError) as caught:
        provider.check_connection()

    assert caught.value.provider_message == "(HTML error page)"


# -- finding ---------------------------------------------------------------------------------------
def test_find_award_filter_is_encoded_by_the_client(fake: FakeCredly, provider: CredlyProvider, template_id: str):
    learner = recipient(42, "ada+badges@example.com")
    provider.issue(issue_request(template_id, learner))

    found = provider.find_award(template_id, learner)

    assert found is not None
    search = fake.requests_to("GET", "badges$")[0]
    assert search.query["filter"] == [f"badge_template_id::{template_id}|recipient_email::ada+badges@example.com"]
    assert search.query["sort"] == ["-issued_at"]


def test_find_award_prefers_live_then_our_earner_id(
    harness: CredlyHarness, fake: FakeCredly, org_id: str, provider: CredlyProvider, template_id: str
):
    revoked = provider.issue(issue_request(template_id, recipient(1, "shared@example.com")))
    provider.revoke(revoked.external_id, "Replaced by a new grade")
    foreign = provider.issue(issue_request(template_id, recipient(2, "shared@example.com")))
    fake.set_badge_state(org_id, foreign.external_id, "revoked")
    ours = provider.issue(issue_request(template_id, recipient(1, "shared@example.com")))

    assert provider.find_award(template_id, recipient(1, "shared@example.com")).external_id == ours.external_id
    fake.set_badge_state(org_id, ours.external_id, "revoked")
    assert provider.find_award(template_id, recipient(1, "shared@example.com")).external_id in (
        ours.external_id,
        revoked.external_id,
    )
    fake.set_badge_state(org_id, foreign.external_id, "accepted")
    assert provider.find_award(template_id, recipient(1, "shared@example.com")).external_id == foreign.external_id


def test_find_award_falls_back_to_every_address_of_the_earner(
    fake: FakeCredly, org_id: str, provider: CredlyProvider, template_id: str
):
    issued = provider.issue(issue_request(template_id, recipient(42, "old@example.com")))
    fake.link_emails(org_id, "old@example.com", "new@example.com")

    found = provider.find_award(template_id, recipient(42, "new@example.com"))

    assert found.external_id == issued.external_id
    filters = [entry.query["filter"][0] for entry in fake.requests_to("GET", "badges$")]
    assert filters == [
        f"badge_template_id::{template_id}|recipient_email::new@example.com",
        f"badge_template_id::{template_id}|recipient_email_all::new@example.com",
    ]


def test_find_award_ignores_badges_of_other_templates(harness: CredlyHarness, fake, provider, template_id: str):
    other = single({"id": "b1", "state": "accepted", "badge_template": {"id": "another-template"}})
    page = {"data": [other["data"]], "metadata": {}}
    harness.inject("find", status=200, body=page, times=2)

    assert provider.find_award(template_id, LEARNER) is None


def test_find_award_reads_every_page(harness: CredlyHarness, fake, org_id: str, provider, template_id: str):
    harness.set_page_size(1)
    first = provider.issue(issue_request(template_id, recipient(1, "many@example.com")))
    provider.revoke(first.external_id, "Regraded")
    second = provider.issue(issue_request(template_id, recipient(2, "many@example.com")))
    fake.set_badge_state(org_id, second.external_id, "revoked")
    live = provider.issue(issue_request(template_id, recipient(1, "many@example.com")))

    found = provider.find_award(template_id, recipient(1, "many@example.com"))

    assert found.external_id == live.external_id
    assert len(fake.requests_to("GET", "badges$")) == 3


# -- reading ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("pending", AwardState.PENDING),
        ("accepted", AwardState.ACCEPTED),
        ("rejected", AwardState.REJECTED),
        ("revoked", AwardState.REVOKED),
        ("replaced", AwardState.REPLACED),
        ("expired", AwardState.EXPIRED),
        ("ACCEPTED", AwardState.ACCEPTED),
        ("under_review", AwardState.UNKNOWN),
        ("", AwardState.UNKNOWN),
    ],
)
def test_states_are_mapped(fake: FakeCredly, org_id: str, provider, template_id: str, wire: str, expected):
    award = provider.issue(issue_request(template_id, LEARNER))
    fake.set_badge_state(org_id, award.external_id, wire)

    fetched = provider.get_award(award.external_id)

    assert fetched.state == expected
    assert bool(fetched.accept_url) == (wire == "pending")


def test_get_award_is_lenient_with_odd_fields(harness: CredlyHarness, fake, provider: CredlyProvider):
    odd = {
        "id": 987,
        "state": None,
        "badge_template_id": 55,
        "issuer_earner_id": 42,
        "issued_at": "2025-03-01 10:00:00 +0000",
        "expires_at": False,
        "badge_url": None,
        "new_attribute": {"nested": [1, 2]},
    }
    harness.inject("get", status=200, body=single(odd))

    award = provider.get_award("987")

    assert award.external_id == "987"
    assert award.state == AwardState.UNKNOWN
    assert award.template_id == "55"
    assert award.earner_id == "42"
    assert award.issued_at == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    assert award.expires_at is None
    assert award.public_url == ""


def test_get_award_of_unknown_badge_is_not_found(provider: CredlyProvider):
    with pytest.raises(NotFoundError):
        provider.get_award("b2c8e1f4-5d6a-4e7b-8c9d-0a1b2c3d4e5f")


def test_iter_awards_filters_templates_with_a_comma_list(fake: FakeCredly, harness: CredlyHarness, provider):
    first, second = harness.seed_template("One"), harness.seed_template("Two")
    provider.issue(issue_request(first, LEARNER))
    provider.issue(issue_request(second, LEARNER))

    awards = list(provider.iter_awards([second, first, first]))

    assert {award.template_id for award in awards} == {first, second}
    assert fake.requests_to("GET", "badges$")[0].query["filter"] == [
        f"badge_template_id::{','.join(sorted([first, second]))}"
    ]


def test_iter_awards_splits_long_template_lists(fake: FakeCredly, provider: CredlyProvider, template_id: str):
    provider.issue(issue_request(template_id, LEARNER))
    many = [template_id] + [f"missing-{number:03d}" for number in range(120)]

    awards = list(provider.iter_awards(many))

    assert [award.template_id for award in awards] == [template_id]
    assert len(fake.requests_to("GET", "badges$")) == 3


# -- revoking --------------------------------------------------------------------------------------
def test_revoke_sends_a_reason(fake: FakeCredly, provider: CredlyProvider, template_id: str):
    award = provider.issue(issue_request(template_id, LEARNER))

    revoked = provider.revoke(award.external_id, "  ")

    assert revoked.state == AwardState.REVOKED
    assert fake.requests_to("PUT", REVOKE)[0].json() == {
        "reason": "Revoked by the issuer",
        "suppress_revoke_notification_email": False,
    }


def test_revoking_a_revoked_badge_reads_it_back(
    harness: CredlyHarness, fake: FakeCredly, provider: CredlyProvider, template_id: str
):
    award = provider.issue(issue_request(template_id, LEARNER))
    harness.set_award_state(award.external_id, AwardState.REVOKED)

    result = provider.revoke(award.external_id, "Issued in error")

    assert result.state == AwardState.REVOKED
    assert [entry.status for entry in fake.requests_to("PUT", REVOKE)] == [422]
    assert [entry.status for entry in fake.requests_to("GET", BADGE)] == [200]


def test_revoke_4xx_on_a_live_badge_is_raised(harness: CredlyHarness, fake, provider, template_id: str):
    award = provider.issue(issue_request(template_id, LEARNER))
    harness.inject("revoke", status=422, body=single({"message": "Badge cannot be revoked now"}))

    with pytest.raises(PermanentProviderError, match="cannot be revoked now"):
        provider.revoke(award.external_id, "Issued in error")

    assert len(fake.requests_to("GET", BADGE)) == 1


def test_revoking_a_replaced_badge_is_refused(fake: FakeCredly, org_id: str, provider, template_id: str):
    award = provider.issue(issue_request(template_id, LEARNER))
    fake.set_badge_state(org_id, award.external_id, "replaced")

    with pytest.raises(PermanentProviderError):
        provider.revoke(award.external_id, "Issued in error")


@pytest.mark.parametrize("status", [200, 201, 204])
def test_revoke_accepts_any_2xx(harness: CredlyHarness, fake, provider, template_id: str, status: int):
    award = provider.issue(issue_request(template_id, LEARNER))
    harness.inject("revoke", status=status, body=None)

    assert provider.revoke(award.external_id, "Issued in error").state == AwardState.REVOKED


def test_revoke_of_unknown_badge_is_not_found(provider: CredlyProvider):
    with pytest.raises(NotFoundError):
        provider.revoke("b2c8e1f4-5d6a-4e7b-8c9d-0a1b2c3d4e5f", "Issued in error")


def test_delete_mode_sends_delete(harness: CredlyHarness, fake: FakeCredly, template_id: str):
    provider = CredlyProvider(harness.account_config(revoke_mode=RevokeMode.DELETE))
    award = provider.issue(issue_request(template_id, LEARNER))

    assert provider.revoke(award.external_id, "GDPR request").state == AwardState.DELETED
    assert provider.revoke(award.external_id, "GDPR request").state == AwardState.DELETED

    assert [entry.status for entry in fake.requests_to("DELETE", BADGE)] == [204, 404]


# -- privacy ---------------------------------------------------------------------------------------
def test_logs_and_errors_carry_no_token_email_or_name(
    harness: CredlyHarness, fake: FakeCredly, provider: CredlyProvider, template_id: str, caplog
):
    secret_learner = Recipient("secret.person@example.com", "Secretfirst", "Secretlast", "openedx-user-7")
    harness.set_page_size(1)
    failures = []
    with caplog.at_level(logging.DEBUG, logger="badges_bridge"):
        provider.check_connection()
        award = provider.issue(issue_request(template_id, secret_learner))
        try:
            provider.issue(issue_request(template_id, secret_learner))
        except DuplicateAwardError as err:
            failures.append(err)
        provider.revoke(award.external_id, "Issued in error")
        award = provider.issue(issue_request(template_id, secret_learner))
        assert provider.find_award(template_id, secret_learner).external_id == award.external_id
        harness.inject("find", status=503, body="down", skip=1)
        try:
            provider.find_award(template_id, secret_learner)
        except TransientProviderError as err:
            failures.append(err)
        fake.token_expired = True
        try:
            provider.get_award(award.external_id)
        except AuthenticationError as err:
            failures.append(err)

    assert [type(error) for error in failures] == [DuplicateAwardError, TransientProviderError, AuthenticationError]
    records = [record.getMessage() for record in caplog.records if record.name.startswith("badges_bridge")]
    assert records
    for text in [*records, *(str(error) for error in failures)]:
        for secret in (harness.token, "secret.person", "Secretfirst", "Secretlast"):
            assert secret not in text


def test_final_grade_is_sent_as_evidence(provider, fake, template_id):
    provider.issue(issue_request(template_id, LEARNER, grade=Decimal("87.5")))
    body = fake.requests_to("POST", r"/badges/?$")[-1].json()
    assert {"type": "IdEvidence", "title": "Final grade", "description": "87.5%"} in body["evidence"]


# -- webhooks: notifications, events and templates ---------------------------------------------------------------
def test_credly_supports_webhooks():
    assert CredlyProvider.supports_webhooks is True


def test_a_notification_gives_only_its_event_and_organization_ids():
    body = b'{"id": "0f5e2b1a-1", "organization_id": " org ", "event_type": "forged", "badge": {"state": "x"}}'

    notification = CredlyProvider.parse_notification(body)

    assert (notification.event_id, notification.organization_id) == ("0f5e2b1a-1", "org")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b"{}", "no valid event id"),
        (b'{"id": 42}', "no valid event id"),
        (b'{"id": "../../badges/x"}', "no valid event id"),
        (b'{"id": "' + b"a" * 101 + b'"}', "no valid event id"),
        (b'{"id": "e1", "organization_id": 7}', "organization id is not a string"),
        (b'{"id": "e1", "pad": "' + b"x" * 20000 + b'"}', "too large"),
    ],
)
def test_malformed_notifications_are_refused(body: bytes, reason: str):
    with pytest.raises(WebhookPayloadError, match=reason):
        CredlyProvider.parse_notification(body)


def test_get_event_reads_a_badge_event_with_its_badge(fake: FakeCredly, org_id: str, provider, template_id: str):
    badge = provider.issue(issue_request(template_id, LEARNER)).external_id
    fake.set_badge_state(org_id, badge, "accepted")
    stored = fake.events_of(org_id)[-1]

    event = provider.get_event(stored["id"])

    assert (event.event_id, event.event_type, event.kind) == (stored["id"], "badge.state.changed", "badge_changed")
    assert (event.badge_id, event.award.state, event.award.public) == (badge, AwardState.ACCEPTED, True)
    assert event.occurred_at is not None
    assert event.occurred_at.tzinfo is not None
    assert fake.journal[-1].path == f"/v1/organizations/{org_id}/events/{stored['id']}"


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [
        ("badge.created", "badge_changed"),
        ("badge.privacy.changed", "badge_changed"),
        ("badge.deleted", "badge_deleted"),
        ("badge_template.created", "template_changed"),
        ("badge_template.changed", "template_changed"),
        ("badge_template.deleted", "template_deleted"),
        ("pending_badge_notification.sent", "other"),
    ],
)
def test_event_types_are_mapped(harness: CredlyHarness, fake, provider: CredlyProvider, event_type: str, kind: str):
    harness.inject("any", "status", status=200, body=single({"id": "e1", "event_type": event_type}))

    assert provider.get_event("e1").kind == kind


def test_a_badge_event_may_carry_issued_badge_or_only_an_id(
    harness: CredlyHarness, fake: FakeCredly, provider, template_id: str
):
    badge = provider.issue(issue_request(template_id, LEARNER)).external_id
    other = {"id": "e2", "event_type": "badge.state.changed", "issued_badge": {"id": "b9", "state": "rejected"}}
    bare = {"id": "e3", "event_type": "badge.privacy.changed", "badge_id": badge}
    harness.inject("any", "status", status=200, body=single(other))
    harness.inject("any", "status", status=200, body=single(bare))

    carried = provider.get_event("e2")
    assert (carried.award.state, carried.badge_id) == (AwardState.REJECTED, "b9")
    completed = provider.get_event("e3")  # the badge is read as it is now

    assert (completed.badge_id, completed.award.external_id) == (badge, badge)
    assert fake.journal[-1].path.endswith(f"/badges/{badge}")


def test_a_bare_badge_event_whose_badge_is_gone_has_no_badge(harness: CredlyHarness, fake, provider):
    harness.inject(
        "any", "status", status=200, body=single({"id": "e4", "event_type": "badge.created", "badge_id": "x"})
    )

    event = provider.get_event("e4")

    assert (event.badge_id, event.award) == ("x", None)


def test_unknown_event_is_not_found(provider: CredlyProvider):
    with pytest.raises(NotFoundError):
        provider.get_event("no-such-event")


def test_get_template_reads_one_template(harness: CredlyHarness, fake: FakeCredly, org_id, provider, template_id):
    assert provider.get_template(template_id).name == "Python Basics"
    assert fake.journal[-1].path == f"/v1/organizations/{org_id}/badge_templates/{template_id}"
    fake.delete_template(org_id, template_id)

    with pytest.raises(NotFoundError):
        provider.get_template(template_id)


def test_public_flag_is_read(fake: FakeCredly, org_id: str, provider: CredlyProvider, template_id: str):
    badge = provider.issue(issue_request(template_id, LEARNER))
    fake.set_badge_privacy(org_id, badge.external_id, public=False)

    assert badge.public is True
    assert provider.get_award(badge.external_id).public is False
