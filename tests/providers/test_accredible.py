"""The Accredible client against the fake Accredible over real HTTP on loopback."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from badges_bridge.exceptions import (
    AuthenticationError,
    DuplicateAwardError,
    NotFoundError,
    PermanentProviderError,
    RateLimitedError,
    TransientProviderError,
)
from badges_bridge.providers import accredible, get_provider_class
from badges_bridge.providers.accredible import AccredibleProvider, accredible_error_message
from badges_bridge.providers.base import AwardState, Evidence, IssueRequest, Recipient, RevokeMode
from badges_bridge.testing.conformance import issue_request, recipient
from badges_bridge.testing.fake_accredible import AccredibleHarness, FakeAccredible

CREDENTIAL = r"^/v1/credentials/\d+$"
#: The fake behind the ``harness`` and ``fake`` fixtures (see conftest.py).
HARNESS_CLASS = AccredibleHarness
#: The learner a test issues to when it names no other.
LEARNER = recipient(42)


@pytest.fixture
def provider(harness: AccredibleHarness, fake: FakeAccredible) -> AccredibleProvider:
    return AccredibleProvider(harness.account_config())


@pytest.fixture
def group_id(harness: AccredibleHarness, fake: FakeAccredible) -> str:
    return harness.seed_template("intro-programming")


def seed_credentials(provider: AccredibleProvider, groups: list[str], count: int) -> list[str]:
    """Issue ``count`` credentials spread over ``groups``; return their ids in creation order."""
    return [
        provider.issue(issue_request(groups[index % len(groups)], recipient(index))).external_id
        for index in range(count)
    ]


# -- registry, connection, authentication ----------------------------------------------------------------
def test_registered_with_presets():
    klass = get_provider_class("accredible")
    assert klass is AccredibleProvider
    assert klass.display_name == "Accredible"
    assert klass.requires_organization_id is False
    assert klass.default_rate_limit == (2000, 300)
    assert klass.base_url_presets == {
        "us": "https://api.accredible.com/",
        "eu": "https://eu.api.accredible.com/",
        "sandbox": "https://sandbox.api.accredible.com/",
    }


def test_check_connection_sends_documented_token_form(provider, fake, harness):
    assert provider.check_connection() == "Accredible issuer Fake issuer main"
    [entry] = fake.requests_to("GET", r"^/v1/issuer/details$")
    assert entry.headers["authorization"] == f"Token token={harness.token}"


def test_base_url_with_version_suffix_is_trimmed(harness, fake):
    provider = AccredibleProvider(harness.account_config(base_url=fake.base_url + "v1/"))
    assert provider.check_connection().startswith("Accredible issuer")
    assert [entry.path for entry in fake.journal] == ["/v1/issuer/details"]


def test_wrong_key_is_an_authentication_error_with_the_rails_text(harness, fake):
    provider = AccredibleProvider(harness.account_config(token="wrong-key"))
    with pytest.raises(AuthenticationError) as caught:
        provider.check_connection()
    assert caught.value.status_code == 401
    assert caught.value.provider_message == "HTTP Token: Access denied."


def test_every_call_is_authenticated(provider, fake, group_id):
    award = provider.issue(issue_request(group_id, LEARNER))
    provider.find_award(group_id, LEARNER)
    provider.get_award(award.external_id)
    provider.revoke(award.external_id, "reason")
    list(provider.iter_awards([group_id]))
    list(provider.iter_templates())
    assert fake.journal
    assert {entry.headers["authorization"] for entry in fake.journal} == {"Token token=fake-token-0001"}
    assert {entry.status for entry in fake.journal} == {200}


def test_accounts_are_isolated(harness, fake, provider, group_id):
    award = provider.issue(issue_request(group_id, LEARNER))
    other = AccredibleProvider(harness.account_config("other"))
    assert list(other.iter_templates()) == []
    with pytest.raises(NotFoundError):
        other.get_award(award.external_id)


# -- issue ---------------------------------------------------------------------------------------------
def test_issue_payload_shape_and_dates(provider, fake, group_id):
    request = IssueRequest(
        template_id=group_id,
        recipient=LEARNER,
        issued_at=datetime(2025, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5))),
        expires_at=datetime(2027, 3, 1, 12, 0, tzinfo=UTC),
        course_name="Intro to Programming",
        course_url="https://lms.example.com/courses/course-v1:Org+CS101+2025/",
        evidence=(
            Evidence(name="Final grade", description="92%", url="https://lms.example.com/progress"),
            Evidence(name="Without a link", description="kept out"),
        ),
        attributes={"grade": "92", "course_key": "course-v1:Org+CS101+2025"},
    )
    provider.issue(request)
    [entry] = fake.requests_to("POST", r"^/v1/credentials$")
    assert entry.headers["content-type"] == "application/json"
    body = entry.json()
    assert list(body) == ["credential"]
    credential = body["credential"]
    assert credential["recipient"] == {
        "name": "Ada Lovelace42",
        "email": "learner42@example.com",
        "id": "openedx-user-42",
    }
    assert credential["group_id"] == int(group_id)
    assert credential["issued_on"] == "2025-03-02"  # the UTC day
    assert credential["expired_on"] == "2027-03-01"
    assert credential["complete"] is True
    assert "approve" not in credential
    assert credential["evidence_items"] == [
        {
            "description": "Intro to Programming",
            "url": "https://lms.example.com/courses/course-v1:Org+CS101+2025/",
            "category": "url",
        },
        {"description": "Final grade", "url": "https://lms.example.com/progress", "category": "url"},
    ]
    assert credential["custom_attributes"] == {"grade": "92", "course_key": "course-v1:Org+CS101+2025"}
    assert credential["meta_data"] == {"source": "badges_bridge", **credential["custom_attributes"]}


def test_issue_without_expiry_or_extras_sends_a_minimal_credential(provider, fake, group_id):
    provider.issue(issue_request(group_id, LEARNER))
    credential = fake.requests_to("POST", r"^/v1/credentials$")[0].json()["credential"]
    assert set(credential) == {"recipient", "group_id", "issued_on", "complete", "meta_data"}
    assert credential["issued_on"] == "2025-03-01"


def test_issue_returns_the_published_award_with_string_id(provider, group_id):
    award = provider.issue(issue_request(group_id, LEARNER))
    assert award.external_id == "10000001"
    assert award.state is AwardState.ACCEPTED
    assert award.published is True
    assert award.template_id == group_id
    assert award.earner_id == "openedx-user-42"
    assert award.recipient_email == "learner42@example.com"
    assert award.public_url == "https://www.credential.net/10000001"
    assert award.issued_at == datetime(2025, 3, 1, tzinfo=UTC)
    assert award.expires_at is None


def test_issue_without_credits_is_created_unpublished(provider, fake, harness, group_id):
    fake.account("main").no_credits = True
    award = provider.issue(issue_request(group_id, LEARNER))
    assert award.published is False
    assert award.state is AwardState.ACCEPTED
    assert len(fake.requests_to("POST", r"^/v1/credentials$")) == 1
    found = provider.find_award(group_id, LEARNER)
    assert found is not None
    assert (found.external_id, found.published) == (award.external_id, False)
    assert provider.get_award(award.external_id).published is False


def test_duplicate_is_reported_and_the_existing_credential_found(provider, fake, group_id):
    first = provider.issue(issue_request(group_id, LEARNER))
    with pytest.raises(DuplicateAwardError) as caught:
        provider.issue(issue_request(group_id, LEARNER))
    assert caught.value.status_code == 422
    assert "has already been taken" in caught.value.provider_message
    assert provider.find_award(group_id, LEARNER).external_id == first.external_id
    assert fake.duplicates_stored == 0


def test_missing_recipient_data_is_a_permanent_error(provider, group_id):
    request = issue_request(group_id, Recipient(email="", first_name="", last_name="", earner_id="u"))
    with pytest.raises(PermanentProviderError) as caught:
        provider.issue(request)
    assert not isinstance(caught.value, DuplicateAwardError)
    assert caught.value.provider_message == "Can not create credential without recipient data"


def test_unknown_group_is_a_permanent_error(provider, fake):
    with pytest.raises(PermanentProviderError) as caught:
        provider.issue(issue_request("999999", LEARNER))
    assert not isinstance(caught.value, DuplicateAwardError)
    assert (caught.value.status_code, caught.value.provider_message) == (422, "Invalid Group")


def test_lost_answer_after_create_is_transient_and_the_lookup_adopts(provider, harness, group_id):
    harness.inject("issue", "commit_then_drop")
    with pytest.raises(TransientProviderError):
        provider.issue(issue_request(group_id, LEARNER))
    found = provider.find_award(group_id, LEARNER)
    assert found is not None
    assert found.state is AwardState.ACCEPTED
    assert len(harness.live_awards(group_id, LEARNER.email)) == 1


# -- lookup --------------------------------------------------------------------------------------------
def test_find_award_asks_by_recipient_id_first(provider, fake, group_id):
    award = provider.issue(issue_request(group_id, LEARNER))
    moved = recipient(42, "new-address@example.com")
    found = provider.find_award(group_id, moved)
    assert found.external_id == award.external_id
    assert found.template_id == group_id
    assert found.earner_id == "openedx-user-42"
    [entry] = fake.requests_to("POST", r"^/v2/credentials/search$")
    assert entry.json()["query"] == {"group.id": int(group_id), "recipient_id": "openedx-user-42"}


def test_find_award_falls_back_to_the_email(provider, fake, group_id):
    award = provider.issue(issue_request(group_id, Recipient("ada@example.com", "Ada", "L", "")))
    found = provider.find_award(group_id, recipient(42, "ADA@example.com"))
    assert found.external_id == award.external_id
    queries = [entry.json()["query"] for entry in fake.requests_to("POST", r"^/v2/credentials/search$")]
    assert queries == [
        {"group.id": int(group_id), "recipient_id": "openedx-user-42"},
        {"group.id": int(group_id), "recipient_email": "ADA@example.com"},
    ]


def test_find_award_prefers_an_unexpired_credential(provider, harness, fake):
    group = harness.seed_template("repeatable", allow_duplicates=True)
    old = provider.issue(issue_request(group, LEARNER))
    harness.set_award_state(old.external_id, AwardState.EXPIRED)
    live = provider.issue(issue_request(group, LEARNER))
    expiring_later = provider.issue(issue_request(group, LEARNER, expires_at=datetime(2999, 1, 1, tzinfo=UTC)))
    harness.set_award_state(expiring_later.external_id, AwardState.EXPIRED)
    found = provider.find_award(group, LEARNER)
    assert found.external_id == live.external_id
    assert found.state is AwardState.ACCEPTED


def test_find_award_returns_an_expired_credential_only_as_not_live(provider, harness, group_id):
    award = provider.issue(issue_request(group_id, LEARNER))
    harness.set_award_state(award.external_id, AwardState.EXPIRED)
    found = provider.find_award(group_id, LEARNER)
    assert found.external_id == award.external_id
    assert found.state is AwardState.EXPIRED
    assert not found.state.is_live


def test_find_award_ignores_other_groups_and_recipients(provider, harness, group_id):
    other_group = harness.seed_template("other-course")
    provider.issue(issue_request(other_group, LEARNER))
    provider.issue(issue_request(group_id, recipient(7)))
    assert provider.find_award(group_id, LEARNER) is None


# -- get -----------------------------------------------------------------------------------------------
def test_get_award_maps_the_expiry_day(provider, harness, group_id):
    future = provider.issue(issue_request(group_id, LEARNER, expires_at=datetime(2999, 1, 1, tzinfo=UTC)))
    assert provider.get_award(future.external_id).state is AwardState.ACCEPTED
    assert provider.get_award(future.external_id).expires_at == datetime(2999, 1, 1, tzinfo=UTC)
    harness.set_award_state(future.external_id, AwardState.EXPIRED)  # expired_on = today
    assert provider.get_award(future.external_id).state is AwardState.EXPIRED


@pytest.mark.parametrize("style", [0, 1, 2])
def test_get_award_not_found_for_every_body(provider, fake, style):
    fake.not_found_body = style
    with pytest.raises(NotFoundError) as caught:
        provider.get_award("10009999")
    expected = ("No credential with the id given in your account", "Doesn't exist", "Not found")[style]
    assert caught.value.provider_message == expected


# -- error bodies --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (401, {"success": False, "data": "issuer_token not valid"}, AuthenticationError, "issuer_token not valid"),
        (401, "HTTP Token: Access denied.\n", AuthenticationError, "HTTP Token: Access denied."),
        (403, {"errors": "Private Certificate, use key"}, AuthenticationError, "Private Certificate, use key"),
        (404, {"success": False, "data": "Group does not exist"}, NotFoundError, "Group does not exist"),
        (
            400,
            {
                "code": 400,
                "message": "Sort order increasing is not supported",
                "status": "invalid_search_query",
                "errors": {},
            },
            PermanentProviderError,
            "Sort order increasing is not supported",
        ),
        (
            422,
            {"errors": {"course_name": ["can't be blank"], "course_description": ["can't be blank"]}},
            PermanentProviderError,
            "course_name: can't be blank; course_description: can't be blank",
        ),
        (422, {"errors": ["first problem", "second problem"]}, PermanentProviderError, "first problem; second problem"),
        (500, {"errors": "Internal server error"}, TransientProviderError, "Internal server error"),
        (502, "<html><body>Bad gateway</body></html>", TransientProviderError, "(HTML error page)"),
    ],
)
def test_error_bodies_map_to_exceptions_with_the_message(provider, harness, group_id, status, body, error, message):
    award = provider.issue(issue_request(group_id, LEARNER))
    harness.inject("get", status=status, body=body)
    with pytest.raises(error) as caught:
        provider.get_award(award.external_id)
    assert caught.value.status_code == status
    assert caught.value.provider_message == message


@pytest.mark.parametrize(
    "body",
    [
        {"errors": {"recipient.email": ["has already been taken. Your group settings do not allow duplicates."]}},
        {
            "code": "credential_invalid",
            "message": "The credential is not valid",
            "details": [{"property": "recipient.email", "message": "has already been taken."}],
        },
        {"error": {"code": "credential_invalid", "message": "Duplicate credential"}},
        "Duplicate credential for this recipient",
    ],
)
def test_duplicate_bodies_raise_duplicate_award_error(provider, harness, group_id, body):
    harness.inject("issue", status=422, body=body)
    with pytest.raises(DuplicateAwardError) as caught:
        provider.issue(issue_request(group_id, LEARNER))
    assert caught.value.provider_message


def test_error_message_reads_every_documented_shape():
    assert accredible_error_message({"errors": "Invalid Group"}) == "Invalid Group"
    assert accredible_error_message({"error": "Not found"}) == "Not found"
    assert accredible_error_message({"success": False, "data": "Not enough or too many segments"}) == (
        "Not enough or too many segments"
    )
    assert accredible_error_message({"success": True, "data": "ignored"}) == ""
    assert accredible_error_message({"details": [{"property": "group_id", "reason": "is unknown"}]}) == (
        "group_id: is unknown"
    )
    assert accredible_error_message(
        {"message": "The credential is not valid", "details": [{"property": "recipient.email", "message": "taken"}]}
    ) == ("The credential is not valid (recipient.email: taken)")
    assert accredible_error_message(
        {"error": {"code": "insufficient_credits", "message": "No credits", "details": [{"reason": "0 left"}]}}
    ) == ("No credits (0 left)")
    assert accredible_error_message("plain text") == "plain text"
    assert accredible_error_message(None) == ""


# -- rate limit ----------------------------------------------------------------------------------------
def test_429_without_retry_after_waits_one_counting_period(provider, fake):
    fake.rate_limit = (2, 300)
    provider.check_connection()
    provider.check_connection()
    with pytest.raises(RateLimitedError) as caught:
        provider.check_connection()
    assert caught.value.status_code == 429
    assert caught.value.retry_after == 30.0
    assert "retry-after" not in {key.lower() for key in fake.journal[-1].headers}


def test_429_with_retry_after_honours_it(provider, harness):
    harness.inject("any", status=429, body="Retry later", headers={"Retry-After": "7"})
    with pytest.raises(RateLimitedError) as caught:
        provider.check_connection()
    assert caught.value.retry_after == 7.0


# -- revoke --------------------------------------------------------------------------------------------
def test_expire_sets_today_and_is_idempotent(provider, harness, fake, group_id):
    award = provider.issue(issue_request(group_id, LEARNER))
    revoked = provider.revoke(award.external_id, "no longer passing")
    assert revoked.state is AwardState.EXPIRED
    assert revoked.expires_at == datetime.combine(datetime.now(UTC).date(), datetime.min.time(), tzinfo=UTC)
    [put] = fake.requests_to("PUT", CREDENTIAL)
    assert put.json() == {"credential": {"expired_on": datetime.now(UTC).date().isoformat()}}
    assert harness.award_state(award.external_id) is AwardState.EXPIRED
    again = provider.revoke(award.external_id, "no longer passing")
    assert again.state is AwardState.EXPIRED
    assert len(fake.requests_to("PUT", CREDENTIAL)) == 1


def test_expire_confirms_with_a_get_when_the_update_answer_is_bare(provider, fake, group_id):
    fake.update_returns_credential = False
    award = provider.issue(issue_request(group_id, LEARNER))
    assert provider.revoke(award.external_id, "").state is AwardState.EXPIRED
    assert [entry.method for entry in fake.journal if entry.path.startswith("/v1/credentials/")] == [
        "GET",
        "PUT",
        "GET",
    ]


def test_expire_that_does_not_stick_is_transient(provider, harness, group_id):
    award = provider.issue(issue_request(group_id, LEARNER))
    harness.inject("revoke", status=200, body={"success": True})
    with pytest.raises(TransientProviderError):
        provider.revoke(award.external_id, "")
    assert harness.award_state(award.external_id) is AwardState.ACCEPTED


def test_expire_of_a_deleted_credential_reports_it_deleted(provider, harness, group_id):
    award = provider.issue(issue_request(group_id, LEARNER))
    harness.set_award_state(award.external_id, AwardState.DELETED)
    assert provider.revoke(award.external_id, "").state is AwardState.DELETED


def test_delete_mode_deletes_and_is_idempotent(harness, fake, group_id):
    provider = AccredibleProvider(harness.account_config(revoke_mode=RevokeMode.DELETE))
    award = provider.issue(issue_request(group_id, LEARNER))
    deleted = provider.revoke(award.external_id, "erasure")
    assert deleted.state is AwardState.DELETED
    assert deleted.template_id == group_id
    assert harness.award_state(award.external_id) is AwardState.DELETED
    assert provider.revoke(award.external_id, "erasure").state is AwardState.DELETED
    assert [entry.status for entry in fake.requests_to("DELETE", CREDENTIAL)] == [200, 404]
    with pytest.raises(NotFoundError):
        provider.get_award(award.external_id)


def test_re_award_after_expiry_creates_a_new_credential(provider, harness, fake, group_id):
    first = provider.issue(issue_request(group_id, LEARNER))
    provider.revoke(first.external_id, "failed the retake")
    assert not provider.find_award(group_id, LEARNER).state.is_live
    second = provider.issue(issue_request(group_id, LEARNER))
    assert second.external_id != first.external_id
    assert second.state is AwardState.ACCEPTED
    assert provider.find_award(group_id, LEARNER).external_id == second.external_id
    assert harness.duplicates_created() == 0
    assert [c["id"] for c in harness.live_awards(group_id, LEARNER.email)] == [second.external_id]


# -- listings ------------------------------------------------------------------------------------------
def test_templates_follow_every_page_of_groups(provider, fake):
    ids = fake.seed_groups(120)
    templates = list(provider.iter_templates())
    assert [t.external_id for t in templates] == [str(i) for i in ids]
    requests_sent = fake.requests_to("POST", r"^/v1/issuer/groups/search$")
    assert [entry.json() for entry in requests_sent] == [{"page": n, "page_size": 50} for n in (1, 2, 3)]
    assert not fake.requests_to("GET", r"^/v1/designs/")
    first = templates[0]
    assert (first.name, first.description, first.url) == (
        "Group 001",
        "Awarded for completing group-001.",
        "https://courses.example.com/group-001",
    )
    assert (first.image_url, first.state, first.allow_duplicates) == ("", "active", False)


def test_templates_stop_at_the_last_page_even_if_next_page_is_set(provider, harness, fake):
    group = fake.add_group("only", allow_duplicate_credentials=True)
    page = {
        "groups": [fake.group_json(fake.account("main"), group)],
        "meta": {"current_page": 1, "next_page": 2, "prev_page": None, "total_pages": 1, "total_count": 1},
    }
    harness.inject("list_templates", status=200, body=page)
    [template] = provider.iter_templates()
    assert template.allow_duplicates is True
    assert len(fake.requests_to("POST", r"^/v1/issuer/groups/search$")) == 1


def test_templates_use_the_group_name_without_a_course_name(provider, fake):
    fake.add_group("internal-name", course_name="")
    assert [t.name for t in provider.iter_templates()] == ["internal-name"]


def test_iter_awards_pages_by_offset(provider, harness, fake, group_id):
    other = harness.seed_template("second-course")
    issued = seed_credentials(provider, [group_id, other], 230)
    provider.revoke(issued[0], "")
    fake.journal.clear()
    awards = list(provider.iter_awards([group_id, other]))
    assert [a.external_id for a in awards] == issued
    assert awards[0].state is AwardState.EXPIRED
    assert {a.template_id for a in awards} == {group_id, other}
    bodies = [entry.json() for entry in fake.requests_to("POST", r"^/v2/credentials/search$")]
    assert [body["page"] for body in bodies] == [{"from": n, "size": 100} for n in (0, 100, 200)]
    assert bodies[0]["query"] == {"group.id[in]": [int(group_id), int(other)]}
    assert bodies[0]["sort"] == {"id": "asc"}


def test_iter_awards_stops_when_the_count_is_reached(provider, fake, group_id):
    seed_credentials(provider, [group_id], 200)
    fake.journal.clear()
    assert len(list(provider.iter_awards([group_id]))) == 200
    assert len(fake.requests_to("POST", r"^/v2/credentials/search$")) == 2


def test_iter_awards_keeps_paging_when_the_server_serves_smaller_pages(provider, harness, fake, group_id):
    issued = seed_credentials(provider, [group_id], 70)
    harness.set_page_size(30)
    fake.journal.clear()
    assert [a.external_id for a in provider.iter_awards([group_id])] == issued
    pages = [entry.json()["page"] for entry in fake.requests_to("POST", r"^/v2/credentials/search$")]
    assert pages == [{"from": n, "size": 100} for n in (0, 30, 60)]


def test_iter_awards_switches_to_the_cursor_beyond_the_offset_window(provider, fake, group_id, monkeypatch):
    monkeypatch.setattr(accredible, "SEARCH_PAGE_SIZE", 10)
    monkeypatch.setattr(accredible, "OFFSET_WINDOW", 20)
    fake.max_result_window = 20
    issued = seed_credentials(provider, [group_id], 45)
    fake.journal.clear()
    assert [a.external_id for a in provider.iter_awards([group_id])] == issued
    pages = [entry.json()["page"] for entry in fake.requests_to("POST", r"^/v2/credentials/search$")]
    assert pages[:2] == [{"from": 0, "size": 10}, {"from": 10, "size": 10}]
    assert all(set(page) == {"cursor", "size"} for page in pages[2:])
    assert len(pages) == 5


def test_iter_awards_refuses_to_stop_early_without_a_cursor(provider, harness, group_id, monkeypatch):
    monkeypatch.setattr(accredible, "SEARCH_PAGE_SIZE", 10)
    monkeypatch.setattr(accredible, "OFFSET_WINDOW", 20)
    items = [{"id": 10000001 + n, "group": {"id": int(group_id)}, "expired_on": None} for n in range(10)]
    page = {"credentials": items, "meta": {"count": 45, "from": 10, "size": 10, "cursor": None}}
    harness.inject("find", status=200, body=page, skip=1)
    seed_credentials(provider, [group_id], 45)
    with pytest.raises(TransientProviderError, match="20 of 45"):
        list(provider.iter_awards([group_id]))


def test_iter_awards_of_no_templates_sends_nothing(provider, fake):
    assert list(provider.iter_awards([])) == []
    assert fake.journal == []


# -- privacy -------------------------------------------------------------------------------------------
def test_logs_carry_no_key_email_or_name(provider, harness, group_id, caplog):
    caplog.set_level(logging.DEBUG)
    fake_account = harness.server.account("main")
    fake_account.no_credits = True
    award = provider.issue(issue_request(group_id, LEARNER))
    provider.find_award(group_id, LEARNER)
    provider.revoke(award.external_id, "")
    text = caplog.text
    assert award.external_id in text
    for secret in (harness.token, LEARNER.email, "Lovelace42", "openedx-user-42"):
        assert secret not in text


def test_final_grade_is_sent_as_a_grade_evidence_item(provider, fake, group_id):
    provider.issue(issue_request(group_id, LEARNER, grade=Decimal("87.5")))
    body = fake.requests_to("POST", r"^/v1/credentials/?$")[-1].json()
    grade_items = [item for item in body["credential"]["evidence_items"] if item["category"] == "grade"]
    assert grade_items == [{"description": "Final grade", "category": "grade", "string_object": "87.5"}]
