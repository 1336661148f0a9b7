"""One provider request per first award; look-ups only where an earlier attempt may have reached the provider."""

from datetime import timedelta

import pytest
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, issuing, ledger
from badges_bridge.models import BadgeIssuance, IssuanceState, Operation, RevokePolicy
from badges_bridge.providers import get_provider
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

COURSE = CourseKey.from_string("course-v1:Org+First+2026")
S = IssuanceState
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("receivers")]


@pytest.fixture(params=["credly", "accredible"])
def harness(request):
    return request.getfixturevalue(request.param)


def badge_at(harness, **template_fields):
    template = make_template(make_account(harness), harness, **template_fields)
    return make_course_badge(template, COURSE, revoke_policy=RevokePolicy.CRITERION_UNMET)


def requests_of(harness) -> list[str]:
    """The operations the fake received, in order."""
    names = {}
    for operation in ("issue", "find", "get", "revoke"):
        for entry in harness.requests_for(operation):
            names[id(entry)] = operation
    return [names.get(id(entry), entry.method) for entry in harness.server.journal]


def live(harness, badge, learner) -> list[str]:
    return [str(award["id"]) for award in harness.live_awards(badge.template.external_id, learner.email)]


def create_outside_the_plugin(harness, badge, learner) -> str:
    """A badge the learner already holds at the provider (issued by hand, or by an earlier install)."""
    row = BadgeIssuance(user=learner, course_badge=badge, qualified_at=timezone.now())
    provider = get_provider(harness.kind, harness.account_config())
    external_id = provider.issue(issuing.issue_request_for(row)).external_id
    harness.server.journal.clear()
    return external_id


def test_a_first_award_costs_one_request(harness, learner, deliver, work_queue):
    badge = badge_at(harness)
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run()
    row = BadgeIssuance.objects.get()
    assert row.state == S.ISSUED
    assert requests_of(harness) == ["issue"]
    assert row.provider_requests == 1
    assert live(harness, badge, learner) == [row.external_id]


def test_a_retry_after_a_lost_answer_looks_up_and_adopts(harness, learner, deliver, work_queue):
    badge = badge_at(harness)
    harness.inject("issue", "commit_then_drop")
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run()
    row = BadgeIssuance.objects.get()
    assert row.state == S.ISSUED
    assert requests_of(harness)[:2] == ["issue", "find"]
    assert requests_of(harness).count("issue") == 1
    assert live(harness, badge, learner) == [row.external_id]
    assert row.provider_requests == len(harness.server.journal)


def test_a_worker_killed_during_its_create_makes_the_next_attempt_look_up(harness, learner, deliver, work_queue):
    badge = badge_at(harness)
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.lose()
    row = ledger.claim(BadgeIssuance.objects.get().pk, Operation.ISSUE)  # the worker claims, creates, then dies
    created = create_outside_the_plugin(harness, badge, learner)
    BadgeIssuance.objects.filter(pk=row.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    api.redrive(inline=True)
    row.refresh_from_db()
    assert (row.state, row.external_id) == (S.ISSUED, created)
    assert "issue" not in requests_of(harness)
    assert live(harness, badge, learner) == [created]


def test_an_operator_retry_keeps_the_knowledge_that_a_create_may_have_landed(
    harness, learner, deliver, work_queue, django_capture_on_commit_callbacks
):
    badge = badge_at(harness)
    harness.inject("issue", "commit_then_fail", status=400, body={"error": "refused after storing"})
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run()
    row = BadgeIssuance.objects.get()
    assert row.state == S.DEAD
    with django_capture_on_commit_callbacks(execute=True):
        assert api.retry_issuance(row.pk, "admin:user#1")
    work_queue.run()
    row.refresh_from_db()
    assert row.state == S.ISSUED
    assert requests_of(harness).count("issue") == 1
    assert live(harness, badge, learner) == [row.external_id]


def test_a_duplicate_answer_leads_to_the_learners_own_live_badge(harness, learner, deliver, work_queue):
    badge = badge_at(harness)
    held = create_outside_the_plugin(harness, badge, learner)
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run()
    row = BadgeIssuance.objects.get()
    assert (row.state, row.external_id) == (S.ISSUED, held)
    assert requests_of(harness)[0] == "issue"
    assert live(harness, badge, learner) == [held]
    assert harness.duplicates_created() == 0


def test_templates_that_allow_duplicates_are_looked_up_first(harness, learner, deliver, work_queue):
    badge = badge_at(harness, allow_duplicates=True)
    held = create_outside_the_plugin(harness, badge, learner)
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run()
    row = BadgeIssuance.objects.get()
    assert (row.state, row.external_id) == (S.ISSUED, held)
    assert "issue" not in requests_of(harness)
    assert live(harness, badge, learner) == [held]


def test_a_new_award_starts_counting_again(credly, learner, deliver, work_queue):
    badge = badge_at(credly)
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run()
    deliver(send.send_passing_status, learner, COURSE, False)
    work_queue.run()
    credly.server.journal.clear()
    deliver(send.send_passing_status, learner, COURSE, True)
    work_queue.run()
    row = BadgeIssuance.objects.get()
    assert (row.state, row.award_number, row.provider_requests) == (S.ISSUED, 2, 1)
    assert requests_of(credly) == ["issue"]
    assert live(credly, badge, learner) == [row.external_id]
