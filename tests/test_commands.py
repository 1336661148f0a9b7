"""Management commands and the operator API behind them."""

from datetime import timedelta

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api
from badges_bridge.models import BadgeIssuance, BadgeTemplate, IssuanceState, ProviderAccount
from badges_bridge.providers.base import AwardState
from badges_bridge.signals import handlers
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template
from tests.test_security import legacy_fernet

pytestmark = pytest.mark.django_db
COURSE = CourseKey.from_string("course-v1:Org+Ops+2026")


def test_sync_touches_only_its_own_account(credly, capsys):
    mine = make_account(credly)
    other = make_account(credly, name="other", account="other")
    credly.seed_template("Mine A")
    credly.seed_template("Theirs", account="other")
    BadgeTemplate.objects.create(account=other, external_id="kept", name="Kept")
    BadgeTemplate.objects.create(account=mine, external_id="gone", name="Gone")
    call_command("badges_bridge_sync_templates", "--account", str(mine.pk))
    assert set(BadgeTemplate.objects.filter(account=mine).values_list("name", "state")) == {
        ("Mine A", "active"),
        ("Gone", "missing"),
    }
    assert set(BadgeTemplate.objects.filter(account=other).values_list("name", flat=True)) == {"Kept"}
    assert "1 new" in capsys.readouterr().out


def test_sync_of_an_unknown_account_fails():
    with pytest.raises(CommandError, match="No provider account with id 999"):
        call_command("badges_bridge_sync_templates", "--account", "999")


def test_redrive_recovers_a_lost_task(credly, learner, settings):
    settings.BADGES_BRIDGE_REDRIVE_GRACE_SECONDS = 0
    badge = make_course_badge(make_template(make_account(credly), credly), COURSE)
    row = BadgeIssuance.objects.create(user=learner, course_badge=badge, qualified_at=timezone.now())  # no task queued
    call_command("badges_bridge_redrive", "--dry-run")
    row.refresh_from_db()
    assert row.state == IssuanceState.PENDING
    call_command("badges_bridge_redrive", "--inline")
    row.refresh_from_db()
    assert row.state == IssuanceState.ISSUED
    assert len(credly.live_awards(badge.template.external_id, learner.email)) == 1


