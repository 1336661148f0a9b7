"""Data migrations: rows written by an earlier version come out right."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("badges_bridge", "0003_rejected_event_replay")]
AFTER = [("badges_bridge", "0004_award_identity")]


@pytest.fixture
def old_apps(django_user_model):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    yield executor.loader.project_state(BEFORE).apps
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_award_history_starts_with_the_badge_each_row_names(old_apps, django_user_model):
    account = old_apps.get_model("badges_bridge", "ProviderAccount").objects.create(
        provider="credly", name="Credly", api_base_url="https://api.credly.com/v1/"
    )
    template = old_apps.get_model("badges_bridge", "BadgeTemplate").objects.create(
        account=account, external_id="t1", name="T"
    )
    badge = old_apps.get_model("badges_bridge", "CourseBadge").objects.create(
        course_key="course-v1:Org+Mig+2026", template=template
    )
    issuance = old_apps.get_model("badges_bridge", "BadgeIssuance")
    rows = {
        "issued": ("b-issued", ""),
        "revoked": ("b-policy", "policy"),
        "rejected": ("b-rejected", ""),
        "pending": ("", ""),
    }
    for number, (state, (external_id, revoked_by)) in enumerate(rows.items()):
        user = django_user_model.objects.create_user(username=f"u{number}")
        issuance.objects.create(
            user_id=user.pk, course_badge=badge, state=state, external_id=external_id, revoked_by=revoked_by
        )
    user = django_user_model.objects.create_user(username="by-provider")
    issuance.objects.create(
        user_id=user.pk, course_badge=badge, state="revoked", external_id="b-provider", revoked_by="provider"
    )

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new_apps = executor.loader.project_state(AFTER).apps

    history = new_apps.get_model("badges_bridge", "IssuedBadge").objects.values_list("external_id", "status", "number")
    assert sorted(history) == [
        ("b-issued", "live", 1),
        ("b-policy", "revoked", 1),
        ("b-provider", "gone", 1),
        ("b-rejected", "gone", 1),
    ]
    assert set(new_apps.get_model("badges_bridge", "BadgeIssuance").objects.values_list("award_number", flat=True)) == {
        1
    }


@pytest.fixture
def apps_before_provider_state(django_user_model):
    before = [("badges_bridge", "0006_admin_console")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    yield executor.loader.project_state(before).apps
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_existing_accounts_get_their_own_webhook_token(apps_before_provider_state):
    account = apps_before_provider_state.get_model("badges_bridge", "ProviderAccount")
    for name in ("one", "two"):
        account.objects.create(provider="credly", name=name, api_base_url="https://api.credly.com/v1/")

    after = [("badges_bridge", "0007_provider_state")]
    executor = MigrationExecutor(connection)
    executor.migrate(after)

    from badges_bridge.models import ProviderAccount, webhook_token_digest

    accounts = list(ProviderAccount.objects.all())
    tokens = {record.get_webhook_token() for record in accounts}
    assert len(tokens) == 2
    assert all(webhook_token_digest(record.get_webhook_token()) == record.webhook_token_digest for record in accounts)
