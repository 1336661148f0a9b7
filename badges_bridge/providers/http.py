"""The HTTP layer shared by every provider client.

It owns the ``requests`` session, timeouts, the user agent, the client-side
throttle hook and the mapping of HTTP failures onto the exception hierarchy.
A provider supplies its authentication and a parser that extracts a readable
message from its error bodies.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import requests

from badges_bridge import __version__
from badges_bridge.exceptions import (
    AuthenticationError,
    NotFoundError,
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)

log = logging.getLogger(__name__)

USER_AGENT = f"openedx-badges-bridge/{__version__}"
#: Longest provider message kept in an exception (and so in the ledger).
MAX_MESSAGE_LENGTH = 500

ErrorParser = Callable[[Any], str]
#: Characters of an unquoted local part (RFC 5322 atom characters, dots, and any letter or digit).
_LOCAL_CHARS = r"[\w.!#$%&'*+/=?^`{|}~-]"
#: An e-mail address: a dot-atom or quoted local part, then a dotted domain name or a [domain literal].
#: A match starts only where no local-part character precedes it, which keeps it whole and the scan linear.
EMAIL_PATTERN = re.compile(
    rf"""
    (?<!{_LOCAL_CHARS})
    (?: {_LOCAL_CHARS}+ | "(?:[^"\\\r\n]|\\.)*" )
    @
    (?: [\w-]+(?:\.[\w-]+)+ | \[[^\[\]\s]+\] )
    """,
    re.VERBOSE,
)
#: What an e-mail address is replaced with in provider messages.
EMAIL_PLACEHOLDER = "<e-mail>"


def redact_emails(text: str) -> str:
    """``text`` with every e-mail address replaced by ``<e-mail>``."""
    return EMAIL_PATTERN.sub(EMAIL_PLACEHOLDER, text)


class RedactEmailsFilter(logging.Filter):
    """Removes e-mail addresses, percent-encoded or not, from the arguments of a log record.

    urllib3 logs every request line at DEBUG, query string included, and provider look-ups
    (Credly's ``recipient_email::`` filter) carry the learner's address there.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record's string arguments that hold an e-mail address; never drops a record."""
        if isinstance(record.args, tuple):
            record.args = tuple(_without_emails(arg) for arg in record.args)
        return True


def _without_emails(value: Any) -> Any:
    if not isinstance(value, str) or ("@" not in value and "%40" not in value.upper()):
        return value
    decoded = unquote(value)
    return redact_emails(decoded) if EMAIL_PATTERN.search(decoded) else value


#: The logger of urllib3's request lines, which requests uses.
_REQUEST_LOGGER = logging.getLogger("urllib3.connectionpool")
if not any(isinstance(existing, RedactEmailsFilter) for existing in _REQUEST_LOGGER.filters):
    _REQUEST_LOGGER.addFilter(RedactEmailsFilter())


#: Ports implied by a URL's scheme.
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int | None] | None:
    """``(scheme, host, port)`` of an absolute URL, lower-cased, with the scheme's port made explicit.

    None when the port is not a valid number.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    return scheme, (parts.hostname or "").lower(), port


def _origin_text(url: str) -> str:
    """``scheme://host:port`` of a URL for messages (never its path or query, which may hold e-mails)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    origin = origin_of(url)
    port = origin[2] if origin else None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def parse_retry_after(value: str | None) -> float | None:
    """Read a Retry-After header given in seconds or as an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    from django.utils import timezone

    return max(0.0, (moment - timezone.now()).total_seconds())


def default_error_message(body: Any) -> str:
    """Best-effort readable message from a JSON (or text) error body."""
    if isinstance(body, str):
        return body
    if isinstance(body, dict):
        for key in ("message", "error", "errors", "detail", "data"):
            if key in body and body[key]:
                return _flatten(body[key])
    return _flatten(body)


def _flatten(value: Any) -> str:
    """Turn a nested error structure into one line of text."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "message" in value and isinstance(value["message"], str):
            return value["message"]
        return "; ".join(f"{key}: {_flatten(item)}" for key, item in value.items())
    if isinstance(value, list):
        return "; ".join(_flatten(item) for item in value)
    return json.dumps(value)


