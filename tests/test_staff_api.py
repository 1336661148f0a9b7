"""The course staff REST API: permissions, authentication, validation of every bad input, and each endpoint."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.middleware.csrf import _get_new_csrf_string
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.drainage import GENERATOR_STATS, reset_generator_stats
from opaque_keys.edx.keys import CourseKey
from rest_framework.test import APIClient

from badges_bridge import course_setup
from badges_bridge.data import CourseGrade
from badges_bridge.models import (
    AuditEntry,
    BackfillRun,
    BadgeIssuance,
    BadgeTemplate,
    CourseBadge,
    CourseBadgeChange,
    CourseSettings,
    IssuanceState,
    RevokedBy,
    StandaloneCourse,
)
from badges_bridge.rest_api.v1.staff_serializers import DUPLICATE_TEMPLATE, THRESHOLD_MESSAGE
from badges_bridge.testing.setup import make_account, make_course_badge, make_template
from tests.staff_world import API, COURSE, OTHER, ROLES, build_world
from tests.tokens import jwt_for

pytestmark = pytest.mark.django_db
S = IssuanceState


@pytest.fixture
def world(credly, django_user_model):
    return build_world(credly, django_user_model)


def staff(world) -> APIClient:
    return world.client("course_staff")


# -- the permission matrix --------------------------------------------------------------------------------------

#: Every endpoint whose work is on this branch: method, path, body, and the status course staff get.
ENDPOINTS = [
    ("get", "badges/", None, 200),
    ("post", "badges/", {"template": "spare", "criterion": "passed"}, 201),
    ("get", "badges/{badge}/", None, 200),
    ("patch", "badges/{badge}/", {"enabled": False}, 200),
    ("delete", "badges/{fresh}/", None, 204),
    ("get", "templates/", None, 200),
    ("get", "badges/{badge}/history/", None, 200),
    ("get", "badges/{badge}/backfill/", None, 200),
    ("post", "badges/{badge}/backfill/", {}, 202),
    ("get", "badges/{fresh}/approvals/", None, 200),
    ("post", "badges/{badge}/awards/", {"lines": "otto"}, 200),
    ("get", "issuances/", None, 200),
    ("post", "issuances/{issued}/revoke/", {"reason": "Plagiarism"}, 200),
]
EXPECTED = {"anonymous": 401, "learner": 403, "staff_of_another_course": 403}


def call(client: APIClient, world, method: str, path: str, body, course: CourseKey = COURSE):
    if body and body.get("template") == "spare":
        body = {**body, "template": world.spare.pk}
    return getattr(client, method)(world.url(path, course), body, format="json")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS, ids=[f"{e[0]} {e[1]}" for e in ENDPOINTS])
def test_the_permission_matrix(world, role, method, path, body, allowed):
    response = call(world.client(role), world, method, path, body)
    assert response.status_code == EXPECTED.get(role, allowed), response.content
    if role == "anonymous":
        assert response["WWW-Authenticate"].startswith("JWT")
    if role in ("learner", "staff_of_another_course"):
        assert "Studio write access to this course" in response.json()["detail"]


#: The preview and approval endpoints: refused here before their service functions are reached
#: (tests/test_staff_api_flows.py covers what they do).
REVIEW_ENDPOINTS = [
    ("get", "badges/{fresh}/preview/", None),
    ("post", "badges/{fresh}/approvals/approve/", {"ids": [1]}),
    ("post", "badges/{fresh}/approvals/decline/", {"ids": [1], "reason": "Not yet"}),
]


@pytest.mark.parametrize("role", ["anonymous", "learner", "staff_of_another_course"])
@pytest.mark.parametrize(("method", "path", "body"), REVIEW_ENDPOINTS, ids=[e[1] for e in REVIEW_ENDPOINTS])
def test_the_preview_and_approvals_refuse_who_may_not_manage_the_course(world, role, method, path, body):
    response = getattr(world.client(role), method)(world.url(path), body, format="json")
    assert response.status_code == EXPECTED[role]


@pytest.mark.parametrize(
    ("path", "body", "field", "message"),
    [
        ("approve", {}, "ids", "This field is required."),
        ("approve", {"ids": []}, "ids", "Ensure this field has at least 1 elements."),
        ("approve", {"ids": ["x"]}, "ids", "A valid integer is required."),
        ("decline", {"ids": [1]}, "reason", "This field is required."),
        ("decline", {"ids": [1], "reason": "  "}, "reason", "This field may not be blank."),
    ],
)
def test_bad_approval_requests_are_a_400(world, path, body, field, message):
    response = staff(world).post(world.url(f"badges/{{fresh}}/approvals/{path}/"), body, format="json")
    assert response.status_code == 400
    errors = response.json()[field]
    assert message in str(errors)


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS, ids=[f"{e[0]} {e[1]}" for e in ENDPOINTS])
def test_staff_of_the_other_course_may_manage_theirs_and_nothing_is_changed_by_refusals(
    world, method, path, body, allowed
):
    before = (CourseBadge.objects.count(), BadgeIssuance.objects.filter(state=S.ISSUED).count())
    before += (BackfillRun.objects.count(), AuditEntry.objects.count())
    for role in ("anonymous", "learner", "staff_of_another_course"):
        call(world.client(role), world, method, path, body)
    assert (CourseBadge.objects.count(), BadgeIssuance.objects.filter(state=S.ISSUED).count()) + (
        BackfillRun.objects.count(),
        AuditEntry.objects.count(),
    ) == before
    response = world.client("staff_of_another_course").get(f"{API}courses/{OTHER}/badges/")
    assert [badge["id"] for badge in response.json()] == [world.other_badge.pk]


@pytest.mark.parametrize("course", ["course-v1:Org+Nowhere+2026", "Org/Nowhere/2026", "bad+key+run", "nope:x+y+z"])
@pytest.mark.parametrize("role", ["learner", "course_staff", "global_staff"])
def test_an_unknown_or_malformed_course_is_404_for_anyone_signed_in(world, course, role):
    response = world.client(role).get(f"{API}courses/{course}/badges/")
    assert response.status_code == 404
    assert world.client("anonymous").get(f"{API}courses/{course}/badges/").status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "badges/{other}/", None),
        ("patch", "badges/{other}/", {"enabled": False}),
        ("delete", "badges/{other}/", None),
        ("get", "badges/{other}/history/", None),
        ("get", "badges/{other}/backfill/", None),
        ("post", "badges/{other}/backfill/", {}),
        ("get", "badges/{other}/approvals/", None),
        ("get", "badges/{other}/preview/", None),
        ("post", "badges/{other}/approvals/approve/", {"ids": [1]}),
        ("post", "badges/{other}/approvals/decline/", {"ids": [1], "reason": "No"}),
        ("post", "badges/{other}/awards/", {"lines": "ada"}),
        ("post", "issuances/{other_issued}/revoke/", {"reason": "x"}),
        ("post", "issuances/999999/revoke/", {"reason": "x"}),
        ("get", "badges/999999/", None),
    ],
)
def test_ids_of_another_course_are_404_even_for_global_staff(world, method, path, body):
    url = f"{API}courses/{COURSE}/" + path.format(other=world.other_badge.pk, other_issued=world.other_issued.pk)
    response = getattr(world.client("global_staff"), method)(url, body, format="json")
    assert response.status_code == 404
    assert world.other_badge.issuances.get().state == S.ISSUED
    assert CourseBadge.objects.get(pk=world.other_badge.pk).enabled


def test_global_staff_see_every_course(world):
    client = world.client("global_staff")
    assert [b["id"] for b in client.get(world.url("badges/")).json()] == [world.badge.pk, world.fresh.pk]
    assert [b["id"] for b in client.get(world.url("badges/", OTHER)).json()] == [world.other_badge.pk]


def test_an_old_style_course_key_works_in_the_path(world, credly):
    old = CourseKey.from_string("Org/Old/2014")
    StandaloneCourse.objects.create(course_key=old)
    badge = make_course_badge(world.spare, old)
    body = world.client("global_staff").get(f"{API}courses/Org/Old/2014/badges/").json()
    assert [item["id"] for item in body] == [badge.pk]
    assert body[0]["course_key"] == "Org/Old/2014"
    assert reverse("badges_bridge:staff-badges", kwargs={"course_id": str(COURSE)}) == world.url("badges/")


# -- authentication and CSRF --------------------------------------------------------------------------------------


def test_session_writes_need_the_csrf_token(world):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(world.users["course_staff"])
    assert client.get(world.url("badges/")).status_code == 200
    for method, path, body in [
        ("post", "badges/", {"template": world.spare.pk}),
        ("patch", "badges/{badge}/", {"enabled": False}),
        ("delete", "badges/{fresh}/", None),
        ("post", "badges/{badge}/backfill/", {}),
        ("post", "badges/{badge}/awards/", {"lines": "ada"}),
        ("post", "issuances/{issued}/revoke/", {"reason": "x"}),
        ("post", "badges/{fresh}/approvals/approve/", {"ids": [1]}),
        ("post", "badges/{fresh}/approvals/decline/", {"ids": [1], "reason": "No"}),
    ]:
        response = getattr(client, method)(world.url(path), body, format="json")
        assert response.status_code == 403, path
        assert "CSRF" in response.json()["detail"]
    assert CourseBadge.objects.filter(course_key=COURSE, enabled=True).count() == 2
    assert not BackfillRun.objects.filter(state="queued").exists()

    token = _get_new_csrf_string()
    client.cookies[settings.CSRF_COOKIE_NAME] = token
    response = client.patch(world.url("badges/{badge}/"), {"enabled": False}, format="json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    assert response.json()["enabled"] is False


def test_a_jwt_authenticates_without_csrf(world):
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"JWT {jwt_for(world.users['course_staff'])}")
    assert client.get(world.url("badges/")).status_code == 200
    assert client.patch(world.url("badges/{badge}/"), {"enabled": False}, format="json").status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"JWT {jwt_for(world.users['learner'])}")
    assert client.get(world.url("badges/")).status_code == 403
    client.credentials(HTTP_AUTHORIZATION=f"JWT {jwt_for(world.users['course_staff'])}x")
    assert client.get(world.url("badges/")).status_code == 401


def test_a_restricted_applications_jwt_is_refused(world):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"JWT {jwt_for(world.users['global_staff'], is_restricted=True)}")
    assert client.get(world.url("badges/")).status_code == 403
    assert client.patch(world.url("badges/{badge}/"), {"enabled": False}, format="json").status_code == 403
    assert CourseBadge.objects.get(pk=world.badge.pk).enabled


def test_an_inactive_staff_member_has_no_write_access(world):
    user = world.users["course_staff"]
    user.is_active = False
    user.save()
    settings_backend = ["django.contrib.auth.backends.AllowAllUsersModelBackend"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(settings, "AUTHENTICATION_BACKENDS", settings_backend)
        client = APIClient()
        client.force_login(user)
        assert client.get(world.url("badges/")).status_code == 403


# -- course badges: list, read, create, change, delete ------------------------------------------------------------


def test_the_list_says_everything_the_page_shows(world):
    BadgeIssuance.objects.create(user=world.users["global_staff"], course_badge=world.badge, state=S.DEAD)
    world.badge.template.image_url = "https://images.example.com/badge.png"
    world.badge.template.save()
    [badge, fresh] = staff(world).get(world.url("badges/")).json()
    assert badge["template_name"] == "Course badge"
    assert badge["image_url"] == "https://images.example.com/badge.png"
    assert (badge["provider"], badge["provider_name"]) == ("credly", "Credly")
    assert badge["criterion_text"] == "Pass the course. Never revoked."
    assert badge["expiry_text"].startswith("Does not expire")
    assert badge["counts"] == {"issued": 1, "pending": 0, "awaiting_approval": 0, "failed": 0, "dead": 1}
    assert (badge["enabled"], badge["version"], badge["course_key"]) == (True, 1, str(COURSE))
    assert fresh["criterion_text"] == "Pass the course. Course staff approve each award. Never revoked."


def test_lists_cost_the_same_queries_for_one_row_or_many(world, credly, django_user_model):
    client = staff(world)

    def queries(path: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(world.url(path)).status_code == 200
        return len(captured)

    course_setup.set_enabled(world.badge, False, world.users["course_staff"])  # one change in the history
    few = {path: queries(path) for path in ("badges/", "issuances/", "templates/", "badges/{badge}/history/")}
    for number in range(4):
        template = make_template(world.spare.account, credly, f"More {number}")
        badge = make_course_badge(template, COURSE)
        user = django_user_model.objects.create_user(f"m{number}", f"m{number}@example.com")
        BadgeIssuance.objects.create(user=user, course_badge=badge, state=S.PENDING)
        course_setup.set_enabled(world.badge, number % 2 == 1, user)
    assert {path: queries(path) for path in few} == few


def test_create_read_change_and_disable_a_series_badge_with_its_history(world):
    StandaloneCourse.objects.create(course_key="course-v1:Org+Exam+2026")
    client = staff(world)
    series = [
        {"course_key": str(COURSE), "criterion": "passed"},
        {"course_key": "course-v1:Org+Exam+2026", "criterion": "grade_at_least", "grade_threshold": 70},
    ]
    response = client.post(
        world.url("badges/"),
        {
            "template": world.spare.pk,
            "criterion": "series",
            "series": series,
            "earned_after": "2026-01-01T00:00:00Z",
            "earned_before": "2027-01-01T00:00:00Z",
            "revoke_policy": "certificate_revoked",
            "expires_after_days": 365,
            "evidence": "grade,course",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["version"] == 1
    assert created["criterion_text"].startswith("Meet all 2 course(s) of the series")
    assert "Revoked only when the certificate is revoked." in created["criterion_text"]
    assert created["expiry_text"] == "Expires 365 days after it is awarded."
    assert created["counts"]["issued"] == 0
    badge = CourseBadge.objects.get(pk=created["id"])
    assert (badge.course_key, badge.changed_by, badge.series) == (COURSE, world.users["course_staff"], series)

    url = world.url(f"badges/{badge.pk}/")
    changed = client.patch(url, {"series_required": 1, "expires_after_days": None}, format="json").json()
    assert changed["version"] == 2
    assert changed["criterion_text"].startswith("Meet at least 1 of 2 course(s)")
    assert client.patch(url, {"series_required": 1}, format="json").json()["version"] == 2  # nothing changed
    assert client.patch(url, {"enabled": False}, format="json").json()["enabled"] is False
    assert client.get(url).json()["version"] == 3

    history = client.get(f"{url}history/").json()
    assert [change["action"] for change in history["results"]] == ["disabled", "changed", "created"]
    assert history["results"][1]["changes"] == {"series_required": [None, 1], "expires_after_days": [365, None]}
    assert {change["changed_by"] for change in history["results"]} == {"carla"}
    assert [change["version"] for change in history["results"]] == [3, 2, 1]
    paged = client.get(f"{url}history/", {"page_size": 2}).json()
    assert (paged["count"], len(paged["results"]), paged["next"] is not None) == (3, 2, True)


def bad(world, body: dict, *, badge: CourseBadge | None = None) -> dict:
    client = staff(world)
    if badge is None:
        response = client.post(world.url("badges/"), {"template": world.spare.pk, **body}, format="json")
    else:
        response = client.patch(world.url(f"badges/{badge.pk}/"), body, format="json")
    assert response.status_code == 400, response.content
    return response.json()


def series_of(*keys: str) -> list[dict]:
    return [{"course_key": key, "criterion": "passed"} for key in keys]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"criterion": "grade_at_least", "grade_threshold": 101}, "grade_threshold", THRESHOLD_MESSAGE),
        ({"criterion": "grade_at_least", "grade_threshold": -1}, "grade_threshold", THRESHOLD_MESSAGE),
        ({"criterion": "grade_at_least", "grade_threshold": 1000}, "grade_threshold", THRESHOLD_MESSAGE),
        ({"criterion": "grade_at_least"}, "grade_threshold", "A grade threshold (0 to 100) is required"),
        ({"criterion": "passed", "grade_threshold": 50}, "grade_threshold", "Only the 'Course grade at least'"),
        ({"criterion": "series", "series": []}, "series", "Add at least one course to the series."),
        (
            {"criterion": "series", "series": series_of("course-v1:Org+Unknown+2026")},
            "series",
            "course-v1:Org+Unknown+2026 is not a course of this site.",
        ),
        (
            {"criterion": "series", "series": series_of("course-v1:Else+Other+2026")},
            "series",
            "belongs to organisation Else; a series may only hold courses of Org.",
        ),
        ({"criterion": "series", "series": series_of("nonsense")}, "series", "nonsense is not a course key"),
        (
            {"criterion": "series", "series": series_of(str(COURSE), str(COURSE))},
            "series",
            f"{COURSE} is in the series twice.",
        ),
        (
            {"criterion": "series", "series": [{"course_key": str(COURSE), "criterion": "grade_at_least"}]},
            "series",
            "the grade threshold must be a percentage from 0 to 100",
        ),
        (
            {"criterion": "series", "series": series_of(str(COURSE), str(OTHER)), "series_required": 3},
            "series_required",
            "Choose between 1 and 2, the number of courses in the series.",
        ),
        (
            {"earned_after": "2026-06-01T00:00:00Z", "earned_before": "2026-05-01T00:00:00Z"},
            "earned_before",
            "The end of the window must come after its start.",
        ),
        ({"evidence": "grade,shoe_size"}, "evidence", "Unknown evidence: shoe_size"),
        ({"criterion": "wishful"}, "criterion", "is not a valid choice"),
        ({"template": 999999}, "template", "object does not exist"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 20 else None,
)
def test_every_bad_input_is_a_400_with_a_message_on_its_field(world, body, field, message):
    errors = bad(world, body)
    assert field in errors, errors
    assert message in " ".join(errors[field])
    assert CourseBadge.objects.filter(course_key=COURSE).count() == 2


def test_templates_the_course_may_not_use_are_refused_with_why(world, credly):
    archived = make_template(world.spare.account, credly, "Old", state=BadgeTemplate.State.ARCHIVED)
    assert "archived at the provider" in bad(world, {"template": archived.pk})["template"][0]
    elsewhere = make_account(credly, "Else only", allowed_course_orgs="Else")
    foreign = make_template(elsewhere, credly, "Foreign")
    assert "may not be used by courses of organization Org" in bad(world, {"template": foreign.pk})["template"][0]
    disabled = make_account(credly, "Disabled", enabled=False)
    off = make_template(disabled, credly, "Off")
    assert bad(world, {"template": off.pk})["template"] == [
        "The provider account Disabled is disabled: choose a template of another account."
    ]
    assert bad(world, {"template": world.badge.template_id})["template"] == [DUPLICATE_TEMPLATE]
    assert bad(world, {"template": world.spare.pk}, badge=world.badge)["template"][0].startswith(
        "Badges were already issued for this course badge"
    )


def test_a_template_attached_meanwhile_by_another_request_is_a_400_not_a_500(world, monkeypatch):
    monkeypatch.setattr("badges_bridge.rest_api.v1.staff_serializers._template_problem", lambda badge: "")
    response = staff(world).post(world.url("badges/"), {"template": world.badge.template_id}, format="json")
    assert response.status_code == 400
    assert response.json() == {"template": [DUPLICATE_TEMPLATE]}
    assert CourseBadge.objects.filter(course_key=COURSE).count() == 2


def test_a_change_is_checked_against_the_badge_as_stored(world):
    client = staff(world)
    url = world.url("badges/{badge}/")
    response = client.patch(url, {"criterion": "grade_at_least", "grade_threshold": "75.5"}, format="json")
    assert response.status_code == 200
    errors = bad(world, {"grade_threshold": None}, badge=world.badge)
    assert errors["grade_threshold"] == ["A grade threshold (0 to 100) is required for this criterion."]
    errors = bad(
        world, {"earned_before": "2020-01-01T00:00:00Z", "earned_after": "2021-01-01T00:00:00Z"}, badge=world.badge
    )
    assert list(errors) == ["earned_before"]
    assert CourseBadge.objects.get(pk=world.badge.pk).grade_threshold == Decimal("75.5")
    unchanged = client.patch(url, {"template": world.badge.template_id}, format="json")
    assert unchanged.status_code == 200  # an unchanged template is never refused


def test_a_badge_with_awards_cannot_be_deleted_only_disabled(world):
    client = staff(world)
    response = client.delete(world.url("badges/{badge}/"))
    assert response.status_code == 409
    assert "disable it instead" in response.json()["detail"]
    assert CourseBadge.objects.filter(pk=world.badge.pk).exists()
    assert client.delete(world.url("badges/{fresh}/")).status_code == 204
    assert not CourseBadge.objects.filter(pk=world.fresh.pk).exists()
    deleted = CourseBadgeChange.objects.get(action="deleted")
    assert (deleted.badge_name, deleted.changed_by) == ("Fresh badge", world.users["course_staff"])


def test_templates_lists_what_the_course_may_use(world, credly):
    make_template(world.spare.account, credly, "Archived", state=BadgeTemplate.State.ARCHIVED)
    make_template(make_account(credly, "Else only", allowed_course_orgs="Else"), credly, "Foreign")
    make_template(make_account(credly, "Org only", allowed_course_orgs="Org"), credly, "Ours")
    body = staff(world).get(world.url("templates/")).json()
    assert [item["name"] for item in body] == ["Course badge", "Fresh badge", "Other badge", "Ours", "Spare"]
    assert set(body[0]) == {"id", "name", "description", "image_url", "provider", "provider_name", "account_name"}
    assert body[3]["account_name"] == "Org only"


# -- backfill ------------------------------------------------------------------------------------------------------


def test_backfill_starts_once_and_reports_its_progress(
    world, platform, monkeypatch, django_capture_on_commit_callbacks
):
    learners = [world.users["learner"], world.users["staff_of_another_course"]]
    platform.enrolled = [user.pk for user in learners]
    platform.grades = {user.pk: CourseGrade(percent=Decimal(90), passed=True) for user in learners}
    monkeypatch.setattr("badges_bridge.backfill.start_feeder", lambda countdown=None: True)
    client = staff(world)
    url = world.url("badges/{badge}/backfill/")
    with django_capture_on_commit_callbacks() as queued:
        started = client.post(url)
        again = client.post(url)
    assert (started.status_code, again.status_code) == (202, 200)
    assert started.json()["id"] == again.json()["id"]
    assert (started.json()["state"], started.json()["started_by"]) == ("queued", "carla")
    assert client.get(url).json()["state"] == "queued"
    for callback in queued:
        callback()  # the task runs (eager Celery)
    done = client.get(url).json()
    assert (done["state"], done["read"], done["recorded"], done["existing"]) == ("done", 2, 1, 1)
    assert (done["total"], done["percent_done"]) == (2, 100)
    assert BadgeIssuance.objects.filter(course_badge=world.badge).count() == 2  # Ada's row was there already


def test_a_running_backfill_shows_how_far_it_is(world):
    BackfillRun.objects.create(course_badge=world.badge, state="running", total=400, read=100, recorded=7)
    body = staff(world).get(world.url("badges/{badge}/backfill/")).json()
    assert (body["state"], body["percent_done"], body["recorded"]) == ("running", 25, 7)
    BackfillRun.objects.filter(state="running").update(total=None)
    assert staff(world).get(world.url("badges/{badge}/backfill/")).json()["percent_done"] is None


def test_backfill_of_a_disabled_badge_or_course_is_409_and_before_any_run_404(world):
    client = staff(world)
    assert client.get(world.url("badges/{fresh}/backfill/")).status_code == 404
    course_setup.set_enabled(world.fresh, False, None)
    response = client.post(world.url("badges/{fresh}/backfill/"))
    assert response.status_code == 409
    assert response.json()["detail"] == "This badge is disabled: enable it before running a backfill."
    CourseSettings.objects.create(course_key=COURSE, badges_enabled=False)
    response = client.post(world.url("badges/{badge}/backfill/"))
    assert response.status_code == 409
    assert "switched off for this course" in response.json()["detail"]


# -- the approval queue ------------------------------------------------------------------------------------------


def test_the_approval_queue_lists_waiting_learners_oldest_first_in_pages(world, django_user_model):
    now = timezone.now()
    waiting = []
    for number in range(3):
        user = django_user_model.objects.create_user(f"w{number}", f"w{number}@example.com")
        waiting.append(
            BadgeIssuance.objects.create(
                user=user,
                course_badge=world.fresh,
                state=S.AWAITING_APPROVAL,
                qualified_at=now - timedelta(days=number),
                grade=Decimal("0.9"),
            )
        )
    BadgeIssuance.objects.create(user=world.users["learner"], course_badge=world.fresh, state=S.DECLINED)
    client = staff(world)
    first = client.get(world.url("badges/{fresh}/approvals/"), {"page_size": 2}).json()
    assert first["count"] == 3
    assert [row["username"] for row in first["results"]] == ["w2", "w1"]
    assert set(first["results"][0]) == {"id", "user_id", "username", "qualified_at", "grade"}
    second = client.get(first["next"]).json()
    assert [row["id"] for row in second["results"]] == [waiting[0].pk]


# -- manual awards and revocations -------------------------------------------------------------------------------


def test_a_manual_award_gives_one_result_per_line_and_names_the_staff_member(world, django_user_model):
    django_user_model.objects.create_user("grace", "grace@example.com")
    lines = "username\notto\nGRACE@example.com\nada\nnobody\nnot an@address\notto\n"
    response = staff(world).post(world.url("badges/{badge}/awards/"), {"lines": lines, "reason": " Tutor "})
    assert response.status_code == 200
    body = response.json()
    assert [(line["number"], line["result"]) for line in body["lines"]] == [
        (2, "awarded"),
        (3, "awarded"),
        (4, "already_held"),
        (5, "unknown_user"),
        (6, "bad_line"),
        (7, "duplicate_line"),
    ]
    assert body["counts"]["awarded"] == 2
    assert body["summary"].startswith("2 awarded, 1 already held, 1 unknown user, 1 bad line")
    row = BadgeIssuance.objects.get(pk=body["lines"][0]["issuance_id"])
    assert row.user == world.users["staff_of_another_course"]
    entry = row.audit_entries.order_by("-id").first()
    assert entry.actor == f"staff:{world.users['course_staff'].pk}"
    assert "Tutor" in entry.message


def test_a_manual_award_takes_a_csv_file_and_a_dry_run_writes_nothing(world):
    upload = SimpleUploadedFile("people.csv", "\ufeffemail,name\notto@example.com,Otto\n".encode(), "text/csv")
    body = staff(world).post(world.url("badges/{badge}/awards/"), {"file": upload, "dry_run": "true"}).json()
    assert body["dry_run"] is True
    assert [(line["result"], line["detail"]) for line in body["lines"]] == [("bad_line", "more than one value")]
    upload = SimpleUploadedFile("people.csv", b"email\notto@example.com\n", "text/csv")
    body = staff(world).post(world.url("badges/{badge}/awards/"), {"file": upload, "dry_run": "true"}).json()
    assert [line["result"] for line in body["lines"]] == ["awarded"]
    assert not BadgeIssuance.objects.filter(user=world.users["staff_of_another_course"]).exists()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "lines", "Give the learners as 'lines' or as a CSV 'file' (one)."),
        ({"lines": "  \n"}, "lines", "Give the learners as 'lines' or as a CSV 'file' (one)."),
        ({"lines": "ada\n" * 10_001}, "lines", "too many lines"),
        ({"lines": "ada", "dry_run": "perhaps"}, "dry_run", "Must be a valid boolean."),
    ],
)
def test_a_manual_award_that_cannot_start_is_a_400(world, body, field, message):
    response = staff(world).post(world.url("badges/{badge}/awards/"), body, format="json")
    assert response.status_code == 400
    assert message in response.json()[field][0]


def test_a_file_too_large_is_refused(world, monkeypatch):
    monkeypatch.setattr("badges_bridge.rest_api.v1.staff_serializers.MAX_AWARD_FILE_BYTES", 10)
    upload = SimpleUploadedFile("people.csv", b"otto\nada\ngrace\n", "text/csv")
    response = staff(world).post(world.url("badges/{badge}/awards/"), {"file": upload})
    assert response.status_code == 400
    assert response.json()["file"] == ["The file is over 10 bytes."]


def test_a_file_that_is_not_utf8_is_refused(world):
    upload = SimpleUploadedFile("people.csv", "otto\nJosé\n".encode("latin-1"), "text/csv")
    response = staff(world).post(world.url("badges/{badge}/awards/"), {"file": upload})
    assert response.status_code == 400
    assert response.json()["file"] == ["The file must be UTF-8 text (CSV)."]


def test_revoke_a_learners_badge_with_a_reason(world):
    client = staff(world)
    url = world.url("issuances/{issued}/revoke/")
    response = client.post(url, {"reason": "  "}, format="json")
    assert response.status_code == 400
    assert "reason" in response.json()
    body = client.post(url, {"reason": "Plagiarism"}, format="json").json()
    assert (body["issuance_id"], body["applied"], body["outcome"]) == (world.issued.pk, True, "queued")
    row = BadgeIssuance.objects.get(pk=world.issued.pk)
    assert (row.state, row.revoked_by, row.revoke_reason) == (S.REVOKE_PENDING, RevokedBy.OPERATOR, "Plagiarism")
    assert row.audit_entries.order_by("-id").first().actor == f"staff:{world.users['course_staff'].pk}"
    again = client.post(url, {"reason": "Plagiarism"}, format="json").json()
    assert (again["applied"], again["outcome"]) == (False, "skipped")


# -- the course's ledger ------------------------------------------------------------------------------------------


def test_issuances_are_the_courses_filtered_and_paged(world, django_user_model):
    for number in range(3):
        user = django_user_model.objects.create_user(f"p{number}", f"p{number}@example.com")
        BadgeIssuance.objects.create(user=user, course_badge=world.fresh, state=S.AWAITING_APPROVAL)
    client = staff(world)
    everything = client.get(world.url("issuances/")).json()
    assert everything["count"] == 4  # the other course's row is not listed
    assert {row["course_badge"] for row in everything["results"]} == {world.badge.pk, world.fresh.pk}
    issued = client.get(world.url("issuances/"), {"state": "issued"}).json()["results"]
    assert [(row["id"], row["username"], row["badge_name"], row["state_label"]) for row in issued] == [
        (world.issued.pk, "ada", "Course badge", "Issued")
    ]
    fresh = client.get(world.url("issuances/"), {"badge": world.fresh.pk, "page_size": 2}).json()
    assert (fresh["count"], len(fresh["results"]), fresh["next"] is not None) == (3, 2, True)
    assert client.get(world.url("issuances/"), {"username": "p1"}).json()["count"] == 1
    assert client.get(world.url("issuances/"), {"page": 9}).status_code == 404


@pytest.mark.parametrize(
    ("params", "field"), [({"state": "happy"}, "state"), ({"badge": "x"}, "badge"), ({"badge": "other"}, "badge")]
)
def test_issuance_filters_that_name_nothing_of_the_course_are_a_400(world, params, field):
    if params.get("badge") == "other":
        params = {"badge": world.other_badge.pk}
    response = staff(world).get(world.url("issuances/"), params)
    assert response.status_code == 400
    assert field in response.json()


def test_a_retired_learners_row_is_listed_without_a_user(world):
    BadgeIssuance.objects.filter(pk=world.issued.pk).update(user=None, state=S.RETIRED)
    [row] = staff(world).get(world.url("issuances/"), {"state": "retired"}).json()["results"]
    assert (row["user_id"], row["username"]) == (None, None)


# -- the OpenAPI schema -------------------------------------------------------------------------------------------

STAFF_PATHS = {
    f"{API}courses/{{course_id}}/{path}"
    for path in (
        "badges/",
        "badges/{badge_id}/",
        "badges/{badge_id}/history/",
        "badges/{badge_id}/preview/",
        "badges/{badge_id}/backfill/",
        "badges/{badge_id}/approvals/",
        "badges/{badge_id}/approvals/approve/",
        "badges/{badge_id}/approvals/decline/",
        "badges/{badge_id}/awards/",
        "templates/",
        "issuances/",
        "issuances/{issuance_id}/revoke/",
    )
}


def test_the_staff_schema_builds_without_warnings_and_lists_every_endpoint(capsys):
    reset_generator_stats()
    response = APIClient().get(f"{API}schema/staff/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "badges_bridge course staff API"
    assert set(schema["paths"]) == STAFF_PATHS
    badges = schema["paths"][f"{API}courses/{{course_id}}/badges/"]
    assert set(badges) == {"get", "post"}
    assert set(badges["post"]["responses"]) == {"201"}
    badge = schema["paths"][f"{API}courses/{{course_id}}/badges/{{badge_id}}/"]
    assert set(badge) == {"get", "patch", "delete"}
    assert set(badge["delete"]["responses"]) == {"204"}
    backfill = schema["paths"][f"{API}courses/{{course_id}}/badges/{{badge_id}}/backfill/"]
    assert set(backfill["post"]["responses"]) == {"200", "202"}
    assert "requestBody" not in backfill["post"]
    issuances = schema["paths"][f"{API}courses/{{course_id}}/issuances/"]["get"]
    assert {p["name"] for p in issuances["parameters"]} == {
        "course_id",
        "badge",
        "state",
        "username",
        "page",
        "page_size",
    }
    properties = schema["components"]["schemas"]["CourseBadge"]["properties"]
    assert {"series", "series_required", "earned_after", "earned_before", "requires_approval", "evidence"} <= set(
        properties
    )
    assert set(properties["counts"]["allOf"][0]["$ref"].split("/")[-1:]) == {"BadgeCounts"}
    assert set(schema["components"]["securitySchemes"]) == {"jwtAuth", "cookieAuth"}
    assert not GENERATOR_STATS, capsys.readouterr().err  # drf-spectacular counts its warnings and errors there


def test_the_learner_schema_still_lists_only_the_learner_api():
    schema = APIClient().get(f"{API}schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert not [path for path in schema["paths"] if "/courses/" in path]
