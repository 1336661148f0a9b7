"""The fake Credly checked against the Credly contract, with plain HTTP requests."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests

from badges_bridge.providers.base import AwardState
from badges_bridge.testing.fake_credly import CredlyHarness, FakeCredly

ISSUED_AT = "2025-03-01 10:00:00 +0000"
#: The fake behind the ``harness`` and ``fake`` fixtures (see conftest.py).
HARNESS_CLASS = CredlyHarness


class Api:
    """Raw calls to one organization of the fake."""

    def __init__(self, fake: FakeCredly, org_id: str, token: str):
        self.fake = fake
        self.org_id = org_id
        self.token = token

    def url(self, path: str = "", *, host: str = "") -> str:
        base = self.fake.base_url.replace("127.0.0.1", host) if host else self.fake.base_url
        suffix = path if path.startswith("/") or not path else f"/{path}"
        return f"{base}v1/organizations/{self.org_id}{suffix}"

    def call(self, method: str, path: str = "", *, token: str | None = None, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("auth", (self.token if token is None else token, ""))
        return requests.request(method, self.url(path), timeout=5, **kwargs)

    def issue(self, template_id: str, email: str = "ada@example.com", **fields: Any) -> requests.Response:
        body = {
            "recipient_email": email,
            "issued_to_first_name": "Ada",
            "issued_to_last_name": "Lovelace",
            "badge_template_id": template_id,
            "issued_at": ISSUED_AT,
            "issuer_earner_id": f"earner-{email}",
            **fields,
        }
        return self.call("POST", "badges", json={key: value for key, value in body.items() if value is not ...})

    def badge_id(self, template_id: str, email: str = "ada@example.com", **fields: Any) -> str:
        response = self.issue(template_id, email, **fields)
        assert response.status_code == 201, response.text
        return response.json()["data"]["id"]


@pytest.fixture
def api(harness: CredlyHarness, fake: FakeCredly) -> Api:
    fields = harness.account_fields()
    return Api(fake, fields["organization_id"], fields["token"])


@pytest.fixture
def template_id(harness: CredlyHarness, fake: FakeCredly) -> str:
    return harness.seed_template("Python Basics")


def basic(raw: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}


def error_attributes(response: requests.Response) -> list[str]:
    return [error["attribute"] for error in response.json()["data"]["errors"]]


# -- authentication --------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["{t}:", "{t}", "{t}|", "{t}|:", "{t}:ignored-password"])
def test_basic_auth_is_decoded_leniently(api: Api, form: str):
    response = api.call("GET", auth=None, headers=basic(form.format(t=api.token)))

    assert response.status_code == 200
    assert response.json()["data"]["id"] == api.org_id


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("wrong-token:"),
        basic(":fake-token-0001"),
        {"Authorization": "Bearer fake-token-0001"},
        {"Authorization": "Basic not*base64"},
        {"Authorization": "Basic"},
    ],
    ids=["missing", "wrong", "as-password", "bearer", "bad-base64", "empty"],
)
def test_bad_credentials_get_credly_401(api: Api, headers: dict[str, str]):
    response = api.call("GET", "badges", auth=None, headers=headers)

    assert response.status_code == 401
    assert response.json() == {
        "data": {"message": "You must provide a valid authorization token", "errors": []},
        "metadata": {},
    }


def test_expired_token_switch_refuses_every_call(api: Api, fake: FakeCredly, template_id: str):
    fake.token_expired = True

    statuses = {
        api.call("GET").status_code,
        api.call("GET", "badge_templates").status_code,
        api.issue(template_id).status_code,
        api.call("GET", "events/anything").status_code,
    }

    assert statuses == {401}


def test_each_organization_has_its_own_token(harness: CredlyHarness, api: Api):
    other = harness.account_fields("other")

    assert api.call("GET", token=other["token"]).status_code == 401
    assert api.call("GET").status_code == 200
    listed = requests.get(f"{api.fake.base_url}v1/organizations", auth=(other["token"], ""), timeout=5).json()
    assert [org["id"] for org in listed["data"]] == [other["organization_id"]]


def test_unknown_organization_is_404(api: Api):
    api.org_id = "00000000-0000-0000-0000-000000000000"

    response = api.call("GET", "badge_templates")

    assert response.status_code == 404
    assert response.json()["data"]["message"] == "Organization not found"


def test_token_rotation_invalidates_the_old_token(harness: CredlyHarness, api: Api):
    response = api.call("POST", "authorization_tokens/rotate")

    new_token = response.json()["data"]["token"]
    assert response.status_code == 200
    assert new_token != api.token
    assert api.call("GET").status_code == 401
    assert api.call("GET", token=new_token).status_code == 200
    assert harness.account_fields()["token"] == new_token
    harness.reset()
    assert api.call("GET").status_code == 200


# -- routes ----------------------------------------------------------------------------------------
def test_every_route_accepts_a_trailing_slash(api: Api, template_id: str):
    badge = api.badge_id(template_id)
    event = api.fake.events_of(api.org_id)[-1]["id"]
    calls = [
        ("GET", "", 200, None),
        ("GET", "badge_templates", 200, None),
        ("GET", f"badge_templates/{template_id}", 200, None),
        ("GET", "badges", 200, None),
        ("GET", f"badges/{badge}", 200, None),
        ("GET", f"events/{event}", 200, None),
        ("POST", f"badges/{badge}/replace", 201, {}),
    ]
    for method, path, status, body in calls:
        assert api.call(method, path + "/", json=body).status_code == status, path
    replacement = api.fake.organization(api.org_id).badges[badge]["replacement_badge_id"]
    assert api.call("PUT", f"badges/{replacement}/revoke/", json={"reason": "Test"}).status_code == 200
    assert api.call("DELETE", f"badges/{replacement}/").status_code == 204
    assert api.call("POST", "badges/", json={}).status_code == 422


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "badge_templates/3f1d2c9e-0b7a-4c55-9e61-2d0f6a1b7c40"),
        ("GET", "badges/b2c8e1f4-5d6a-4e7b-8c9d-0a1b2c3d4e5f"),
        ("PUT", "badges/b2c8e1f4-5d6a-4e7b-8c9d-0a1b2c3d4e5f/revoke"),
        ("POST", "badges/b2c8e1f4-5d6a-4e7b-8c9d-0a1b2c3d4e5f/replace"),
        ("DELETE", "badges/b2c8e1f4-5d6a-4e7b-8c9d-0a1b2c3d4e5f"),
        ("GET", "events/0f5e2b1a-0000-0000-0000-000000000000"),
        ("GET", "no_such_collection"),
    ],
)
def test_unknown_objects_are_404_in_the_envelope(api: Api, method: str, path: str):
    response = api.call(method, path, json={"reason": "Test"})

    assert response.status_code == 404
    assert set(response.json()) == {"data", "metadata"}


def test_wrong_method_is_405(api: Api):
    assert api.call("PATCH", "badges").status_code == 405


def test_organization_and_template_objects(api: Api, fake: FakeCredly, template_id: str):
    org = api.call("GET").json()
    template = api.call("GET", f"badge_templates/{template_id}").json()

    assert org["metadata"] == {}
    assert org["data"]["name"] == "Main Organization"
    assert org["data"]["extra_field"]
    data = template["data"]
    assert template["metadata"] == {}
    assert data["id"] == template_id
    assert data["state"] == "active"
    assert data["allow_duplicate_badges"] is False
    assert data["image_url"] == data["image"]["url"]
    assert data["image_url"].startswith(fake.base_url)
    assert data["owner"]["id"] == api.org_id
    assert data["created_at"].endswith("Z")
    assert "extra_field" in data


# -- issuing ---------------------------------------------------------------------------------------
def test_issue_answers_201_with_a_pending_badge(api: Api, fake: FakeCredly, template_id: str):
    response = api.issue(template_id, evidence=[{"type": "UrlEvidence", "name": "Course", "value": "https://e.x"}])

    assert response.status_code == 201
    body = response.json()
    badge = body["data"]
    assert body["metadata"] == {}
    assert badge["state"] == "pending"
    assert badge["accept_badge_url"].startswith(fake.base_url)
    assert badge["badge_url"] == f"{fake.base_url}badges/{badge['id']}"
    assert badge["issued_at"] == "2025-03-01T10:00:00.000Z"
    assert badge["issued_at_date"] == "2025-03-01"
    assert badge["created_at"].endswith("Z")
    assert badge["issued_to"] == "Ada Lovelace"
    assert badge["issuer_earner_id"] == "earner-ada@example.com"
    assert badge["badge_template"]["id"] == template_id
    assert badge["evidence"][0]["type"] == "UrlEvidence"
    assert badge["revocation_reason"] is None
    assert badge["extra_field"]


@pytest.mark.parametrize("missing", ["recipient_email", "issued_to_first_name", "issued_to_last_name", "issued_at"])
def test_required_fields(api: Api, template_id: str, missing: str):
    response = api.issue(template_id, **{missing: ...})

    assert response.status_code == 422
    assert error_attributes(response) == [missing]
    assert response.json()["data"]["errors"][0]["messages"] == ["can't be blank"]
    assert "can't be blank" in response.json()["data"]["message"]


def test_every_missing_field_is_reported(api: Api):
    response = api.call("POST", "badges", json={"unexpected": "field"})

    assert response.status_code == 422
    assert error_attributes(response) == [
        "recipient_email",
        "issued_to_first_name",
        "issued_to_last_name",
        "badge_template_id",
        "issued_at",
    ]


@pytest.mark.parametrize(
    ("issued_at", "stored"),
    [
        ("2025-03-01 10:00:00 +0000", "2025-03-01T10:00:00.000Z"),
        ("2014-04-01 09:41:00 -0500", "2014-04-01T14:41:00.000Z"),
        ("2025-03-01T10:00:00Z", "2025-03-01T10:00:00.000Z"),
        ("2025-03-01T12:00:00.250+02:00", "2025-03-01T10:00:00.250Z"),
    ],
)
def test_issued_at_formats(api: Api, template_id: str, issued_at: str, stored: str):
    response = api.issue(template_id, issued_at=issued_at)

    assert response.status_code == 201
    assert response.json()["data"]["issued_at"] == stored


@pytest.mark.parametrize("issued_at", ["yesterday", "2025-13-01 10:00:00 +0000", "01/03/2025"])
def test_unparsable_issued_at_is_422(api: Api, template_id: str, issued_at: str):
    response = api.issue(template_id, issued_at=issued_at)

    assert response.status_code == 422
    assert error_attributes(response) == ["issued_at"]


@pytest.mark.parametrize("state", ["archived", "draft"])
def test_inactive_template_cannot_issue(harness: CredlyHarness, api: Api, state: str):
    template = harness.seed_template("Not now", state=state)

    response = api.issue(template)

    assert response.status_code == 422
    assert error_attributes(response) == ["badge_template_id"]
    assert state in response.json()["data"]["message"]


def test_unknown_template_is_422(api: Api):
    response = api.issue("3f1d2c9e-0b7a-4c55-9e61-2d0f6a1b7c40")

    assert response.status_code == 422
    assert error_attributes(response) == ["badge_template_id"]


@pytest.mark.parametrize(
    ("expires_at", "stored"),
    [(None, None), (False, None), ("2027-03-01 00:00:00 +0000", "2027-03-01T00:00:00.000Z")],
)
def test_expires_at_values(api: Api, template_id: str, expires_at, stored):
    response = api.issue(template_id, expires_at=expires_at)

    assert response.status_code == 201
    assert response.json()["data"]["expires_at"] == stored


def test_unparsable_expires_at_is_422(api: Api, template_id: str):
    response = api.issue(template_id, expires_at="in two years")

    assert response.status_code == 422
    assert error_attributes(response) == ["expires_at"]


@pytest.mark.parametrize("body", ["recipient_email=ada@example.com", "[]", "{broken"])
def test_non_json_or_non_object_body_is_400(api: Api, body: str):
    response = api.call("POST", "badges", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})

    assert response.status_code == 400
    assert response.json()["data"]["message"]


def test_evidence_must_be_a_list_of_objects(api: Api, template_id: str):
    response = api.issue(template_id, evidence="https://example.com")

    assert response.status_code == 422
    assert error_attributes(response) == ["evidence"]


# -- duplicates ------------------------------------------------------------------------------------
def test_same_email_is_a_duplicate(api: Api, fake: FakeCredly, template_id: str):
    api.badge_id(template_id, "ada@example.com")

    response = api.issue(template_id, "ADA@example.com", issuer_earner_id="someone-else")

    assert response.status_code == 422
    assert response.json()["data"] == {
        "message": "Recipient email already has this badge",
        "errors": [{"attribute": "recipient_email", "messages": ["already has this badge"]}],
    }
    assert fake.duplicates_stored == 0


def test_same_earner_id_is_a_duplicate(api: Api, template_id: str):
    api.badge_id(template_id, "ada@example.com", issuer_earner_id="user-42")

    response = api.issue(template_id, "ada@work.example.com", issuer_earner_id="user-42")

    assert response.status_code == 422
    assert response.json()["data"]["message"] == "User already has this badge"
    assert error_attributes(response) == ["user_id"]


def test_same_credly_user_is_a_duplicate(api: Api, fake: FakeCredly, template_id: str):
    api.badge_id(template_id, "ada@example.com")
    fake.link_emails(api.org_id, "ada@example.com", "ada@home.example.com")

    response = api.issue(template_id, "ada@home.example.com")

    assert error_attributes(response) == ["user_id"]


def test_other_template_or_recipient_is_not_a_duplicate(harness: CredlyHarness, api: Api, template_id: str):
    api.badge_id(template_id, "ada@example.com")

    assert api.issue(harness.seed_template("Another"), "ada@example.com").status_code == 201
    assert api.issue(template_id, "grace@example.com").status_code == 201


def test_allow_duplicate_badges_skips_the_check_and_is_counted(harness: CredlyHarness, api: Api, fake: FakeCredly):
    template = harness.seed_template("Repeatable", allow_duplicates=True)
    api.badge_id(template)

    assert api.issue(template).status_code == 201
    assert fake.duplicates_stored == 1
    assert harness.duplicates_created() == 1
    assert len(harness.live_awards(template, "ada@example.com")) == 2


@pytest.mark.parametrize("closed", ["revoked", "replaced", "rejected"])
def test_closed_badges_do_not_block_by_default(api: Api, fake: FakeCredly, template_id: str, closed: str):
    # Credly deletes a rejected badge for the earner, so issuing it again is possible (a staff decision).
    badge = api.badge_id(template_id)
    fake.set_badge_state(api.org_id, badge, closed)

    assert api.issue(template_id).status_code == 201
    assert fake.duplicates_stored == 0


@pytest.mark.parametrize("closed", ["revoked", "rejected"])
def test_revoked_badges_can_be_made_to_block(api: Api, fake: FakeCredly, template_id: str, closed: str):
    fake.revoked_block_duplicates = True
    badge = api.badge_id(template_id)
    fake.set_badge_state(api.org_id, badge, closed)

    assert api.issue(template_id).status_code == 422


@pytest.mark.parametrize("state", ["accepted", "expired"])
def test_other_states_still_block(api: Api, fake: FakeCredly, template_id: str, state: str):
    badge = api.badge_id(template_id)
    fake.set_badge_state(api.org_id, badge, state)

    assert api.issue(template_id).status_code == 422


# -- lists: paging, filters, sort ------------------------------------------------------------------
def test_paging_links_are_absolute_and_keep_the_query(harness: CredlyHarness, api: Api, fake: FakeCredly):
    harness.set_page_size(2)
    for number in range(5):
        harness.seed_template(f"Badge {number}")
    params = {"filter": "state::active", "sort": "-name"}

    first = api.call("GET", "badge_templates", params=params).json()
    second = requests.get(first["metadata"]["next_page_url"], auth=(api.token, ""), timeout=5).json()
    last = requests.get(second["metadata"]["next_page_url"], auth=(api.token, ""), timeout=5).json()

    assert {key: value for key, value in first["metadata"].items() if not key.endswith("_url")} == {
        "count": 2,
        "current_page": 1,
        "total_count": 5,
        "total_pages": 3,
        "per": 2,
    }
    assert first["metadata"]["previous_page_url"] is None
    next_url = first["metadata"]["next_page_url"]
    assert next_url == f"{api.url('badge_templates')}?filter=state%3A%3Aactive&sort=-name&page=2"
    assert last["metadata"]["next_page_url"] is None
    assert last["metadata"]["previous_page_url"].endswith("&page=2")
    assert last["metadata"]["count"] == 1
    names = [t["name"] for page in (first, second, last) for t in page["data"]]
    assert names == [f"Badge {number}" for number in (4, 3, 2, 1, 0)]


def test_paging_links_use_the_request_host(harness: CredlyHarness, api: Api):
    harness.set_page_size(1)
    harness.seed_template("One")
    harness.seed_template("Two")

    page = requests.get(api.url("badge_templates", host="localhost"), auth=(api.token, ""), timeout=5).json()

    assert page["metadata"]["next_page_url"].startswith(api.url("badge_templates", host="localhost"))


def test_default_page_size_is_50_and_per_can_only_lower_it(harness: CredlyHarness, api: Api):
    for number in range(55):
        harness.seed_template(f"Badge {number}")

    default = api.call("GET", "badge_templates").json()["metadata"]
    lowered = api.call("GET", "badge_templates", params={"per": 10}).json()["metadata"]
    raised = api.call("GET", "badge_templates", params={"per": 100}).json()["metadata"]

    assert (default["per"], default["count"], default["total_pages"]) == (50, 50, 2)
    assert (lowered["per"], lowered["total_pages"]) == (10, 6)
    assert raised["per"] == 50


def test_page_beyond_the_end_is_empty(api: Api, template_id: str):
    body = api.call("GET", "badge_templates", params={"page": 9}).json()

    assert body["data"] == []
    assert body["metadata"]["next_page_url"] is None


def test_template_filters(harness: CredlyHarness, api: Api):
    harness.seed_template("Python Basics")
    harness.seed_template("Python Basics Advanced", state="draft")
    harness.seed_template("Archery", state="archived")

    def names(filter_value: str) -> list[str]:
        response = api.call("GET", "badge_templates", params={"filter": filter_value, "sort": "name"})
        assert response.status_code == 200, response.text
        return [template["name"] for template in response.json()["data"]]

    assert names("state::active,archived") == ["Archery", "Python Basics"]
    assert names("name::basics") == ["Python Basics", "Python Basics Advanced"]
    assert names('name::"Python Basics"') == ["Python Basics"]
    assert names("query::awarded for arch") == ["Archery"]
    assert names("name::python|state::draft") == ["Python Basics Advanced"]
    assert names("public::true") == ["Archery", "Python Basics", "Python Basics Advanced"]


def test_pipe_and_encoded_pipe_mean_the_same(harness: CredlyHarness, api: Api):
    harness.seed_template("Python Basics")
    harness.seed_template("Python Data", state="draft")

    url = api.url("badge_templates")
    raw = requests.get(url + "?filter=name::python|state::draft", auth=(api.token, ""), timeout=5)
    encoded = requests.get(url + "?filter=name%3A%3Apython%7Cstate%3A%3Adraft", auth=(api.token, ""), timeout=5)

    assert [t["name"] for t in raw.json()["data"]] == [t["name"] for t in encoded.json()["data"]] == ["Python Data"]


def test_unknown_filter_key_is_refused_unless_lenient(api: Api, fake: FakeCredly, template_id: str):
    strict = api.call("GET", "badges", params={"filter": "issuer_earner_id::user-42"})
    malformed = api.call("GET", "badges", params={"filter": "state=pending"})
    fake.strict_filters = False
    lenient = api.call("GET", "badges", params={"filter": "issuer_earner_id::user-42"})

    assert strict.status_code == 422
    assert error_attributes(strict) == ["filter"]
    assert malformed.status_code == 422
    assert lenient.status_code == 200


def test_badge_filters_and_sort(harness: CredlyHarness, api: Api, fake: FakeCredly, template_id: str):
    other = harness.seed_template("Other")
    first = api.badge_id(template_id, "ada@example.com", issued_at="2025-01-01 00:00:00 +0000")
    second = api.badge_id(template_id, "grace@example.com", issued_at="2025-02-01 00:00:00 +0000")
    third = api.badge_id(other, "ada@example.com", issued_at="2025-03-01 00:00:00 +0000")
    fake.set_badge_state(api.org_id, second, "accepted")
    fake.link_emails(api.org_id, "ada@example.com", "ada@home.example.com")

    def ids(filter_value: str, sort: str = "issued_at") -> list[str]:
        response = api.call("GET", "badges", params={"filter": filter_value, "sort": sort})
        assert response.status_code == 200, response.text
        return [badge["id"] for badge in response.json()["data"]]

    assert ids(f"badge_template_id::{template_id}") == [first, second]
    assert ids(f"badge_template_id::{template_id},{other}", sort="-issued_at") == [third, second, first]
    assert ids("recipient_email::ADA@example.com") == [first, third]
    assert ids(f"badge_template_id::{template_id}|recipient_email::ada@example.com") == [first]
    assert ids("recipient_email::ada@home.example.com") == []
    assert ids("recipient_email_all::ada@home.example.com") == [first, third]
    assert ids("state::accepted") == [second]
    assert ids("state::pending,accepted") == [first, second, third]
    assert ids("query::grace") == [second]


def test_plus_in_a_query_string_decodes_to_a_space(api: Api, template_id: str):
    api.badge_id(template_id, "ada+badges@example.com")
    url = api.url("badges") + "?filter=recipient_email::{}"

    raw = requests.get(url.format("ada+badges@example.com"), auth=(api.token, ""), timeout=5).json()
    encoded = requests.get(url.format("ada%2Bbadges@example.com"), auth=(api.token, ""), timeout=5).json()

    assert raw["data"] == []
    assert len(encoded["data"]) == 1


# -- revoke, replace, delete -----------------------------------------------------------------------
def test_revoke_answers_200_with_the_revoked_badge(api: Api, template_id: str):
    badge = api.badge_id(template_id)

    response = api.call("PUT", f"badges/{badge}/revoke", json={"reason": "Issued in error"})

    data = response.json()["data"]
    assert response.status_code == 200
    assert data["state"] == "revoked"
    assert data["revocation_reason"] == "Issued in error"
    assert data["accept_badge_url"] is None


def test_revoke_reason_may_come_in_the_query(api: Api, template_id: str):
    badge = api.badge_id(template_id)

    response = api.call("PUT", f"badges/{badge}/revoke", params={"reason": "Cheating"})

    assert response.status_code == 200
    assert response.json()["data"]["revocation_reason"] == "Cheating"


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": None}])
def test_revoke_needs_a_reason(api: Api, template_id: str, body: dict):
    badge = api.badge_id(template_id)

    response = api.call("PUT", f"badges/{badge}/revoke", json=body)

    assert response.status_code == 422
    assert error_attributes(response) == ["reason"]


@pytest.mark.parametrize("state", ["revoked", "replaced"])
def test_revoking_a_closed_badge_is_422(api: Api, fake: FakeCredly, template_id: str, state: str):
    badge = api.badge_id(template_id)
    fake.set_badge_state(api.org_id, badge, state)

    response = api.call("PUT", f"badges/{badge}/revoke", json={"reason": "Again"})

    assert response.status_code == 422
    assert state in response.json()["data"]["message"]


def test_revoke_with_a_non_json_body_is_400(api: Api, template_id: str):
    badge = api.badge_id(template_id)

    assert api.call("PUT", f"badges/{badge}/revoke", data="reason=x").status_code == 400


def test_replace_issues_a_new_badge(api: Api, fake: FakeCredly, template_id: str):
    old = api.badge_id(template_id)

    response = api.call(
        "POST", f"badges/{old}/replace", json={"issued_at": "2025-06-01 00:00:00 +0000", "notification_message": "Hi"}
    )

    new = response.json()["data"]
    assert response.status_code == 201
    assert new["replaces_badge_id"] == old
    assert new["state"] == "pending"
    assert new["recipient_email"] == "ada@example.com"
    assert new["issued_at"] == "2025-06-01T00:00:00.000Z"
    old_badge = api.call("GET", f"badges/{old}").json()["data"]
    assert old_badge["state"] == "replaced"
    assert old_badge["replacement_badge_id"] == new["id"]
    assert fake.duplicates_stored == 0


def test_replacing_a_revoked_badge_is_422(api: Api, fake: FakeCredly, template_id: str):
    old = api.badge_id(template_id)
    fake.set_badge_state(api.org_id, old, "revoked")

    assert api.call("POST", f"badges/{old}/replace", json={}).status_code == 422


def test_delete_answers_204_and_forgets_the_badge(api: Api, template_id: str):
    badge = api.badge_id(template_id)

    deleted = api.call("DELETE", f"badges/{badge}")

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert api.call("GET", f"badges/{badge}").status_code == 404
    assert api.call("DELETE", f"badges/{badge}").status_code == 404


@pytest.mark.parametrize("state", ["accepted", "rejected"])
def test_earner_decisions_clear_the_accept_url(api: Api, fake: FakeCredly, template_id: str, state: str):
    badge = api.badge_id(template_id)

    fake.set_badge_state(api.org_id, badge, state)

    data = api.call("GET", f"badges/{badge}").json()["data"]
    assert data["state"] == state
    assert data["accept_badge_url"] is None


# -- events ----------------------------------------------------------------------------------------
def test_every_change_is_an_event(harness: CredlyHarness, api: Api, fake: FakeCredly, template_id: str):
    badge = api.badge_id(template_id)
    api.call("PUT", f"badges/{badge}/revoke", json={"reason": "Issued in error"})
    api.call("DELETE", f"badges/{badge}")
    fake.set_template_state(api.org_id, template_id, "archived")

    events = fake.events_of(api.org_id)

    assert [event["event_type"] for event in events] == [
        "badge_template.created",
        "badge.created",
        "badge.state.changed",
        "badge.deleted",
        "badge_template.changed",
    ]
    fetched = [api.call("GET", f"events/{event['id']}").json()["data"] for event in events]
    assert all(event["organization_id"] == api.org_id and event["occurred_at"].endswith("Z") for event in fetched)
    assert fetched[1]["badge"]["state"] == "pending"
    assert fetched[2]["badge"]["state"] == "revoked"
    assert fetched[3]["badge"]["id"] == badge
    assert fetched[4]["badge_template"]["state"] == "archived"
    assert fetched[4]["badge_template"]["owner"]["id"] == api.org_id


def test_events_are_scoped_to_their_organization(harness: CredlyHarness, api: Api, fake: FakeCredly):
    harness.seed_template("Main template")
    event_id = fake.events_of(api.org_id)[0]["id"]
    other = harness.account_fields("other")

    response = requests.get(
        f"{fake.base_url}v1/organizations/{other['organization_id']}/events/{event_id}",
        auth=(other["token"], ""),
        timeout=5,
    )

    assert response.status_code == 404


def test_privacy_changes_are_events(api: Api, fake: FakeCredly, template_id: str):
    badge = api.badge_id(template_id)
    assert api.call("GET", f"badges/{badge}").json()["data"]["public"] is True

    fake.set_badge_privacy(api.org_id, badge, public=False)

    event = fake.events_of(api.org_id)[-1]
    assert event["event_type"] == "badge.privacy.changed"
    fetched = api.call("GET", f"events/{event['id']}").json()["data"]
    assert (fetched["badge"]["id"], fetched["badge"]["public"]) == (badge, False)
    assert api.call("GET", f"badges/{badge}").json()["data"]["public"] is False


def test_a_deleted_template_is_gone_but_its_badges_still_name_it(api: Api, fake: FakeCredly, template_id: str):
    badge = api.badge_id(template_id)

    fake.delete_template(api.org_id, template_id)

    assert api.call("GET", f"badge_templates/{template_id}").status_code == 404
    assert api.call("GET", "badge_templates").json()["data"] == []
    assert api.call("GET", f"badges/{badge}").json()["data"]["badge_template"]["id"] == template_id
    event = fake.events_of(api.org_id)[-1]
    assert event["event_type"] == "badge_template.deleted"
    fetched = api.call("GET", f"events/{event['id']}").json()["data"]
    assert fetched["badge_template"]["id"] == template_id


def test_webhook_stub_is_the_unsigned_four_field_notification(harness: CredlyHarness, api: Api, fake: FakeCredly):
    harness.seed_template("Notified")
    event = harness.events()[-1]
    received = []

    def post(url: str, body: bytes) -> int:
        received.append((url, json.loads(body)))
        return 200

    assert harness.notify("https://lms.example.com/hook/", post=post) == 200
    assert harness.notify("https://lms.example.com/hook/", event, post=post, extra="forged", id="nope") == 200

    assert received[0] == (
        "https://lms.example.com/hook/",
        {key: event[key] for key in ("id", "organization_id", "event_type", "occurred_at")},
    )
    assert (received[1][1]["id"], received[1][1]["extra"]) == ("nope", "forged")
    assert harness.events(event_type="badge_template.created") == [event]


def test_webhook_posts_go_over_http_by_default(fake: FakeCredly):
    # Posted to the fake itself, which refuses it without credentials: enough to see the POST arrive.
    status = fake.post_webhook(f"{fake.base_url}hook", {"id": "e1"})

    assert status == 401  # the fake authenticates every route; the request reached it
    assert fake.journal[-1].method == "POST"
    assert fake.journal[-1].json() == {"id": "e1"}


# -- harness ---------------------------------------------------------------------------------------
def test_accounts_are_separate_organizations(harness: CredlyHarness, fake: FakeCredly):
    main, other = harness.account_fields(), harness.account_fields("other")

    assert main["organization_id"] != other["organization_id"]
    assert main["token"] == harness.token != other["token"]
    assert main["base_url"] == f"{fake.base_url}v1/"
    assert harness.account_fields() == main
    harness.seed_template("Only in other", account="other")
    assert fake.organization(main["organization_id"]).templates == {}


def test_reset_empties_stores_and_restores_switches(harness: CredlyHarness, fake: FakeCredly, api: Api, template_id):
    api.badge_id(template_id)
    fake.page_size, fake.token_expired, fake.strict_filters, fake.revoked_block_duplicates = 1, True, False, True
    org_id = api.org_id

    harness.reset()

    assert org_id in fake.organizations
    assert harness.all_awards() == []
    assert fake.organization(org_id).templates == {}
    assert (fake.page_size, fake.token_expired, fake.strict_filters, fake.revoked_block_duplicates) == (
        50,
        False,
        True,
        False,
    )
    assert fake.journal == []


@pytest.mark.parametrize(
    ("state", "wire"),
    [
        (AwardState.ACCEPTED, "accepted"),
        (AwardState.REJECTED, "rejected"),
        (AwardState.REVOKED, "revoked"),
        (AwardState.EXPIRED, "expired"),
        (AwardState.REPLACED, "replaced"),
        (AwardState.PENDING, "pending"),
    ],
)
def test_harness_sets_award_states(harness: CredlyHarness, api: Api, template_id: str, state: AwardState, wire):
    badge = api.badge_id(template_id)

    harness.set_award_state(badge, state)

    data = api.call("GET", f"badges/{badge}").json()["data"]
    assert data["state"] == wire
    assert harness.award_state(badge) == state
    assert (harness.live_awards(template_id, "ada@example.com") != []) == state.is_live
    if state == AwardState.EXPIRED:
        assert data["expires_at"] is not None
    if state == AwardState.REVOKED:
        assert data["revocation_reason"]


def test_harness_deletes_and_reports_unknown_states(harness: CredlyHarness, api: Api, fake, template_id: str):
    deleted, odd = api.badge_id(template_id, "a@example.com"), api.badge_id(template_id, "b@example.com")

    harness.set_award_state(deleted, AwardState.DELETED)
    fake.set_badge_state(api.org_id, odd, "under_review")

    assert harness.award_state(deleted) == AwardState.DELETED
    assert harness.award_state(odd) == AwardState.UNKNOWN
    assert [badge["id"] for badge in harness.all_awards()] == [odd]
    with pytest.raises(ValueError, match="unrecognised"):
        harness.set_award_state(odd, AwardState.UNKNOWN)


@pytest.mark.parametrize(
    ("operation", "method", "path"),
    [
        ("list_templates", "GET", "badge_templates"),
        ("issue", "POST", "badges"),
        ("find", "GET", "badges"),
        ("get", "GET", "badges/{badge}"),
        ("revoke", "PUT", "badges/{badge}/revoke"),
        ("any", "GET", ""),
    ],
)
def test_operation_routes_match_the_client_calls(
    harness: CredlyHarness, api: Api, template_id: str, operation: str, method: str, path: str
):
    badge = api.badge_id(template_id) if "{badge}" in path else ""
    harness.inject(operation, status=418, body="injected")

    response = api.call(method, path.format(badge=badge), json={"reason": "x"} if method == "PUT" else None)

    assert response.status_code == 418
    assert response.text == "injected"
    assert api.call("GET", "badges/unknown-id").status_code == 404


def test_unknown_operation_is_refused(harness: CredlyHarness):
    with pytest.raises(ValueError, match="Unknown operation"):
        harness.operation_route("publish")
