"""Secrets at rest and the shared client-side rate limit."""

import base64
import hashlib

import pytest
from cryptography.fernet import Fernet, InvalidToken

from badges_bridge import crypto
from badges_bridge.exceptions import ConfigurationError, RateLimitedError
from badges_bridge.models import ProviderAccount
from badges_bridge.ratelimit import SharedRateLimiter


def test_tokens_are_encrypted_and_round_trip(settings):
    settings.BADGES_BRIDGE_SECRET_KEYS = [Fernet.generate_key().decode()]
    account = ProviderAccount(name="a", provider="credly")
    account.set_token("  secret-token  ")
    assert "secret-token" not in account.token_ciphertext
    assert account.get_token() == "secret-token"


def test_rotation_keeps_old_secrets_readable(settings):
    settings.BADGES_BRIDGE_SECRET_KEYS = ["an old passphrase of some length"]
    old = crypto.encrypt("s3cret")
    settings.BADGES_BRIDGE_SECRET_KEYS = ["a brand new passphrase, longer", "an old passphrase of some length"]
    assert crypto.decrypt(old) == "s3cret"
    rotated = crypto.rotate(old)
    settings.BADGES_BRIDGE_SECRET_KEYS = ["a brand new passphrase, longer"]
    assert crypto.decrypt(rotated) == "s3cret"
    with pytest.raises(ConfigurationError, match="cannot be decrypted"):
        crypto.decrypt(old)


def test_without_the_setting_the_secret_key_is_used(settings):
    settings.BADGES_BRIDGE_SECRET_KEYS = None
    token = crypto.encrypt("x")
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "another key entirely"
    assert crypto.decrypt(token) == "x"


#: The derivation label of versions that derived passphrase keys with one SHA-256.
LEGACY_LABEL = b"badges_bridge.secrets.v1:"
PASSPHRASE = "a passphrase that is not a Fernet key"


def legacy_fernet(passphrase: str) -> Fernet:
    """The Fernet that earlier versions derived from a passphrase, reproduced independently."""
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(LEGACY_LABEL + passphrase.encode()).digest()))


def test_passphrases_no_longer_use_the_single_hash_derivation(settings):
    settings.BADGES_BRIDGE_SECRET_KEYS = [PASSPHRASE]
    token = crypto.encrypt("s3cret")

    with pytest.raises(InvalidToken):
        legacy_fernet(PASSPHRASE).decrypt(token.encode())
    assert crypto.decrypt(token) == "s3cret"


def test_the_secret_key_no_longer_uses_the_single_hash_derivation(settings):
    settings.BADGES_BRIDGE_SECRET_KEYS = None
    token = crypto.encrypt("s3cret")

    with pytest.raises(InvalidToken):
        legacy_fernet(settings.SECRET_KEY).decrypt(token.encode())
    assert crypto.decrypt(token) == "s3cret"


def test_fernet_keys_are_used_as_they_are(settings):
    key = Fernet.generate_key()
    settings.BADGES_BRIDGE_SECRET_KEYS = [key.decode(), PASSPHRASE]
    assert Fernet(key).decrypt(crypto.encrypt("s3cret").encode()) == b"s3cret"


@pytest.mark.parametrize("position", [0, 1])
def test_tokens_stored_by_earlier_versions_still_decrypt(settings, position):
    keys = ["the newest passphrase, listed first"]
    keys.insert(position, PASSPHRASE)
    settings.BADGES_BRIDGE_SECRET_KEYS = keys
    stored = legacy_fernet(PASSPHRASE).encrypt(b"s3cret").decode()

    assert crypto.decrypt(stored) == "s3cret"


def test_tokens_stored_with_the_secret_key_by_earlier_versions_still_decrypt(settings):
    settings.BADGES_BRIDGE_SECRET_KEYS = None
    stored = legacy_fernet(settings.SECRET_KEY).encrypt(b"s3cret").decode()

    assert crypto.decrypt(stored) == "s3cret"


