"""Create provider accounts, templates and course badges wired to a fake provider."""

from __future__ import annotations

from typing import Any

from opaque_keys.edx.keys import CourseKey

from badges_bridge.models import BadgeTemplate, CourseBadge, ProviderAccount
from badges_bridge.testing.harness import ProviderHarness


def make_account(
    harness: ProviderHarness, name: str | None = None, account: str = "main", **fields: Any
) -> ProviderAccount:
    """A ProviderAccount pointing at the harness's fake server, with its token encrypted."""
    info = harness.account_fields(account)
    record = ProviderAccount(
        provider=harness.kind,
        name=name or f"{harness.kind}-{account}",
        api_base_url=info["base_url"],
        organization_id=info.get("organization_id", ""),
        **fields,
    )
    record.set_token(info["token"])
    record.save()
    return record


def make_template(
    account: ProviderAccount, harness: ProviderHarness, name: str = "Course completion", **seed: Any
) -> BadgeTemplate:
    """Seed a template at the fake and record it locally, as a sync would."""
    external_id = harness.seed_template(name, **seed)
    synced = {key: seed[key] for key in ("state", "allow_duplicates") if key in seed}
    return BadgeTemplate.objects.create(account=account, external_id=external_id, name=name, **synced)


def make_course_badge(template: BadgeTemplate, course_key: str | CourseKey, **fields: Any) -> CourseBadge:
    """Attach a template to a course."""
    key = CourseKey.from_string(str(course_key))
    return CourseBadge.objects.create(template=template, course_key=key, **fields)
