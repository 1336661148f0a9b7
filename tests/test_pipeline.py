"""The chain signal -> receiver -> ledger -> task -> fake Credly, in process (eager Celery)."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api
from badges_bridge.accounts import rate_limiter
from badges_bridge.data import ActionOutcome
from badges_bridge.models import AuditEntry, BadgeIssuance, IssuanceState, RejectedEvent, RevokePolicy
from badges_bridge.signals import handlers
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

COURSE = CourseKey.from_string("course-v1:Org+Python+2026")
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("receivers")]


@pytest.fixture
def badge(credly):
    account = make_account(credly)
    template = make_template(account, credly)
    return make_course_badge(template, COURSE)


def deliver(callbacks, func, *args, **kwargs):
    """Send an event and run what it queued on commit (the tasks run eagerly)."""
    with callbacks(execute=True):
        func(*args, **kwargs)


def row_of(learner, badge) -> BadgeIssuance:
    return BadgeIssuance.objects.get(user=learner, course_badge=badge)


def test_passing_learner_gets_exactly_one_badge(credly, badge, learner, django_capture_on_commit_callbacks):
    deliver(django_capture_on_commit_callbacks, send.send_passing_status, learner, COURSE, True)
    row = row_of(learner, badge)
    assert row.state == IssuanceState.ISSUED
    assert row.external_id
    assert row.public_url
    assert row.event_type.endswith("course.passing.status.updated.v1")
    assert row.config_version == badge.version
    awards = credly.live_awards(badge.template.external_id, learner.email)
    assert len(awards) == 1
    assert awards[0]["issued_to_first_name"] == "Ada"
    assert [(e.from_state, e.to_state) for e in AuditEntry.objects.filter(issuance=row)] == [
        ("", "pending"),
        ("pending", "issuing"),
        ("issuing", "issued"),
    ]


def test_replayed_events_change_nothing(credly, badge, learner, django_capture_on_commit_callbacks):
    for _ in range(3):
        deliver(django_capture_on_commit_callbacks, send.send_passing_status, learner, COURSE, True)
    assert BadgeIssuance.objects.count() == 1
    assert len(credly.live_awards(badge.template.external_id, learner.email)) == 1
    assert credly.duplicates_created() == 0
    assert len(credly.requests_for("issue")) == 1


def test_failing_learner_gets_nothing(credly, badge, learner, django_capture_on_commit_callbacks):
    deliver(django_capture_on_commit_callbacks, send.send_passing_status, learner, COURSE, False)
    assert not BadgeIssuance.objects.exists()
    assert credly.all_awards() == []


def test_pass_fail_pass_with_revoke_policy(credly, badge, learner, django_capture_on_commit_callbacks):
    badge.revoke_policy = RevokePolicy.CRITERION_UNMET
    badge.save()
    deliver(django_capture_on_commit_callbacks, send.send_passing_status, learner, COURSE, True)
    first = row_of(learner, badge).external_id
    deliver(django_capture_on_commit_callbacks, send.send_passing_status, learner, COURSE, False)
    row = row_of(learner, badge)
    assert row.state == IssuanceState.REVOKED
    assert credly.live_awards(badge.template.external_id, learner.email) == []
    deliver(django_capture_on_commit_callbacks, send.send_passing_status, learner, COURSE, True)
    row = row_of(learner, badge)
    assert row.state == IssuanceState.ISSUED
    assert row.external_id != first
    assert len(credly.live_awards(badge.template.external_id, learner.email)) == 1


def test_fail_without_revoke_policy_keeps_the_badge(credly, badge, learner, django_capture_on_commit_callbacks):
    deliver(django_capture_on_commit_callbacks, send.send_passing_status, learner, COURSE, True)
    deliver(django_capture_on_commit_callbacks, send.send_passing_status, learner, COURSE, False)
    assert row_of(learner, badge).state == IssuanceState.ISSUED
    assert len(credly.live_awards(badge.template.external_id, learner.email)) == 1


def test_grade_threshold_badge(credly, learner, django_capture_on_commit_callbacks):
    account = make_account(credly)
    badge = make_course_badge(make_template(account, credly), COURSE, criterion="grade_at_least", grade_threshold=80)
    deliver(django_capture_on_commit_callbacks, send.send_grade, learner, COURSE, 0.79)
    assert not BadgeIssuance.objects.exists()
    deliver(django_capture_on_commit_callbacks, send.send_grade, learner, COURSE, 0.85)
    row = row_of(learner, badge)
    assert row.state == IssuanceState.ISSUED
    assert str(row.grade) == "85.0000"
    awards = credly.live_awards(badge.template.external_id, learner.email)
    assert any("85" in (item.get("description") or "") for item in awards[0]["evidence"])


def test_certificate_badge_is_revoked_with_the_certificate(credly, learner, django_capture_on_commit_callbacks):
    account = make_account(credly)
    badge = make_course_badge(
        make_template(account, credly),
        COURSE,
        criterion="certificate",
        certificate_modes="verified",
        revoke_policy=RevokePolicy.CRITERION_UNMET,
    )
    deliver(django_capture_on_commit_callbacks, send.send_certificate_created, learner, COURSE, "audit")
    assert row_of(learner, badge).state == IssuanceState.NOT_MET  # kept so that an older event cannot issue
    deliver(django_capture_on_commit_callbacks, send.send_certificate_created, learner, COURSE, "verified")
    assert row_of(learner, badge).state == IssuanceState.ISSUED
    deliver(django_capture_on_commit_callbacks, send.send_certificate_revoked, learner, COURSE)
    assert row_of(learner, badge).state == IssuanceState.REVOKED
    assert credly.live_awards(badge.template.external_id, learner.email) == []


def test_disabled_badge_is_ignored(credly, badge, learner, django_capture_on_commit_callbacks):
    badge.enabled = False
    badge.save()
    deliver(django_capture_on_commit_callbacks, send.send_passing_status, learner, COURSE, True)
    assert not BadgeIssuance.objects.exists()


def test_course_without_badges_costs_no_query(badge, learner):
    other = CourseKey.from_string("course-v1:Org+Other+2026")
    send.send_passing_status(learner, other, True)  # warms the configuration cache
    with CaptureQueriesContext(connection) as queries:
        for _ in range(5):
            send.send_passing_status(learner, other, True)
    assert len(queries) == 0


def test_course_without_badges_reads_neither_the_cache_nor_the_payload(badge, learner, monkeypatch):
    other = CourseKey.from_string("course-v1:Org+Other+2026")
    send.send_passing_status(learner, other, True)  # loads this process's snapshot of the courses with badges
    reads = []
    monkeypatch.setattr(cache, "get", lambda *args, **kwargs: reads.append(args))
    monkeypatch.setattr("badges_bridge.events.parse_passing_status", lambda kwargs: reads.append(kwargs))
    for _ in range(5):
        send.send_passing_status(learner, other, True)
    assert reads == []
    assert not RejectedEvent.objects.exists()


def test_an_invalid_payload_is_recorded_only_for_a_course_with_badges(badge, learner):
    for course in (COURSE, CourseKey.from_string("course-v1:Org+Other+2026")):
        status = SimpleNamespace(is_passing="maybe", course=SimpleNamespace(course_key=course), user=learner)
        handlers.on_course_passing_status(course_passing_status=status)
    assert list(RejectedEvent.objects.values_list("course_key", flat=True)) == [str(COURSE)]


def test_a_snapshot_that_cannot_be_read_leaves_the_event_to_the_full_path(
    credly, badge, learner, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    def unreadable(course):
        raise ConnectionError("cache unreachable")

    monkeypatch.setattr("badges_bridge.config_cache.course_has_badges", unreadable)
    deliver(django_capture_on_commit_callbacks, send.send_passing_status, learner, COURSE, True)
    assert row_of(learner, badge).state == IssuanceState.ISSUED
    assert "could not read which courses have badges" in caplog.text


def test_course_with_a_badge_costs_few_queries(badge, learner, django_capture_on_commit_callbacks):
    send.send_passing_status(learner, COURSE, False)  # warms the configuration cache
    with CaptureQueriesContext(connection) as queries:
        send.send_passing_status(learner, COURSE, True)
    data_queries = [q for q in queries if "SAVEPOINT" not in q["sql"]]
    assert len(data_queries) <= 4


def test_configuration_changes_invalidate_the_cache(credly, badge, learner, django_capture_on_commit_callbacks):
    badge.enabled = False
    badge.save()
    send.send_passing_status(learner, COURSE, True)
    badge.enabled = True
    badge.save()
    deliver(django_capture_on_commit_callbacks, send.send_passing_status, learner, COURSE, True)
    assert row_of(learner, badge).state == IssuanceState.ISSUED
    account = badge.template.account
    account.enabled = False
    account.save()
    other = type(learner).objects.create_user(username="bob", email="bob@example.com")
    send.send_passing_status(other, COURSE, True)
    assert not BadgeIssuance.objects.filter(user=other).exists()


def test_receivers_never_raise_on_malformed_payloads(badge):
    metadata = SimpleNamespace(id="bad-1", event_type="org.openedx.learning.course.passing.status.updated.v1")
    handlers.on_course_passing_status(course_passing_status=None, metadata=metadata)
    handlers.on_grade_summary_changed(grade=SimpleNamespace(user_id=1, course=None, percent_grade=2))
    handlers.on_certificate_awarded(certificate=SimpleNamespace(user=None))
    rejected = dict(RejectedEvent.objects.values_list("event_id", "reason"))
    assert len(RejectedEvent.objects.all()) == 3
    assert "no 'course_passing_status' data" in rejected["bad-1"]


def test_unexpected_errors_are_recorded_not_raised(badge, learner, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr("badges_bridge.ledger.apply_event", explode)
    send.send_passing_status(learner, COURSE, True)
    assert "database on fire" in RejectedEvent.objects.get().reason


def test_a_huge_course_key_gives_one_rejected_event_with_a_capped_reason(badge, learner):
    huge = "course-v1:" + "x" * 200_000
    status = SimpleNamespace(is_passing=True, course=SimpleNamespace(course_key=huge), user=SimpleNamespace(id=5))
    handlers.on_course_passing_status(course_passing_status=status)
    rejected = RejectedEvent.objects.get()
    assert len(rejected.reason) <= 1000
    assert rejected.reason.startswith("invalid payload: course.course_key 'course-v1:xxx")


def test_rejection_reasons_are_capped(badge):
    api.record_rejected_event("e-1", "t", "r" * 5000)
    reason = RejectedEvent.objects.get().reason
    assert len(reason) == 1000
    assert reason.endswith("…")


def test_kill_switch(settings, badge, learner):
    settings.BADGES_BRIDGE_ENABLED = False
    send.send_passing_status(learner, COURSE, True)
    assert not BadgeIssuance.objects.exists()
    settings.BADGES_BRIDGE_ENABLED = True  # read at run time: the next event goes through
    send.send_passing_status(learner, COURSE, True)
    assert BadgeIssuance.objects.filter(user=learner).exists()


def test_older_event_does_not_undo_a_newer_one(credly, badge, learner, django_capture_on_commit_callbacks):
    badge.revoke_policy = RevokePolicy.CRITERION_UNMET
    badge.save()
    now = timezone.now()
    pass_event = SimpleNamespace(id="new", event_type="t", time=now)
    fail_event = SimpleNamespace(id="old", event_type="t", time=now - timedelta(minutes=5))
    status = send.passing_status_data(learner, COURSE, True)
    with django_capture_on_commit_callbacks(execute=True):
        handlers.on_course_passing_status(course_passing_status=status, metadata=pass_event)
    failing = send.passing_status_data(learner, COURSE, False)
    with django_capture_on_commit_callbacks(execute=True):
        handlers.on_course_passing_status(course_passing_status=failing, metadata=fail_event)
    assert row_of(learner, badge).state == IssuanceState.ISSUED


def test_learner_without_email_ends_dead_with_a_reason(
    credly, badge, django_user_model, django_capture_on_commit_callbacks
):
    nobody = django_user_model.objects.create_user(username="noemail", email="")
    deliver(django_capture_on_commit_callbacks, send.send_passing_status, nobody, COURSE, True)
    row = row_of(nobody, badge)
    assert row.state == IssuanceState.DEAD
    assert "no e-mail" in row.last_error
    assert row.error_cause == "no_email"
    entries = row.audit_entries.count()
    blocked = api.retry_issuance(row.pk, "admin:user#1")
    assert blocked.outcome == ActionOutcome.BLOCKED
    assert "not retried, the cause is still there: The learner has no e-mail address" in blocked.message
    row.refresh_from_db()
    assert (row.state, row.audit_entries.count()) == (IssuanceState.DEAD, entries)  # left alone
    forced = api.retry_issuance(row.pk, "admin:user#1", force=True)
    assert (forced.outcome, forced.applied) == (ActionOutcome.QUEUED, True)
    assert row.audit_entries.last().message.startswith("retry forced although The learner has no e-mail address")


def test_operator_revocation_is_not_undone_by_later_events(credly, badge, learner, django_capture_on_commit_callbacks):
    deliver(django_capture_on_commit_callbacks, send.send_passing_status, learner, COURSE, True)
    row = row_of(learner, badge)
    with django_capture_on_commit_callbacks(execute=True):
        assert api.revoke_issuance(row.pk, "admin:user#1", "Plagiarism found").applied
    revoke = credly.requests_for("revoke")[-1]
    assert "Plagiarism found" in revoke.body + str(revoke.query)
    deliver(django_capture_on_commit_callbacks, send.send_passing_status, learner, COURSE, True)
    row.refresh_from_db()
    assert (row.state, row.revoked_by) == (IssuanceState.REVOKED, "operator")
    assert credly.live_awards(badge.template.external_id, learner.email) == []


def test_event_for_an_unknown_user_ends_dead(credly, badge, django_capture_on_commit_callbacks):
    ghost = SimpleNamespace(pk=987654, username="ghost", email="ghost@example.com", get_full_name=lambda: "")
    deliver(django_capture_on_commit_callbacks, send.send_passing_status, ghost, COURSE, True)
    row = BadgeIssuance.objects.get(user_id=987654)
    assert row.state == IssuanceState.DEAD
    assert "does not exist" in row.last_error


def test_one_word_names_are_not_doubled(django_user_model):
    from badges_bridge.issuing import recipient_for

    user = django_user_model.objects.create_user(username="plato", email="p@example.com", first_name="Plato")
    recipient = recipient_for(user)
    assert recipient.full_name == "Plato"
    assert (recipient.first_name, recipient.last_name) == ("Plato", "Plato")  # Credly requires both


def test_rejected_events_keep_their_course_and_user(badge, learner):
    status = SimpleNamespace(is_passing="maybe", course=SimpleNamespace(course_key=COURSE), user=SimpleNamespace(id=5))
    handlers.on_course_passing_status(course_passing_status=status)
    rejected = RejectedEvent.objects.get()
    assert (rejected.course_key, rejected.user_id) == (str(COURSE), 5)


def test_own_rate_limit_never_makes_a_row_dead(credly, badge, learner, settings, django_capture_on_commit_callbacks):
    account = badge.template.account
    account.rate_limit_requests, account.rate_limit_period = 1, 300
    account.save()
    settings.BADGES_BRIDGE_MAX_ATTEMPTS = 1
    rate_limiter(account)()  # another worker used the only request of the window
    deliver(django_capture_on_commit_callbacks, send.send_passing_status, learner, COURSE, True)
    row = row_of(learner, badge)
    assert row.state == IssuanceState.FAILED
    assert (row.attempts, row.award_attempts, row.provider_requests) == (0, 0, 0)  # nothing reached the provider
    assert "client-side rate limit" in row.last_error
    assert credly.server.journal == []


def test_operator_revoke_of_a_policy_revocation_sticks(credly, badge, learner, django_capture_on_commit_callbacks):
    badge.revoke_policy = RevokePolicy.CRITERION_UNMET
    badge.save()
    deliver(django_capture_on_commit_callbacks, send.send_passing_status, learner, COURSE, True)
    deliver(django_capture_on_commit_callbacks, send.send_passing_status, learner, COURSE, False)
    row = row_of(learner, badge)
    assert (row.state, row.revoked_by) == (IssuanceState.REVOKED, "policy")
    result = api.revoke_issuance(row.pk, "admin:user#1", "Misconduct")
    assert result.outcome == ActionOutcome.RECORDED
    assert "recorded as an operator's revocation" in result.message
    deliver(django_capture_on_commit_callbacks, send.send_passing_status, learner, COURSE, True)
    row.refresh_from_db()
    assert (row.state, row.revoked_by, row.revoke_reason) == (IssuanceState.REVOKED, "operator", "Misconduct")
    assert credly.live_awards(badge.template.external_id, learner.email) == []
