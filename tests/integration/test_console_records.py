"""What the admin console shows is recorded by the tasks themselves, also when a real worker runs them."""

from __future__ import annotations

import pytest

from badges_bridge.models import BadgeTemplate, ProviderAccount
from badges_bridge.tasks import queue_options, sync_templates
from tests.integration.helpers import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_template_sync_records_its_result_on_the_account_from_the_task(world, celery_worker, harness):
    account = world.badge.template.account
    external_id = harness.seed_template("Data basics")
    sync_templates.apply_async((account.pk,), **queue_options())
    wait_until(lambda: ProviderAccount.objects.get(pk=account.pk).last_sync_ok is not None, 30, "the sync result")
    account.refresh_from_db()
    assert account.last_sync_ok is True
    assert account.last_sync_message.startswith("Template sync done: 1 new, ")
    assert BadgeTemplate.objects.filter(account=account, external_id=external_id).exists()

    harness.inject("list_templates", "status", status=503, times=None)
    before = account.last_sync_attempt_at
    sync_templates.apply_async((account.pk,), **queue_options())
    wait_until(lambda: ProviderAccount.objects.get(pk=account.pk).last_sync_attempt_at != before, 30, "the failed sync")
    account.refresh_from_db()
    assert account.last_sync_ok is False
    assert "Template sync failed:" in account.last_sync_message
    assert "retried automatically" in account.last_sync_message
