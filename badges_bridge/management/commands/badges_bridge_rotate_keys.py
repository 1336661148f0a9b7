"""Re-encrypt every stored provider secret (API and webhook tokens) with the newest key of BADGES_BRIDGE_SECRET_KEYS."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from badges_bridge import crypto
from badges_bridge.exceptions import ConfigurationError
from badges_bridge.models import ProviderAccount


class Command(BaseCommand):
    """``badges_bridge_rotate_keys``"""

    help = (
        "Re-encrypt every provider token and webhook token with the first key of BADGES_BRIDGE_SECRET_KEYS. Run "
        "it after adding a new key first in the list; older keys can be removed afterwards."
    )

    #: (encrypted field, what it holds) of each account.
    SECRETS = (("token_ciphertext", "API token"), ("webhook_token_ciphertext", "webhook token"))

    def handle(self, *args, **options):
        rotated = 0
        with transaction.atomic():
            for account in ProviderAccount.objects.select_for_update():
                for field, what in self.SECRETS:
                    if not getattr(account, field):
                        continue
                    try:
                        setattr(account, field, crypto.rotate(getattr(account, field)))
                    except ConfigurationError as err:
                        raise CommandError(f"account {account.name}, {what}: {err}") from err
                    account.save(update_fields=[field])
                    rotated += 1
                    self.stdout.write(f"  re-encrypted the {what} of {account.name}")
        self.stdout.write(self.style.SUCCESS(f"{rotated} secret(s) re-encrypted with the newest key."))
