"""The learner REST API: who may read what, authentication (JWT, session), pagination and the OpenAPI schema."""

from __future__ import annotations

import pytest
import yaml
from django.urls import reverse
from opaque_keys.edx.keys import CourseKey
from rest_framework.test import APIClient

from badges_bridge import api
from badges_bridge.models import BadgeIssuance, IssuanceState
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template
from tests.tokens import jwt_for

COURSE = CourseKey.from_string("course-v1:Org+Api+2026")
BADGES = "/api/badges_bridge/v1/badges/"
AVAILABLE = "/api/badges_bridge/v1/badges/available/"
PRIVACY = "/api/badges_bridge/v1/privacy/"
SCHEMA = "/api/badges_bridge/v1/schema/"
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("receivers")]


@pytest.fixture
def badge(credly):
    return make_course_badge(make_template(make_account(credly), credly, "API Skills"), COURSE)


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.com", first_name="Bob", last_name="Roe")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("root", "root@example.com", is_staff=True)


@pytest.fixture
def earned(badge, learner, django_capture_on_commit_callbacks):
    """Ada holds the badge (issued at the fake Credly)."""
    with django_capture_on_commit_callbacks(execute=True):
        send.send_passing_status(learner, COURSE, True)
    return BadgeIssuance.objects.get(user=learner)


def client_for(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_login(user)
    return client


def test_the_old_url_still_answers_with_count_and_results(earned, learner):
    assert reverse("badges_bridge:learner-badges") == BADGES
    BadgeIssuance.objects.filter(pk=earned.pk).update(provider_state="accepted")  # as the provider's state says
    body = client_for(learner).get(BADGES).json()
    assert body["count"] == 1
    [result] = body["results"]
    assert result["name"] == "API Skills"
    assert result["status"] == "issued"
    assert result["public_url"] == earned.public_url
    assert result["credential_id"] == earned.external_id
    assert result["share"]["linkedin_add_to_profile"].startswith("https://www.linkedin.com/profile/add?")


@pytest.mark.parametrize("url", [BADGES, AVAILABLE, PRIVACY])
def test_anonymous_requests_get_401(url):
    response = client_for().get(url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("JWT")


@pytest.mark.parametrize("url", [BADGES, AVAILABLE, PRIVACY])
def test_a_learner_sees_only_their_own_data(url, earned, learner, bob):
    assert client_for(bob).get(url).status_code == 200
    mine = client_for(bob).get(BADGES).json()
    assert mine["count"] == 0  # Bob has no badge; Ada's is not listed for him
    response = client_for(bob).get(url, {"username": "ada"})
    assert response.status_code == 403
    assert "own" in response.json()["detail"]


def test_a_learner_may_name_themselves(earned, learner):
    assert client_for(learner).get(BADGES, {"username": "ada"}).json()["count"] == 1


@pytest.mark.parametrize("url", [BADGES, AVAILABLE, PRIVACY])
def test_global_staff_may_ask_for_a_learner(url, earned, staff):
    response = client_for(staff).get(url, {"username": "ada"})
    assert response.status_code == 200
    assert client_for(staff).get(url, {"username": "nobody"}).status_code == 404


def test_staff_see_the_learners_badges_not_their_own(earned, staff):
    assert client_for(staff).get(BADGES).json()["count"] == 0
    assert client_for(staff).get(BADGES, {"username": "ada"}).json()["results"][0]["name"] == "API Skills"


def test_an_inactive_learner_is_admitted_by_session(earned, learner, settings):
    # The LMS signs in learners who have not activated their account yet; so does its session authentication.
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.AllowAllUsersModelBackend"]
    learner.is_active = False
    learner.save()
    client = APIClient()
    client.force_login(learner)
    assert client.get(BADGES).status_code == 200


def test_a_jwt_authenticates_the_learner(earned, learner):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"JWT {jwt_for(learner)}")
    body = client.get(BADGES).json()
    assert body["count"] == 1
    client.credentials(HTTP_AUTHORIZATION=f"JWT {jwt_for(learner)}x")
    assert client.get(BADGES).status_code == 401


def test_a_jwt_of_another_learner_cannot_read_adas_badges(earned, bob):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"JWT {jwt_for(bob)}")
    assert client.get(BADGES, {"username": "ada"}).status_code == 403


