"""Retired learners, recorded by a keyed hash of their user id so that nothing is sent for them again.

The hash is an HMAC-SHA256 of the user id keyed with each configured secret key
(:func:`badges_bridge.crypto.key_materials`): a tombstone is written with the newest
key and found with any key still configured. The table therefore names nobody: the
user ids cannot be read back from it without the keys.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from badges_bridge import crypto
from badges_bridge.models import RetiredLearner

_LABEL = b"badges_bridge.retired-learner.v1:"


def _digest(key: str, user_id: int) -> str:
    return hmac.new(key.encode(), _LABEL + str(int(user_id)).encode(), hashlib.sha256).hexdigest()


def digests(user_id: int) -> list[str]:
    """The tombstone digests of a user id under every configured key, the newest key first."""
    return [_digest(key, user_id) for key in crypto.key_materials()]


def bury(user_id: int) -> bool:
    """Record that a learner retired; returns whether the record is new."""
    newest, *older = digests(user_id)
    if RetiredLearner.objects.filter(digest__in=[newest, *older]).exists():
        return False
    _record, created = RetiredLearner.objects.get_or_create(digest=newest)
    return created


def is_retired(user_id: int | None) -> bool:
    """Whether the learner with this user id retired (an erased row, with no user id, counts as retired)."""
    if user_id is None:
        return True
    return RetiredLearner.objects.filter(digest__in=digests(user_id)).exists()


def retired_among(user_ids: Iterable[int]) -> set[int]:
    """The user ids among ``user_ids`` that belong to retired learners (one query)."""
    by_digest = {digest: user_id for user_id in set(user_ids) for digest in digests(user_id)}
    if not by_digest:
        return set()
    found = RetiredLearner.objects.filter(digest__in=list(by_digest)).values_list("digest", flat=True)
    return {by_digest[digest] for digest in found}
