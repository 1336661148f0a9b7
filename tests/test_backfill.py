"""Backfills and the budget they share with interactive work: lanes, the feeder, the command."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, backfill, issuing, ledger
from badges_bridge.accounts import rate_limiter
from badges_bridge.data import CourseGrade, CourseStanding
from badges_bridge.exceptions import ConfigurationError, RateLimitedError
from badges_bridge.models import BadgeIssuance, IssuanceState, Lane, Operation, RevokePolicy
from badges_bridge.ratelimit import SharedRateLimiter
from badges_bridge.tasks import TASKS, queue_options
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

COURSE = CourseKey.from_string("course-v1:Org+Backfill+2026")
S = IssuanceState
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("receivers")]


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def account(credly):
    return make_account(credly, rate_limit_requests=10, rate_limit_period=300)


@pytest.fixture
def badge(credly, account):
    return make_course_badge(make_template(account, credly), COURSE, revoke_policy=RevokePolicy.CRITERION_UNMET)


@pytest.fixture
def grades(monkeypatch):
    """The platform's course grades, by user id (a learner not listed has none)."""
    known: dict[int, CourseGrade] = {}

    def standings(course_key, user_ids):
        return {user_id: CourseStanding(known[user_id]) for user_id in user_ids if user_id in known}

    monkeypatch.setattr("badges_bridge.compat.course_standings", standings)
    return known


def people(django_user_model, count: int, prefix: str = "b"):
    return [
        django_user_model.objects.create_user(
            username=f"{prefix}{n}", email=f"{prefix}{n}@example.com", first_name="Ada", last_name=f"B{n}"
        )
        for n in range(count)
    ]


def passed(grades, users, percent: str = "85"):
    for user in users:
        grades[user.pk] = CourseGrade(percent=Decimal(percent), passed=True)


def run_feeder() -> list[int]:
    """One feeder run; returns the ids it queued, whose tasks then run here."""
    queued: list[int] = []
    backfill.feed(lambda issuance_id: queued.append(issuance_id) or True)
    for issuance_id in queued:
        TASKS[Operation.ISSUE](issuance_id)
    return queued


# -- the budget ----------------------------------------------------------------------------------------------------


def test_backfill_stops_at_its_share_while_interactive_work_uses_the_reserve():
    clock = Clock()
    backfill_limit = SharedRateLimiter("shared", 10, 300, clock, share=0.8)
    interactive = SharedRateLimiter("shared", 10, 300, clock)
    for _ in range(8):
        backfill_limit()
    with pytest.raises(RateLimitedError) as refused:
        backfill_limit()
    assert refused.value.status_code is None
    assert refused.value.retry_after > 0
    assert backfill_limit.room() == 0
    assert interactive.room() == 2
    interactive()
    interactive()  # the reserve is for interactive work
    with pytest.raises(RateLimitedError):
        interactive()
    assert interactive.used() == backfill_limit.used() == 10  # one budget, counted by both lanes
    clock.now += 300
    assert backfill_limit.room() == 8  # the next window


def test_interactive_work_also_spends_the_backfill_share():
    clock = Clock()
    for _ in range(9):
        SharedRateLimiter("shared", 10, 300, clock)()
    assert SharedRateLimiter("shared", 10, 300, clock, share=0.8).room() == 0


def test_only_the_first_award_of_a_backfill_row_is_held_to_the_share(settings):
    settings.BADGES_BRIDGE_BACKFILL_BUDGET_SHARE = 0.5
    row = BadgeIssuance(lane=Lane.BACKFILL, operation=Operation.ISSUE)
    assert issuing.budget_share([row]) == 0.5
    assert issuing.budget_share([row, BadgeIssuance(lane=Lane.INTERACTIVE)]) == 1.0  # one request carries both
    assert issuing.budget_share([BadgeIssuance(lane=Lane.BACKFILL, operation=Operation.REVOKE)]) == 1.0


def test_backfill_tasks_go_to_the_backfill_queue(settings):
    settings.BADGES_BRIDGE_CELERY_QUEUE = "badges"
    assert queue_options(backfill=True) == {"queue": "badges"}
    settings.BADGES_BRIDGE_BACKFILL_QUEUE = "badges.backfill"
    assert queue_options(5, backfill=True) == {"countdown": 5, "queue": "badges.backfill"}
    assert queue_options() == {"queue": "badges"}


# -- recording --------------------------------------------------------------------------------------------------