def test_lists_are_paginated(badge, learner, credly, django_capture_on_commit_callbacks):
    for number in range(3):
        course = CourseKey.from_string(f"course-v1:Org+Page{number}+2026")
        make_course_badge(make_template(badge.template.account, credly, f"Badge {number}"), course)
        send.send_passing_status(learner, course, True)
    client = client_for(learner)
    first = client.get(BADGES, {"page_size": 2}).json()
    assert first["count"] == 3
    assert len(first["results"]) == 2
    assert "page=2" in first["next"]
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 1
    assert second["next"] is None
    assert client.get(BADGES, {"page": 9}).status_code == 404


def test_privacy_reads_and_changes_the_learners_own_choices(earned, learner, settings):
    settings.BADGES_BRIDGE_REQUIRE_CONSENT = True
    client = client_for(learner)
    body = client.get(PRIVACY).json()
    assert body["consent_required"] is True
    assert body["consent_given"] is False
    assert body["sending_allowed"] is False
    assert body["recipients"][0]["provider_name"] == "Credly"
    assert "your e-mail address" in body["recipients"][0]["fields"]
    assert body["recipients"][0]["badges"] == ["API Skills"]

    body = client.patch(PRIVACY, {"consent": True}, format="json").json()
    assert (body["consent_given"], body["sending_allowed"]) == (True, True)
    body = client.patch(PRIVACY, {"opted_out": True}, format="json").json()
    assert (body["opted_out"], body["sending_allowed"]) == (True, False)
    response = client.patch(PRIVACY, {}, format="json")
    assert response.status_code == 400
    assert api.learner_privacy(learner.pk).opted_out


def test_privacy_changes_need_csrf_with_a_session(learner):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(learner)
    assert client.patch(PRIVACY, {"consent": True}, format="json").status_code == 403


def test_staff_cannot_change_a_learners_choices(earned, learner, staff):
    client_for(staff).patch(f"{PRIVACY}?username=ada", {"opted_out": True}, format="json")
    assert not api.learner_privacy(learner.pk).opted_out  # the change applied to the requester only
    assert api.learner_privacy(staff.pk).opted_out


def test_the_schema_builds_and_lists_the_endpoints(recwarn):
    response = client_for().get(SCHEMA, HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {BADGES, AVAILABLE, PRIVACY}
    assert set(schema["paths"][PRIVACY]) == {"get", "patch"}
    assert set(schema["components"]["securitySchemes"]) == {"jwtAuth", "cookieAuth"}
    jwt_scheme = schema["components"]["securitySchemes"]["jwtAuth"]
    assert (jwt_scheme["type"], jwt_scheme["in"], jwt_scheme["name"]) == ("apiKey", "header", "Authorization")
    assert '"JWT"' in jwt_scheme["description"]
    badge = schema["components"]["schemas"]["LearnerBadge"]["properties"]
    assert {"status", "status_text", "share", "public", "expires_at", "reason"} <= set(badge)
    parameters = {parameter["name"] for parameter in schema["paths"][BADGES]["get"]["parameters"]}
    assert parameters == {"page", "page_size", "username"}
    assert not [str(warning.message) for warning in recwarn if "drf_spectacular" in str(warning.filename)]


def test_the_schema_is_served_as_yaml_by_default():
    response = client_for().get(SCHEMA)
    assert response.status_code == 200
    assert yaml.safe_load(response.content)["info"]["title"] == "badges_bridge learner API"


def test_waiting_badges_are_listed_with_the_learners_words(badge, learner, settings):
    settings.BADGES_BRIDGE_REQUIRE_CONSENT = True
    send.send_passing_status(learner, COURSE, True)
    assert BadgeIssuance.objects.get(user=learner).state == IssuanceState.WAITING_CONSENT
    [result] = client_for(learner).get(BADGES).json()["results"]
    assert result["status"] == "waiting_consent"
    assert result["status_text"] == "Waiting for your consent to send your details to Credly."
    assert result["share"] is None
