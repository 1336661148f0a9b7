"""Open edX events sent by the plugin: ``BADGE_AWARDED`` and ``BADGE_REVOKED`` (openedx-events ``BadgeData``).

The ledger decides when: a badge is *announced* when the provider confirmed it and
it becomes a row's live badge, and *withdrawn* when an announced badge stops being
held (revoked by the plugin; revoked, expired, replaced or deleted at the provider;
rejected by the learner). Each :class:`~badges_bridge.models.IssuedBadge` records
whether it is announced, and that flag changes in the same transaction as the
ledger row, so a retried task or a redelivered message never sends an event
twice. The event itself is sent after the transaction commits
(``transaction.on_commit``) and never raises: a failing receiver is logged.

``BadgeData.uuid`` is the provider's badge id when it is a UUID (Credly), otherwise
a UUID derived from the account and the provider's id; ``BadgeTemplateData.uuid``
likewise for the template; ``origin`` is the provider kind (``credly``,
``accredible``).
"""

from __future__ import annotations

import logging
import uuid
from functools import partial

from django.contrib.auth import get_user_model
from django.db import transaction

from badges_bridge import compat, tombstones
from badges_bridge.conf import get_setting
from badges_bridge.models import CourseBadge

log = logging.getLogger(__name__)

AWARDED = "awarded"
REVOKED = "revoked"

#: Namespace of the UUIDs derived for provider ids that are not UUIDs.
NAMESPACE = uuid.UUID("1f0c7f4e-5d8a-4b6e-9c3a-2e7d9b1a4c55")


def as_uuid(account_id: int, external_id: str) -> str:
    """The provider's id when it is a UUID, else a UUID derived from the account and that id."""
    try:
        return str(uuid.UUID(external_id))
    except ValueError:
        return str(uuid.uuid5(NAMESPACE, f"{account_id}:{external_id}"))


def on_commit(kind: str, user_id: int | None, course_badge_id: int, external_id: str) -> None:
    """Send the event of a ledger transition once the current transaction commits (dropped on rollback)."""
    if user_id is None or not get_setting("SEND_BADGE_EVENTS"):
        return
    transaction.on_commit(partial(send, kind, user_id, course_badge_id, external_id))


def send(kind: str, user_id: int, course_badge_id: int, external_id: str) -> bool:
    """Send BADGE_AWARDED or BADGE_REVOKED now; returns whether it was sent. Never raises."""
    try:
        signal = compat.badge_signal(kind)
        if signal is None:
            return False
        user = get_user_model().objects.filter(pk=user_id).first()
        if user is None or tombstones.is_retired(user_id):
            log.info("badges_bridge: no badge %s event: the learner is gone or retired", kind)
            return False
        badge = CourseBadge.objects.select_related("template__account").get(pk=course_badge_id)
        signal.send_event(badge=_badge_data(user, badge, external_id))
    except Exception:  # noqa: BLE001 - an outgoing event must never break the pipeline
        log.exception("badges_bridge: could not send the badge %s event of course badge %s", kind, course_badge_id)
        return False
    return True


def _badge_data(user, badge: CourseBadge, external_id: str):
    from openedx_events.learning.data import BadgeData, BadgeTemplateData, UserData, UserPersonalData

    template = badge.template
    account = template.account
    return BadgeData(
        uuid=as_uuid(account.pk, external_id),
        user=UserData(
            id=user.pk,
            is_active=user.is_active,
            pii=UserPersonalData(username=user.username, email=user.email, name=compat.learner_full_name(user)),
        ),
        template=BadgeTemplateData(
            uuid=as_uuid(account.pk, template.external_id),
            origin=account.provider,
            name=template.name,
            description=template.description,
            image_url=template.image_url,
        ),
    )
