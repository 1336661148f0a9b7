"""Which API base URLs may receive a provider account's token.

A token travels with every request, so it only goes over https, except to a
loopback host (a server on the same machine, such as the test fakes) or a host
an operator listed in ``BADGES_BRIDGE_ALLOWED_HTTP_HOSTS``.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from badges_bridge.conf import get_setting

#: Host names that always mean this machine.
LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost``, an address of 127.0.0.0/8 or ``::1``."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_http_hosts() -> frozenset[str]:
    """The hosts of ``BADGES_BRIDGE_ALLOWED_HTTP_HOSTS``, lower-cased (a lone string counts as one host)."""
    hosts = get_setting("ALLOWED_HTTP_HOSTS") or ()
    if isinstance(hosts, str):
        hosts = [hosts]
    return frozenset(str(host).strip().lower() for host in hosts)


def base_url_problem(url: str) -> str:
    """Why ``url`` may not receive an API token ('' when it may)."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme == "https" or (scheme == "http" and (is_loopback(host) or host in allowed_http_hosts())):
        return ""
    return (
        f"The API base URL must use https: {scheme}://{host} would receive the account's API token "
        "unencrypted. Use the provider's https URL. Plain http is accepted only for loopback hosts (localhost, "
        "127.0.0.0/8, ::1) and for hosts listed in the BADGES_BRIDGE_ALLOWED_HTTP_HOSTS setting."
    )
