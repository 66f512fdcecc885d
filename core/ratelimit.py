"""Token buckets shared by every web process: the REST API's per-key rate limit and the limit on
failed API-key checks per client address (docs/limits.md).

The buckets live in Redis (AGENTBOT_RATE_LIMIT_URL, by default the Celery broker's Redis), so
several web processes share one limit; one Lua script takes a token atomically with Redis's own
clock. Without Redis (`make run`'s filesystem broker) each process keeps its own buckets. A Redis
that does not answer lets requests through (logged): the API must not stop with its limiter.
"""

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings

from core.process import PerProcess

logger = logging.getLogger(__name__)
PREFIX = "agentbot:ratelimit:"

# KEYS[1] the bucket; ARGV rate (tokens a second), burst. Returns {allowed (0/1), seconds to wait}.
TAKE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed, wait = 0, 0
if tokens >= 1 then
    tokens, allowed = tokens - 1, 1
else
    wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(wait)}
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: float = 0.0  # seconds until a token is back


class _Local:
    """Buckets of this process alone (no Redis)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, rate: float, burst: int) -> Verdict:
        now = time.monotonic()
        with self.lock:
            if len(self.buckets) > 100_000:  # forget idle buckets rather than grow without end
                self.buckets.clear()
            tokens, at = self.buckets.get(key, (float(burst), now))
            tokens = min(burst, tokens + (now - at) * rate)
            if tokens >= 1:
                self.buckets[key] = (tokens - 1, now)
                return Verdict(True)
            self.buckets[key] = (tokens, now)
            return Verdict(False, (1 - tokens) / rate)


class _Redis:
    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.script = self.client.register_script(TAKE)

    def take(self, key: str, rate: float, burst: int) -> Verdict:
        allowed, wait = self.script(keys=[PREFIX + key], args=[rate, burst])
        return Verdict(bool(int(allowed)), float(wait))


def _store():
    url = settings.AGENTBOT_RATE_LIMIT_URL
    return _Redis(url) if url.startswith(("redis://", "rediss://")) else _Local()


_STORE = PerProcess(_store)


def rate_take(*, key: str, rate: float, burst: int) -> Verdict:
    """Take one token from bucket `key` (refilled at `rate` a second, holding at most `burst`)."""
    if rate <= 0:
        return Verdict(True)
    try:
        return _STORE.get().take(key, rate, max(int(burst), 1))
    except Exception:  # the store is down: let the request through
        logger.warning("rate limit store unavailable; request allowed", exc_info=True)
        return Verdict(True)
