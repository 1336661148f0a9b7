"""Provider webhooks: one URL per provider account, reached through an unguessable path token.

Credly's notifications are unsigned, so the URL's token is the only thing that
tells a notification from a stranger's POST, and the notification itself is
only a hint: the view reads nothing from it but the event id, records that id
(a delivery seen before changes nothing), answers 200 at once and leaves the
rest to a task, which fetches the event back from the provider with the
account's own credentials and acts on what it fetched (see ADR 0009).

The token is looked up by its SHA-256 digest, never by its value: the database
compares digests, and the digest of a guess tells nothing about the stored
token, so neither the look-up nor the final constant-time comparison leaks how
close a guess came. An unknown token, a disabled account and an account whose
provider sends no webhooks all get the same 404. Neither the token nor the URL
is ever logged, and Django's own request log is kept from recording the path
of a refused request.
"""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from badges_bridge import api
from badges_bridge.apps import LMS_URL_PREFIX
from badges_bridge.exceptions import ConfigurationError, WebhookPayloadError
from badges_bridge.models import ProviderAccount, webhook_token_digest
from badges_bridge.providers import get_provider_class

log = logging.getLogger(__name__)

#: The webhook path under the plugin's LMS URLs (see urls.py).
WEBHOOK_PATH = "webhooks/{token}/"
#: Largest notification body accepted; a larger declared one is refused before it is read.
MAX_BODY_BYTES = 65_536


def supports_webhooks(account: ProviderAccount) -> bool:
    """Whether the account's provider notifies webhooks."""
    try:
        return get_provider_class(account.provider).supports_webhooks
    except ConfigurationError:
        return False


def webhook_url(account: ProviderAccount) -> str:
    """The full URL to give the provider for this account (LMS_ROOT_URL, then the plugin's path)."""
    root = str(getattr(settings, "LMS_ROOT_URL", "") or "").rstrip("/")
    return f"{root}/{LMS_URL_PREFIX}{WEBHOOK_PATH.format(token=account.get_webhook_token())}"


def account_for_token(token: str) -> ProviderAccount | None:
    """The account whose webhook token this is, or None; the token is only ever compared as a digest."""
    digest = webhook_token_digest(token)
    account = ProviderAccount.objects.filter(webhook_token_digest=digest).first()
    if account is None or not hmac.compare_digest(account.webhook_token_digest or "", digest):
        return None
    return account


def _declared_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _answer(http_status: int, **body: str) -> JsonResponse:
    """A JSON answer that Django's request log does not record (the path holds the token)."""
    response = JsonResponse(body, status=http_status)
    response._has_been_logged = True  # noqa: SLF001 - Django's own flag to skip its 4xx/5xx request log line
    return response


@method_decorator(csrf_exempt, name="dispatch")
class ProviderWebhookView(View):
    """POST: a provider's notification for the account owning the token in the URL."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, token: str) -> JsonResponse:
        """Record the notified event id and queue its fetch; 200 at once, 404 for an unknown token."""
        account = account_for_token(token)
        if account is None or not account.enabled or not supports_webhooks(account):
            return _answer(404, detail="Not found.")
        try:
            if _declared_length(request) > MAX_BODY_BYTES:
                raise WebhookPayloadError("the notification is too large")
            notification = get_provider_class(account.provider).parse_notification(request.body)
        except WebhookPayloadError as err:
            log.info("badges_bridge: malformed notification for account %s: %s", account.pk, err)
            return _answer(400, detail=str(err))
        expected = account.organization_id.strip()
        if notification.organization_id and expected and notification.organization_id != expected:
            log.warning("badges_bridge: notification for account %s names another organization; ignored", account.pk)
            return _answer(200, status="ignored")
        new = api.receive_provider_event(account.pk, notification.event_id)
        return _answer(200, status="accepted" if new else "duplicate")

    def http_method_not_allowed(self, request: HttpRequest, *args, **kwargs) -> JsonResponse:
        """405 without Django's log line, which would show the path and its token."""
        response = _answer(405, detail="Method not allowed.")
        response["Allow"] = "POST"
        return response
