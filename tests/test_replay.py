"""Valid events whose processing failed for a transient reason are kept and replayed."""

import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, ledger, tasks
from badges_bridge.exceptions import InvalidEventError
from badges_bridge.models import AuditEntry, BadgeIssuance, IssuanceState, RejectedEvent, RevokePolicy
from badges_bridge.signals import handlers
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template

COURSE = CourseKey.from_string("course-v1:Org+Replay+2026")
CERTIFICATE_CREATED = "org.openedx.learning.certificate.created.v1"
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("receivers")]


class FlakyLedger:
    """Makes ``ledger.apply_event`` raise a database error on its next ``failures`` calls."""

    def __init__(self, monkeypatch, failures: int = 1):
        self.failures = failures
        self.calls = 0
        real = ledger.apply_event

        def apply_event(*args, **kwargs):
            self.calls += 1
            if self.failures:
                self.failures -= 1
                raise OperationalError(1205, "Lock wait timeout exceeded; try restarting transaction")
            return real(*args, **kwargs)

        monkeypatch.setattr("badges_bridge.ledger.apply_event", apply_event)


@pytest.fixture
def badge(credly):
    """A certificate badge that may be revoked with the certificate."""
    template = make_template(make_account(credly), credly)
    return make_course_badge(template, COURSE, criterion="certificate", revoke_policy=RevokePolicy.CRITERION_UNMET)


def certificate(learner, status: str = "downloadable"):
    """A CERTIFICATE_CREATED payload (``status`` "notpassing": the certificate is no longer earned)."""
    return send.certificate_data(learner, COURSE, "verified", status)


def metadata(event_id: str, minutes_ago: int = 0) -> SimpleNamespace:
    return SimpleNamespace(
        id=event_id, event_type=CERTIFICATE_CREATED, time=timezone.now() - timedelta(minutes=minutes_ago)
    )


def live_awards(credly, badge, learner) -> list:
    return credly.live_awards(badge.template.external_id, learner.email)


def test_certificate_event_that_met_a_database_error_is_issued_by_the_redrive(
    credly, badge, learner, monkeypatch, django_capture_on_commit_callbacks
):
    FlakyLedger(monkeypatch, failures=1)
    with django_capture_on_commit_callbacks(execute=True):
        send.send_certificate_created(learner, COURSE, "verified")
    assert not BadgeIssuance.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        api.redrive(inline=True)
    with django_capture_on_commit_callbacks(execute=True):
        api.redrive(inline=True)  # a second run finds nothing more to do

    row = BadgeIssuance.objects.get(user=learner, course_badge=badge)
    assert row.state == IssuanceState.ISSUED
    assert len(live_awards(credly, badge, learner)) == 1
    assert len(credly.requests_for("issue")) == 1


def test_a_failed_event_keeps_what_a_replay_needs_and_no_personal_data(badge, django_user_model, monkeypatch):
    learner = django_user_model.objects.create_user(
        username="zquist", email="zelda.quist@example.org", first_name="Zelda", last_name="Quist"
    )
    FlakyLedger(monkeypatch, failures=1)
    handlers.on_certificate_awarded(certificate=certificate(learner), metadata=metadata("cert-1"))
    rejected = RejectedEvent.objects.get()
    assert (rejected.status, rejected.attempts) == ("waiting", 0)
    assert rejected.next_attempt_at is not None
    assert "OperationalError" in rejected.reason
    assert (rejected.event_id, rejected.course_key, rejected.user_id) == ("cert-1", str(COURSE), learner.pk)
    stored = json.dumps(rejected.payload)
    for personal in (learner.email, learner.username, learner.first_name, learner.last_name):
        assert personal not in stored
    assert rejected.payload["user_id"] == learner.pk
    assert rejected.payload["course_key"] == str(COURSE)
    assert rejected.payload["certificate_status"] == "downloadable"


def test_invalid_events_are_never_replayed(badge, learner):
    handlers.on_certificate_awarded(certificate=SimpleNamespace(user=None), metadata=metadata("bad"))
    rejected = RejectedEvent.objects.get()
    assert (rejected.status, rejected.payload) == ("invalid", None)
    result = api.replay_rejected_events([rejected.pk], due_only=False, include_failed=True)
    assert (result.replayed, result.failed, result.skipped) == (0, 0, 1)
    assert api.redrive(inline=True).replayed == 0
    rejected.refresh_from_db()
    assert rejected.status == "invalid"