def test_a_backfill_records_rows_of_learners_who_meet_the_criterion_and_queues_nothing(
    badge, grades, django_user_model, work_queue, credly
):
    ready, failing, unknown = (
        people(django_user_model, 3),
        people(django_user_model, 1, "f"),
        people(django_user_model, 1, "u"),
    )
    passed(grades, ready)
    grades[failing[0].pk] = CourseGrade(percent=Decimal("20"), passed=False)
    result = api.backfill_course_badge(str(COURSE), [u.pk for u in ready + failing + unknown])
    assert (result.learners, result.recorded, result.not_met, result.existing) == (5, 3, 2, 0)
    rows = BadgeIssuance.objects.filter(course_badge=badge)
    assert {(row.user_id, row.lane, row.state) for row in rows} == {(u.pk, Lane.BACKFILL, S.PENDING) for u in ready}
    assert rows.first().grade == Decimal("85")
    assert rows.first().event_type == backfill.EVENT_TYPE
    assert work_queue.pending == []
    assert credly.server.journal == []


def test_a_learner_who_already_has_a_row_is_left_as_they_are(badge, grades, learner, deliver, django_user_model):
    deliver(send.send_passing_status, learner, COURSE, True)
    before = BadgeIssuance.objects.get(user=learner)
    other = people(django_user_model, 1)
    passed(grades, [learner, *other])
    result = api.backfill_course_badge(str(COURSE), [learner.pk, other[0].pk])
    assert (result.recorded, result.existing) == (1, 1)
    row = BadgeIssuance.objects.get(user=learner)
    assert (row.pk, row.lane, row.state, row.event_id) == (before.pk, Lane.INTERACTIVE, S.ISSUED, before.event_id)
    assert BadgeIssuance.objects.count() == 2
    again = api.backfill_course_badge(str(COURSE), [learner.pk, other[0].pk])
    assert (again.recorded, again.existing) == (0, 2)  # running it twice records nothing twice


def test_a_dry_run_records_nothing(badge, grades, django_user_model):
    users = people(django_user_model, 2)
    passed(grades, users)
    result = api.backfill_course_badge(str(COURSE), [u.pk for u in users], dry_run=True)
    assert (result.recorded, result.dry_run) == (2, True)
    assert not BadgeIssuance.objects.exists()


def test_a_backfill_of_some_badges_records_only_theirs(badge, account, credly, grades, django_user_model):
    other = make_course_badge(make_template(account, credly, "Other"), COURSE)
    users = people(django_user_model, 2)
    passed(grades, users)
    result = api.backfill_course_badge(str(COURSE), [u.pk for u in users], badge_ids=[other.pk])
    assert result.recorded == 2
    assert set(BadgeIssuance.objects.values_list("course_badge_id", flat=True)) == {other.pk}
    with pytest.raises(ConfigurationError, match="None of these course badges"):
        api.backfill_course_badge(str(COURSE), [users[0].pk], badge_ids=[badge.pk + 100])


def test_a_backfill_needs_a_course_key_and_an_enabled_badge(badge):
    with pytest.raises(ConfigurationError, match="not a course key"):
        api.backfill_course_badge("not a key", [1])
    with pytest.raises(ConfigurationError, match="no enabled course badge"):
        api.backfill_course_badge("course-v1:Org+Nothing+2026", [1])
    with pytest.raises(ConfigurationError, match="None of these course badges"):
        api.backfill_course_badge(str(COURSE), [1], badge_ids=[badge.pk + 1])


def test_a_learning_event_makes_a_waiting_backfill_row_interactive(badge, grades, learner, deliver, work_queue):
    passed(grades, [learner])
    api.backfill_course_badge(str(COURSE), [learner.pk])
    deliver(send.send_passing_status, learner, COURSE, True)  # the learner passes (again) while it waits
    row = BadgeIssuance.objects.get(user=learner)
    assert row.lane == Lane.INTERACTIVE
    assert work_queue.pending == [ledger.Work(row.pk, Operation.ISSUE)]
    work_queue.run()
    row.refresh_from_db()
    assert (row.state, row.provider_requests) == (S.ISSUED, 1)


def test_a_revoke_of_a_backfill_row_is_interactive(badge, grades, learner, deliver, work_queue):
    passed(grades, [learner])
    api.backfill_course_badge(str(COURSE), [learner.pk])
    run_feeder()
    deliver(send.send_passing_status, learner, COURSE, False)
    row = BadgeIssuance.objects.get(user=learner)
    assert (row.state, row.lane) == (S.REVOKE_PENDING, Lane.INTERACTIVE)
    work_queue.run()
    row.refresh_from_db()
    assert row.state == S.REVOKED


