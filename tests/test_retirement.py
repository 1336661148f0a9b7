"""User retirement: personal data erased at once, badges revoked or deleted at the providers, nothing sent again."""

import logging
import re
from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, compat, tombstones
from badges_bridge.models import (
    AuditEntry,
    BadgeIssuance,
    IssuanceState,
    ProviderCleanup,
    RejectedEvent,
    RejectedEventStatus,
    RetiredLearner,
    RevokePolicy,
)
from badges_bridge.providers.base import AwardState
from badges_bridge.signals import handlers
from badges_bridge.testing import events as send
from badges_bridge.testing.setup import make_account, make_course_badge, make_template
from tests.test_exactly_once import race_inside_create

COURSE = CourseKey.from_string("course-v1:Org+Retire+2026")
OTHER_COURSE = CourseKey.from_string("course-v1:Org+Retire2+2026")
S = IssuanceState
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("receivers")]


@pytest.fixture
def bystander(django_user_model):
    return django_user_model.objects.create_user(
        username="grace", email="grace@example.com", first_name="Grace", last_name="Hopper"
    )


@pytest.fixture
def world(credly, accredible, learner, bystander, deliver, work_queue):
    """Badges at both providers: a Credly badge revoked once and issued again, an Accredible credential."""
    credly_badge = make_course_badge(
        make_template(make_account(credly), credly), COURSE, revoke_policy=RevokePolicy.CRITERION_UNMET
    )
    accredible_badge = make_course_badge(make_template(make_account(accredible), accredible), OTHER_COURSE)
    for passing in (True, False, True):
        deliver(send.send_passing_status, learner, COURSE, passing)
        deliver(work_queue.run)
    for person in (learner, bystander):
        deliver(send.send_passing_status, person, OTHER_COURSE, True)
    deliver(send.send_passing_status, bystander, COURSE, True)
    deliver(work_queue.run)
    credly.set_award_state(
        BadgeIssuance.objects.get(user=learner, course_badge=credly_badge).external_id, AwardState.ACCEPTED
    )
    RejectedEvent.objects.create(
        event_id="ev-1", event_type="t", user_id=learner.pk, reason="processing error", payload={"user_id": learner.pk}
    )
    rows = BadgeIssuance.objects.filter(user=learner)
    assert sorted(rows.values_list("state", flat=True)) == [S.ISSUED, S.ISSUED]
    return {
        "credly": credly_badge,
        "accredible": accredible_badge,
        "external_ids": set(BadgeIssuance.objects.filter(user=learner).values_list("awards__external_id", flat=True)),
        "public_urls": set(rows.values_list("public_url", flat=True)),
    }


def retire(deliver, user, signal=None):
    deliver((signal or compat.USER_RETIRE_LMS_CRITICAL).send, sender=None, user=user)


def personal_data_left(learner, world) -> list[str]:
    """Every value in the plugin's tables that still names the learner, their badges or their events."""
    found = []
    secrets = {learner.email, learner.username, learner.first_name, learner.last_name, "Ada Lovelace"}
    secrets |= {value for value in world["external_ids"] | world["public_urls"] if value}
    for model in apps.get_app_config("badges_bridge").get_models():
        for record in model.objects.values():
            for name, value in record.items():
                if name in ("user_id", "user") and value == learner.pk:
                    found.append(f"{model.__name__}.{name}")
                if name == "payload" and value and value.get("user_id") == learner.pk:
                    found.append(f"{model.__name__}.payload")
                text = str(value)
                found += [f"{model.__name__}.{name}: {secret}" for secret in secrets if secret and _names(text, secret)]
    return found


