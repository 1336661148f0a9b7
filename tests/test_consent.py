"""Consent (BADGES_BRIDGE_REQUIRE_CONSENT) and opt-out hold issuance back, at every step where work can start."""

from __future__ import annotations

import pytest
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, ledger, privacy, tasks
from badges_bridge.models import AuditEntry, BadgeIssuance, IssuanceState, LearnerPreference, RevokedBy, RevokePolicy
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

COURSE = CourseKey.from_string("course-v1:Org+Privacy+2026")
S = IssuanceState
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("receivers")]


@pytest.fixture
def badge(credly):
    return make_course_badge(make_template(make_account(credly), credly, "Privacy Basics"), COURSE)


@pytest.fixture
def consent_required(settings):
    settings.BADGES_BRIDGE_REQUIRE_CONSENT = True


def row_of(learner, badge) -> BadgeIssuance:
    return BadgeIssuance.objects.get(user=learner, course_badge=badge)


def sent_to_credly(credly) -> int:
    """Requests that carried (or looked up) a learner's data at the fake Credly."""
    return len(credly.requests_for("issue")) + len(credly.requests_for("find"))


def test_by_default_no_consent_is_needed(credly, badge, learner, deliver):
    deliver(send.send_passing_status, learner, COURSE, True)
    assert row_of(learner, badge).state == S.ISSUED
    assert privacy.hold_reason(learner.pk) == ""


@pytest.mark.usefixtures("consent_required")
def test_consent_mode_holds_the_badge_until_the_learner_agrees(credly, badge, learner, deliver, work_queue):
    deliver(send.send_passing_status, learner, COURSE, True)
    row = row_of(learner, badge)
    assert row.state == S.WAITING_CONSENT
    assert work_queue.pending == []
    assert sent_to_credly(credly) == 0
    assert "has not consented" in AuditEntry.objects.filter(issuance=row).last().message

    deliver(send.send_passing_status, learner, COURSE, True)  # repeated events change nothing
    assert row_of(learner, badge).state == S.WAITING_CONSENT

    assert deliver(api.set_consent, learner.pk, True) == 1
    assert row_of(learner, badge).state == S.PENDING
    work_queue.run()
    row = row_of(learner, badge)
    assert row.state == S.ISSUED
    assert len(credly.live_awards(badge.template.external_id, learner.email)) == 1
    assert AuditEntry.objects.filter(issuance=row, actor=f"learner:{learner.pk}").exists()


@pytest.mark.usefixtures("consent_required")
def test_consent_given_before_qualifying_lets_the_badge_go_at_once(credly, badge, learner, deliver):
    api.set_consent(learner.pk, True)
    deliver(send.send_passing_status, learner, COURSE, True)
    assert row_of(learner, badge).state == S.ISSUED


@pytest.mark.usefixtures("consent_required")
def test_consent_withdrawn_while_the_task_is_queued_sends_nothing(credly, badge, learner, deliver, work_queue):
    api.set_consent(learner.pk, True)
    deliver(send.send_passing_status, learner, COURSE, True)
    assert len(work_queue.pending) == 1  # the issue task is queued...
    LearnerPreference.objects.filter(user_id=learner.pk).update(consent_withdrawn_at="2026-01-01T00:00:00Z")
    assert row_of(learner, badge).state == S.PENDING  # ...and the row still says pending (no hold ran)

    work_queue.run()  # the task claims the row: the claim checks the learner's choice first
    row = row_of(learner, badge)
    assert row.state == S.WAITING_CONSENT
    assert sent_to_credly(credly) == 0
    assert (row.attempts, row.award_attempts) == (0, 0)
    moves = list(AuditEntry.objects.filter(issuance=row).values_list("from_state", "to_state", "actor"))
    assert moves[-1] == (S.PENDING, S.WAITING_CONSENT, "task")  # never taken for issuing


@pytest.mark.usefixtures("consent_required")
def test_withdrawing_consent_holds_rows_not_yet_sent(credly, badge, learner, deliver, work_queue):
    api.set_consent(learner.pk, True)
    deliver(send.send_passing_status, learner, COURSE, True)
    assert deliver(api.set_consent, learner.pk, False) == 1  # the pending row is held at once
    assert row_of(learner, badge).state == S.WAITING_CONSENT
    work_queue.run()
    assert row_of(learner, badge).state == S.WAITING_CONSENT
    assert sent_to_credly(credly) == 0


