"""Production settings: nothing beyond the common defaults."""

from __future__ import annotations

from badges_bridge.settings.common import plugin_settings as common_settings


def plugin_settings(settings) -> None:
    """Apply the common defaults (operator values set by Tutor or YAML win)."""
    common_settings(settings)