class HttpClient:
    """A small JSON-over-HTTPS client bound to one provider account."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: requests.auth.AuthBase,
        timeout: tuple[float, float],
        provider_name: str,
        error_parser: ErrorParser = default_error_message,
        throttle: Callable[[], None] | None = None,
        heartbeat: Callable[[], None] | None = None,
        session: requests.Session | None = None,
    ):
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeout = timeout
        self.provider_name = provider_name
        self.error_parser = error_parser
        self.throttle = throttle
        self.heartbeat = heartbeat
        self.session = session or requests.Session()
        self.session.auth = auth
        self.session.headers.update(
            {"User-Agent": USER_AGENT, "Accept": "application/json", "Content-Type": "application/json"}
        )

    def url(self, path: str) -> str:
        """Absolute URL for ``path``: relative to the base URL, or an absolute URL on the base URL's origin.

        Every request carries the account's token, so an absolute URL whose scheme, host or port
        differs from the base URL's (a paging link to another host, say) raises PermanentProviderError.
        """
        parts = urlsplit(path)
        if not (parts.scheme or parts.netloc):
            return urljoin(self.base_url, path.lstrip("/"))
        if origin_of(path) != origin_of(self.base_url):
            raise PermanentProviderError(
                f"Did not send a {self.provider_name} request to {_origin_text(path)}: it is not the configured "
                f"API host {_origin_text(self.base_url)}, the only host that receives the account's API token. "
                "If the provider moved its API, change the account's API base URL."
            )
        return path

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        answers: tuple[int, ...] = (),
    ) -> tuple[int, Any]:
        """Send one request and return ``(status, decoded JSON or None)``.

        Raises a :class:`ProviderError` subclass for every failure, with the
        provider's own message when it gave one, except for the error statuses
        listed in ``answers``, whose bodies the caller reads itself.
        """
        url = self.url(path)
        if self.heartbeat is not None:
            self.heartbeat()
        if self.throttle is not None:
            self.throttle()
        path = urlsplit(path).path  # what logs and messages show: never a query string (it may hold e-mails)
        data = None if json_body is None else json.dumps(json_body)
        try:
            response = self.session.request(method, url, params=params, data=data, timeout=self.timeout)
        except requests.Timeout as err:
            raise TransientProviderError(
                f"{self.where} did not answer {method} {path} in time",
                next_step=f"{self.provider_name} may be slow or down: the work is retried automatically.",
            ) from err
        except requests.RequestException as err:
            raise TransientProviderError(
                f"Could not reach {self.where} ({method} {path}): {_connection_problem(err)}",
                next_step=(
                    f"{self.provider_name} or the network may be down: the work is retried automatically. If this "
                    "lasts, check the account's API base URL and run Test connection."
                ),
            ) from err
        log.debug("%s %s %s -> %s", self.provider_name, method, path, response.status_code)
        if response.status_code >= 400 and response.status_code not in answers:
            raise self.error_for(response, method, path)
        if response.status_code == 204 or not response.content:
            return response.status_code, None
        try:
            return response.status_code, response.json()
        except ValueError as err:
            raise TransientProviderError(
                f"{self.where} sent an answer to {method} {path} that is not JSON",
                status_code=response.status_code,
                next_step=(
                    "The API base URL may point at a web page rather than the API: check it. Otherwise the work "
                    "is retried automatically."
                ),
            ) from err

    @property
    def where(self) -> str:
        """The provider and its host for messages, e.g. "Credly (api.credly.com)"."""
        return f"{self.provider_name} ({host_text(self.base_url)})"

    def error_for(self, response: requests.Response, method: str, path: str) -> ProviderError:
        """Map an HTTP error response onto the exception hierarchy."""
        status = response.status_code
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        # Providers sometimes echo the recipient's address: keep it out of logs and the ledger.
        message = redact_emails((self.error_parser(body) or "").strip())[:MAX_MESSAGE_LENGTH]
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429:
            wait = f" in {retry_after:.0f}s, as the provider asked" if retry_after is not None else ""
            return RateLimitedError(
                f"{self.where} asked to slow down on {method} {path} (rate limit reached)",
                status_code=status,
                provider_message=message,
                retry_after=retry_after,
                next_step=f"The work is retried automatically{wait}.",
            )
        if status >= 500 or status in (408, 425):
            if "<html" in message.lower():
                message = "(HTML error page)"
            return TransientProviderError(
                f"{self.where} failed on {method} {path}",
                status_code=status,
                provider_message=message,
                retry_after=retry_after,
                next_step=f"{self.provider_name} is having trouble: the work is retried automatically.",
            )
        if status in (401, 403):
            return AuthenticationError(
                f"{self.where} refused the API token on {method} {path}",
                status_code=status,
                provider_message=message,
                next_step=(
                    "Enter a valid API token on the provider account (it may have expired or lack the rights), "
                    "then run Test connection."
                ),
            )
        if status == 404:
            return NotFoundError(
                f"{self.where} found nothing at {method} {path}",
                status_code=status,
                provider_message=message,
                next_step=self.not_found_step,
            )
        return PermanentProviderError(
            f"{self.where} refused {method} {path}",
            status_code=status,
            provider_message=message,
            next_step="The provider's message says why: fix the cause at the provider or in the badge settings.",
        )

    #: The next step of a 404: providers name what their paths hold.
    not_found_step = "Check the account's organization id, and sync templates in case a template was removed."


def host_text(url: str) -> str:
    """The host of a URL for messages, with its port when it is not the scheme's default."""
    origin = origin_of(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    if origin is None or origin[2] in (None, DEFAULT_PORTS.get(origin[0])):
        return host
    return f"{host}:{origin[2]}"


def _connection_problem(error: requests.RequestException) -> str:
    """What went wrong with a request that got no answer, in plain words (never the URL: it may hold e-mails)."""
    if isinstance(error, requests.exceptions.SSLError):
        return "the secure connection failed (SSLError: check the host name and its certificate)"
    if isinstance(error, requests.ConnectionError):
        return "the connection failed (ConnectionError: host unknown, refused or unreachable)"
    return f"the request failed ({type(error).__name__})"
