"""Backfill runs that course staff start: one at a time per badge, their progress, stale runs, and no double issue."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey

from badges_bridge import course_setup, tasks
from badges_bridge.data import CourseGrade
from badges_bridge.exceptions import ConfigurationError
from badges_bridge.models import BackfillRun, BackfillRunState, BadgeIssuance, CourseSettings, IssuanceState, Lane
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

COURSE = CourseKey.from_string("course-v1:Org+Runs+2026")
R = BackfillRunState
pytestmark = pytest.mark.django_db


@pytest.fixture
def badge(credly):
    return make_course_badge(make_template(make_account(credly), credly, "Runs"), COURSE)


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("teacher", "teacher@example.com")


@pytest.fixture
def course(platform):
    """The course's enrolled learners (as the LMS lists them) and their grades, by user id."""
    return platform


def enrol(course, django_user_model, count: int, *, passing: int, prefix: str = "l") -> list:
    users = [
        django_user_model.objects.create_user(f"{prefix}{n}", f"{prefix}{n}@example.com", first_name="L", last_name="N")
        for n in range(count)
    ]
    course.enrolled += [user.pk for user in users]
    for user in users[:passing]:
        course.grades[user.pk] = CourseGrade(percent=Decimal("90"), passed=True)
    for user in users[passing:]:
        course.grades[user.pk] = CourseGrade(percent=Decimal("10"), passed=False)
    return users


def issue_requests(credly) -> int:
    return len(credly.server.requests_to("POST", r"/badges$"))


def test_a_run_records_who_qualifies_and_writes_its_progress_after_every_chunk(
    badge, course, staff_user, django_user_model, deliver, monkeypatch, credly
):
    monkeypatch.setattr("badges_bridge.backfill.CHUNK", 2)
    enrol(course, django_user_model, 5, passing=3)
    seen = []
    write = course_setup._write_progress
    monkeypatch.setattr(
        "badges_bridge.course_setup._write_progress",
        lambda run_id, result: seen.append(BackfillRun.objects.get(pk=run_id).total) or write(run_id, result),
    )
    progress = []
    monkeypatch.setattr(
        "badges_bridge.course_setup._counts",
        lambda result, counts=course_setup._counts: progress.append(result.learners) or counts(result),
    )

    run, created = deliver(course_setup.start_backfill, badge, staff_user)

    assert created
    run.refresh_from_db()
    assert (run.state, run.total, run.read, run.recorded, run.existing, run.not_met) == (R.DONE, 5, 5, 3, 0, 2)
    assert run.started_by == staff_user
    assert run.finished_at is not None
    assert run.message == ""
    assert seen == [5, 5, 5]  # the total is known from the start inside the LMS
    assert progress == [2, 4, 5, 5]  # after each chunk of two learners, then at the end
    rows = BadgeIssuance.objects.filter(course_badge=badge)
    assert {(row.lane, row.state) for row in rows} == {(Lane.BACKFILL, IssuanceState.ISSUED)}  # the feeder issued
    assert rows.count() == 3
    assert issue_requests(credly) == 3


