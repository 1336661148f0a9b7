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
    # .. setting_description: Period of the redrive entry in CELERYBEAT_SCHEDULE (0: none). Read by the
    #   plugin's settings modules at start-up; set it in the LMS YAML so the production pass sees it.
    "REDRIVE_INTERVAL_SECONDS": 300,
    # .. setting_name: BADGES_BRIDGE_DRIFT_INTERVAL_SECONDS
    # .. setting_default: 86400
    # .. setting_description: Period of the provider drift check entry in CELERYBEAT_SCHEDULE (0: none). Read
    #   like BADGES_BRIDGE_REDRIVE_INTERVAL_SECONDS.
    "DRIFT_INTERVAL_SECONDS": 86400,
    # .. setting_name: BADGES_BRIDGE_TEMPLATE_RESYNC_SECONDS
    # .. setting_default: 300
    # .. setting_description: When the provider refuses to issue a badge in a way that may mean its template
    #   changed there (archived, removed), the account's templates are synced again, at most once per this many
    #   seconds per account (0: never).
    "TEMPLATE_RESYNC_SECONDS": 300,
    # .. setting_name: BADGES_BRIDGE_REDRIVE_BATCH_SIZE
    # .. setting_default: 500
    # .. setting_description: Rows queued per redrive run at most, and rejected events replayed per run at most.
    "REDRIVE_BATCH_SIZE": 500,
    # .. setting_name: BADGES_BRIDGE_BULK_MIN_ROWS
    # .. setting_default: 2
    # .. setting_description: Where the provider has a bulk create (Accredible), an issue task that finds at
    #   least this many first awards of its account ready (its own included) sends them in one request;
    #   0 turns bulk creates off.
    "BULK_MIN_ROWS": 2,
    # .. setting_name: BADGES_BRIDGE_BACKFILL_BUDGET_SHARE
    # .. setting_default: 0.9
    # .. setting_description: Share (0 to 1) of each provider account's request limit up to which backfill work
    #   may fill a window (counting every request of the window); the rest is kept for interactive work (learners
    #   who just passed or failed), which may use the whole limit. Every worker counts in the one shared budget.
    "BACKFILL_BUDGET_SHARE": 0.9,
    # .. setting_name: BADGES_BRIDGE_BACKFILL_FEED_SECONDS
    # .. setting_default: 10
    # .. setting_description: While backfill rows wait, the feeder task runs again after this many seconds and
    #   queues what the backfill share of each account's current window has room for.
    "BACKFILL_FEED_SECONDS": 10,
    # .. setting_name: BADGES_BRIDGE_BACKFILL_FEED_BATCH
    # .. setting_default: 200
    # .. setting_description: Most backfill rows the feeder queues per account per run (and per run of an
    #   account without a request limit).
    "BACKFILL_FEED_BATCH": 200,
    # .. setting_name: BADGES_BRIDGE_BACKFILL_QUEUE
    # .. setting_default: None
    # .. setting_description: Celery queue of backfill tasks (the feeder and the first awards it queues);
    #   None uses BADGES_BRIDGE_CELERY_QUEUE. A queue of its own, with its own workers, keeps interactive
    #   tasks from ever waiting behind backfill tasks.
    "BACKFILL_QUEUE": None,
    # .. setting_name: BADGES_BRIDGE_BACKFILL_RUN_STALE_SECONDS
    # .. setting_default: 3600
    # .. setting_description: A backfill run started by course staff (Studio page or staff API) that is queued
    #   or running and has made no progress for this many seconds is taken as lost (its worker died, or the
    #   broker dropped its task): the next start marks it failed and starts a new run. A run reports progress
    #   after every chunk of learners, so this only needs to exceed the time one chunk takes.
    "BACKFILL_RUN_STALE_SECONDS": 3600,
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
    # .. setting_name: BADGES_BRIDGE_RETIREMENT_ACTION
    # .. setting_default: "delete"
    # .. setting_description: What is done at the provider to the badges of a learner who retires: "delete"
    #   removes them (the provider keeps no record), "revoke" takes them back with the account's revoke mode
    #   (Credly: revoked, Accredible: expired; the provider keeps the record). The plugin's own copy of the
    #   learner's data is erased either way.
    "RETIREMENT_ACTION": "delete",
    # .. toggle_name: BADGES_BRIDGE_SEND_BADGE_EVENTS
    # .. toggle_implementation: SettingToggle
    # .. toggle_default: True
    # .. toggle_description: Send the Open edX events BADGE_AWARDED and BADGE_REVOKED (openedx-events BadgeData)
    #   when a provider confirms a badge and when a badge announced that way is no longer held.
    # .. toggle_use_cases: opt_out
    # .. toggle_creation_date: 2026-12-10
    "SEND_BADGE_EVENTS": True,
    # .. setting_name: BADGES_BRIDGE_PROVIDER_EVENT_RETENTION_DAYS
    # .. setting_default: 30
    # .. setting_description: Days the record of a provider notification is kept once handled, so that a
    #   notification delivered again within that time changes nothing (Credly retries for up to 25 days).
    #   The redrive deletes older records.
    "PROVIDER_EVENT_RETENTION_DAYS": 30,
    # .. toggle_name: BADGES_BRIDGE_REQUIRE_CONSENT
    # .. toggle_implementation: SettingToggle
    # .. toggle_default: False
    # .. toggle_description: When True, nothing about a learner (name, e-mail address, course, grade) is sent to a
    #   badge provider until the learner agrees on the learner page: badges they qualify for wait in the ledger
    #   state waiting_consent, and withdrawing consent stops new sends. A learner's opt-out applies either way.
    # .. toggle_use_cases: opt_in
    # .. toggle_creation_date: 2026-12-02
    "REQUIRE_CONSENT": False,
    # .. setting_name: BADGES_BRIDGE_ISSUER_NAME
    # .. setting_default: None (the platform's PLATFORM_NAME, else the course's organization code)
    # .. setting_description: The issuing organization shown to learners and put in LinkedIn's "add to profile"
    #   link.
    "ISSUER_NAME": None,
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
