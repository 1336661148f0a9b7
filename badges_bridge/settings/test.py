"""Settings for the platform's own test runs with this plugin installed."""

from __future__ import annotations

from badges_bridge.settings.common import plugin_settings as common_settings


def plugin_settings(settings) -> None:
    """No periodic tasks: the entries of the common pass are removed."""
    settings.BADGES_BRIDGE_REDRIVE_INTERVAL_SECONDS = 0
    settings.BADGES_BRIDGE_DRIFT_INTERVAL_SECONDS = 0
    common_settings(settings)