# -- the feeder -------------------------------------------------------------------------------------------------


def test_the_feeder_queues_no_more_than_the_backfill_share_has_room_for(
    badge, account, grades, django_user_model, settings, credly
):
    settings.BADGES_BRIDGE_BACKFILL_BUDGET_SHARE = 0.5
    users = people(django_user_model, 12)
    passed(grades, users)
    api.backfill_course_badge(str(COURSE), [u.pk for u in users])
    queued = run_feeder()
    assert len(queued) == 5  # half of the 10 requests of the window
    assert BadgeIssuance.objects.filter(state=S.ISSUED).count() == 5
    assert run_feeder() == []  # the share of this window is spent
    assert rate_limiter(account).used() == 5
    assert len(credly.requests_for("issue")) == 5  # one request per first award


def test_the_feeder_counts_rows_already_queued(badge, account, grades, django_user_model, settings):
    settings.BADGES_BRIDGE_BACKFILL_BUDGET_SHARE = 0.5
    users = people(django_user_model, 12)
    passed(grades, users)
    api.backfill_course_badge(str(COURSE), [u.pk for u in users])
    first = backfill.feed(lambda issuance_id: True)  # queued, not run yet
    second = backfill.feed(lambda issuance_id: True)
    assert (first.queued, second.queued) == ({account.pk: 5}, {account.pk: 0})
    assert first.waiting
    assert second.waiting


def test_two_feeders_never_queue_the_same_row(badge, account, grades, django_user_model):
    users = people(django_user_model, 4)
    passed(grades, users)
    api.backfill_course_badge(str(COURSE), [u.pk for u in users])
    seen_by_late_feeder = list(BadgeIssuance.objects.filter(ledger.backfill_waiting()).values_list("id", flat=True))
    first = ledger.feed_backfill(account.pk, 3)  # another feeder marks three of them meanwhile
    late = ledger.mark_fed(seen_by_late_feeder)
    assert len(first) == 3
    assert len(late) == 1
    assert not set(first) & set(late)
    assert ledger.feed_backfill(account.pk, 10) == []


def test_the_feeder_finishes_the_backfill_with_one_request_per_badge(
    badge, grades, django_user_model, credly, settings
):
    settings.BADGES_BRIDGE_BACKFILL_FEED_BATCH = 3
    badge.template.account.rate_limit_requests = badge.template.account.rate_limit_period = None
    badge.template.account.save()  # Credly: no limit by default, the batch bounds each run
    users = people(django_user_model, 8)
    passed(grades, users)
    api.backfill_course_badge(str(COURSE), [u.pk for u in users])
    runs = [len(run_feeder()) for _ in range(4)]
    assert runs == [3, 3, 2, 0]
    assert not BadgeIssuance.objects.filter(ledger.backfill_waiting()).exists()
    assert set(BadgeIssuance.objects.values_list("state", "provider_requests")) == {(S.ISSUED, 1)}
    for user in users:
        assert len(credly.live_awards(badge.template.external_id, user.email)) == 1


def test_an_interactive_award_during_a_backfill_is_issued_at_once(
    badge, account, grades, django_user_model, deliver, work_queue, credly, settings
):
    settings.BADGES_BRIDGE_BACKFILL_BUDGET_SHARE = 0.8
    users = people(django_user_model, 30)
    passed(grades, users)
    api.backfill_course_badge(str(COURSE), [u.pk for u in users])
    assert len(run_feeder()) == 8  # the backfill fills its share of the window
    newcomer, second = people(django_user_model, 2, "n")
    deliver(send.send_passing_status, newcomer, COURSE, True)
    deliver(send.send_passing_status, second, COURSE, True)
    assert len(work_queue.pending) == 2  # queued at once, not behind 22 waiting backfill rows
    work_queue.run()
    for user in (newcomer, second):
        row = BadgeIssuance.objects.get(user=user)
        assert (row.state, row.lane, row.provider_requests) == (S.ISSUED, Lane.INTERACTIVE, 1)
    assert BadgeIssuance.objects.filter(ledger.backfill_waiting()).count() == 22


