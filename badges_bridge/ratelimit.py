"""A client-side request limit per provider account, shared by every worker.

Counts live in the Django cache (Redis in Open edX), in 30-second buckets; the
limit applies to the sum of the buckets inside the window, which is how
Accredible counts. Going over raises RateLimitedError, so the task is retried
later instead of sending a request the provider would refuse.

Every lane of work counts in the same buckets, but a limiter made with a
``share`` below 1 refuses once the window holds that share of the limit:
backfill work stops there and leaves the rest of each window to interactive
work (first awards and revokes of learners who just passed or failed), which
may use the whole limit (see ADR 0013).
"""

from __future__ import annotations

import contextlib
import math
import time

from django.core.cache import cache

from badges_bridge.exceptions import RateLimitedError

BUCKET_SECONDS = 30


class SharedRateLimiter:
    """At most ``limit`` requests per ``period`` seconds for one key, across processes."""

    def __init__(self, key: str, limit: int, period: int, clock=time.time, share: float = 1.0):
        self.key = key
        self.limit = limit
        #: What this limiter lets through: ``share`` of the limit, at least one request.
        self.allowed = max(1, math.floor(limit * min(1.0, share)))
        self.bucket_seconds = min(BUCKET_SECONDS, period)
        self.buckets = max(1, math.ceil(period / self.bucket_seconds))
        self.clock = clock

    def _bucket_key(self, index: int) -> str:
        return f"badges_bridge.ratelimit.{self.key}.{index}"

    def __call__(self) -> None:
        """Count one request, or raise RateLimitedError when the window is full.

        The request is counted first, with the cache's atomic increment, and given back when it
        does not fit: two workers at the limit can never both get through.
        """
        current = int(self.clock() // self.bucket_seconds)
        indexes = range(current - self.buckets + 1, current + 1)
        key = self._bucket_key(current)
        mine = self._increment(key)
        counts = cache.get_many([self._bucket_key(index) for index in indexes if index != current])
        if mine + sum(int(value) for value in counts.values()) <= self.allowed:
            return
        self._give_back(key)
        oldest = min((index for index in indexes if counts.get(self._bucket_key(index))), default=current)
        wait = (oldest + self.buckets) * self.bucket_seconds - self.clock()
        raise RateLimitedError(f"client-side rate limit of {self.allowed} requests reached", retry_after=max(1.0, wait))

    def used(self) -> int:
        """Requests counted in the current window, by every lane."""
        current = int(self.clock() // self.bucket_seconds)
        keys = [self._bucket_key(index) for index in range(current - self.buckets + 1, current + 1)]
        return sum(int(value) for value in cache.get_many(keys).values())

    def room(self) -> int:
        """Requests this limiter would still let through in the current window (nothing is counted)."""
        return max(0, self.allowed - self.used())

    def _increment(self, key: str) -> int:
        """Add one to a bucket, creating it when needed, and return its new count."""
        timeout = self.buckets * self.bucket_seconds + self.bucket_seconds
        cache.add(key, 0, timeout)
        try:
            return cache.incr(key)
        except ValueError:  # evicted between add and incr
            cache.add(key, 1, timeout)
            return 1

    @staticmethod
    def _give_back(key: str) -> None:
        """Take back a request that did not fit."""
        with contextlib.suppress(ValueError):  # the bucket is already gone
            cache.decr(key)
