"""The course staff API's preview and approval endpoints, and a course staff member's whole path over the API.

They go through ``api.preview_course_badge``, ``api.issue_payload_preview``, ``api.approve_awards`` and
``api.decline_awards`` down to the ledger and the fake providers.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from badges_bridge.data import CourseGrade
from badges_bridge.models import BadgeIssuance, IssuanceState
from tests.staff_world import ROLES, build_world

pytestmark = pytest.mark.django_db
S = IssuanceState


@pytest.fixture
def world(credly, django_user_model):
    return build_world(credly, django_user_model)


@pytest.fixture
def waiting(world, django_user_model):
    """Two learners awaiting approval of the badge that requires it."""
    rows = []
    for name in ("wanda", "walt"):
        user = django_user_model.objects.create_user(name, f"{name}@example.com", first_name=name.title())
        rows.append(
            BadgeIssuance.objects.create(
                user=user, course_badge=world.fresh, state=S.AWAITING_APPROVAL, qualified_at=timezone.now()
            )
        )
    return rows


REVIEW_ENDPOINTS = [
    ("get", "badges/{fresh}/preview/", None),
    ("post", "badges/{fresh}/approvals/approve/", {"ids": [1]}),
    ("post", "badges/{fresh}/approvals/decline/", {"ids": [1], "reason": "Not yet"}),
]
EXPECTED = {"anonymous": 401, "learner": 403, "staff_of_another_course": 403, "course_staff": 200, "global_staff": 200}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "body"), REVIEW_ENDPOINTS, ids=[e[1] for e in REVIEW_ENDPOINTS])
def test_the_permission_matrix_of_preview_and_approvals(world, role, method, path, body):
    response = getattr(world.client(role), method)(world.url(path), body, format="json")
    assert response.status_code == EXPECTED[role], response.content


def test_the_preview_counts_who_qualifies_names_them_and_shows_the_payload(world):
    body = world.client("course_staff").get(world.url("badges/{fresh}/preview/")).json()
    assert (body["qualify"], body["already_recorded"], body["source"]) == (1, 0, "recorded")
    assert body["sample"] == ["ada"]  # usernames, not ids
    assert body["learners_read"] >= 1
    assert isinstance(body["payload"], dict)
    assert body["payload"]
    already = world.client("course_staff").get(world.url("badges/{badge}/preview/")).json()
    assert (already["qualify"], already["already_recorded"]) == (1, 1)


def test_the_preview_sample_size_is_bounded(world):
    client = world.client("course_staff")
    assert client.get(world.url("badges/{fresh}/preview/"), {"sample_size": 0}).json()["sample"] == []
    for value in ("51", "-1", "many"):
        response = client.get(world.url("badges/{fresh}/preview/"), {"sample_size": value})
        assert response.status_code == 400
        assert response.json()["sample_size"] == ["A whole number from 0 to 50."]


def test_approving_issues_the_waiting_and_skips_the_rest_with_why(world, waiting):
    ids = [waiting[0].pk, world.issued.pk]
    response = world.client("course_staff").post(world.url("badges/{fresh}/approvals/approve/"), {"ids": ids})
    assert response.status_code == 200
    body = response.json()
    assert body["done"] == [waiting[0].pk]
    assert [item["id"] for item in body["skipped"]] == [world.issued.pk]
    assert body["skipped"][0]["reason"]
    row = BadgeIssuance.objects.get(pk=waiting[0].pk)
    assert row.state != S.AWAITING_APPROVAL
    assert row.reviewed_by == world.users["course_staff"]
    assert BadgeIssuance.objects.get(pk=waiting[1].pk).state == S.AWAITING_APPROVAL
    queue = world.client("course_staff").get(world.url("badges/{fresh}/approvals/")).json()
    assert [item["id"] for item in queue["results"]] == [waiting[1].pk]


def test_declining_records_the_reason_and_who(world, waiting):
    response = world.client("global_staff").post(
        world.url("badges/{fresh}/approvals/decline/"),
        {"ids": [row.pk for row in waiting], "reason": " Needs the exam "},
        format="json",
    )
    assert response.status_code == 200
    assert sorted(response.json()["done"]) == sorted(row.pk for row in waiting)
    reviewer = world.users["global_staff"]
    for row in BadgeIssuance.objects.filter(pk__in=[row.pk for row in waiting]):
        assert (row.state, row.review_note, row.reviewed_by) == (S.DECLINED, "Needs the exam", reviewer)


def test_from_an_empty_badge_set_up_to_approved_and_hand_awarded_badges_over_the_api(
    world, platform, django_capture_on_commit_callbacks, credly
):
    """The course staff's whole path: a badge that requires approval, a backfill, an approval, a manual award."""
    ada, otto, carla = (world.users[role] for role in ("learner", "staff_of_another_course", "course_staff"))
    platform.enrolled = [ada.pk, otto.pk]
    platform.grades = {
        ada.pk: CourseGrade(percent=Decimal(92), passed=True),
        otto.pk: CourseGrade(percent=Decimal(40), passed=False),
    }
    client = world.client("course_staff")
    created = client.post(
        world.url("badges/"),
        {"template": world.spare.pk, "criterion": "grade_at_least", "grade_threshold": 80, "requires_approval": True},
        format="json",
    ).json()
    badge = f"badges/{created['id']}/"

    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(world.url(f"{badge}backfill/")).status_code == 202
    run = client.get(world.url(f"{badge}backfill/")).json()
    assert (run["state"], run["read"], run["recorded"], run["not_met"]) == ("done", 2, 1, 1)

    [waiting] = client.get(world.url(f"{badge}approvals/")).json()["results"]
    assert waiting["username"] == "ada"
    with django_capture_on_commit_callbacks(execute=True):
        approved = client.post(world.url(f"{badge}approvals/approve/"), {"ids": [waiting["id"]]}, format="json")
    assert approved.json()["done"] == [waiting["id"]]

    with django_capture_on_commit_callbacks(execute=True):
        awarded = client.post(world.url(f"{badge}awards/"), {"lines": "carla", "reason": "Course team"}).json()
    assert [line["result"] for line in awarded["lines"]] == ["awarded"]

    rows = client.get(world.url("issuances/"), {"badge": created["id"], "state": "issued"}).json()["results"]
    assert sorted(row["username"] for row in rows) == ["ada", "carla"]
    assert BadgeIssuance.objects.filter(course_badge_id=created["id"], user=otto).count() == 0
    assert carla.pk in {row["user_id"] for row in rows}
