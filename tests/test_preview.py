"""Preview of who already qualifies for a course badge, and the streaming backfill of one badge."""

from __future__ import annotations

from decimal import Decimal

import pytest

from badges_bridge import api, backfill, compat
from badges_bridge.data import CourseCertificate, CourseGrade, CourseStanding
from badges_bridge.exceptions import ConfigurationError
from badges_bridge.models import BadgeIssuance, IssuanceState, Lane, RevokePolicy, SeriesProgress
from badges_bridge.testing.setup import make_account, make_course_badge, make_template
from tests.test_series import HOME, A, B, C, grade, passed_condition, passing

S = IssuanceState
pytestmark = pytest.mark.django_db


@pytest.fixture
def account(credly):
    return make_account(credly)


def template(account, credly, name: str):
    return make_template(account, credly, name)


@pytest.fixture
def people(django_user_model):
    return [django_user_model.objects.create_user(username=f"p{n}", email=f"p{n}@example.com") for n in range(5)]


@pytest.fixture
def recorded(account, credly, people):
    """A "passed" badge of course A that recorded p0-p2 passing and p3 failing (p4 never seen)."""
    badge = make_course_badge(template(account, credly, "Passed"), A, revoke_policy=RevokePolicy.CRITERION_UNMET)
    for minute, person in enumerate(people[:3]):
        api.record_learner_event(passing(person, A, True, minute))
    api.record_learner_event(passing(people[3], A, False, 9))
    return badge


def test_outside_the_platform_the_preview_counts_what_the_plugin_recorded(recorded, account, credly, people):
    new = make_course_badge(template(account, credly, "New"), A)
    preview = api.preview_course_badge(new.pk, sample_size=2)
    assert (preview.source, preview.learners_read, preview.qualify, preview.already_recorded) == ("recorded", 4, 3, 0)
    assert preview.sample == [people[0].pk, people[1].pk]
    own = api.preview_course_badge(recorded.pk)
    assert (own.qualify, own.already_recorded, own.sample) == (3, 3, [person.pk for person in people[:3]])


def test_the_preview_writes_nothing(recorded, account, credly):
    new = make_course_badge(template(account, credly, "New"), A)
    before = BadgeIssuance.objects.count(), SeriesProgress.objects.count()
    api.preview_course_badge(new.pk)
    assert (BadgeIssuance.objects.count(), SeriesProgress.objects.count()) == before


def test_the_preview_of_an_unknown_badge_is_refused():
    with pytest.raises(ConfigurationError, match="no course badge 404"):
        api.preview_course_badge(404)


def test_the_preview_judges_the_badge_criterion_from_recorded_grades(account, credly, people):
    make_course_badge(
        template(account, credly, "Grades"),
        A,
        criterion="grade_at_least",
        grade_threshold=Decimal(50),
        revoke_policy=RevokePolicy.CRITERION_UNMET,
    )
    for minute, (person, percent) in enumerate(zip(people, ("95", "80", "79.5", "10"), strict=False)):
        api.record_learner_event(grade(person, A, percent, minute))
    high = make_course_badge(
        template(account, credly, "High"), A, criterion="grade_at_least", grade_threshold=Decimal(80)
    )
    preview = api.preview_course_badge(high.pk)
    assert (preview.learners_read, preview.qualify, preview.sample) == (4, 2, [people[0].pk, people[1].pk])


def test_a_backfill_of_one_badge_streams_the_recorded_learners_and_records_nothing_twice(
    recorded, account, credly, people
):
    new = make_course_badge(template(account, credly, "New"), A)
    result = api.backfill_course_badge(str(A), badge_ids=[new.pk])
    assert (result.learners, result.recorded, result.not_met, result.existing) == (4, 3, 1, 0)
    rows = BadgeIssuance.objects.filter(course_badge=new)
    assert {(row.user_id, row.lane, row.state) for row in rows} == {
        (person.pk, Lane.BACKFILL, S.PENDING) for person in people[:3]
    }
    assert BadgeIssuance.objects.filter(course_badge=recorded).count() == 4  # the other badge is left alone
    again = api.backfill_course_badge(str(A), badge_ids=[new.pk])
    assert (again.recorded, again.existing) == (0, 3)
    assert rows.count() == 3
    assert api.preview_course_badge(new.pk).already_recorded == 3


def test_a_backfill_reads_learners_and_standings_a_chunk_at_a_time(recorded, account, credly, people, monkeypatch):
    new = make_course_badge(template(account, credly, "New"), A)
    monkeypatch.setattr(backfill, "CHUNK", 2)
    monkeypatch.setattr(backfill, "PREVIEW_CHUNK", 3)
    seen: list[list[int]] = []
    read = compat.course_standings
    monkeypatch.setattr(compat, "course_standings", lambda key, ids: seen.append(list(ids)) or read(key, ids))
    assert api.backfill_course_badge(str(A), badge_ids=[new.pk]).recorded == 3
    assert [len(chunk) for chunk in seen] == [2, 2]
    seen.clear()
    assert api.preview_course_badge(new.pk).qualify == 3
    assert [len(chunk) for chunk in seen] == [3, 1]


