"""Provider clients and the registry that maps provider kinds to their classes."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from badges_bridge.exceptions import ConfigurationError
from badges_bridge.providers.base import AccountConfig, BaseProvider

#: Providers shipped with the plugin; BADGES_BRIDGE_PROVIDERS adds to or overrides these.
BUILTIN_PROVIDERS = {
    "credly": "badges_bridge.providers.credly.CredlyProvider",
    "accredible": "badges_bridge.providers.accredible.AccredibleProvider",
}


def provider_paths() -> dict[str, str]:
    """Provider kind -> dotted path of its class, built-ins merged with the setting."""
    return {**BUILTIN_PROVIDERS, **getattr(settings, "BADGES_BRIDGE_PROVIDERS", {})}


@cache
def _load(path: str) -> type[BaseProvider]:
    try:
        klass = import_string(path)
    except ImportError as err:
        raise ConfigurationError(f"BADGES_BRIDGE_PROVIDERS names {path!r}, which cannot be imported: {err}") from err
    if not (isinstance(klass, type) and issubclass(klass, BaseProvider)):
        raise ConfigurationError(f"BADGES_BRIDGE_PROVIDERS names {path!r}, which is not a BaseProvider subclass")
    return klass


def get_provider_class(kind: str) -> type[BaseProvider]:
    """The provider class registered for ``kind``; ConfigurationError when there is none."""
    paths = provider_paths()
    if kind not in paths:
        raise ConfigurationError(
            f"Unknown provider kind {kind!r}; known kinds: {', '.join(sorted(paths))}. "
            "Register new ones in the BADGES_BRIDGE_PROVIDERS setting."
        )
    return _load(paths[kind])


def get_provider(kind: str, config: AccountConfig) -> BaseProvider:
    """An instance of the provider registered for ``kind``, bound to one account."""
    return get_provider_class(kind)(config)


def provider_choices() -> list[tuple[str, str]]:
    """(kind, display name) pairs for forms; kinds that fail to load show their error."""
    choices = []
    for kind in sorted(provider_paths()):
        try:
            choices.append((kind, get_provider_class(kind).display_name))
        except ConfigurationError:
            choices.append((kind, f"{kind} (cannot be loaded)"))
    return choices
