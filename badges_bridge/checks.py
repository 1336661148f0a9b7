"""Django system checks: bad configuration fails loudly at start-up, not at the first badge."""

from __future__ import annotations

from django.core import checks

from badges_bridge.conf import get_setting
from badges_bridge.exceptions import ConfigurationError
from badges_bridge.models import CleanupAction
from badges_bridge.providers import get_provider_class, provider_paths


@checks.register()
def check_providers(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Every registered provider kind must load."""
    errors = []
    for kind in provider_paths():
        try:
            get_provider_class(kind)
        except ConfigurationError as err:
            errors.append(checks.Error(str(err), id="badges_bridge.E001"))
    return errors


@checks.register()
def check_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Numeric settings and secret keys must be usable."""
    errors = []
    timeout = get_setting("HTTP_TIMEOUT")
    if not (isinstance(timeout, (tuple, list)) and len(timeout) == 2 and all(float(t) > 0 for t in timeout)):
        errors.append(
            checks.Error(
                "BADGES_BRIDGE_HTTP_TIMEOUT must be a (connect, read) pair of positive seconds", id="badges_bridge.E002"
            )
        )
    else:
        errors += _check_lease(sum(float(t) for t in timeout))
    if int(get_setting("MAX_ATTEMPTS")) < 1:
        errors.append(checks.Error("BADGES_BRIDGE_MAX_ATTEMPTS must be at least 1", id="badges_bridge.E003"))
    keys = get_setting("SECRET_KEYS")
    if keys is not None and (isinstance(keys, str) or not all(isinstance(k, str) and len(k) >= 16 for k in keys)):
        errors.append(
            checks.Error(
                "BADGES_BRIDGE_SECRET_KEYS must be a list of strings of 16 characters or more (newest first)",
                id="badges_bridge.E004",
            )
        )
    hosts = get_setting("ALLOWED_HTTP_HOSTS")
    if not isinstance(hosts, (list, tuple)) or not all(isinstance(h, str) and h and "/" not in h for h in hosts):
        errors.append(
            checks.Error(
                "BADGES_BRIDGE_ALLOWED_HTTP_HOSTS must be a list of host names such as 'badges.internal' (not URLs)",
                id="badges_bridge.E006",
            )
        )
    if get_setting("RETIREMENT_ACTION") not in CleanupAction.values:
        errors.append(
            checks.Error(
                f"BADGES_BRIDGE_RETIREMENT_ACTION must be one of {', '.join(map(repr, CleanupAction.values))}",
                id="badges_bridge.E007",
            )
        )
    if int(get_setting("PROVIDER_EVENT_RETENTION_DAYS")) < 1:
        errors.append(
            checks.Error(
                "BADGES_BRIDGE_PROVIDER_EVENT_RETENTION_DAYS must be at least 1 (Credly retries for up to 25 days)",
                id="badges_bridge.E008",
            )
        )
    return errors


#: How many times the longest provider request the lease must last (it is renewed before each request).
LEASE_MARGIN = 2


def _check_lease(request_seconds: float) -> list[checks.CheckMessage]:
    """The lease must outlast a provider request with room to spare, or a second worker could take the row."""
    lease = float(get_setting("LEASE_SECONDS"))
    needed = LEASE_MARGIN * request_seconds
    if lease >= needed:
        return []
    return [
        checks.Error(
            f"BADGES_BRIDGE_LEASE_SECONDS ({lease:g}) must be at least {LEASE_MARGIN} times the longest provider "
            f"request (the sum of BADGES_BRIDGE_HTTP_TIMEOUT, {request_seconds:g} s): {needed:g} seconds or more",
            hint="Raise BADGES_BRIDGE_LEASE_SECONDS or lower BADGES_BRIDGE_HTTP_TIMEOUT.",
            id="badges_bridge.E005",
        )
    ]