def _names(text: str, secret: str) -> bool:
    """Whether ``secret`` appears in ``text`` as a whole word (a short username can hide inside a random id)."""
    return re.search(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", text) is not None


def test_retirement_erases_every_personal_value_and_deletes_the_badges(
    credly, accredible, learner, bystander, world, deliver
):
    ours = set(BadgeIssuance.objects.filter(user=learner).values_list("pk", flat=True))
    theirs = list(BadgeIssuance.objects.filter(user=bystander).values("pk", "state", "external_id", "public_url"))
    assert len(world["external_ids"]) == 3  # the Credly badge revoked by the policy, its successor, the credential

    retire(deliver, learner)

    assert personal_data_left(learner, world) == []
    for external_id in world["external_ids"]:
        harness = accredible if external_id.isdigit() else credly
        assert harness.award_state(external_id) == AwardState.DELETED
    assert not ProviderCleanup.objects.exists()
    rows = BadgeIssuance.objects.filter(pk__in=ours)
    assert sorted(rows.values_list("state", "user_id")) == [(S.RETIRED, None), (S.RETIRED, None)]  # counts kept
    entries = AuditEntry.objects.filter(issuance__in=ours)
    assert set(entries.exclude(to_state=S.RETIRED).values_list("message", "event_id")) == {("", "")}
    retired_entry = AuditEntry.objects.filter(issuance__in=ours, to_state=S.RETIRED).first()
    assert retired_entry.message.startswith("the learner retired: personal data erased; ")
    assert RejectedEvent.objects.get().status == RejectedEventStatus.ERASED
    assert list(BadgeIssuance.objects.filter(user=bystander).values("pk", "state", "external_id", "public_url")) == (
        theirs
    )
    assert RetiredLearner.objects.count() == 1
    assert str(learner.pk) != RetiredLearner.objects.get().digest


def test_the_revoke_action_revokes_what_is_live_and_keeps_what_was_revoked(
    credly, accredible, learner, world, deliver, settings
):
    settings.BADGES_BRIDGE_RETIREMENT_ACTION = "revoke"
    before = {
        external_id: (accredible if external_id.isdigit() else credly).award_state(external_id)
        for external_id in world["external_ids"]
    }

    retire(deliver, learner)

    assert personal_data_left(learner, world) == []
    for external_id, state in before.items():
        harness, revoked = (accredible, AwardState.EXPIRED) if external_id.isdigit() else (credly, AwardState.REVOKED)
        assert harness.award_state(external_id) == (revoked if state.is_live else state)
    assert sorted(state.value for state in before.values()) == ["accepted", "accepted", "revoked"]
    revokes = credly.server.requests_to("PUT", r"/revoke$")
    assert [request.json()["reason"] for request in revokes][-1] == "The earner's account was closed."


def test_retirement_finishes_while_a_provider_is_down_and_the_clean_up_follows(credly, learner, world, deliver):
    credly.inject("revoke", "status", status=503, times=None)

    retire(deliver, learner)

    local = [item for item in personal_data_left(learner, world) if not item.startswith("ProviderCleanup.")]
    assert local == []  # the local erasure did not wait for Credly; the clean-up keeps only the badge ids
    waiting = ProviderCleanup.objects.filter(account__provider="credly")
    assert waiting.count() == 2
    assert all(cleanup.attempts == 1 for cleanup in waiting)
    assert all("503" in cleanup.last_error for cleanup in waiting)
    assert {credly.award_state(cleanup.external_id) for cleanup in waiting} == {AwardState.REVOKED, AwardState.ACCEPTED}

    deliver(api.redrive, inline=True)  # not due yet: nothing is sent
    assert all(cleanup.attempts == 1 for cleanup in waiting)
    credly.server.faults.clear()  # Credly is back
    waiting.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert deliver(api.redrive, inline=True).cleanups == 2

    assert not ProviderCleanup.objects.exists()
    assert personal_data_left(learner, world) == []
    assert all(
        credly.award_state(external_id) == AwardState.DELETED
        for external_id in world["external_ids"]
        if not external_id.isdigit()
    )


def test_nothing_is_ever_sent_for_a_retired_learner_again(credly, learner, world, deliver, work_queue, caplog):
    retire(deliver, learner)
    journal = len(credly.server.journal)
    rows = BadgeIssuance.objects.count()
    about_the_learner = (learner.email, f"openedx-user-{learner.pk}", learner.last_name)

    with caplog.at_level(logging.INFO):
        for course in (COURSE, OTHER_COURSE):
            deliver(send.send_passing_status, learner, course, True)
            deliver(send.send_grade, learner, course, 0.9)
            deliver(send.send_certificate_created, learner, course)
        deliver(handlers.on_course_passing_status, course_passing_status=None)  # a malformed event
        api.record_rejected_event("late-1", "t", "processing error: timeout", str(COURSE), learner.pk)
        deliver(work_queue.run)
        deliver(api.redrive, inline=True)
        api.check_drift()

    assert BadgeIssuance.objects.count() == rows  # not even written, to be erased later
    assert personal_data_left(learner, world) == []
    for request in credly.server.journal[journal:]:  # the drift check still reads the bystander's badges
        assert not any(value in f"{request.query} {request.body}" for value in about_the_learner)


def test_the_signals_may_repeat(credly, learner, world, deliver):
    retire(deliver, learner, compat.USER_RETIRE_LMS_MISC)
    first = {model: model.objects.count() for model in (BadgeIssuance, AuditEntry, RetiredLearner)}
    journal = len(credly.server.journal)

    retire(deliver, learner, compat.USER_RETIRE_LMS_CRITICAL)

    assert {model: model.objects.count() for model in first} == first
    assert len(credly.server.journal) == journal
    assert api.retire_learner(learner.pk).new is False


def test_a_badge_created_while_the_learner_retires_is_cleaned_up(credly, learner, deliver, work_queue, monkeypatch):
    badge = make_course_badge(make_template(make_account(credly), credly), COURSE)
    race_inside_create(monkeypatch, lambda row_id: api.retire_learner(learner.pk))  # during the create request
    deliver(send.send_passing_status, learner, COURSE, True)
    deliver(work_queue.run)  # the late badge goes to the clean-up, and is deleted

    assert credly.live_awards(badge.template.external_id, learner.email) == []
    assert [award["id"] for award in credly.all_awards()] == []
    assert not ProviderCleanup.objects.exists()
    assert BadgeIssuance.objects.get().state == S.RETIRED
    assert personal_data_left(learner, {"external_ids": set(), "public_urls": set()}) == []


def test_a_row_written_as_the_learner_retired_is_erased_when_claimed(credly, learner, deliver, work_queue):
    make_course_badge(make_template(make_account(credly), credly), COURSE)
    deliver(send.send_passing_status, learner, COURSE, True)  # the row exists, its task waits
    tombstones.bury(learner.pk)  # retired by another process between the event and the task

    deliver(work_queue.run)

    row = BadgeIssuance.objects.get()
    assert (row.state, row.user_id) == (S.RETIRED, None)
    assert credly.all_awards() == []


def test_a_failing_erasure_never_breaks_the_platform_and_is_queued(learner, world, deliver, monkeypatch, caplog):
    calls = []
    real = api.retire_learner

    def fails_once(user_id):
        calls.append(user_id)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return real(user_id)

    monkeypatch.setattr(api, "retire_learner", fails_once)

    retire(deliver, learner)  # the receiver logs, and the task does it (eagerly here)

    assert calls == [learner.pk, learner.pk]
    assert "could not erase a retiring learner's data here" in caplog.text
    assert personal_data_left(learner, world) == []


def test_a_signal_without_a_user_is_ignored(deliver, caplog):
    deliver(compat.USER_RETIRE_LMS_CRITICAL.send, sender=None, user=None)

    assert "a retirement signal came without a user" in caplog.text
    assert not RetiredLearner.objects.exists()


def test_the_retirement_action_is_checked(settings):
    from django.core import checks

    settings.BADGES_BRIDGE_RETIREMENT_ACTION = "keep"
    assert "badges_bridge.E007" in [message.id for message in checks.run_checks()]
