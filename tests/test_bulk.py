"""Bulk creates at Accredible: bursts of first awards in one request, each result mapped back to its row."""

from datetime import timedelta

import pytest
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey

from badges_bridge import issuing
from badges_bridge.models import AuditEntry, BadgeIssuance, IssuanceState, RevokePolicy
from badges_bridge.providers import get_provider
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

COURSE = CourseKey.from_string("course-v1:Org+Bulk+2026")
OTHER_COURSE = CourseKey.from_string("course-v1:Org+Bulk2+2026")
S = IssuanceState
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("receivers")]


@pytest.fixture
def account(accredible):
    return make_account(accredible)


@pytest.fixture
def badge(accredible, account):
    return make_course_badge(make_template(account, accredible), COURSE, revoke_policy=RevokePolicy.NEVER)


def learners(django_user_model, count: int, prefix: str = "l"):
    return [
        django_user_model.objects.create_user(
            username=f"{prefix}{n}", email=f"{prefix}{n}@example.com", first_name="Ada", last_name=f"L{n}"
        )
        for n in range(count)
    ]


def passes(deliver, people, course=COURSE):
    for person in people:
        deliver(send.send_passing_status, person, course, True)


def operations(accredible) -> list[str]:
    by_entry = {}
    for operation in ("issue", "bulk_issue", "find", "get"):
        by_entry.update({id(entry): operation for entry in accredible.requests_for(operation)})
    return [by_entry.get(id(entry), entry.method) for entry in accredible.server.journal]


def assert_each_holds_one_live_badge(accredible, badge, people):
    for person in people:
        row = BadgeIssuance.objects.get(user=person, course_badge=badge)
        live = [str(c["id"]) for c in accredible.live_awards(badge.template.external_id, person.email)]
        assert (row.state, live) == (S.ISSUED, [row.external_id]), person.username
    assert accredible.duplicates_created() == 0


def test_a_burst_of_first_awards_goes_in_one_request(accredible, badge, deliver, work_queue, django_user_model):
    people = learners(django_user_model, 10)
    passes(deliver, people)
    work_queue.run()
    assert operations(accredible) == ["bulk_issue"]
    assert_each_holds_one_live_badge(accredible, badge, people)
    assert set(BadgeIssuance.objects.values_list("provider_requests", flat=True)) == {1}
    assert AuditEntry.objects.filter(message="issued in a bulk create of 10").count() == 10


def test_an_isolated_first_award_is_issued_on_its_own(accredible, badge, deliver, work_queue, learner):
    passes(deliver, [learner])
    work_queue.run()
    assert operations(accredible) == ["issue"]
    assert_each_holds_one_live_badge(accredible, badge, [learner])


def test_a_large_burst_fills_bulk_requests_of_30(accredible, badge, deliver, work_queue, django_user_model):
    people = learners(django_user_model, 65)
    passes(deliver, people)
    work_queue.run(limit=200)
    bulk_sizes = [len(entry.json()["credentials"]) for entry in accredible.requests_for("bulk_issue")]
    assert bulk_sizes == [30, 30, 5]
    assert operations(accredible) == ["bulk_issue"] * 3
    assert_each_holds_one_live_badge(accredible, badge, people)


def test_bulk_creates_can_be_turned_off(accredible, badge, deliver, work_queue, django_user_model, settings):
    settings.BADGES_BRIDGE_BULK_MIN_ROWS = 0
    people = learners(django_user_model, 3)
    passes(deliver, people)
    work_queue.run()
    assert operations(accredible) == ["issue"] * 3


def test_each_result_is_mapped_back_to_its_row(accredible, account, badge, deliver, work_queue, django_user_model):
    gone_template = make_template(account, accredible, name="Retired at the provider")
    gone_badge = make_course_badge(gone_template, OTHER_COURSE)
    people = learners(django_user_model, 4)
    holder, plain, refused, no_email = people
    no_email.email = ""
    no_email.save()
    provider = get_provider("accredible", accredible.account_config())
    row = BadgeIssuance(user=holder, course_badge=badge, qualified_at=timezone.now())
    held = provider.issue(issuing.issue_request_for(row)).external_id
    del accredible.server.account().groups[int(gone_template.external_id)]
    accredible.server.journal.clear()

    passes(deliver, [holder, plain, no_email])
    passes(deliver, [refused], OTHER_COURSE)
    work_queue.run()

    assert operations(accredible)[0] == "bulk_issue"
    (sent,) = accredible.requests_for("bulk_issue")
    assert [item["recipient"]["email"] for item in sent.json()["credentials"]] == [
        holder.email,
        plain.email,
        refused.email,
    ]
    assert BadgeIssuance.objects.get(user=holder).external_id == held  # the duplicate was looked up and adopted
    assert_each_holds_one_live_badge(accredible, badge, [holder, plain])
    dead = BadgeIssuance.objects.get(user=refused, course_badge=gone_badge)
    assert dead.state == S.DEAD
    assert "Invalid Group" in dead.last_error
    assert BadgeIssuance.objects.get(user=no_email).last_error.startswith("The learner has no e-mail address")


def test_credentials_created_without_credits_are_issued_with_a_note(
    accredible, badge, deliver, work_queue, django_user_model
):
    accredible.server.account().no_credits = True
    people = learners(django_user_model, 2)
    passes(deliver, people)
    work_queue.run()
    assert_each_holds_one_live_badge(accredible, badge, people)
    assert AuditEntry.objects.filter(message__endswith="created but not published by the provider").count() == 2


def test_a_lost_bulk_answer_is_looked_up_before_any_retry(accredible, badge, deliver, work_queue, django_user_model):
    people = learners(django_user_model, 5)
    accredible.inject("bulk_issue", "commit_then_drop")
    passes(deliver, people)
    work_queue.run()
    assert operations(accredible)[0] == "bulk_issue"
    assert "issue" not in operations(accredible)  # every retry found its credential
    assert "bulk_issue" not in operations(accredible)[1:]
    assert_each_holds_one_live_badge(accredible, badge, people)


def test_nothing_is_sent_when_a_row_was_taken_over_before_the_request(
    accredible, badge, deliver, work_queue, django_user_model, monkeypatch
):
    people = learners(django_user_model, 3)
    passes(deliver, people)
    original = issuing.issue_request_for
    taken = BadgeIssuance.objects.get(user=people[2])

    def another_worker_takes_one(row):
        if row.pk == taken.pk:  # its lease ran out and another worker claimed it meanwhile
            BadgeIssuance.objects.filter(pk=row.pk).update(
                lease_token="other", lease_expires_at=timezone.now() + timedelta(minutes=5)
            )
        return original(row)

    monkeypatch.setattr(issuing, "issue_request_for", another_worker_takes_one)
    work_queue.run(1)
    assert accredible.server.journal == []
    for person in people[:2]:
        row = BadgeIssuance.objects.get(user=person)
        assert (row.state, row.attempts, row.award_attempts, row.lease_token) == (S.FAILED, 0, 0, "")