def test_a_backfill_task_refused_by_the_share_waits_without_using_an_attempt(
    badge, account, grades, django_user_model, settings
):
    settings.BADGES_BRIDGE_MAX_ATTEMPTS = 1
    settings.BADGES_BRIDGE_BACKFILL_BUDGET_SHARE = 0.8
    users = people(django_user_model, 9)
    passed(grades, users)
    api.backfill_course_badge(str(COURSE), [u.pk for u in users])
    ids = ledger.feed_backfill(account.pk, 9)  # more than the share: say two feeders raced
    for issuance_id in ids:
        TASKS[Operation.ISSUE](issuance_id)
    waiting = BadgeIssuance.objects.get(state=S.FAILED)
    assert (waiting.attempts, waiting.award_attempts, waiting.provider_requests) == (0, 0, 0)
    assert "client-side rate limit of 8 requests" in waiting.last_error
    assert waiting.next_attempt_at > timezone.now()


def test_the_redrive_leaves_waiting_backfill_rows_to_the_feeder(badge, account, grades, django_user_model, settings):
    settings.BADGES_BRIDGE_REDRIVE_GRACE_SECONDS = 0
    users = people(django_user_model, 3)
    passed(grades, users)
    api.backfill_course_badge(str(COURSE), [u.pk for u in users])
    BadgeIssuance.objects.update(state_changed_at=timezone.now() - timedelta(hours=1))
    assert ledger.due_work(100) == []
    fed = ledger.feed_backfill(account.pk, 1)
    BadgeIssuance.objects.filter(pk__in=fed).update(next_attempt_at=timezone.now() - timedelta(minutes=5))
    assert ledger.due_work(100) == []


def test_the_feeder_queues_again_a_row_whose_task_never_came(badge, account, grades, django_user_model, settings):
    settings.BADGES_BRIDGE_BACKFILL_FEED_SECONDS = 10
    users = people(django_user_model, 2)
    passed(grades, users)
    api.backfill_course_badge(str(COURSE), [u.pk for u in users])
    first = ledger.feed_backfill(account.pk, 1)
    assert ledger.backfill_in_flight(account.pk) == 1
    BadgeIssuance.objects.filter(pk__in=first).update(next_attempt_at=timezone.now() - timedelta(seconds=29))
    assert ledger.feed_backfill(account.pk, 1) != first  # queued 29 s ago: its task may still come
    BadgeIssuance.objects.filter(pk__in=first).update(next_attempt_at=timezone.now() - timedelta(seconds=31))
    assert ledger.backfill_in_flight(account.pk) == 1  # the other row
    assert ledger.feed_backfill(account.pk, 5) == first  # lost, or its lead was carried along: queued again


def test_the_redrive_starts_the_feeder_while_backfill_rows_wait(badge, grades, django_user_model, monkeypatch):
    started = []
    monkeypatch.setattr("badges_bridge.backfill.start_feeder", lambda countdown=None: started.append(1) or True)
    assert api.redrive().backfill_feeder is False
    users = people(django_user_model, 1)
    passed(grades, users)
    api.backfill_course_badge(str(COURSE), [users[0].pk])
    assert api.redrive().backfill_feeder is True


def test_the_feeder_task_issues_the_backfill(badge, grades, django_user_model, django_capture_on_commit_callbacks):
    users = people(django_user_model, 3)
    passed(grades, users)
    with django_capture_on_commit_callbacks(execute=True):
        api.backfill_course_badge(str(COURSE), [u.pk for u in users])  # starts the feeder (eager here)
    assert set(BadgeIssuance.objects.values_list("state", flat=True)) == {S.ISSUED}


# -- the command ------------------------------------------------------------------------------------------------


