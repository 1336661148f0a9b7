"""Badges that require staff approval: the approval queue, approving and declining, and every state that knows it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, backfill, config_cache, ledger
from badges_bridge.data import EventKind, LearnerEvent
from badges_bridge.models import (
    AuditEntry,
    BadgeIssuance,
    IssuanceState,
    Lane,
    Operation,
    Origin,
    RevokedBy,
    RevokePolicy,
)
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

COURSE = CourseKey.from_string("course-v1:Org+Review+2026")
S = IssuanceState
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("receivers")]


@pytest.fixture
def account(credly):
    return make_account(credly)


@pytest.fixture
def badge(credly, account):
    return make_course_badge(
        make_template(account, credly, "Reviewed"),
        COURSE,
        requires_approval=True,
        revoke_policy=RevokePolicy.CRITERION_UNMET,
    )


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="staffer", email="staff@example.com", password="x")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user(
        username="bob", email="bob@example.com", first_name="Bob", last_name="B", password="x"
    )


def row_of(user, badge) -> BadgeIssuance:
    return BadgeIssuance.objects.get(user=user, course_badge=badge)


def issued_at_credly(credly) -> int:
    return len(credly.requests_for("issue"))


def last_message(row: BadgeIssuance) -> str:
    return AuditEntry.objects.filter(issuance=row).order_by("at", "id").last().message


def qualify(deliver, user, badge) -> BadgeIssuance:
    deliver(send.send_passing_status, user, COURSE, True)
    return row_of(user, badge)


# -- the queue --------------------------------------------------------------------------------------------------


def test_a_qualifying_learner_waits_for_approval_and_nothing_is_queued(credly, badge, learner, deliver, work_queue):
    row = qualify(deliver, learner, badge)
    assert row.state == S.AWAITING_APPROVAL
    assert work_queue.pending == []
    assert work_queue.delayed == []
    assert last_message(row) == "criterion met; awaiting approval by course staff"
    deliver(send.send_passing_status, learner, COURSE, True)  # repeated events change nothing
    assert row_of(learner, badge).state == S.AWAITING_APPROVAL
    assert issued_at_credly(credly) == 0


def test_approving_queues_the_issue_and_records_the_reviewer(credly, badge, learner, staff, deliver, work_queue):
    row = qualify(deliver, learner, badge)
    result = deliver(api.approve_awards, badge.pk, [row.pk], staff)
    assert (result.done, result.skipped) == ([row.pk], [])
    row.refresh_from_db()
    assert (row.state, row.operation, row.lane) == (S.PENDING, Operation.ISSUE, Lane.INTERACTIVE)
    assert row.reviewed_by_id == staff.pk
    assert row.reviewed_at is not None
    entry = AuditEntry.objects.filter(issuance=row).last()
    assert (entry.actor, entry.message, entry.from_state) == (
        f"staff:{staff.pk}",
        f"approved by staff:{staff.pk}",
        S.AWAITING_APPROVAL,
    )
    assert [work.issuance_id for work in work_queue.pending] == [row.pk]
    work_queue.run()
    assert row_of(learner, badge).state == S.ISSUED
    assert len(credly.live_awards(badge.template.external_id, learner.email)) == 1


def test_declining_keeps_the_reason_and_events_never_queue_it_again(credly, badge, learner, staff, deliver, work_queue):
    row = qualify(deliver, learner, badge)
    result = deliver(api.decline_awards, badge.pk, [row.pk], staff, "  Not enrolled in the programme  ")
    assert result.done == [row.pk]
    row.refresh_from_db()
    assert (row.state, row.review_note, row.reviewed_by_id) == (S.DECLINED, "Not enrolled in the programme", staff.pk)
    assert last_message(row) == f"declined by staff:{staff.pk}: Not enrolled in the programme"
    deliver(send.send_passing_status, learner, COURSE, False)
    deliver(send.send_passing_status, learner, COURSE, True)
    deliver(send.send_certificate_created, learner, COURSE)
    assert row_of(learner, badge).state == S.DECLINED
    assert work_queue.pending == []
    assert issued_at_credly(credly) == 0


@pytest.mark.parametrize("reason", ["", "   \n"])
def test_a_decline_needs_a_reason(badge, learner, staff, deliver, reason):
    row = qualify(deliver, learner, badge)
    with pytest.raises(ValueError, match="reason is required"):
        api.decline_awards(badge.pk, [row.pk], staff, reason)
    assert row_of(learner, badge).state == S.AWAITING_APPROVAL


def test_a_long_decline_reason_is_clipped(badge, learner, staff, deliver):
    row = qualify(deliver, learner, badge)
    api.decline_awards(badge.pk, [row.pk], staff, "x" * 2000)
    note = row_of(learner, badge).review_note
    assert len(note) == api.DECLINE_REASON_MAX_CHARS
    assert note.endswith("…")


def test_bulk_review_does_what_it_can_and_says_why_it_skipped_the_rest(
    credly, account, badge, learner, bob, staff, deliver, work_queue
):
    other = make_course_badge(make_template(account, credly, "Other"), COURSE)
    first, second = qualify(deliver, learner, badge), qualify(deliver, bob, badge)
    foreign = row_of(learner, other)
    assert foreign.state == S.PENDING
    deliver(api.decline_awards, badge.pk, [second.pk], staff, "no")
    result = deliver(api.approve_awards, badge.pk, [first.pk, first.pk, second.pk, foreign.pk, 999_999], staff)
    assert result.done == [first.pk]
    assert result.skipped == [
        (second.pk, "already declined by course staff"),
        (foreign.pk, "not an award of this course badge"),
        (999_999, "no such ledger row"),
    ]
    queued = [work.issuance_id for work in work_queue.pending]
    assert first.pk in queued
    assert second.pk not in queued


def test_approving_twice_issues_once_and_the_second_is_skipped(credly, badge, learner, staff, bob, deliver, work_queue):
    row = qualify(deliver, learner, badge)
    assert deliver(api.approve_awards, badge.pk, [row.pk], staff).done == [row.pk]
    again = deliver(api.approve_awards, badge.pk, [row.pk], bob)
    assert again.done == []
    assert again.skipped == [(row.pk, "already approved by course staff (it is pending)")]
    assert len(work_queue.pending) == 1
    work_queue.run()
    assert issued_at_credly(credly) == 1
    assert row_of(learner, badge).reviewed_by_id == staff.pk


def test_a_decline_after_an_approval_is_skipped_and_the_other_way_round(badge, learner, bob, staff, deliver):
    approved, declined = qualify(deliver, learner, badge), qualify(deliver, bob, badge)
    deliver(api.approve_awards, badge.pk, [approved.pk], staff)
    deliver(api.decline_awards, badge.pk, [declined.pk], staff, "no")
    assert api.decline_awards(badge.pk, [approved.pk], staff, "too late").skipped[0][1].startswith("already approved")
    assert api.approve_awards(badge.pk, [declined.pk], staff).skipped == [
        (declined.pk, "already declined by course staff")
    ]
    assert (row_of(learner, badge).state, row_of(bob, badge).state) == (S.ISSUED, S.DECLINED)


# -- events and policies ------------------------------------------------------------------------------------------


def test_an_unmet_event_takes_the_row_out_of_the_queue_under_revoke_when_unmet(badge, learner, staff, deliver):
    qualify(deliver, learner, badge)
    deliver(send.send_passing_status, learner, COURSE, False)
    row = row_of(learner, badge)
    assert row.state == S.NOT_MET
    assert "removed from the approval queue" in last_message(row)
    assert api.approve_awards(badge.pk, [row.pk], staff).skipped == [
        (row.pk, "not awaiting approval (it is not met (latest event))")
    ]
    assert qualify(deliver, learner, badge).state == S.AWAITING_APPROVAL  # met again: back in the queue


def test_an_unmet_event_leaves_the_row_in_the_queue_when_the_policy_never_revokes(badge, learner, deliver):
    badge.revoke_policy = RevokePolicy.NEVER
    badge.save()
    qualify(deliver, learner, badge)
    deliver(send.send_passing_status, learner, COURSE, False)
    assert row_of(learner, badge).state == S.AWAITING_APPROVAL


def test_met_again_after_a_policy_revoke_needs_a_new_approval(credly, badge, learner, staff, deliver, work_queue):
    row = qualify(deliver, learner, badge)
    deliver(api.approve_awards, badge.pk, [row.pk], staff)
    work_queue.run()
    deliver(send.send_passing_status, learner, COURSE, False)
    work_queue.run()
    assert row_of(learner, badge).state == S.REVOKED
    row = qualify(deliver, learner, badge)
    assert (row.state, row.award_number, row.external_id) == (S.AWAITING_APPROVAL, 2, "")
    assert (row.reviewed_by_id, row.reviewed_at) == (None, None)
    assert work_queue.pending == []
    deliver(api.approve_awards, badge.pk, [row.pk], staff)
    work_queue.run()
    assert row_of(learner, badge).state == S.ISSUED
    assert len(credly.live_awards(badge.template.external_id, learner.email)) == 1


def test_switching_approval_off_leaves_waiting_rows_for_review(badge, learner, bob, staff, deliver, work_queue):
    waiting = qualify(deliver, learner, badge)
    badge.requires_approval = False
    badge.save()
    assert row_of(learner, badge).state == S.AWAITING_APPROVAL
    assert qualify(deliver, bob, badge).state == S.PENDING  # new qualifiers no longer wait
    assert deliver(api.approve_awards, badge.pk, [waiting.pk], staff).done == [waiting.pk]


def test_an_issued_badge_is_untouched_when_approval_is_switched_on(credly, badge, learner, deliver):
    badge.requires_approval = False
    badge.save()
    assert qualify(deliver, learner, badge).state == S.ISSUED
    badge.requires_approval = True
    badge.save()
    deliver(send.send_passing_status, learner, COURSE, True)
    assert row_of(learner, badge).state == S.ISSUED


# -- manual awards, consent, backfill --------------------------------------------------------------------------------


def test_a_manual_award_bypasses_approval_and_reopens_a_declined_row(badge, learner, bob, staff, deliver):
    report = deliver(api.award_manually, badge.pk, ["bob"], "staff:1", "instructor")
    assert row_of(bob, badge).state == S.ISSUED  # no queue for a hand-made award
    assert report.count("awarded") == 1
    row = qualify(deliver, learner, badge)
    deliver(api.decline_awards, badge.pk, [row.pk], staff, "missing the exam")
    deliver(api.award_manually, badge.pk, ["ada"], "staff:1", "exam passed elsewhere")
    row = row_of(learner, badge)
    assert (row.state, row.origin) == (S.ISSUED, Origin.MANUAL)


def test_a_manual_award_of_a_waiting_learner_awards_it(badge, learner, deliver):
    qualify(deliver, learner, badge)
    report = deliver(api.award_manually, badge.pk, ["ada"], "staff:1")
    assert report.count("awarded") == 1
    assert row_of(learner, badge).state == S.ISSUED


def test_an_approved_learner_without_consent_waits_for_consent(credly, badge, learner, staff, deliver, settings):
    settings.BADGES_BRIDGE_REQUIRE_CONSENT = True
    row = qualify(deliver, learner, badge)
    assert row.state == S.AWAITING_APPROVAL  # staff review first, whatever the learner chose
    deliver(api.approve_awards, badge.pk, [row.pk], staff)
    row.refresh_from_db()
    assert row.state == S.WAITING_CONSENT
    assert "has not consented" in last_message(row)
    assert issued_at_credly(credly) == 0
    deliver(api.set_consent, learner.pk, True)
    assert row_of(learner, badge).state == S.ISSUED


def test_backfill_rows_wait_for_approval_then_go_to_the_feeder(badge, learner, staff, deliver, work_queue, monkeypatch):
    fed: list = []
    monkeypatch.setattr(backfill, "start_feeder", lambda countdown=None: fed.append(countdown) or True)
    event = LearnerEvent(
        event_id="bf-1",
        event_type=backfill.EVENT_TYPE,
        occurred_at=timezone.now(),
        kind=EventKind.PASSING_STATUS,
        user_id=learner.pk,
        course_key=COURSE,
        run_key=str(COURSE),
        is_passing=True,
    )
    (rule,) = config_cache.rules_for_course(COURSE)
    assert ledger.apply_event(event, [(rule, True)], lane=Lane.BACKFILL) == []
    row = row_of(learner, badge)
    assert (row.state, row.lane) == (S.AWAITING_APPROVAL, Lane.BACKFILL)
    assert not BadgeIssuance.objects.filter(ledger.backfill_waiting()).exists()
    deliver(api.approve_awards, badge.pk, [row.pk], staff)
    row.refresh_from_db()
    assert (row.state, row.lane) == (S.PENDING, Lane.BACKFILL)
    assert work_queue.pending == []  # the feeder queues it within the backfill budget share
    assert fed == [0]
    assert list(BadgeIssuance.objects.filter(ledger.backfill_waiting()).values_list("pk", flat=True)) == [row.pk]


# -- everything else that lists states ---------------------------------------------------------------------------------


def test_every_state_has_its_transitions():
    assert set(ledger.TRANSITIONS) == set(S.values)


def test_the_redrive_never_queues_waiting_or_declined_rows(badge, learner, bob, staff, deliver):
    waiting, declined = qualify(deliver, learner, badge), qualify(deliver, bob, badge)
    deliver(api.decline_awards, badge.pk, [declined.pk], staff, "no")
    long_ago = timezone.now() - timedelta(days=2)
    BadgeIssuance.objects.update(state_changed_at=long_ago, next_attempt_at=long_ago)
    assert ledger.due_work(100) == []
    assert api.health_report().stuck == 0
    assert {waiting.pk, declined.pk} == set(BadgeIssuance.objects.values_list("pk", flat=True))


def test_the_learner_sees_a_waiting_badge_but_never_a_declined_one(badge, learner, bob, staff, deliver):
    qualify(deliver, learner, badge)
    (shown,) = api.learner_badges(learner.pk)
    assert shown.status == "awaiting_approval"
    assert "course team reviews" in shown.status_text
    declined = qualify(deliver, bob, badge)
    deliver(api.decline_awards, badge.pk, [declined.pk], staff, "internal note")
    assert api.learner_badges(bob.pk) == []
    assert [badge.course_badge_id for badge in api.available_badges(bob.pk)] == []


def test_health_counts_waiting_rows_in_progress_and_declined_ones_closed(badge, learner, bob, staff, deliver):
    qualify(deliver, learner, badge)
    declined = qualify(deliver, bob, badge)
    deliver(api.decline_awards, badge.pk, [declined.pk], staff, "no")
    buckets = api.health_report().buckets
    assert (buckets["in_progress"], buckets["closed"]) == (1, 1)


def test_retirement_erases_waiting_and_declined_rows(badge, learner, bob, staff, deliver):
    qualify(deliver, learner, badge)
    declined = qualify(deliver, bob, badge)
    deliver(api.decline_awards, badge.pk, [declined.pk], staff, "no")
    for user in (learner, bob):
        assert deliver(api.retire_learner, user.pk).rows == 1
    assert set(BadgeIssuance.objects.values_list("state", "user_id", "review_note")) == {(S.RETIRED, None, "")}


def test_revoking_a_waiting_row_closes_it_without_a_request_and_a_declined_one_is_skipped(
    credly, badge, learner, bob, staff, deliver
):
    waiting, declined = qualify(deliver, learner, badge), qualify(deliver, bob, badge)
    deliver(api.decline_awards, badge.pk, [declined.pk], staff, "no")
    result = deliver(api.revoke_issuance, waiting.pk, "admin:user#1", "duplicate account")
    waiting.refresh_from_db()
    assert (waiting.state, waiting.revoked_by) == (S.REVOKED, RevokedBy.OPERATOR)
    assert result.outcome == "recorded"
    assert deliver(api.revoke_issuance, declined.pk, "admin:user#1", "x").outcome == "skipped"
    assert qualify(deliver, learner, badge).state == S.REVOKED  # a person's revoke is never undone by events
    assert issued_at_credly(credly) == 0


@pytest.mark.parametrize(
    ("policy", "approval", "shown"),
    [
        (RevokePolicy.NEVER, False, "never revoked"),
        (RevokePolicy.CRITERION_UNMET, True, "revoked when unmet; staff approve awards"),
        (RevokePolicy.CERTIFICATE_REVOKED, False, "revoked with the certificate"),
    ],
)
def test_the_admin_badge_list_names_the_policy_and_the_approval(badge, policy, approval, shown):
    from django.contrib.admin.sites import site

    from badges_bridge.admin import CourseBadgeAdmin

    badge.revoke_policy, badge.requires_approval = policy, approval
    assert CourseBadgeAdmin(type(badge), site).criterion_shown(badge).endswith(f'<span class="bb-sub">{shown}</span>')


def test_nothing_is_approved_while_the_badge_is_disabled_but_it_can_be_declined(badge, learner, staff, deliver):
    row = qualify(deliver, learner, badge)
    badge.enabled = False
    badge.save()
    result = api.approve_awards(badge.pk, [row.pk, row.pk], staff)
    assert (result.done, result.skipped) == ([], [(row.pk, "the course badge is disabled")])
    assert row_of(learner, badge).state == S.AWAITING_APPROVAL
    assert api.decline_awards(badge.pk, [row.pk], staff, "badge retired").done == [row.pk]


def test_the_admin_pages_show_the_two_states(badge, learner, bob, staff, deliver, client, django_user_model):
    from django.urls import reverse

    waiting, declined = qualify(deliver, learner, badge), qualify(deliver, bob, badge)
    deliver(api.decline_awards, badge.pk, [declined.pk], staff, "no")
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    health = client.get(reverse("admin:badges_bridge_healthoverview_changelist"))
    assert health.status_code == 200
    assert "Awaiting approval by course staff" in health.content.decode()
    ledger_page = client.get(reverse("admin:badges_bridge_badgeissuance_changelist")).content.decode()
    assert 'class="bb-state bb-busy">Awaiting approval by course staff' in ledger_page
    assert 'class="bb-state bb-off">Declined by course staff' in ledger_page
    declined_page = client.get(reverse("admin:badges_bridge_badgeissuance_change", args=[declined.pk]))
    assert "Revoke the badge…" not in declined_page.content.decode()  # a declined award has nothing to revoke
    waiting_page = client.get(reverse("admin:badges_bridge_badgeissuance_change", args=[waiting.pk]))
    assert "Revoke the badge…" in waiting_page.content.decode()


def test_a_learner_may_remove_a_waiting_badge_and_it_never_comes_back(credly, badge, learner, staff, deliver):
    row = qualify(deliver, learner, badge)
    assert deliver(api.learner_revoke, learner.pk, row.pk, "not for me") is True
    row.refresh_from_db()
    assert (row.state, row.revoked_by) == (S.REVOKED, RevokedBy.LEARNER)
    assert api.approve_awards(badge.pk, [row.pk], staff).skipped == [(row.pk, "not awaiting approval (it is revoked)")]
    assert qualify(deliver, learner, badge).state == S.REVOKED
    assert issued_at_credly(credly) == 0


def test_a_bulk_review_costs_a_few_queries_per_chunk_not_per_row(
    badge, staff, django_user_model, django_assert_max_num_queries, work_queue
):
    rows = [
        BadgeIssuance.objects.create(
            user=django_user_model.objects.create_user(f"learner{number}"),
            course_badge=badge,
            state=S.AWAITING_APPROVAL,
        )
        for number in range(ledger.REVIEW_CHUNK + 5)
    ]
    with django_assert_max_num_queries(24):  # 18 today for two chunks; one query per row would be 200+
        result = api.approve_awards(badge.pk, [row.pk for row in rows], staff)
    assert len(result.done) == len(rows)
    assert AuditEntry.objects.filter(to_state=S.PENDING, actor=f"staff:{staff.pk}").count() == len(rows)


def test_a_learner_who_retired_before_the_approval_is_skipped(badge, learner, staff, deliver):
    from badges_bridge import tombstones

    row = qualify(deliver, learner, badge)
    tombstones.bury(learner.pk)  # retired; the erasure of their rows has not run yet
    assert api.approve_awards(badge.pk, [row.pk], staff).skipped == [(row.pk, "the learner retired")]
    assert row_of(learner, badge).state == S.AWAITING_APPROVAL


def test_a_backfill_of_a_badge_that_requires_approval_fills_the_queue(
    badge, learner, bob, staff, monkeypatch, django_capture_on_commit_callbacks, work_queue, tmp_path
):
    from decimal import Decimal
    from io import StringIO

    from django.core.management import call_command

    from badges_bridge.data import CourseGrade, CourseStanding

    monkeypatch.setattr(
        "badges_bridge.compat.course_standings",
        lambda key, user_ids: {user_id: CourseStanding(CourseGrade(Decimal(90), True)) for user_id in user_ids},
    )
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{learner.pk}\n{bob.pk}\n")
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("badges_bridge_backfill", str(COURSE), "--user-ids-file", str(ids), stdout=out)
    assert "wait in the course's approval queue first" in out.getvalue()
    rows = list(BadgeIssuance.objects.filter(course_badge=badge))
    assert {(row.state, row.lane) for row in rows} == {(S.AWAITING_APPROVAL, Lane.BACKFILL)}
    assert backfill.feed(lambda pk: True).queued == {}  # the feeder finds nothing to queue
    with django_capture_on_commit_callbacks(execute=True):
        api.approve_awards(badge.pk, [rows[0].pk], staff)
    work_queue.run()  # what the feeder, started after the approval, queued
    rows[0].refresh_from_db()
    rows[1].refresh_from_db()
    assert (rows[0].state, rows[1].state) == (S.ISSUED, S.AWAITING_APPROVAL)