@pytest.mark.usefixtures("consent_required")
def test_consent_withdrawn_while_a_worker_is_issuing_stops_before_the_next_request(
    credly, badge, learner, deliver, work_queue, monkeypatch
):
    api.set_consent(learner.pk, True)
    deliver(send.send_passing_status, learner, COURSE, True)
    renew = ledger.renew

    def withdraw_then_renew(row):  # the learner withdraws just before the worker's first provider request
        api.set_consent(learner.pk, False)
        renew(row)

    monkeypatch.setattr(ledger, "renew", withdraw_then_renew)
    work_queue.run()
    row = row_of(learner, badge)
    assert row.state == S.WAITING_CONSENT
    assert row.lease_token == ""
    assert sent_to_credly(credly) == 0
    assert "stopped before the next provider request" in AuditEntry.objects.filter(issuance=row).last().message
    assert row.award_attempts == 0  # nothing was sent: the attempt was given back

    monkeypatch.setattr(ledger, "renew", renew)
    deliver(api.set_consent, learner.pk, True)
    work_queue.run()
    assert row_of(learner, badge).state == S.ISSUED


@pytest.mark.usefixtures("consent_required")
def test_the_redrive_never_sends_for_a_learner_without_consent(credly, badge, learner, deliver, settings):
    deliver(send.send_passing_status, learner, COURSE, True)
    BadgeIssuance.objects.filter(user=learner).update(state=S.PENDING, state_changed_at="2020-01-01T00:00:00Z")
    api.redrive(inline=True)  # the stale pending row is taken by the redrive, and put on hold by the claim
    assert row_of(learner, badge).state == S.WAITING_CONSENT
    assert sent_to_credly(credly) == 0

    settings.BADGES_BRIDGE_REQUIRE_CONSENT = False  # the operator turns consent off: the redrive sends
    result = api.redrive(inline=True)
    assert result.issue == 1
    assert row_of(learner, badge).state == S.ISSUED


@pytest.mark.usefixtures("consent_required")
def test_the_redrive_heals_a_consent_given_while_a_row_was_being_held(credly, badge, learner, deliver):
    deliver(send.send_passing_status, learner, COURSE, True)
    privacy.record_consent(learner.pk, True)  # recorded, but the rows were not released (a race)
    assert row_of(learner, badge).state == S.WAITING_CONSENT
    api.redrive(inline=True)
    assert row_of(learner, badge).state == S.ISSUED


def test_an_opted_out_learner_gets_no_new_badge(credly, badge, learner, deliver, work_queue):
    deliver(api.set_opt_out, learner.pk, True)
    deliver(send.send_passing_status, learner, COURSE, True)
    row = row_of(learner, badge)
    assert row.state == S.WAITING_CONSENT
    assert "opted out" in AuditEntry.objects.filter(issuance=row).last().message
    assert work_queue.pending == []
    assert sent_to_credly(credly) == 0

    assert deliver(api.set_opt_out, learner.pk, False) == 1
    work_queue.run()
    assert row_of(learner, badge).state == S.ISSUED


def test_an_opt_out_keeps_issued_badges(credly, badge, learner, deliver):
    deliver(send.send_passing_status, learner, COURSE, True)
    deliver(api.set_opt_out, learner.pk, True)
    assert row_of(learner, badge).state == S.ISSUED
    assert len(credly.live_awards(badge.template.external_id, learner.email)) == 1


@pytest.mark.usefixtures("consent_required")
def test_opting_out_wins_over_consent(credly, badge, learner, deliver, work_queue):
    api.set_consent(learner.pk, True)
    api.set_opt_out(learner.pk, True)
    deliver(send.send_passing_status, learner, COURSE, True)
    assert row_of(learner, badge).state == S.WAITING_CONSENT
    assert privacy.hold_reason(learner.pk) == privacy.OPTED_OUT
    assert deliver(api.set_consent, learner.pk, True) == 0  # still opted out: nothing goes
    assert row_of(learner, badge).state == S.WAITING_CONSENT


