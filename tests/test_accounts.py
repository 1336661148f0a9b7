"""Provider clients built from accounts, connection checks and their safety rules."""

import pytest

from badges_bridge import api
from badges_bridge.accounts import provider_for
from badges_bridge.exceptions import ConfigurationError
from badges_bridge.models import ProviderAccount
from badges_bridge.testing.setup import make_account

pytestmark = pytest.mark.django_db


def _saved_without_validation(credly, url: str, name: str = "unchecked") -> ProviderAccount:
    """An account whose URL was stored without the model's validation (a script, a fixture, raw SQL)."""
    account = make_account(credly, name=name)
    ProviderAccount.objects.filter(pk=account.pk).update(api_base_url=url)
    account.refresh_from_db()
    return account


def test_token_is_never_sent_over_plain_http_to_another_host(credly):
    account = _saved_without_validation(credly, "http://badges.invalid/v1/")

    with pytest.raises(ConfigurationError, match="must use https") as refused:
        provider_for(account)

    assert account.name in str(refused.value)
    assert "BADGES_BRIDGE_ALLOWED_HTTP_HOSTS" in str(refused.value)
    [health] = api.check_accounts([account.pk])
    assert not health.ok
    assert "must use https" in health.message


def test_allowed_http_hosts_and_loopback_get_a_client(credly, settings):
    assert provider_for(make_account(credly)).check_connection().startswith("Credly organization")
    settings.BADGES_BRIDGE_ALLOWED_HTTP_HOSTS = ["badges.internal"]
    provider_for(_saved_without_validation(credly, "http://badges.internal/v1/"))
