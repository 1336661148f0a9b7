"""The Studio page's actions over the engine, the approval queue and backfill runs: preview, backfill, review."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from badges_bridge import api
from badges_bridge.models import BackfillRun, BadgeIssuance, CourseBadge, Criterion, IssuanceState
from badges_bridge.testing.setup import make_course_badge
from tests.studio import COURSE, badge_form, studio_site

pytestmark = pytest.mark.django_db

C = str(COURSE)


@pytest.fixture
def site(credly, django_user_model):
    return studio_site(credly, django_user_model)


@pytest.fixture
def staff(site) -> Client:
    client = Client()
    client.force_login(site.users["course_staff"])
    return client


@pytest.fixture
def graded(site, django_user_model):
    """Three learners whose grades in the course the plugin recorded (through a course-passed badge): 92, 85, 60."""
    passed = make_course_badge(site.templates["Python Basics"], COURSE)
    learners = {}
    for name, grade in (("grace", 92), ("alan", 85), ("barbara", 60)):
        learners[name] = django_user_model.objects.create_user(name, f"{name}@example.com", first_name=name.title())
        BadgeIssuance.objects.create(
            user=learners[name],
            course_badge=passed,
            state=IssuanceState.ISSUED,
            grade=grade,
            event_time=timezone.now() - timedelta(days=3),
        )
    return learners


def url(name: str, *args) -> str:
    return reverse(f"badges_bridge:studio-{name}", args=[C, *args])


def grade_badge(site, **fields) -> CourseBadge:
    return make_course_badge(
        site.templates["Data Skills"], COURSE, criterion=Criterion.GRADE_AT_LEAST, grade_threshold=80, **fields
    )


def test_after_a_badge_is_added_the_page_says_who_already_qualifies(site, staff, graded):
    data = badge_form(site.templates["Data Skills"], criterion="grade_at_least", grade_threshold="80")
    response = staff.post(url("badge-add"), data, follow=True)
    html = response.content.decode()
    preview = html.split('id="bb-preview"', 1)[1].split("</section>", 1)[0]
    assert "2 learners already qualify." in preview
    assert "grace" in preview
    assert "alan" in preview
    assert "barbara" not in preview
    assert "recorded" in preview


def test_the_preview_is_counted_again_on_demand_only(site, staff, graded):
    badge = grade_badge(site)
    assert "already qualify" not in staff.get(url("badge", badge.pk)).content.decode()
    assert "2 learners already qualify." in staff.get(url("badge", badge.pk) + "?preview=1").content.decode()


def test_a_backfill_starts_once_and_its_progress_is_shown(site, staff, graded):
    badge = grade_badge(site)
    response = staff.post(url("badge-backfill", badge.pk), follow=True)
    assert "Backfill started" in response.content.decode()
    run = BackfillRun.objects.get()
    assert run.started_by == site.users["course_staff"]
    again = staff.post(url("badge-backfill", badge.pk), follow=True)
    assert "already running" in again.content.decode()
    assert BackfillRun.objects.count() == 1
    status = staff.get(url("badge-backfill-status", badge.pk)).json()
    assert status["state"] == "queued"
    assert status["running"] is True
    assert "Queued: 0 learners read" in status["text"]
    page = staff.get(url("badge", badge.pk)).content.decode()
    assert 'data-bb-running="1"' in page
    assert "Queued: 0 learners read" in page


def test_a_finished_backfill_records_the_learners_who_qualify(site, staff, graded, django_capture_on_commit_callbacks):
    badge = grade_badge(site, requires_approval=True)
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(url("badge-backfill", badge.pk))
    run = BackfillRun.objects.get()
    assert (run.state, run.recorded, run.not_met) == ("done", 2, 1)
    status = staff.get(url("badge-backfill-status", badge.pk)).json()
    assert status["running"] is False
    assert "Done: 3 learners read, 2 badges queued" in status["text"]
    queue = set(badge.issuances.filter(state=IssuanceState.AWAITING_APPROVAL).values_list("user__username", flat=True))
    assert queue == {"grace", "alan"}


def test_a_disabled_badge_is_not_backfilled(site, staff):
    badge = grade_badge(site, enabled=False)
    response = staff.post(url("badge-backfill", badge.pk), follow=True)
    assert "This badge is disabled" in response.content.decode()
    assert not BackfillRun.objects.exists()


def waiting(site, badge, *names) -> list[BadgeIssuance]:
    users = type(site.users["learner"]).objects
    return [
        BadgeIssuance.objects.create(
            user=users.create_user(name), course_badge=badge, state=IssuanceState.AWAITING_APPROVAL, grade=90
        )
        for name in names
    ]


def test_staff_approve_learners_of_the_queue(site, staff, work_queue):
    badge = grade_badge(site, requires_approval=True)
    first, second, third = waiting(site, badge, "ann", "bob", "cy")
    page = staff.get(url("badge", badge.pk)).content.decode()
    queue = page.split('id="bb-approvals"', 1)[1].split("</section>", 1)[0]
    assert "Approval queue (3 learners)" in queue
    assert f'<label for="bb-review-{first.pk}">ann</label>' in queue
    response = staff.post(
        url("badge-review", badge.pk), {"decision": "approve", "issuances": [first.pk, second.pk]}, follow=True
    )
    assert "2 learners approved." in response.content.decode()
    states = dict(BadgeIssuance.objects.values_list("pk", "state"))
    assert states[first.pk] != IssuanceState.AWAITING_APPROVAL
    assert states[second.pk] != IssuanceState.AWAITING_APPROVAL
    assert states[third.pk] == IssuanceState.AWAITING_APPROVAL
    first.refresh_from_db()
    assert first.reviewed_by == site.users["course_staff"]


def test_a_decline_needs_a_reason_and_is_recorded(site, staff):
    badge = grade_badge(site, requires_approval=True)
    [row] = waiting(site, badge, "ann")
    response = staff.post(url("badge-review", badge.pk), {"decision": "decline", "issuances": [row.pk]}, follow=True)
    assert "Give the reason for declining" in response.content.decode()
    assert BadgeIssuance.objects.get(pk=row.pk).state == IssuanceState.AWAITING_APPROVAL
    response = staff.post(
        url("badge-review", badge.pk),
        {"decision": "decline", "issuances": [row.pk], "reason": "No exam validation"},
        follow=True,
    )
    assert "1 learner declined." in response.content.decode()
    row.refresh_from_db()
    assert (row.state, row.review_note) == (IssuanceState.DECLINED, "No exam validation")


def test_nothing_selected_or_a_row_of_another_badge_is_refused(site, staff):
    badge = grade_badge(site, requires_approval=True)
    other = make_course_badge(site.templates["Python Basics"], COURSE, requires_approval=True)
    [row] = waiting(site, other, "ann")
    response = staff.post(url("badge-review", badge.pk), {"decision": "approve"}, follow=True)
    assert "Select at least one learner." in response.content.decode()
    response = staff.post(url("badge-review", badge.pk), {"decision": "approve", "issuances": [row.pk]}, follow=True)
    assert "Select a valid choice" in response.content.decode()
    assert BadgeIssuance.objects.get(pk=row.pk).state == IssuanceState.AWAITING_APPROVAL


def test_the_badge_page_shows_the_exact_payload(site, staff):
    badge = grade_badge(site, evidence="course")
    page = staff.get(url("badge", badge.pk)).content.decode()
    payload = html.unescape(page.split('id="bb-payload"', 1)[1].split("</pre>", 1)[0])
    assert '"issued_to_first_name": "Sample"' in payload
    assert '"recipient_email": "learner@example.com"' in payload
    assert "Computer Science 101" in payload  # the course, chosen as evidence
    assert "Final grade" not in payload  # the grade, not chosen


def test_the_course_switch_stops_and_resumes_the_courses_badges(site, staff):
    response = staff.post(url("course-switch"), {"enabled": "0"}, follow=True)
    html = response.content.decode()
    assert "Badges are off for this course" in html
    assert "Turn badges on for this course" in html
    assert not api.course_badges_enabled(COURSE)
    badge = grade_badge(site)
    assert "Badges are off for this course" in staff.get(url("badge", badge.pk)).content.decode()
    response = staff.post(url("badge-backfill", badge.pk), follow=True)
    assert "Badges are switched off for this course" in response.content.decode()
    staff.post(url("course-switch"), {"enabled": "1"})
    assert api.course_badges_enabled(COURSE)
    assert "Badges are off for this course" not in staff.get(url("badge", badge.pk)).content.decode()
