"""Settings of badges_bridge, with their defaults.

Every setting is read at call time through :func:`get_setting`. The value is
kept after the first read, because the event receivers read
``BADGES_BRIDGE_ENABLED`` for every event of the LMS; Django's
``setting_changed`` signal (sent by ``override_settings`` and by the test
tools built on it) makes the next read look again. The settings reference in
the documentation lists each one.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    # .. toggle_name: BADGES_BRIDGE_ENABLED
    # .. toggle_implementation: SettingToggle
    # .. toggle_default: True
    # .. toggle_description: Kill switch: when False, learning events are ignored, the redrive does not replay
    #   rejected events and no badge work is queued for new events.
    # .. toggle_use_cases: circuit_breaker
    # .. toggle_creation_date: 2026-11-23
    "ENABLED": True,
    # .. setting_name: BADGES_BRIDGE_CELERY_QUEUE
    # .. setting_default: None
    # .. setting_description: Celery queue for badge tasks; None uses the default queue of the service.
    "CELERY_QUEUE": None,
    # .. setting_name: BADGES_BRIDGE_MAX_ATTEMPTS
    # .. setting_default: 8
    # .. setting_description: Attempts at issuing or revoking one badge before the ledger row is dead, and
    #   replays of a rejected event before it is failed.
    "MAX_ATTEMPTS": 8,
    # .. setting_name: BADGES_BRIDGE_RETRY_BASE_SECONDS
    # .. setting_default: 30
    # .. setting_description: First retry delay; it doubles with each attempt (with jitter). Replays of rejected
    #   events wait the same way.
    "RETRY_BASE_SECONDS": 30,
    # .. setting_name: BADGES_BRIDGE_RETRY_MAX_SECONDS
    # .. setting_default: 3600
    # .. setting_description: Upper bound of the retry delay (a provider's Retry-After may ask for longer).
    "RETRY_MAX_SECONDS": 3600,
    # .. setting_name: BADGES_BRIDGE_LEASE_SECONDS
    # .. setting_default: 300
    # .. setting_description: How long a worker owns a row it is working on; after that the row may be retaken.
    "LEASE_SECONDS": 300,
    # .. setting_name: BADGES_BRIDGE_REDRIVE_GRACE_SECONDS
    # .. setting_default: 120
    # .. setting_description: Age after which a pending row with no progress is queued again by the redrive.
    "REDRIVE_GRACE_SECONDS": 120,
    # .. setting_name: BADGES_BRIDGE_REDRIVE_INTERVAL_SECONDS
    # .. setting_default: 300
    # .. setting_description: Period of the redrive entry added to CELERYBEAT_SCHEDULE (0: none). Read by
    #   plugin_settings at start-up.
    "REDRIVE_INTERVAL_SECONDS": 300,
    # .. setting_name: BADGES_BRIDGE_DRIFT_INTERVAL_SECONDS
    # .. setting_default: 86400
    # .. setting_description: Period of the provider drift check added to CELERYBEAT_SCHEDULE (0: none).
    "DRIFT_INTERVAL_SECONDS": 86400,
    # .. setting_name: BADGES_BRIDGE_REDRIVE_BATCH_SIZE
    # .. setting_default: 500
    # .. setting_description: Rows queued per redrive run at most, and rejected events replayed per run at most.
    "REDRIVE_BATCH_SIZE": 500,
    # .. setting_name: BADGES_BRIDGE_HTTP_TIMEOUT
    # .. setting_default: (5, 20)
    # .. setting_description: (connect, read) timeouts in seconds of every provider request.
    "HTTP_TIMEOUT": (5.0, 20.0),
    # .. setting_name: BADGES_BRIDGE_CONFIG_CACHE_SECONDS
    # .. setting_default: 3600
    # .. setting_description: Lifetime of the cached per-course badge configuration and of each process's list of
    #   courses with badges (changes invalidate both).
    "CONFIG_CACHE_SECONDS": 3600,
    # .. setting_name: BADGES_BRIDGE_CONFIG_CHECK_SECONDS
    # .. setting_default: 1
    # .. setting_description: How often each process asks the shared cache whether the badge configuration
    #   changed elsewhere. Events of a course that had no enabled badge are dropped, for at most this long after
    #   its first badge is enabled in another process (0: ask on every event, one cache read each).
    "CONFIG_CHECK_SECONDS": 1,
    # .. setting_name: BADGES_BRIDGE_REVOKE_REASON
    # .. setting_default: "The requirements for this badge are no longer met."
    # .. setting_description: Reason sent to the provider when a badge is revoked automatically.
    "REVOKE_REASON": "The requirements for this badge are no longer met.",
    # .. setting_name: BADGES_BRIDGE_EARNER_ID_PREFIX
    # .. setting_default: "openedx-user-"
    # .. setting_description: Prefix of the learner id sent to providers (followed by the user id); give
    #   each Open edX instance its own prefix when several share one provider account.
    "EARNER_ID_PREFIX": "openedx-user-",
    # .. setting_name: BADGES_BRIDGE_PROVIDERS
    # .. setting_default: {}
    # .. setting_description: Extra provider kinds, as {kind: "dotted.path.ProviderClass"}.
    "PROVIDERS": {},
    # .. setting_name: BADGES_BRIDGE_ALLOWED_HTTP_HOSTS
    # .. setting_default: []
    # .. setting_description: Host names (not URLs) whose API base URL may use plain http; every other host
    #   needs https, except loopback hosts. Only for test servers on a trusted network.
    "ALLOWED_HTTP_HOSTS": [],
    # .. setting_name: BADGES_BRIDGE_SECRET_KEYS
    # .. setting_default: None (derived from SECRET_KEY)
    # .. setting_description: Keys that encrypt provider secrets; the first encrypts, all decrypt.
    "SECRET_KEYS": None,
}


#: Values read so far, by name; emptied whenever a BADGES_BRIDGE_ setting changes.
_values: dict[str, Any] = {}


def get_setting(name: str) -> Any:
    """The value of ``BADGES_BRIDGE_<name>``, or its default."""
    try:
        return _values[name]
    except KeyError:
        if name not in DEFAULTS:
            raise KeyError(f"Unknown badges_bridge setting {name!r}") from None
    value = _values[name] = getattr(settings, f"BADGES_BRIDGE_{name}", DEFAULTS[name])
    return value


def _forget_values(*, setting: str, **kwargs: Any) -> None:
    """setting_changed receiver: read the plugin's settings afresh after one of them changed."""
    if setting.startswith("BADGES_BRIDGE_"):
        _values.clear()


setting_changed.connect(_forget_values, dispatch_uid="badges_bridge.conf.forget_values")