def test_starting_while_a_run_is_queued_or_running_returns_that_run(
    badge, course, staff_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        first, created = course_setup.start_backfill(badge, staff_user)
        again, created_again = course_setup.start_backfill(badge, staff_user)
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert len(callbacks) == 1  # one task queued
    BackfillRun.objects.filter(pk=first.pk).update(state=R.RUNNING)
    assert course_setup.start_backfill(badge, None) == (BackfillRun.objects.get(pk=first.pk), False)
    assert BackfillRun.objects.count() == 1


def test_running_the_backfill_twice_issues_nothing_twice(badge, course, staff_user, django_user_model, deliver, credly):
    enrol(course, django_user_model, 4, passing=3)
    first, _ = deliver(course_setup.start_backfill, badge, staff_user)
    enrol(course, django_user_model, 1, passing=1, prefix="late")
    second, created = deliver(course_setup.start_backfill, badge, staff_user)

    assert created
    assert second.pk != first.pk
    second.refresh_from_db()
    assert (second.state, second.read, second.recorded, second.existing, second.not_met) == (R.DONE, 5, 1, 3, 1)
    assert BadgeIssuance.objects.filter(course_badge=badge).count() == 4
    assert issue_requests(credly) == 4  # three from the first run, the late learner's from the second
    assert course_setup.latest_backfill(badge) == second


def test_a_task_delivered_twice_runs_the_run_once(badge, course, staff_user, django_user_model, monkeypatch):
    monkeypatch.setattr("badges_bridge.backfill.start_feeder", lambda countdown=None: True)
    enrol(course, django_user_model, 2, passing=2)
    run, _ = course_setup.start_backfill(badge, staff_user)  # no commit: the task is not queued here

    assert "recorded 2 badge(s)" in tasks.run_backfill(run.pk)
    assert tasks.run_backfill(run.pk) == f"backfill run {run.pk}: not queued, nothing to do"
    assert tasks.run_backfill(run.pk + 1) == f"backfill run {run.pk + 1}: not queued, nothing to do"
    run.refresh_from_db()
    assert (run.state, run.recorded) == (R.DONE, 2)
    assert BadgeIssuance.objects.count() == 2


def test_a_run_without_progress_for_the_stale_time_is_failed_and_replaced(badge, course, staff_user, settings):
    settings.BADGES_BRIDGE_BACKFILL_RUN_STALE_SECONDS = 60
    lost, _ = course_setup.start_backfill(badge, staff_user)
    BackfillRun.objects.filter(pk=lost.pk).update(state=R.RUNNING, progress_at=timezone.now() - timedelta(seconds=59))
    assert course_setup.start_backfill(badge, staff_user)[0].pk == lost.pk  # still making progress

    BackfillRun.objects.filter(pk=lost.pk).update(progress_at=timezone.now() - timedelta(seconds=61))
    new, created = course_setup.start_backfill(badge, staff_user)

    assert created
    assert new.pk != lost.pk
    lost.refresh_from_db()
    assert lost.state == R.FAILED
    assert lost.finished_at is not None
    assert lost.message.startswith("No progress for 60 seconds: the run was taken as lost")
    assert course_setup.latest_backfill(badge) == new


def test_a_run_whose_task_the_broker_refused_stays_queued_until_it_goes_stale(
    badge, course, staff_user, deliver, monkeypatch, caplog
):
    def refuse(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.run_backfill, "apply_async", refuse)
    run, created = deliver(course_setup.start_backfill, badge, staff_user)
    assert created
    run.refresh_from_db()
    assert run.state == R.QUEUED
    assert f"could not queue backfill run {run.pk}" in caplog.text


def test_a_disabled_badge_or_a_course_with_badges_switched_off_is_not_backfilled(badge, staff_user):
    course_setup.set_enabled(badge, False, staff_user)
    with pytest.raises(ConfigurationError, match="This badge is disabled: enable it before running a backfill"):
        course_setup.start_backfill(badge, staff_user)
    course_setup.set_enabled(badge, True, staff_user)
    CourseSettings.objects.create(course_key=COURSE, badges_enabled=False)
    with pytest.raises(ConfigurationError, match="Badges are switched off for this course"):
        course_setup.start_backfill(badge, staff_user)
    assert not BackfillRun.objects.exists()


def test_a_run_fails_with_the_reason_when_its_badge_was_disabled_meanwhile(badge, course, staff_user):
    run, _ = course_setup.start_backfill(badge, staff_user)
    course_setup.set_enabled(badge, False, staff_user)
    assert "failed" in tasks.run_backfill(run.pk)
    run.refresh_from_db()
    assert run.state == R.FAILED
    assert run.message == f"None of these course badges is an enabled course badge of course {COURSE}"


def test_a_run_marked_failed_while_it_runs_stops_after_its_chunk(
    badge, course, staff_user, django_user_model, monkeypatch
):
    monkeypatch.setattr("badges_bridge.backfill.CHUNK", 1)
    monkeypatch.setattr("badges_bridge.backfill.start_feeder", lambda countdown=None: True)
    enrol(course, django_user_model, 3, passing=3)
    run, _ = course_setup.start_backfill(badge, staff_user)
    read = course.standings

    def read_then_lose_the_run(course_key, user_ids):
        BackfillRun.objects.filter(pk=run.pk).update(state=R.FAILED, message="taken as lost")
        return read(course_key, user_ids)

    monkeypatch.setattr("badges_bridge.compat.course_standings", read_then_lose_the_run)
    assert tasks.run_backfill(run.pk) == f"backfill run {run.pk}: stopped, it was marked failed meanwhile"
    run.refresh_from_db()
    assert (run.state, run.message, run.read) == (R.FAILED, "taken as lost", 0)
    assert BadgeIssuance.objects.count() == 1  # its first chunk, kept (a later run finds it)


def test_an_unexpected_error_fails_the_run_and_is_logged(badge, course, staff_user, monkeypatch, caplog):
    course.enrolled.append(staff_user.pk)

    def broken(course_key, user_ids):
        raise RuntimeError("grades table unreachable")

    monkeypatch.setattr("badges_bridge.compat.course_standings", broken)
    run, _ = course_setup.start_backfill(badge, staff_user)
    assert tasks.run_backfill(run.pk) == f"backfill run {run.pk}: failed on an unexpected error"
    run.refresh_from_db()
    assert (run.state, run.message) == (R.FAILED, "The backfill stopped on an unexpected error (logged).")
    assert f"backfill run {run.pk} failed" in caplog.text


def test_a_run_outside_the_lms_knows_its_total_only_at_the_end(badge, staff_user, django_user_model, monkeypatch):
    monkeypatch.setattr("badges_bridge.backfill.start_feeder", lambda countdown=None: True)
    learner = django_user_model.objects.create_user("solo", "solo@example.com")
    monkeypatch.setattr("badges_bridge.compat.iter_enrolled_user_ids", lambda key, chunk_size: iter([[learner.pk]]))
    run, _ = course_setup.start_backfill(badge, staff_user)
    totals = []
    write = course_setup._write_progress
    monkeypatch.setattr(
        "badges_bridge.course_setup._write_progress",
        lambda run_id, result: totals.append(BackfillRun.objects.get(pk=run_id).total) or write(run_id, result),
    )
    tasks.run_backfill(run.pk)
    run.refresh_from_db()
    assert totals == [None]  # compat.enrollment_count is None outside the LMS
    assert (run.state, run.total, run.read, run.not_met) == (R.DONE, 1, 1, 1)


def test_the_latest_run_is_none_before_the_first(badge):
    assert course_setup.latest_backfill(badge) is None