def test_redrive_retakes_a_row_left_by_a_killed_worker(credly, learner):
    badge = make_course_badge(make_template(make_account(credly), credly), COURSE)
    row = BadgeIssuance.objects.create(
        user=learner,
        course_badge=badge,
        state=IssuanceState.ISSUING,
        attempts=1,
        lease_token="dead-worker",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    result = api.redrive(inline=True)
    assert result.ids == [row.pk]
    row.refresh_from_db()
    assert row.state == IssuanceState.ISSUED
    assert row.attempts == 2


def test_check_reports_problems_with_a_non_zero_exit(credly, learner, capsys):
    account = make_account(credly, token_expires_at=timezone.now() + timedelta(days=3))
    badge = make_course_badge(make_template(account, credly), COURSE)
    call_command("badges_bridge_check")
    out = capsys.readouterr().out
    assert "OK   account" in out
    assert "API token expires" in out
    BadgeIssuance.objects.create(user=learner, course_badge=badge, state=IssuanceState.DEAD, error_cause="no_email")
    with pytest.raises(CommandError, match="1 problem"):
        call_command("badges_bridge_check", "--skip-accounts")
    assert "1 dead: The learner has no e-mail address. Add an e-mail address" in capsys.readouterr().out


def test_check_fails_when_the_provider_refuses_the_token(credly):
    account = make_account(credly)
    account.set_token("wrong")
    account.save()
    with pytest.raises(CommandError):
        call_command("badges_bridge_check")
    account.refresh_from_db()
    assert account.last_check_ok is False
    assert "401" in account.last_check_message


def test_rotate_keys(credly, settings, capsys):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.BADGES_BRIDGE_SECRET_KEYS = [old_key]
    account = make_account(credly)
    webhook_token = account.get_webhook_token()
    settings.BADGES_BRIDGE_SECRET_KEYS = [new_key, old_key]
    call_command("badges_bridge_rotate_keys")
    settings.BADGES_BRIDGE_SECRET_KEYS = [new_key]
    account.refresh_from_db()
    assert account.get_token() == credly.account_fields()["token"]
    assert account.get_webhook_token() == webhook_token
    assert "2 secret(s) re-encrypted" in capsys.readouterr().out


def test_learner_api_lists_own_badges(client, credly, learner):
    badge = make_course_badge(make_template(make_account(credly), credly), COURSE)
    BadgeIssuance.objects.create(
        user=learner,
        course_badge=badge,
        state=IssuanceState.ISSUED,
        public_url="https://example.com/b/1",
        qualified_at=timezone.now(),
    )
    assert client.get("/api/badges_bridge/v1/badges/").status_code == 401
    client.force_login(learner)
    body = client.get("/api/badges_bridge/v1/badges/").json()
    assert body["count"] == 1
    assert body["results"][0]["status"] == "issued"
    assert body["results"][0]["public_url"] == "https://example.com/b/1"


@pytest.mark.parametrize("kind", ["credly", "accredible"])
def test_drift_marks_badges_deleted_or_expired_at_the_provider(kind, request, learner, django_user_model):
    from badges_bridge.testing.harness import get_harness_class

    harness = get_harness_class(kind)().start()
    request.addfinalizer(harness.stop)
    badge = make_course_badge(make_template(make_account(harness), harness), COURSE)
    other = django_user_model.objects.create_user(username="bob", email="bob@example.com")
    rows = [
        BadgeIssuance.objects.create(user=user, course_badge=badge, qualified_at=timezone.now())
        for user in (learner, other)
    ]
    with override_settings(BADGES_BRIDGE_REDRIVE_GRACE_SECONDS=0):
        api.redrive(inline=True)
    for row in rows:
        row.refresh_from_db()
        assert row.state == IssuanceState.ISSUED
    harness.set_award_state(rows[0].external_id, AwardState.DELETED)
    call_command("badges_bridge_redrive", "--check-drift")
    rows[0].refresh_from_db()
    rows[1].refresh_from_db()
    assert (rows[0].state, rows[0].provider_state) == (IssuanceState.REVOKED, "deleted")
    assert rows[1].state == IssuanceState.ISSUED
    assert rows[0].audit_entries.last().actor == "task:drift"


def test_badge_removed_at_the_provider_is_not_re_awarded(credly, learner, django_capture_on_commit_callbacks):
    badge = make_course_badge(make_template(make_account(credly), credly), COURSE)
    row = BadgeIssuance.objects.create(user=learner, course_badge=badge, qualified_at=timezone.now())
    with override_settings(BADGES_BRIDGE_REDRIVE_GRACE_SECONDS=0):
        api.redrive(inline=True)
    row.refresh_from_db()
    credly.set_award_state(row.external_id, AwardState.REVOKED)
    assert api.check_drift() == {badge.template.account.name: 1}
    row.refresh_from_db()
    assert (row.state, row.revoked_by) == (IssuanceState.REVOKED, "provider")
    with django_capture_on_commit_callbacks(execute=True):
        handlers.on_course_passing_status(course_passing_status=send.passing_status_data(learner, COURSE, True))
    row.refresh_from_db()
    assert row.state == IssuanceState.REVOKED


def test_rotate_keys_moves_tokens_off_the_legacy_derivation(credly, settings):
    passphrase = "the operator's long passphrase"
    settings.BADGES_BRIDGE_SECRET_KEYS = [passphrase]
    account = make_account(credly)
    token = credly.account_fields()["token"]
    ProviderAccount.objects.filter(pk=account.pk).update(
        token_ciphertext=legacy_fernet(passphrase).encrypt(token.encode()).decode()
    )

    call_command("badges_bridge_rotate_keys")

    account.refresh_from_db()
    assert account.get_token() == token
    with pytest.raises(InvalidToken):
        legacy_fernet(passphrase).decrypt(account.token_ciphertext.encode())
