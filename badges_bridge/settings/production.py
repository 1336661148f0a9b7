"""Production settings: the common pass again, now with the operator's values."""

from __future__ import annotations

from badges_bridge.settings.common import plugin_settings as common_settings


def plugin_settings(settings) -> None:
    """Redo the beat entries with the operator's intervals and queue, read from the YAML by now."""
    common_settings(settings)