def test_a_learner_revokes_their_own_issued_badge(credly, badge, learner, deliver):
    deliver(send.send_passing_status, learner, COURSE, True)
    row = row_of(learner, badge)
    assert deliver(api.learner_revoke, learner.pk, row.pk, "I changed my mind")
    row = row_of(learner, badge)
    assert row.state == S.REVOKED
    assert row.revoked_by == RevokedBy.LEARNER
    assert row.revoke_reason == "Revoked at the learner's request: I changed my mind"
    entry = AuditEntry.objects.filter(issuance=row, to_state=S.REVOKE_PENDING).get()
    assert entry.actor == f"learner:{learner.pk}"
    assert credly.live_awards(badge.template.external_id, learner.email) == []
    deliver(send.send_passing_status, learner, COURSE, True)  # never re-awarded automatically
    assert row_of(learner, badge).state == S.REVOKED


def test_a_learner_cannot_revoke_someone_elses_badge(credly, badge, learner, deliver, django_user_model):
    deliver(send.send_passing_status, learner, COURSE, True)
    other = django_user_model.objects.create_user("bob", "bob@example.com")
    assert not api.learner_revoke(other.pk, row_of(learner, badge).pk)
    assert row_of(learner, badge).state == S.ISSUED


@pytest.mark.usefixtures("consent_required")
def test_revoking_a_waiting_badge_sends_nothing(credly, badge, learner, deliver):
    deliver(send.send_passing_status, learner, COURSE, True)
    row = row_of(learner, badge)
    assert deliver(api.learner_revoke, learner.pk, row.pk)
    row = row_of(learner, badge)
    assert (row.state, row.revoked_by) == (S.REVOKED, RevokedBy.LEARNER)
    assert "nothing was sent" in AuditEntry.objects.filter(issuance=row).last().message
    assert len(credly.requests_for("any")) == 0
    api.set_consent(learner.pk, True)
    assert row_of(learner, badge).state == S.REVOKED


@pytest.mark.usefixtures("consent_required")
def test_an_unmet_criterion_while_waiting_goes_back_to_not_met(credly, badge, learner, deliver):
    badge.revoke_policy = RevokePolicy.CRITERION_UNMET
    badge.save()
    deliver(send.send_passing_status, learner, COURSE, True)
    deliver(send.send_passing_status, learner, COURSE, False)
    assert row_of(learner, badge).state == S.NOT_MET
    deliver(send.send_passing_status, learner, COURSE, True)
    assert row_of(learner, badge).state == S.WAITING_CONSENT
    assert len(credly.requests_for("any")) == 0


@pytest.mark.usefixtures("consent_required")
def test_a_revoke_of_a_waiting_row_that_may_have_reached_the_provider_looks_it_up(credly, badge, learner, deliver):
    api.set_consent(learner.pk, True)
    deliver(send.send_passing_status, learner, COURSE, True)
    issued = row_of(learner, badge)
    # A row whose earlier issue attempt may have reached the provider, then held.
    BadgeIssuance.objects.filter(pk=issued.pk).update(state=S.WAITING_CONSENT, external_id="", award_attempts=1)
    api.set_consent(learner.pk, False)
    assert deliver(api.learner_revoke, learner.pk, issued.pk, "")
    assert row_of(learner, badge).state == S.REVOKED
    assert credly.live_awards(badge.template.external_id, learner.email) == []


@pytest.mark.usefixtures("consent_required")
def test_bulk_creates_leave_out_learners_without_consent(accredible, django_user_model):
    badge = make_course_badge(make_template(make_account(accredible), accredible, "Bulk"), COURSE)
    learners = [
        django_user_model.objects.create_user(f"l{i}", f"l{i}@example.com", first_name="L", last_name=str(i))
        for i in range(3)
    ]
    for person in learners[:2]:
        api.set_consent(person.pk, True)
    rows = []
    for person in learners:
        send.send_passing_status(person, COURSE, True)
        rows.append(row_of(person, badge))
    assert [row.state for row in rows] == [S.PENDING, S.PENDING, S.WAITING_CONSENT]
    BadgeIssuance.objects.filter(user=learners[2]).update(state=S.PENDING)  # as if queued before a withdrawal
    tasks.issue_badge(rows[0].pk)  # a bulk create carries the ready rows of learners who consented only
    states = {person.username: row_of(person, badge).state for person in learners}
    assert states == {"l0": S.ISSUED, "l1": S.ISSUED, "l2": S.PENDING}
    tasks.issue_badge(rows[2].pk)
    assert row_of(learners[2], badge).state == S.WAITING_CONSENT
    assert accredible.live_awards(badge.template.external_id, "l2@example.com") == []


