"""A uniform handle on a fake provider, used by the conformance suite, the
integration tests and the demo.

Each fake provider ships a :class:`ProviderHarness` subclass. A third-party
provider that ships its own fake can subclass it too, register it in the
``BADGES_BRIDGE_TEST_HARNESSES`` setting, and run the conformance suite
(:mod:`badges_bridge.testing.conformance`) against it.
"""

from __future__ import annotations

import abc
from functools import cache
from typing import Any, ClassVar

from django.conf import settings
from django.utils.module_loading import import_string

from badges_bridge.providers.base import AccountConfig, AwardState
from badges_bridge.testing.server import FakeServer, Fault

#: Harnesses of the providers shipped with the plugin.
BUILTIN_HARNESSES = {
    "credly": "badges_bridge.testing.fake_credly.CredlyHarness",
    "accredible": "badges_bridge.testing.fake_accredible.AccredibleHarness",
}

#: Abstract operations that faults can target (see ProviderHarness.inject). Harnesses of providers with a
#: bulk create (``BaseProvider.bulk_size`` above 0) also route "bulk_issue".
OPERATIONS = ("list_templates", "issue", "find", "get", "revoke", "any")


class ProviderHarness(abc.ABC):
    """Starts one fake provider server and exposes what tests need of it."""

    #: The provider kind this harness fakes (a key of the provider registry).
    kind: ClassVar[str]
    #: The token the fake accepts.
    token: ClassVar[str] = "fake-token-0001"

    def __init__(self) -> None:
        self.server: FakeServer = self.make_server()

    @abc.abstractmethod
    def make_server(self) -> FakeServer:
        """Build (not start) the fake server."""

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> ProviderHarness:
        """Start serving on loopback."""
        self.server.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.server.stop()

    def __enter__(self) -> ProviderHarness:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget every stored object, request and fault."""
        self.server.reset()

    # -- accounts -------------------------------------------------------------------------------
    @abc.abstractmethod
    def account_fields(self, account: str = "main") -> dict[str, str]:
        """``base_url``, ``token`` and ``organization_id`` of one of the fake's accounts.

        ``account`` names an account; different names give isolated accounts.
        """

    def account_config(self, account: str = "main", **overrides: Any) -> AccountConfig:
        """An AccountConfig for a provider client talking to this fake."""
        fields = {**self.account_fields(account), "timeout": (2.0, 2.0), **overrides}
        return AccountConfig(**fields)

    # -- seeding and inspection -----------------------------------------------------------------
    @abc.abstractmethod
    def seed_template(
        self, name: str, *, account: str = "main", state: str = "active", allow_duplicates: bool = False
    ) -> str:
        """Create a template/group at the fake and return its provider id."""

    @abc.abstractmethod
    def live_awards(self, template_id: str, email: str, account: str = "main") -> list[dict]:
        """The fake's live (not revoked, expired or deleted) badges of this template for this e-mail."""

    @abc.abstractmethod
    def all_awards(self, account: str = "main") -> list[dict]:
        """Every badge the fake holds for the account, in any state."""

    @abc.abstractmethod
    def award_state(self, external_id: str, account: str = "main") -> AwardState:
        """The state of one badge as the fake sees it (DELETED when it is gone)."""

    @abc.abstractmethod
    def set_award_state(self, external_id: str, state: AwardState, account: str = "main") -> None:
        """Change a badge on the provider side (learner accepts/rejects, admin expires/deletes)."""

    @abc.abstractmethod
    def duplicates_created(self) -> int:
        """How many times the fake stored a second live badge for the same template and recipient."""

    # -- faults ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def operation_route(self, operation: str) -> tuple[str, str]:
        """(HTTP method, path regex) of an abstract operation from OPERATIONS."""

    def inject(self, operation: str, kind: str = "status", **kwargs: Any) -> Fault:
        """Arm a fault on an abstract operation (see FakeServer.inject for the options)."""
        method, path = self.operation_route(operation)
        return self.server.inject(method, path, kind, **kwargs)

    def requests_for(self, operation: str) -> list:
        """Journal entries of one abstract operation."""
        method, path = self.operation_route(operation)
        return self.server.requests_to(method, path)

    def wait_for_arrival(self, operation: str, count: int = 1, timeout: float = 10.0) -> None:
        """Block until ``count`` requests of an abstract operation have arrived, answered or not."""
        method, path = self.operation_route(operation)
        self.server.wait_for_arrival(method, path, count, timeout)

    def live_awards_by_email(self, template_id: str, account: str = "main") -> dict[str, list[dict]]:
        """The live badges of a template, by lower-cased recipient e-mail (one pass over the fake's store).

        The default asks :meth:`live_awards` for each e-mail of :meth:`all_awards`; fakes override it
        when their stored form names the template and the e-mail.
        """
        emails = {self.award_email(award).lower() for award in self.all_awards(account)}
        found = {email: self.live_awards(template_id, email, account) for email in emails}
        return {email: awards for email, awards in found.items() if awards}

    def award_email(self, award: dict) -> str:
        """The recipient e-mail address of one badge as :meth:`all_awards` returns it."""
        raise NotImplementedError(f"{type(self).__name__} does not say where a badge's e-mail address is")

    def award_id(self, award: dict) -> str:
        """The provider id of one badge as :meth:`all_awards` returns it."""
        return str(award["id"])


def harness_paths() -> dict[str, str]:
    """Provider kind -> dotted path of its harness, built-ins merged with the setting."""
    return {**BUILTIN_HARNESSES, **getattr(settings, "BADGES_BRIDGE_TEST_HARNESSES", {})}


@cache
def get_harness_class(kind: str) -> type[ProviderHarness]:
    """The harness class registered for a provider kind."""
    return import_string(harness_paths()[kind])