def test_rotation_moves_legacy_tokens_to_the_new_derivation(settings):
    settings.BADGES_BRIDGE_SECRET_KEYS = [PASSPHRASE]
    stored = legacy_fernet(PASSPHRASE).encrypt(b"s3cret").decode()

    rotated = crypto.rotate(stored)

    with pytest.raises(InvalidToken):
        legacy_fernet(PASSPHRASE).decrypt(rotated.encode())
    assert crypto.decrypt(rotated) == "s3cret"


def test_derived_keys_are_computed_once_per_process(settings):
    settings.BADGES_BRIDGE_SECRET_KEYS = ["a passphrase used by this test only"]
    crypto.encrypt("first")
    misses = crypto.derive_key.cache_info().misses
    for _ in range(5):
        crypto.decrypt(crypto.encrypt("again"))
    assert crypto.derive_key.cache_info().misses == misses


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def test_rate_limiter_counts_across_instances_and_windows():
    clock = Clock()
    first = SharedRateLimiter("acct-1", limit=3, period=60, clock=clock)
    second = SharedRateLimiter("acct-1", limit=3, period=60, clock=clock)  # another worker, same cache
    first()
    second()
    first()
    with pytest.raises(RateLimitedError) as refused:
        second()
    assert 1 <= refused.value.retry_after <= 60
    clock.now += 61
    first()  # the window moved on


def test_rate_limiters_of_different_accounts_are_independent():
    clock = Clock()
    SharedRateLimiter("acct-a", limit=1, period=30, clock=clock)()
    SharedRateLimiter("acct-b", limit=1, period=30, clock=clock)()


class InterleavingCache:
    """The real cache, except that right after one call of ``method`` another limiter call runs to the end.

    It reproduces two workers whose limiter calls overlap, without relying on timing.
    """

    def __init__(self, real, method: str, other):
        self.real = real
        self.method = method
        self.other = other
        self.outcomes: list[str] = []

    def __getattr__(self, name):
        attribute = getattr(self.real, name)
        if name != self.method or self.other is None:
            return attribute

        def interleaved(*args, **kwargs):
            result = attribute(*args, **kwargs)
            other, self.other = self.other, None
            self.outcomes.append(_outcome("other", other))
            return result

        return interleaved


def _outcome(name: str, limiter) -> str:
    try:
        limiter()
    except RateLimitedError:
        return f"{name} refused"
    return f"{name} passed"


@pytest.mark.parametrize("method", ["get_many", "add"])
def test_two_overlapping_requests_at_the_limit_let_only_one_through(monkeypatch, method):
    from django.core.cache import cache

    clock = Clock()
    limit = 3
    first = SharedRateLimiter("acct-race", limit=limit, period=60, clock=clock)
    second = SharedRateLimiter("acct-race", limit=limit, period=60, clock=clock)
    for _ in range(limit - 1):
        first()
    racing = InterleavingCache(cache, method, second)
    monkeypatch.setattr("badges_bridge.ratelimit.cache", racing)
    racing.outcomes.append(_outcome("first", first))
    assert len(racing.outcomes) == 2, "the second call did not run inside the first"
    assert sum(outcome.endswith("passed") for outcome in racing.outcomes) == 1, racing.outcomes
    monkeypatch.undo()
    with pytest.raises(RateLimitedError):
        first()  # the refused request was given back: the window holds exactly the limit
    clock.now += 61
    first()


class EvictingCache:
    """The real cache, except that the bucket vanishes once between ``add`` and ``incr`` (an eviction)."""

    def __init__(self, real):
        self.real = real
        self.evicted = False

    def __getattr__(self, name):
        return getattr(self.real, name)

    def incr(self, key, delta=1):
        if not self.evicted:
            self.evicted = True
            self.real.delete(key)
        return self.real.incr(key, delta)


def test_a_bucket_evicted_while_counting_still_counts_the_request(monkeypatch):
    from django.core.cache import cache

    clock = Clock()
    limiter = SharedRateLimiter("acct-evicted", limit=2, period=60, clock=clock)
    monkeypatch.setattr("badges_bridge.ratelimit.cache", EvictingCache(cache))
    limiter()
    limiter()
    with pytest.raises(RateLimitedError):
        limiter()
