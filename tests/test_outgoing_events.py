"""BADGE_AWARDED and BADGE_REVOKED: sent after commit, once the provider confirmed, once per award and revoke."""

import uuid

import pytest
from django.db import transaction
from opaque_keys.edx.keys import CourseKey
from openedx_events.learning.signals import BADGE_AWARDED, BADGE_REVOKED

from badges_bridge import api, issuing, ledger, outgoing
from badges_bridge.exceptions import TransientProviderError
from badges_bridge.models import BadgeIssuance, IssuanceState, Operation, RevokePolicy
from badges_bridge.providers.base import AwardState
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template
from tests.test_exactly_once import race_inside_create

COURSE = CourseKey.from_string("course-v1:Org+Events+2026")
S = IssuanceState
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("receivers")]


class Recorder:
    """Keeps every BADGE_AWARDED and BADGE_REVOKED sent, as (kind, BadgeData)."""

    def __init__(self) -> None:
        self.sent: list = []

    def __call__(self, sender=None, signal=None, **kwargs) -> None:
        self.sent.append(("awarded" if signal is BADGE_AWARDED else "revoked", kwargs["badge"]))

    def kinds(self) -> list[str]:
        return [kind for kind, _badge in self.sent]


@pytest.fixture
def sent():
    recorder = Recorder()
    for signal in (BADGE_AWARDED, BADGE_REVOKED):
        signal.connect(recorder, weak=False, dispatch_uid=f"test.recorder.{signal.event_type}")
    yield recorder
    for signal in (BADGE_AWARDED, BADGE_REVOKED):
        signal.disconnect(dispatch_uid=f"test.recorder.{signal.event_type}")


def badge_at(harness, policy=RevokePolicy.CRITERION_UNMET, **template_seed):
    return make_course_badge(
        make_template(make_account(harness), harness, **template_seed), COURSE, revoke_policy=policy
    )


def row_of(learner) -> BadgeIssuance:
    return BadgeIssuance.objects.get(user=learner)


def passes(deliver, work_queue, learner, passing=True) -> None:
    deliver(send.send_passing_status, learner, COURSE, passing)
    deliver(work_queue.run)


def test_an_issued_badge_is_announced_once_after_commit(
    credly, learner, deliver, work_queue, sent, django_capture_on_commit_callbacks
):
    badge = badge_at(credly)
    deliver(send.send_passing_status, learner, COURSE, True)
    with django_capture_on_commit_callbacks() as commit:
        work_queue.run()
        assert sent.sent == []  # the provider confirmed, but the transaction has not committed yet
    for callback in commit:
        callback()

    row = row_of(learner)
    assert sent.kinds() == ["awarded"]
    data = sent.sent[0][1]
    assert data.uuid == str(uuid.UUID(row.external_id))  # Credly's own badge id
    assert (data.user.id, data.user.is_active) == (learner.pk, True)
    assert (data.user.pii.username, data.user.pii.email, data.user.pii.name) == (
        "ada",
        "ada@example.com",
        "Ada Lovelace",
    )
    assert (data.template.uuid, data.template.origin, data.template.name) == (
        badge.template.external_id,
        "credly",
        badge.template.name,
    )


def test_a_rolled_back_transition_sends_nothing(
    credly, learner, deliver, work_queue, sent, django_capture_on_commit_callbacks
):
    badge_at(credly)
    deliver(send.send_passing_status, learner, COURSE, True)

    def issue_then_fail() -> None:
        with transaction.atomic():
            work_queue.run()  # the ledger records the badge ...
            raise RuntimeError("... and the worker's transaction fails after that")

    with django_capture_on_commit_callbacks(execute=True) as commit, pytest.raises(RuntimeError):
        issue_then_fail()

    assert commit == []
    assert sent.sent == []
    assert row_of(learner).state == S.PENDING


def test_retries_and_redeliveries_never_announce_twice(credly, learner, deliver, work_queue, sent):
    badge_at(credly)
    passes(deliver, work_queue, learner)
    row = row_of(learner)

    work_queue.pending.append(ledger.Work(row.pk, "issue"))  # the broker delivers the issue message again
    deliver(work_queue.run)
    passes(deliver, work_queue, learner)  # the event repeats, as every grade update sends it
    deliver(issuing.process_reconcile, row.pk)
    deliver(api.redrive, inline=True)
    deliver(api.check_drift)

    assert sent.kinds() == ["awarded"]


def test_each_revoke_and_each_re_award_is_sent_once(credly, learner, deliver, work_queue, sent):
    badge_at(credly)
    passes(deliver, work_queue, learner)
    passes(deliver, work_queue, learner, False)
    passes(deliver, work_queue, learner, False)
    passes(deliver, work_queue, learner)

    assert sent.kinds() == ["awarded", "revoked", "awarded"]
    first, revoked, second = (data.uuid for _kind, data in sent.sent)
    assert first == revoked != second
    assert second == row_of(learner).external_id