def test_the_recorded_learners_of_a_course_are_read_by_keyset(recorded, account, credly, people):
    series = make_course_badge(
        template(account, credly, "Series"), HOME, criterion="series", series=passed_condition(A, B)
    )
    api.record_learner_event(passing(people[4], B, True, 1))  # p4: progress in B only, a placeholder row in A
    assert list(compat.iter_enrolled_user_ids(A, 3)) == [[p.pk for p in people[:3]], [people[3].pk]]
    assert list(compat.iter_enrolled_user_ids(B, 2)) == [[people[4].pk]]
    assert SeriesProgress.objects.filter(course_badge=series, user=people[4]).count() == 2


def test_recorded_standings_keep_the_latest_fact(recorded, people):
    api.record_learner_event(passing(people[0], A, False, 50))
    standings = compat.course_standings(A, [person.pk for person in people])
    assert standings[people[0].pk] == CourseStanding(CourseGrade(percent=None, passed=False))
    assert standings[people[1].pk] == CourseStanding(CourseGrade(percent=None, passed=True))
    assert people[4].pk not in standings


# -- series ---------------------------------------------------------------------------------------------------


@pytest.fixture
def platform(monkeypatch):
    """The platform's enrollments and standings, per course: {course key: {user id: CourseStanding}}."""
    known: dict[str, dict[int, CourseStanding]] = {}

    def enrolled(course_key, chunk_size):
        ids = sorted(known.get(str(course_key), {}))
        for start in range(0, len(ids), chunk_size):
            yield ids[start : start + chunk_size]

    monkeypatch.setattr(compat, "iter_enrolled_user_ids", enrolled)
    monkeypatch.setattr(
        compat,
        "course_standings",
        lambda key, ids: {user_id: known[str(key)][user_id] for user_id in ids if user_id in known.get(str(key), {})},
    )
    return known


PASSED = CourseStanding(CourseGrade(percent=Decimal(90), passed=True))
FAILED = CourseStanding(CourseGrade(percent=Decimal(20), passed=False))
VERIFIED = CourseStanding(None, CourseCertificate(mode="verified", status="downloadable"))


def test_a_series_preview_and_backfill_read_the_learners_of_every_course(account, credly, people, platform):
    badge = make_course_badge(
        template(account, credly, "Series"),
        HOME,
        criterion="series",
        series_required=2,
        series=[
            {"course_key": str(A), "criterion": "passed"},
            {"course_key": str(B), "criterion": "certificate", "certificate_modes": ["verified"]},
            {"course_key": str(C), "criterion": "passed"},
        ],
    )
    p0, p1, p2, p3, p4 = (person.pk for person in people)
    platform[str(A)] = {p0: PASSED, p1: PASSED, p2: FAILED}
    platform[str(B)] = {p0: VERIFIED, p2: VERIFIED, p3: VERIFIED}
    platform[str(C)] = {p1: FAILED, p2: PASSED, p4: PASSED}
    preview = api.preview_course_badge(badge.pk)
    assert (preview.learners_read, preview.qualify, preview.sample) == (5, 2, [p0, p2])
    result = api.backfill_course_badge(str(HOME), badge_ids=[badge.pk])
    assert (result.learners, result.recorded, result.not_met) == (5, 2, 3)
    assert set(BadgeIssuance.objects.values_list("user_id", "lane")) == {(p0, Lane.BACKFILL), (p2, Lane.BACKFILL)}
    assert set(SeriesProgress.objects.filter(user_id=p1, met=True).values_list("course_key", flat=True)) == {A}
    assert api.backfill_course_badge(str(HOME), badge_ids=[badge.pk]).recorded == 0
    assert BadgeIssuance.objects.count() == 2
    # p1 passes C later: the progress the backfill recorded for A counts
    api.record_learner_event(passing(people[1], C, True, 10**6))
    assert BadgeIssuance.objects.get(user_id=p1).state == S.PENDING


def test_a_dry_run_of_a_series_backfill_writes_nothing(account, credly, people, platform):
    badge = make_course_badge(
        template(account, credly, "Series"), HOME, criterion="series", series=passed_condition(A, B)
    )
    platform[str(A)] = {people[0].pk: PASSED}
    platform[str(B)] = {people[0].pk: PASSED, people[1].pk: PASSED}
    result = api.backfill_course_badge(str(HOME), badge_ids=[badge.pk], dry_run=True)
    assert (result.learners, result.recorded, result.not_met) == (2, 1, 1)
    assert not SeriesProgress.objects.exists()
    assert not BadgeIssuance.objects.exists()


def test_a_series_backfill_records_no_progress_for_a_learner_unknown_in_every_course(account, credly, people, platform):
    badge = make_course_badge(
        template(account, credly, "Series"), HOME, criterion="series", series=passed_condition(A, B)
    )
    platform[str(A)] = {people[0].pk: FAILED}
    result = api.backfill_course_badge(str(HOME), [people[0].pk, people[1].pk], badge_ids=[badge.pk])
    assert (result.learners, result.recorded, result.not_met) == (2, 0, 2)
    assert set(SeriesProgress.objects.values_list("user_id", "course_key", "met")) == {
        (people[0].pk, A, False),
        (people[0].pk, B, False),
    }
