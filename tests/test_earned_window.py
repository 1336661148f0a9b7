"""The "earned between" window: a criterion met outside it earns nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from badges_bridge import api, criteria
from badges_bridge.data import BadgeRule
from badges_bridge.models import IssuanceState, RevokePolicy
from badges_bridge.testing.setup import make_account, make_course_badge, make_template
from tests.test_series import HOME, T0, A, B, passed_condition, passing, state_of

S = IssuanceState
START, END = T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)
pytestmark = pytest.mark.django_db


@pytest.fixture
def template(credly):
    return make_template(make_account(credly), credly)


def rule(**window) -> BadgeRule:
    return BadgeRule(1, "passed", None, frozenset(), "never", 1, **window)


@pytest.mark.parametrize(
    ("minute", "inside"),
    [(9, False), (10, True), (15, True), (19, True), (20, False), (21, False)],
)
def test_the_window_includes_its_start_and_excludes_its_end(minute, inside):
    moment = T0 + timedelta(minutes=minute)
    assert criteria.in_window(rule(earned_after=START, earned_before=END), moment) is inside


def test_an_open_side_has_no_limit():
    assert criteria.in_window(rule(earned_after=START), T0 + timedelta(days=999))
    assert criteria.in_window(rule(earned_before=END), T0 - timedelta(days=999))
    assert criteria.in_window(rule(), T0)


@pytest.mark.parametrize(("minute", "state"), [(9, None), (10, S.PENDING), (19, S.PENDING), (20, None)])
def test_a_course_badge_is_earned_only_by_a_criterion_met_inside_the_window(template, learner, minute, state):
    badge = make_course_badge(template, A, earned_after=START, earned_before=END)
    api.record_learner_event(passing(learner, A, True, minute))
    assert state_of(badge, learner) == state


def test_met_before_the_window_then_again_inside_it_earns_the_badge(template, learner):
    badge = make_course_badge(template, A, earned_after=START)
    api.record_learner_event(passing(learner, A, True, 5))
    assert state_of(badge, learner) is None
    api.record_learner_event(passing(learner, A, True, 12))
    assert state_of(badge, learner) == IssuanceState.PENDING


def test_not_met_after_the_window_still_revokes_under_the_policy(template, learner):
    badge = make_course_badge(template, A, earned_before=END, revoke_policy=RevokePolicy.CRITERION_UNMET)
    api.record_learner_event(passing(learner, A, True, 15))
    api.record_learner_event(passing(learner, A, False, 30))
    assert state_of(badge, learner) == S.REVOKE_PENDING
    api.record_learner_event(passing(learner, A, True, 40))  # met again, but after the window
    assert state_of(badge, learner) == S.REVOKE_PENDING


@pytest.mark.parametrize(
    ("first", "last", "state"),
    [
        (5, 12, S.PENDING),  # the last needed course is met inside the window
        (12, 25, None),  # ... after it
        (2, 8, None),  # ... before it
        (15, 12, S.PENDING),  # B's later event came first: the last needed course was met at 15, inside
        (25, 12, None),  # ... at 25, after it, though A's event, which arrived last, is inside
    ],
)
def test_a_series_is_earned_when_its_last_needed_course_is_met_inside_the_window(template, learner, first, last, state):
    badge = make_course_badge(
        template, HOME, criterion="series", series=passed_condition(A, B), earned_after=START, earned_before=END
    )
    api.record_learner_event(passing(learner, B, True, first))
    api.record_learner_event(passing(learner, A, True, last))
    assert state_of(badge, learner) == state
