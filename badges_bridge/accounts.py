"""Provider accounts: build clients for them, check them and sync their templates."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from badges_bridge.api_hosts import base_url_problem
from badges_bridge.conf import get_setting
from badges_bridge.data import AccountHealth, SyncResult
from badges_bridge.exceptions import BadgesBridgeError, ConfigurationError, NotFoundError
from badges_bridge.models import BadgeTemplate, CourseBadge, OperatorNotice, ProviderAccount
from badges_bridge.providers import get_provider, get_provider_class
from badges_bridge.providers.base import AccountConfig, BaseProvider, RemoteTemplate, RevokeMode
from badges_bridge.ratelimit import SharedRateLimiter

log = logging.getLogger(__name__)


def rate_limiter(account: ProviderAccount, share: float = 1.0) -> SharedRateLimiter | None:
    """The account's shared request limit (None when it has none); ``share`` of it for backfill work."""
    if account.rate_limit_requests and account.rate_limit_period:
        limit = (account.rate_limit_requests, account.rate_limit_period)
    else:
        limit = get_provider_class(account.provider).default_rate_limit
    if not limit:
        return None
    return SharedRateLimiter(f"account{account.pk}", *limit, share=share)


def account_problem(account: ProviderAccount) -> str:
    """Why ``account`` cannot be used, with what to do about it; '' when it can."""
    if not account.enabled:
        return f"Provider account {account.name!r} is disabled: enable it if its badges should be issued."
    if not account.has_token:
        return f"Provider account {account.name!r} has no API token: enter one on the account."
    problem = base_url_problem(account.api_base_url)
    if problem:
        return f"Provider account {account.name!r}: {problem}"
    return ""


def provider_for(
    account: ProviderAccount,
    *,
    heartbeat: Callable[[], None] | None = None,
    revoke_mode: RevokeMode | None = None,
    budget_share: float = 1.0,
) -> BaseProvider:
    """A provider client bound to ``account``; ConfigurationError when it cannot be used.

    ``heartbeat`` runs before every request (a task renews its lease on the ledger row there);
    ``revoke_mode`` overrides the account's (the retirement clean-up deletes); ``budget_share``
    is the share of the account's request limit the client may fill (backfill work: less than 1).
    """
    problem = account_problem(account)
    if problem:
        raise ConfigurationError(problem)
    config = AccountConfig(
        base_url=account.api_base_url,
        token=account.get_token(),
        organization_id=account.organization_id.strip(),
        revoke_mode=revoke_mode or RevokeMode(account.revoke_mode),
        timeout=tuple(get_setting("HTTP_TIMEOUT")),
        throttle=rate_limiter(account, budget_share),
        heartbeat=heartbeat,
    )
    return get_provider(account.provider, config)


def check_account(account: ProviderAccount) -> AccountHealth:
    """Call the provider to verify the account; the result is also stored on the account."""
    try:
        message = provider_for(account).check_connection()
        ok = True
    except BadgesBridgeError as err:
        message, ok = str(err), False
    ProviderAccount.objects.filter(pk=account.pk).update(
        last_check_at=timezone.now(), last_check_ok=ok, last_check_message=message[:2000]
    )
    return AccountHealth(account.pk, account.name, ok, message)


_TEMPLATE_FIELDS = ("name", "description", "image_url", "url", "state", "allow_duplicates")


def _template_values(item: RemoteTemplate) -> dict:
    """The local fields of a template as the provider lists it."""
    return {
        "name": item.name[:255] or item.external_id,
        "description": item.description,
        "image_url": item.image_url[:500],
        "url": item.url[:500],
        "state": item.state if item.state in BadgeTemplate.State.values else BadgeTemplate.State.ACTIVE,
        "allow_duplicates": item.allow_duplicates,
    }


