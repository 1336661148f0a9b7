"""Credly's notifications and a learner's retirement, through the real task path.

With ``BADGES_BRIDGE_TEST_DB=mysql BADGES_BRIDGE_TEST_CELERY=worker`` the fetch of
each notified event and the retirement clean-up run in a real worker process on
MariaDB; by default they run eagerly on SQLite.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from opaque_keys.edx.keys import CourseKey

from badges_bridge import api, compat, webhooks
from badges_bridge.models import (
    BadgeIssuance,
    IssuanceState,
    ProviderCleanup,
    ProviderEvent,
    RetiredLearner,
    RevokePolicy,
)
from badges_bridge.providers.base import AwardState
from badges_bridge.testing.setup import make_account, make_course_badge, make_template
from tests.integration.helpers import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

COURSE = CourseKey.from_string("course-v1:BridgeOrg+State101+2026")
S = IssuanceState


@pytest.fixture
def account(credly):
    account = make_account(credly)
    make_course_badge(make_template(account, credly), COURSE, revoke_policy=RevokePolicy.CRITERION_UNMET)
    return account


@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user(
        username="ada", email="ada@example.com", first_name="Ada", last_name="Lovelace"
    )


@pytest.fixture
def post(client):
    """Credly's POST to the webhook, through the test client (each request commits: its fetch is queued)."""

    def send(url: str, body: bytes) -> int:
        path = url.removeprefix("http://lms.example.com")
        return client.post(path, data=body, content_type="application/json").status_code

    return send


def test_notifications_reach_the_ledger_and_a_rejection_stays(credly, account, ada, events, drain, post):
    events.passing(ada, COURSE)
    drain()
    row = BadgeIssuance.objects.get(user=ada)
    url = webhooks.webhook_url(account)

    credly.set_award_state(row.external_id, AwardState.ACCEPTED)
    assert credly.notify(url, post=post) == 200
    wait_until(lambda: BadgeIssuance.objects.get(pk=row.pk).provider_state == "accepted", what="the acceptance")

    credly.set_award_state(row.external_id, AwardState.REJECTED)
    assert credly.notify(url, post=post) == 200
    assert credly.notify(url, post=post) == 200  # delivered twice: recorded once
    wait_until(lambda: BadgeIssuance.objects.get(pk=row.pk).state == S.REJECTED, what="the rejection")

    events.passing(ada, COURSE, False)
    events.passing(ada, COURSE)
    drain()
    assert BadgeIssuance.objects.get(pk=row.pk).state == S.REJECTED
    assert len(credly.all_awards()) == 1
    assert ProviderEvent.objects.filter(status="done").count() == 2


def test_retirement_finishes_while_credly_is_down_and_the_clean_up_follows(credly, account, ada, events, drain):
    events.passing(ada, COURSE)
    drain()
    external_id = BadgeIssuance.objects.get(user=ada).external_id
    credly.inject("revoke", "status", status=503, times=None)

    compat.USER_RETIRE_LMS_CRITICAL.send(sender=None, user=ada)

    assert not BadgeIssuance.objects.filter(user=ada).exists()
    assert BadgeIssuance.objects.get().state == S.RETIRED
    assert RetiredLearner.objects.count() == 1
    wait_until(lambda: ProviderCleanup.objects.filter(attempts__gte=1).exists(), what="a clean-up attempt")
    assert credly.award_state(external_id) == AwardState.PENDING

    credly.server.faults.clear()
    ProviderCleanup.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert api.redrive().cleanups == 1
    wait_until(lambda: not ProviderCleanup.objects.exists(), what="the clean-up")
    assert credly.award_state(external_id) == AwardState.DELETED