def test_a_badge_kept_after_a_failed_revoke_is_not_announced_again(credly, learner, deliver, work_queue, sent):
    badge_at(credly)
    passes(deliver, work_queue, learner)
    credly.inject("revoke", "status", status=503)
    deliver(send.send_passing_status, learner, COURSE, False)
    deliver(work_queue.run, 1)  # the revoke fails: will it reach Credly on its retry? Not if ...
    assert row_of(learner).state == S.FAILED
    work_queue.lose()
    passes(deliver, work_queue, learner)  # ... the learner passes again first: the badge is checked and kept

    assert (row_of(learner).state, row_of(learner).award_number) == (S.ISSUED, 1)
    assert row_of(learner).audit_entries.filter(message__contains="still live at the provider; kept").exists()
    assert sent.kinds() == ["awarded"]


def test_an_operator_revoke_is_sent_once(credly, learner, deliver, work_queue, sent):
    badge_at(credly, RevokePolicy.NEVER)
    passes(deliver, work_queue, learner)
    deliver(api.revoke_issuance, row_of(learner).pk, "admin:user#1", "Issued in error")
    deliver(work_queue.run)
    passes(deliver, work_queue, learner)

    assert sent.kinds() == ["awarded", "revoked"]


@pytest.mark.parametrize("state", [AwardState.REJECTED, AwardState.DELETED, AwardState.EXPIRED])
def test_a_badge_ended_at_the_provider_is_withdrawn_once(credly, learner, deliver, work_queue, sent, state):
    badge_at(credly, RevokePolicy.NEVER)
    passes(deliver, work_queue, learner)
    credly.set_award_state(row_of(learner).external_id, state)

    deliver(api.check_drift)
    deliver(api.check_drift)
    passes(deliver, work_queue, learner)

    assert sent.kinds() == ["awarded", "revoked"]


def test_a_badge_rejected_before_it_was_recorded_is_never_announced(credly, learner, deliver, work_queue, sent):
    badge_at(credly)
    credly.inject("issue", "commit_then_fail", status=503)
    deliver(send.send_passing_status, learner, COURSE, True)
    deliver(work_queue.run, 1)
    credly.set_award_state(credly.all_awards()[0]["id"], AwardState.REJECTED)
    deliver(work_queue.run)  # the retry finds the rejected badge and records it

    assert row_of(learner).state == S.REJECTED
    assert sent.sent == []


def test_a_late_result_of_a_worker_that_lost_its_lease_is_announced_once(
    credly, learner, deliver, work_queue, sent, monkeypatch
):
    badge_at(credly, RevokePolicy.NEVER)

    def other_worker_takes_the_row_and_fails(row_id: int) -> None:
        other = ledger.claim(row_id, Operation.ISSUE)
        ledger.fail(other, TransientProviderError("timeout"), "task:issue", transient=True)

    race_inside_create(monkeypatch, other_worker_takes_the_row_and_fails)
    passes(deliver, work_queue, learner)  # the first worker's badge arrives late: the reconcile adopts it

    row = row_of(learner)
    assert row.state == S.ISSUED
    assert row.audit_entries.filter(actor="task:reconcile", message__startswith="adopted badge").exists()
    assert sent.kinds() == ["awarded"]
    assert sent.sent[0][1].uuid == row.external_id


def test_a_late_badge_undone_after_another_worker_issued_is_never_announced(
    credly, learner, deliver, work_queue, sent, monkeypatch
):
    badge_at(credly, RevokePolicy.NEVER, allow_duplicates=True)
    race_inside_create(monkeypatch, lambda row_id: issuing.process_issue(row_id))
    passes(deliver, work_queue, learner)

    row = row_of(learner)
    assert row.awards.filter(status="undone").count() == 1
    assert sent.kinds() == ["awarded"]
    assert sent.sent[0][1].uuid == row.external_id


def test_an_accredible_credential_brought_back_is_announced_again(accredible, learner, deliver, work_queue, sent):
    badge = badge_at(accredible)
    passes(deliver, work_queue, learner)
    passes(deliver, work_queue, learner, False)
    passes(deliver, work_queue, learner)

    assert sent.kinds() == ["awarded", "revoked", "awarded"]
    assert len({data.uuid for _kind, data in sent.sent}) == 1  # the same credential, expired then brought back
    assert sent.sent[0][1].uuid == outgoing.as_uuid(badge.template.account_id, row_of(learner).external_id)
    assert sent.sent[0][1].template.origin == "accredible"


def test_events_can_be_switched_off(credly, learner, deliver, work_queue, sent, settings):
    settings.BADGES_BRIDGE_SEND_BADGE_EVENTS = False
    badge_at(credly)
    passes(deliver, work_queue, learner)
    passes(deliver, work_queue, learner, False)

    assert sent.sent == []
    assert row_of(learner).awards.get().announced is False


def test_a_failing_event_breaks_nothing(credly, learner, deliver, work_queue, monkeypatch, caplog):
    class Broken:
        def send_event(self, **kwargs):
            raise RuntimeError("event bus down")

    monkeypatch.setattr("badges_bridge.compat.badge_signal", lambda kind: Broken())
    badge_at(credly)
    passes(deliver, work_queue, learner)

    assert row_of(learner).state == S.ISSUED
    assert "could not send the badge awarded event" in caplog.text


def test_uuids_of_provider_ids_that_are_not_uuids_are_stable():
    assert outgoing.as_uuid(3, "12345") == outgoing.as_uuid(3, "12345") != outgoing.as_uuid(4, "12345")
    assert uuid.UUID(outgoing.as_uuid(3, "12345")).version == 5