def _template_gone(template: BadgeTemplate) -> str:
    """The provider no longer has the (locked) template: mark it missing, disable its course badges, tell staff."""
    template.state = BadgeTemplate.State.MISSING
    template.save(update_fields=["state"])
    badges = list(CourseBadge.objects.select_for_update().filter(template=template, enabled=True).order_by("pk"))
    for badge in badges:
        badge.enabled = False
        badge.save()  # raises the configuration version and invalidates the course's cached rules
    courses = ", ".join(str(badge.course_key) for badge in badges) or "none"
    message = (
        f"Template {template.name!r} of account {template.account.name!r} no longer exists at the provider. "
        f"Course badges disabled: {len(badges)} ({courses}). Attach another template to these courses and "
        "enable their badges again; badges already issued are not revoked."
    )
    OperatorNotice.objects.create(account=template.account, template=template, message=message)
    log.warning(
        "badges_bridge: template %s of account %s is gone at the provider; %d course badge(s) disabled",
        template.pk,
        template.account_id,
        len(badges),
    )
    return message


def sync_template(account: ProviderAccount, external_id: str) -> str:
    """Copy one template from the provider as it is now; a template gone there is handled as deleted.

    Returns what was done.
    """
    try:
        remote = provider_for(account).get_template(external_id)
    except NotFoundError:
        remote = None
    now = timezone.now()
    with transaction.atomic():
        template = BadgeTemplate.objects.select_for_update().filter(account=account, external_id=external_id).first()
        if remote is None:
            if template is None:
                return "template unknown here and gone at the provider: nothing to do"
            if template.state == BadgeTemplate.State.MISSING:
                return f"template {template.pk} was already missing"
            return _template_gone(template)
        values = _template_values(remote)
        if template is None:
            template = BadgeTemplate.objects.create(
                account=account, external_id=external_id, last_synced_at=now, **values
            )
            return f"template {template.pk} created ({template.state})"
        changed = [name for name in _TEMPLATE_FIELDS if getattr(template, name) != values[name]]
        for name, value in values.items():
            setattr(template, name, value)
        template.last_synced_at = now
        template.save()
    return f"template {template.pk} updated ({', '.join(changed)})" if changed else f"template {template.pk} unchanged"


def sync_templates(account: ProviderAccount) -> SyncResult:
    """Copy the account's templates from the provider, and record the result on the account.

    Only this account's rows are touched. Templates the provider no longer
    lists are marked missing, never deleted, so badges that use them keep their
    history; their course badges are disabled and staff get a notice. A failure is
    recorded on the account (``last_sync_ok``, ``last_sync_message``) and raised.
    """
    try:
        result = _sync(account)
    except BadgesBridgeError as err:
        _record_sync(account, ok=False, message=f"Template sync failed: {err}")
        raise
    except Exception as err:
        _record_sync(
            account, ok=False, message=f"Template sync failed unexpectedly ({type(err).__name__}): see the log."
        )
        raise
    _record_sync(account, ok=True, message=f"Template sync done: {result.describe()}.")
    return result


def _record_sync(account: ProviderAccount, *, ok: bool, message: str) -> None:
    values = {"last_sync_attempt_at": timezone.now(), "last_sync_ok": ok, "last_sync_message": message[:2000]}
    if ok:
        values["last_synced_at"] = values["last_sync_attempt_at"]
    ProviderAccount.objects.filter(pk=account.pk).update(**values)


def _sync(account: ProviderAccount) -> SyncResult:
    remote = list(provider_for(account).iter_templates())
    now = timezone.now()
    result = SyncResult()
    with transaction.atomic():
        local = {t.external_id: t for t in BadgeTemplate.objects.select_for_update().filter(account=account)}
        seen = set()
        for item in remote:
            seen.add(item.external_id)
            values = _template_values(item)
            template = local.get(item.external_id)
            if template is None:
                BadgeTemplate.objects.create(
                    account=account, external_id=item.external_id, last_synced_at=now, **values
                )
                result.created += 1
                continue
            changed = any(getattr(template, name) != values[name] for name in _TEMPLATE_FIELDS)
            for name, value in values.items():
                setattr(template, name, value)
            template.last_synced_at = now
            template.save()
            result.updated += changed
            result.unchanged += not changed
        for external_id, template in local.items():
            if external_id not in seen and template.state != BadgeTemplate.State.MISSING:
                _template_gone(template)
                result.missing += 1
    log.info("badges_bridge: synced templates of account %s: %s", account.pk, result)
    return result
