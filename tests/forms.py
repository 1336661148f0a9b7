"""Form data the admin tests post."""

from __future__ import annotations


def new_account_form(harness, **changes) -> dict:
    """The add form of a provider account at ``harness``'s fake, with its token; ``changes`` override fields."""
    fields = harness.account_fields()
    data = {
        "name": "Credly main",
        "provider": "credly",
        "base_url_preset": "",
        "api_base_url": fields["base_url"],
        "organization_id": fields["organization_id"],
        "api_token": fields["token"],
        "enabled": "on",
        "revoke_mode": "default",
    }
    return {**data, **changes}