def test_an_invalid_event_error_after_parsing_is_not_replayed(badge, learner, monkeypatch):
    def refuse(*args, **kwargs):
        raise InvalidEventError("nothing to replay")

    monkeypatch.setattr("badges_bridge.ledger.apply_event", refuse)
    handlers.on_certificate_awarded(certificate=certificate(learner), metadata=metadata("cert-1"))
    assert RejectedEvent.objects.get().status == "invalid"


def test_an_unexpected_error_while_parsing_is_not_replayed(badge, learner, monkeypatch):
    def crash(kwargs):
        raise RuntimeError("parser bug")

    monkeypatch.setattr("badges_bridge.events.parse_certificate", crash)
    handlers.on_certificate_awarded(certificate=certificate(learner), metadata=metadata("cert-1"))
    rejected = RejectedEvent.objects.get()
    assert (rejected.status, rejected.payload) == ("invalid", None)
    assert rejected.reason == "processing error: RuntimeError: parser bug"


def test_the_retry_of_a_failed_event_waits_with_backoff(badge, learner, monkeypatch, settings):
    settings.BADGES_BRIDGE_RETRY_BASE_SECONDS = 30
    settings.BADGES_BRIDGE_RETRY_MAX_SECONDS = 3600
    flaky = FlakyLedger(monkeypatch, failures=2)
    before = timezone.now()
    handlers.on_certificate_awarded(certificate=certificate(learner), metadata=metadata("cert-1"))
    rejected = RejectedEvent.objects.get()
    assert before + timedelta(seconds=15) <= rejected.next_attempt_at <= timezone.now() + timedelta(seconds=30)

    assert api.replay_rejected_events() == api.ReplayResult()  # not due yet
    assert flaky.calls == 1

    before = timezone.now()
    result = api.replay_rejected_events(due_only=False)
    assert (result.replayed, result.failed) == (0, 1)
    rejected.refresh_from_db()
    assert (rejected.status, rejected.attempts) == ("waiting", 1)
    assert before + timedelta(seconds=30) <= rejected.next_attempt_at <= timezone.now() + timedelta(seconds=60)
    assert "Lock wait timeout" in rejected.last_error


def test_a_replay_that_keeps_failing_gives_up_after_max_attempts(badge, learner, monkeypatch, settings):
    settings.BADGES_BRIDGE_MAX_ATTEMPTS = 2
    FlakyLedger(monkeypatch, failures=10)
    handlers.on_certificate_awarded(certificate=certificate(learner), metadata=metadata("cert-1"))
    first = api.replay_rejected_events()
    assert [event.status for event in first.events] == ["waiting"]
    second = api.replay_rejected_events()
    assert [(event.status, event.attempts) for event in second.events] == [("failed", 2)]
    rejected = RejectedEvent.objects.get()
    assert (rejected.status, rejected.next_attempt_at, rejected.resolved_at) == ("failed", None, None)
    assert "OperationalError" in rejected.last_error

    assert api.replay_rejected_events(due_only=False) == api.ReplayResult()  # failed events need an operator
    again = api.replay_rejected_events(include_failed=True)
    assert (again.failed, again.events[0].status, again.events[0].attempts) == (1, "failed", 3)