def test_choices_are_recorded_with_their_times(learner):
    preference = privacy.record_consent(learner.pk, True)
    assert preference.has_consent
    assert preference.consent_given_at is not None
    preference = privacy.record_consent(learner.pk, False)
    assert not preference.has_consent
    assert preference.consent_withdrawn_at is not None
    withdrawn = preference.consent_withdrawn_at
    assert privacy.record_consent(learner.pk, False).consent_withdrawn_at == withdrawn  # a second withdrawal
    preference = privacy.record_opt_out(learner.pk, True)
    opted = preference.opted_out_at
    assert preference.opted_out
    assert privacy.record_opt_out(learner.pk, True).opted_out_at == opted
    assert not privacy.record_opt_out(learner.pk, False).opted_out
    assert str(preference) == f"Preferences of user {learner.pk}"


@pytest.mark.usefixtures("consent_required")
def test_withdrawal_and_an_unmet_criterion_during_an_issue_revoke_without_a_look_up(
    credly, badge, learner, deliver, work_queue, monkeypatch
):
    badge.revoke_policy = RevokePolicy.CRITERION_UNMET
    badge.save()
    api.set_consent(learner.pk, True)
    deliver(send.send_passing_status, learner, COURSE, True)
    renew = ledger.renew

    def withdraw_and_fail_then_renew(row):  # both happen before the worker's first request
        api.set_consent(learner.pk, False)
        deliver(send.send_passing_status, learner, COURSE, False)
        renew(row)

    monkeypatch.setattr(ledger, "renew", withdraw_and_fail_then_renew)
    work_queue.run(count=1)
    monkeypatch.setattr(ledger, "renew", renew)
    row = row_of(learner, badge)
    assert (row.state, row.award_attempts) == (S.REVOKE_PENDING, 0)  # the revoke asked for meanwhile goes on
    work_queue.run()
    row = row_of(learner, badge)
    assert row.state == S.REVOKED
    assert "nothing to revoke" in AuditEntry.objects.filter(issuance=row).last().message
    assert len(credly.requests_for("any")) == 0  # no look-up by e-mail address for a learner who withdrew


def test_an_opt_out_during_a_bulk_create_stops_it_and_the_others_go_alone(
    accredible, django_user_model, monkeypatch, work_queue
):
    badge = make_course_badge(make_template(make_account(accredible), accredible, "Bulk"), COURSE)
    learners = [
        django_user_model.objects.create_user(f"b{i}", f"b{i}@example.com", first_name="B", last_name=str(i))
        for i in range(3)
    ]
    rows = []
    for person in learners:
        send.send_passing_status(person, COURSE, True)
        rows.append(row_of(person, badge))
    renew_all = ledger.renew_all

    def opt_out_then_renew(held_rows):  # a learner of the batch opts out just before the bulk request
        privacy.record_opt_out(learners[1].pk, True)
        renew_all(held_rows)

    monkeypatch.setattr(ledger, "renew_all", opt_out_then_renew)
    tasks.issue_badge(rows[0].pk)
    monkeypatch.setattr(ledger, "renew_all", renew_all)
    assert accredible.requests_for("any") == []  # the bulk request was never sent
    for row in rows:
        row.refresh_from_db()
        assert (row.state, row.attempts) == (S.FAILED, 0), row  # the attempt given back; each retries alone
    assert len(work_queue.pending + work_queue.delayed) == 3  # each row's retry (the test settings: no delay)
    work_queue.run(delayed=True)
    states = [row_of(person, badge).state for person in learners]
    assert states == [S.ISSUED, S.WAITING_CONSENT, S.ISSUED]
    assert accredible.live_awards(badge.template.external_id, "b1@example.com") == []
