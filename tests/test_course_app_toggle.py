"""The Course App toggle: a course whose badges are off takes no learning event; what was issued stays."""

from __future__ import annotations

from decimal import Decimal

import pytest

from badges_bridge import api, backfill, config_cache, ledger
from badges_bridge.data import CourseGrade, CourseStanding
from badges_bridge.exceptions import ConfigurationError
from badges_bridge.models import BadgeIssuance, CourseSettings, IssuanceState, RevokePolicy
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template
from tests.test_series import HOME, A, B, passed_condition

S = IssuanceState
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("receivers")]


@pytest.fixture
def template(credly):
    return make_template(make_account(credly), credly)


@pytest.fixture
def badge(template):
    return make_course_badge(template, A, revoke_policy=RevokePolicy.CRITERION_UNMET)


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="teacher", email="teacher@example.com", is_staff=True)


def test_a_course_never_switched_has_its_badges_on(badge):
    assert api.course_badges_enabled(A) is True
    assert api.course_badges_enabled(str(B)) is True
    assert not CourseSettings.objects.exists()


def test_switching_off_and_on_is_recorded_once_with_who_did_it(badge, staff):
    assert api.set_course_badges_enabled(A, True, staff) is False  # already on: nothing stored
    assert not CourseSettings.objects.exists()
    assert api.set_course_badges_enabled(A, False, staff) is True
    assert api.set_course_badges_enabled(str(A), False, staff) is False
    settings_row = CourseSettings.objects.get(course_key=A)
    assert (settings_row.badges_enabled, settings_row.changed_by_id) == (False, staff.pk)
    assert api.course_badges_enabled(A) is False
    assert api.set_course_badges_enabled(A, True, None) is True
    assert api.course_badges_enabled(A) is True


def test_a_bad_course_key_is_refused():
    with pytest.raises(ConfigurationError, match="not a course key"):
        api.set_course_badges_enabled("nonsense", False)


def test_off_the_course_takes_no_event_and_issued_badges_stay_issued(badge, staff, deliver, django_user_model):
    holder, newcomer = (
        django_user_model.objects.create_user(username=name, email=f"{name}@example.com") for name in ("ada", "bob")
    )
    deliver(send.send_passing_status, holder, A, True)
    assert BadgeIssuance.objects.get(user=holder).state == S.ISSUED
    assert config_cache.course_has_badges(str(A))
    deliver(api.set_course_badges_enabled, A, False, staff)
    assert not config_cache.course_has_badges(str(A))  # the receivers' fast path drops its events now
    assert config_cache.rules_for_course(A) == ()
    deliver(send.send_passing_status, newcomer, A, True)
    deliver(send.send_passing_status, holder, A, False)  # would revoke under the policy: not while off
    assert not BadgeIssuance.objects.filter(user=newcomer).exists()
    assert BadgeIssuance.objects.get(user=holder).state == S.ISSUED
    with pytest.raises(ConfigurationError, match="no enabled course badge"):
        api.backfill_course_badge(str(A), [newcomer.pk])
    deliver(api.set_course_badges_enabled, A, True, staff)
    deliver(send.send_passing_status, newcomer, A, True)
    assert BadgeIssuance.objects.get(user=newcomer).state == S.ISSUED


def test_off_stops_the_series_badges_of_the_course_in_their_member_courses(template, staff, learner):
    series = make_course_badge(template, HOME, criterion="series", series=passed_condition(A, B))
    api.set_course_badges_enabled(HOME, False, staff)
    send.send_passing_status(learner, A, True)
    send.send_passing_status(learner, B, True)
    assert not BadgeIssuance.objects.filter(course_badge=series).exists()
    assert not config_cache.course_has_badges(str(A))
    api.set_course_badges_enabled(HOME, True, staff)
    send.send_passing_status(learner, B, True)
    send.send_passing_status(learner, A, True)
    assert BadgeIssuance.objects.get(course_badge=series).state == S.PENDING


def test_off_in_one_course_leaves_other_courses_alone(badge, template, staff, learner, credly):
    other = make_course_badge(make_template(template.account, credly, "Other"), B)
    api.set_course_badges_enabled(A, False, staff)
    send.send_passing_status(learner, B, True)
    assert BadgeIssuance.objects.get(course_badge=other).state == S.PENDING


def test_backfill_rows_wait_while_the_course_is_off_and_the_feeder_resumes_when_on(
    badge, staff, django_user_model, monkeypatch, django_capture_on_commit_callbacks
):
    learners = [django_user_model.objects.create_user(username=f"b{n}", email=f"b{n}@example.com") for n in range(3)]
    passed = CourseStanding(CourseGrade(percent=Decimal(90), passed=True))
    monkeypatch.setattr("badges_bridge.compat.course_standings", lambda key, ids: dict.fromkeys(ids, passed))
    started: list[bool] = []
    monkeypatch.setattr(backfill, "start_feeder", lambda countdown=None: started.append(True) or True)
    assert api.backfill_course_badge(str(A), [learner.pk for learner in learners]).recorded == 3
    api.set_course_badges_enabled(A, False, staff)
    queued: list[int] = []
    backfill.feed(lambda issuance_id: queued.append(issuance_id) or True)
    assert queued == []
    assert not BadgeIssuance.objects.filter(ledger.backfill_waiting()).exists()
    with django_capture_on_commit_callbacks(execute=True):
        api.set_course_badges_enabled(A, True, staff)
    assert started == [True]
    backfill.feed(lambda issuance_id: queued.append(issuance_id) or True)
    assert sorted(queued) == sorted(BadgeIssuance.objects.values_list("pk", flat=True))


def test_off_nothing_is_approved_or_awarded_by_hand_in_the_course(template, staff, deliver, django_user_model):
    badge = make_course_badge(template, A, requires_approval=True)
    learner = django_user_model.objects.create_user(username="waiting", email="waiting@example.com")
    deliver(send.send_passing_status, learner, A, True)
    row = BadgeIssuance.objects.get(user=learner, course_badge=badge)
    assert row.state == S.AWAITING_APPROVAL
    api.set_course_badges_enabled(A, False, staff)

    refusal = "badges are switched off in this course"
    assert deliver(api.approve_awards, badge.pk, [row.pk], staff).skipped == [(row.pk, refusal)]
    report = deliver(api.award_manually, badge.pk, ["waiting"], f"staff:{staff.pk}")
    assert [line.detail for line in report.lines] == [refusal]
    row.refresh_from_db()
    assert row.state == S.AWAITING_APPROVAL  # still waiting for a review once the course is on again

    api.set_course_badges_enabled(A, True, staff)
    assert deliver(api.approve_awards, badge.pk, [row.pk], staff).done == [row.pk]