def test_a_failed_event_replayed_by_an_operator_is_issued(
    credly, badge, learner, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.BADGES_BRIDGE_MAX_ATTEMPTS = 1
    FlakyLedger(monkeypatch, failures=2)
    handlers.on_certificate_awarded(certificate=certificate(learner), metadata=metadata("cert-1"))
    api.replay_rejected_events()
    rejected = RejectedEvent.objects.get()
    assert rejected.status == "failed"
    with django_capture_on_commit_callbacks(execute=True):
        result = api.replay_rejected_events([rejected.pk], include_failed=True)
    assert result.replayed == 1
    rejected.refresh_from_db()
    assert rejected.status == "replayed"
    assert rejected.resolved_at is not None
    assert len(live_awards(credly, badge, learner)) == 1


def test_the_same_event_failed_twice_and_replayed_twice_issues_one_badge(
    credly, badge, learner, monkeypatch, django_capture_on_commit_callbacks
):
    FlakyLedger(monkeypatch, failures=2)
    data, event = certificate(learner), metadata("cert-1")
    handlers.on_certificate_awarded(certificate=data, metadata=event)
    handlers.on_certificate_awarded(certificate=data, metadata=event)  # delivered again, e.g. by the event bus
    assert RejectedEvent.objects.filter(status="waiting").count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        result = api.replay_rejected_events()
    assert result.replayed == 2
    assert BadgeIssuance.objects.get().state == IssuanceState.ISSUED
    assert len(live_awards(credly, badge, learner)) == 1
    assert len(credly.requests_for("issue")) == 1
    assert api.replay_rejected_events(due_only=False, include_failed=True) == api.ReplayResult()


def test_an_older_event_replayed_after_a_newer_one_changes_nothing(
    credly, badge, learner, monkeypatch, django_capture_on_commit_callbacks
):
    FlakyLedger(monkeypatch, failures=1)
    # The older event (the certificate was not passing) fails; the newer one (it is passing) goes through.
    handlers.on_certificate_awarded(certificate=certificate(learner, "notpassing"), metadata=metadata("old", 5))
    with django_capture_on_commit_callbacks(execute=True):
        handlers.on_certificate_awarded(certificate=certificate(learner), metadata=metadata("new"))
    row = BadgeIssuance.objects.get()
    assert row.state == IssuanceState.ISSUED
    audit = list(AuditEntry.objects.values_list("id", flat=True))

    with django_capture_on_commit_callbacks(execute=True):
        assert api.replay_rejected_events().replayed == 1
    row.refresh_from_db()
    assert (row.state, row.event_id) == (IssuanceState.ISSUED, "new")
    assert list(AuditEntry.objects.values_list("id", flat=True)) == audit
    assert credly.requests_for("revoke") == []
    assert len(live_awards(credly, badge, learner)) == 1


def test_a_stored_event_that_cannot_be_read_fails_at_once(badge, learner, monkeypatch):
    FlakyLedger(monkeypatch, failures=1)
    handlers.on_certificate_awarded(certificate=certificate(learner), metadata=metadata("cert-1"))
    RejectedEvent.objects.update(payload={"event_id": "cert-1"})
    result = api.replay_rejected_events()
    assert (result.failed, result.events[0].status, result.events[0].attempts) == (1, "failed", 1)
    assert "cannot be read" in RejectedEvent.objects.get().last_error


def test_last_errors_are_capped(badge, learner, monkeypatch):
    FlakyLedger(monkeypatch, failures=1)
    handlers.on_certificate_awarded(certificate=certificate(learner), metadata=metadata("cert-1"))

    def explode(*args, **kwargs):
        raise OperationalError("x" * 5000)

    monkeypatch.setattr("badges_bridge.ledger.apply_event", explode)
    api.replay_rejected_events()
    rejected = RejectedEvent.objects.get()
    assert len(rejected.last_error) == api.REASON_MAX_CHARS
    assert rejected.last_error.endswith("…")


def test_receivers_never_raise_when_the_failed_event_cannot_be_recorded(badge, learner, monkeypatch):
    FlakyLedger(monkeypatch, failures=1)

    def unavailable(*args, **kwargs):
        raise OperationalError("server has gone away")

    monkeypatch.setattr("badges_bridge.models.RejectedEvent.objects.create", unavailable)
    handlers.on_certificate_awarded(certificate=certificate(learner), metadata=metadata("cert-1"))
    assert not BadgeIssuance.objects.exists()


def test_the_periodic_redrive_replays_due_events(credly, badge, learner, monkeypatch, caplog):
    FlakyLedger(monkeypatch, failures=1)
    handlers.on_certificate_awarded(certificate=certificate(learner), metadata=metadata("cert-1"))
    with caplog.at_level("INFO", logger="badges_bridge.tasks"):
        tasks.redrive()
    assert RejectedEvent.objects.get().status == "replayed"
    assert BadgeIssuance.objects.get().state == IssuanceState.PENDING  # its issue is queued after commit
    assert "replayed 1 rejected event(s)" in caplog.text


def test_an_event_replayed_meanwhile_by_someone_else_is_skipped(badge, learner, monkeypatch):
    FlakyLedger(monkeypatch, failures=2)
    for number in range(2):
        handlers.on_certificate_awarded(certificate=certificate(learner), metadata=metadata(f"cert-{number}"))
    second = RejectedEvent.objects.order_by("id").last()

    def concurrent_replay(summary):
        RejectedEvent.objects.filter(pk=second.pk).update(status="replayed")

    result = api.replay_rejected_events(progress=concurrent_replay)
    assert (result.replayed, result.failed, result.skipped) == (1, 0, 1)


def test_the_kill_switch_pauses_automatic_replays(badge, learner, monkeypatch, settings):
    FlakyLedger(monkeypatch, failures=1)
    handlers.on_certificate_awarded(certificate=certificate(learner), metadata=metadata("cert-1"))
    settings.BADGES_BRIDGE_ENABLED = False
    assert api.redrive().replayed == 0
    assert RejectedEvent.objects.get().status == "waiting"
    settings.BADGES_BRIDGE_ENABLED = True
    assert api.redrive().replayed == 1


# -- commands ------------------------------------------------------------------------------------------------------


def failed_events(learner, monkeypatch, count: int, failures: int | None = None) -> list[RejectedEvent]:
    """``count`` certificate events of ``learner`` that met a database error and wait for a replay."""
    flaky = FlakyLedger(monkeypatch, failures=count)
    for number in range(count):
        handlers.on_certificate_awarded(certificate=certificate(learner), metadata=metadata(f"cert-{number}"))
    flaky.failures = failures or 0
    return list(RejectedEvent.objects.order_by("id"))


def test_replay_command_replays_the_due_events(badge, learner, monkeypatch, capsys):
    due, later = failed_events(learner, monkeypatch, 2)
    RejectedEvent.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() + timedelta(hours=1))
    call_command("badges_bridge_replay_events")
    out = capsys.readouterr().out
    assert f"rejected event {due.pk} ({CERTIFICATE_CREATED} cert-0): replayed" in out
    assert "Done: 1 replayed, 0 failed, 0 skipped." in out
    later.refresh_from_db()
    assert later.status == "waiting"
    call_command("badges_bridge_replay_events", "--all")
    later.refresh_from_db()
    assert later.status == "replayed"


