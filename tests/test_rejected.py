"""A badge the learner rejected is never issued again automatically; staff may issue it again on purpose."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, issuing, ledger
from badges_bridge.models import BadgeIssuance, IssuanceState, RevokePolicy
from badges_bridge.providers.base import AwardState
from badges_bridge.providers.credly import CredlyProvider
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

COURSE = CourseKey.from_string("course-v1:Org+Rejected+2026")
S = IssuanceState
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("receivers")]


@pytest.fixture
def badge(credly):
    template = make_template(make_account(credly), credly)
    return make_course_badge(template, COURSE, revoke_policy=RevokePolicy.CRITERION_UNMET)


def row_of(learner) -> BadgeIssuance:
    return BadgeIssuance.objects.get(user=learner)


def test_a_rejection_found_while_a_revoke_is_requested_stays_final(
    credly, badge, learner, deliver, work_queue, monkeypatch
):
    credly.inject("issue", "commit_then_fail", status=503)
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run(1)  # the badge is created but the answer is lost: the row fails, with a retry queued
    assert row_of(learner).state == S.FAILED
    (created,) = credly.all_awards()
    credly.set_award_state(created["id"], AwardState.REJECTED)  # the learner rejects it from the claim e-mail
    original = CredlyProvider.find_award
    raced = []

    def find_award(provider, template_id, recipient):  # the retry looks the badge up ...
        if not raced:
            raced.append(True)  # ... while the learner fails the course (the revoke policy wants it back)
            deliver(send.send_passing_status, learner, COURSE, False)
        return original(provider, template_id, recipient)

    monkeypatch.setattr(CredlyProvider, "find_award", find_award)
    work_queue.run()
    assert row_of(learner).state == S.REJECTED
    deliver(send.send_passing_status, learner, COURSE, True)  # passing again later changes nothing
    work_queue.run()
    row = row_of(learner)
    assert (row.state, row.award_number) == (S.REJECTED, 1)
    assert [award["state"] for award in credly.all_awards()] == ["rejected"]


# -- staff issue it again on purpose ---------------------------------------------------------------------------------


@pytest.fixture
def rejected(credly, badge, learner, deliver, work_queue) -> BadgeIssuance:
    """The learner passed, got the badge, and rejected it at Credly (the drift check saw it)."""
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run()
    credly.set_award_state(row_of(learner).external_id, AwardState.REJECTED)
    api.check_drift()
    row = row_of(learner)
    assert row.state == S.REJECTED
    return row


def _client_with(client, django_user_model, *codenames):
    user = django_user_model.objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client, user


CHANGELIST = "admin:badges_bridge_badgeissuance_changelist"


def test_staff_with_the_change_permission_issue_a_rejected_badge_again(
    client, django_user_model, credly, rejected, learner, deliver, work_queue
):
    client, staff = _client_with(client, django_user_model, "view_badgeissuance", "change_badgeissuance")
    response = deliver(
        client.post,
        reverse(CHANGELIST),
        {"action": "issue_again", "index": 0, "_selected_action": [rejected.pk]},
        follow=True,
    )
    assert "1 badge(s) queued to be issued again; 0 skipped" in response.content.decode()
    work_queue.run()

    row = row_of(learner)
    assert (row.state, row.award_number) == (S.ISSUED, 2)
    assert row.external_id != rejected.external_id
    entry = row.audit_entries.get(from_state=S.REJECTED)
    assert (entry.to_state, entry.actor) == (S.PENDING, f"admin:user#{staff.pk}")
    assert entry.message == "issued again on purpose; the badge had been rejected by the learner"
    assert [award["state"] for award in credly.all_awards()] == ["rejected", "pending"]
    assert dict(row.awards.values_list("external_id", "status")) == {
        rejected.external_id: "gone",
        row.external_id: "live",
    }


def test_view_only_staff_cannot_issue_again(client, django_user_model, credly, rejected, deliver, work_queue):
    client, _staff = _client_with(client, django_user_model, "view_badgeissuance")
    deliver(client.post, reverse(CHANGELIST), {"action": "issue_again", "index": 0, "_selected_action": [rejected.pk]})
    work_queue.run()

    assert BadgeIssuance.objects.get(pk=rejected.pk).state == S.REJECTED
    assert len(credly.all_awards()) == 1


def test_only_rejected_or_revoked_by_staff_or_provider_rows_are_issued_again(
    credly, badge, learner, deliver, work_queue
):
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run()
    row = row_of(learner)
    assert not api.reissue_issuance(row.pk, "admin:user#1")  # issued: nothing to do
    deliver(send.send_passing_status, learner, COURSE, False)
    work_queue.run()
    assert (row_of(learner).state, row_of(learner).revoked_by) == (S.REVOKED, "policy")
    assert not api.reissue_issuance(row.pk, "admin:user#1")  # the policy re-awards it when the criterion is met

    api.revoke_issuance(row.pk, "admin:user#1", "Issued in error")  # now the operator's decision
    assert deliver(api.reissue_issuance, row.pk, "admin:user#2")
    work_queue.run()
    row = row_of(learner)
    assert (row.state, row.award_number) == (S.ISSUED, 2)
    assert row.audit_entries.get(actor="admin:user#2").message == (
        "issued again on purpose; the badge had been revoked (an operator or course staff)"
    )


def test_a_retry_of_the_new_award_never_adopts_the_rejected_badge(credly, rejected, learner, deliver, work_queue):
    credly.inject("issue", "status", status=503)  # the new award's first attempt fails before anything is created
    deliver(api.reissue_issuance, rejected.pk, "admin:user#1")
    work_queue.run()  # the retry looks the learner's badge up first: it finds only the rejected one

    row = row_of(learner)
    assert (row.state, row.award_number) == (S.ISSUED, 2)
    assert row.external_id != rejected.external_id
    assert [award["state"] for award in credly.all_awards()] == ["rejected", "pending"]


def test_a_reconcile_never_brings_a_rejected_badge_back(credly, rejected, learner, deliver, work_queue):
    # A worker that had lost its lease created another badge for the learner (with a template that allows it).
    stray = CredlyProvider(credly.account_config()).issue(issuing.issue_request_for(rejected)).external_id
    assert ledger.record_unconfirmed(rejected.pk, [stray], "task:issue", "issued badge") == ledger.RECONCILE

    deliver(api.redrive, inline=True)  # queues and runs the reconcile

    row = row_of(learner)
    assert (row.state, row.award_number, row.external_id) == (S.REJECTED, 1, rejected.external_id)
    assert credly.award_state(stray) == AwardState.DELETED  # undone at the provider
    assert row.awards.get(external_id=stray).status == "undone"