def test_the_command_reports_progress_and_the_result(badge, grades, django_user_model, tmp_path):
    users = people(django_user_model, 3)
    passed(grades, users[:2])
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"{u.pk}\n" for u in users))
    out = StringIO()
    call_command("badges_bridge_backfill", str(COURSE), "--user-ids-file", str(ids), "--dry-run", stdout=out)
    assert "... 3 learner(s) read, 2 badge(s)" in out.getvalue()
    assert "would record 2 badge(s)" in out.getvalue()
    assert not BadgeIssuance.objects.exists()
    out = StringIO()
    call_command("badges_bridge_backfill", str(COURSE), "--user-ids-file", str(ids), stdout=out)
    assert "recorded 2 badge(s)" in out.getvalue()
    assert "1 not meeting a criterion" in out.getvalue()
    assert BadgeIssuance.objects.filter(lane=Lane.BACKFILL).count() == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nonsense"], "is not a course key"),
        (["course-v1:Org+None+2026"], "has no enabled course badge"),
        ([str(COURSE), "--user-ids-file", "/nonexistent/ids"], "Cannot read"),
    ],
)
def test_the_command_explains_what_is_wrong(badge, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("badges_bridge_backfill", *args, stdout=StringIO())


def test_the_command_refuses_a_file_that_is_not_user_ids(badge, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("12\nada@example.com\n")
    with pytest.raises(CommandError, match="item 2"):
        call_command("badges_bridge_backfill", str(COURSE), "--user-ids-file", str(ids), stdout=StringIO())


# -- bulk creates and the budget ------------------------------------------------------------------------------


@pytest.fixture
def bulk_badge(accredible):
    account = make_account(accredible, rate_limit_requests=10, rate_limit_period=300)
    return make_course_badge(make_template(account, accredible), COURSE, revoke_policy=RevokePolicy.NEVER)


def test_a_bulk_create_refused_by_our_limit_gives_the_carried_rows_back(
    bulk_badge, grades, django_user_model, deliver, work_queue, monkeypatch, accredible
):
    waiting = people(django_user_model, 3)
    passed(grades, waiting)
    api.backfill_course_badge(str(COURSE), [u.pk for u in waiting])
    newcomers = people(django_user_model, 2, "n")
    for user in newcomers:
        deliver(send.send_passing_status, user, COURSE, True)
    lead, other = (BadgeIssuance.objects.get(user=user) for user in newcomers)

    def refuse(self):
        raise RateLimitedError("client-side rate limit of 10 requests reached", retry_after=12.0)

    monkeypatch.setattr(SharedRateLimiter, "__call__", refuse)
    work_queue.pending = [ledger.Work(lead.pk, Operation.ISSUE)]
    work_queue.run()
    lead.refresh_from_db()
    assert (lead.state, lead.attempts, lead.award_attempts) == (S.FAILED, 0, 0)
    rows = BadgeIssuance.objects.exclude(pk=lead.pk)
    assert {(row.state, row.attempts, row.award_attempts, row.lease_token) for row in rows} == {(S.PENDING, 0, 0, "")}
    assert work_queue.delayed == [ledger.Work(lead.pk, Operation.ISSUE), ledger.Work(other.pk, Operation.ISSUE)]
    assert BadgeIssuance.objects.filter(ledger.backfill_waiting()).count() == 3  # back with the feeder
    assert accredible.server.journal == []


def test_no_row_is_carried_along_when_the_window_has_no_room(bulk_badge, grades, django_user_model, settings):
    from badges_bridge import bulk

    users = people(django_user_model, 4)
    passed(grades, users)
    api.backfill_course_badge(str(COURSE), [u.pk for u in users])
    account = bulk_badge.template.account
    for _ in range(9):
        rate_limiter(account)()  # the backfill share (0.9 of 10) is spent
    row = ledger.claim(BadgeIssuance.objects.order_by("pk").first().pk, Operation.ISSUE)
    assert bulk.claim_partners(row) == []
    rate_limiter(account)()
    other = ledger.claim(BadgeIssuance.objects.order_by("pk")[1].pk, Operation.ISSUE)
    other.lane = Lane.INTERACTIVE
    assert bulk.claim_partners(other) == []  # the whole limit is spent too


def test_a_bulk_backfill_costs_one_request_per_thirty_badges(bulk_badge, grades, django_user_model, accredible):
    users = people(django_user_model, 45)
    passed(grades, users)
    api.backfill_course_badge(str(COURSE), [u.pk for u in users])
    queued = run_feeder()
    assert len(queued) == 2  # one task per bulk of 30
    assert BadgeIssuance.objects.filter(state=S.ISSUED).count() == 45
    assert len(accredible.requests_for("bulk_issue")) == 2
    assert len(accredible.server.journal) == 2
    assert accredible.duplicates_created() == 0


def test_leads_run_in_any_order_each_carry_their_own_chunk(bulk_badge, grades, django_user_model, accredible):
    users = people(django_user_model, 90)
    passed(grades, users)
    api.backfill_course_badge(str(COURSE), [u.pk for u in users])
    leads: list[int] = []
    backfill.feed(lambda issuance_id: leads.append(issuance_id) or True)
    assert len(leads) == 3
    for lead in reversed(leads):  # workers take them in any order
        TASKS[Operation.ISSUE](lead)
    assert BadgeIssuance.objects.filter(state=S.ISSUED).count() == 90
    assert len(accredible.requests_for("bulk_issue")) == 3
    assert len(accredible.server.journal) == 3