def test_replay_command_dry_run_changes_nothing(badge, learner, monkeypatch, capsys):
    (event,) = failed_events(learner, monkeypatch, 1)
    call_command("badges_bridge_replay_events", "--dry-run")
    out = capsys.readouterr().out
    assert f"rejected event {event.pk} ({CERTIFICATE_CREATED} cert-0): waiting, 0 attempt(s) so far" in out
    assert "1 rejected event(s) would be replayed." in out
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("waiting", 0)


def test_replay_command_fails_when_a_replay_fails(badge, learner, monkeypatch, capsys):
    (event,) = failed_events(learner, monkeypatch, 1, failures=10)
    with pytest.raises(CommandError, match="1 replay\\(s\\) failed"):
        call_command("badges_bridge_replay_events")
    out = capsys.readouterr().out
    assert f"rejected event {event.pk} ({CERTIFICATE_CREATED} cert-0): failed (attempt 1)" in out
    assert "Lock wait timeout" in out
    assert "0 replayed, 1 failed, 0 skipped." in out


def test_replay_command_named_and_failed_events(badge, learner, monkeypatch, settings, capsys):
    settings.BADGES_BRIDGE_MAX_ATTEMPTS = 1
    first, second = failed_events(learner, monkeypatch, 2, failures=2)
    with pytest.raises(CommandError):
        call_command("badges_bridge_replay_events")
    assert "failed for good after 1 attempt(s)" in capsys.readouterr().out
    assert set(RejectedEvent.objects.values_list("status", flat=True)) == {"failed"}

    call_command("badges_bridge_replay_events")  # failed events are left alone
    assert "Done: 0 replayed, 0 failed, 0 skipped." in capsys.readouterr().out

    call_command("badges_bridge_replay_events", "--id", str(first.pk), "--id", "999")
    out = capsys.readouterr().out
    assert "rejected event 999: skipped" in out
    assert "Done: 1 replayed, 0 failed, 1 skipped." in out
    call_command("badges_bridge_replay_events", "--include-failed", "--limit", "1")
    second.refresh_from_db()
    assert second.status == "replayed"


def test_redrive_command_reports_replays(badge, learner, monkeypatch, capsys):
    (event,) = failed_events(learner, monkeypatch, 1)
    call_command("badges_bridge_redrive", "--dry-run")
    out = capsys.readouterr().out
    assert f"  rejected event {event.pk}: replay\n1 rejected event(s) due for a replay.\n" in out
    assert out.endswith("0 row(s) due.\n")
    call_command("badges_bridge_redrive")
    out = capsys.readouterr().out
    assert out.endswith("Replayed 1 rejected event(s); 0 replay(s) failed.\nDone: 0 row(s) redriven.\n")
    event.refresh_from_db()
    assert event.status == "replayed"
