"""Sending rates shared by every worker, kept in Redis.

`reserve` books the next free slot of a bucket that allows `rate` sends a second (GCRA: the
bucket remembers when its next slot is free) and says how long to wait for it. Workers sleep
that long and send, so two workers together pace at the provider's rate instead of racing
into its 429s. A wait longer than `max_wait` books nothing: the message is put back for later.
Daily caps are a counter per bucket and day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis import Redis

_RESERVE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local free_at = tonumber(redis.call('GET', KEYS[1]) or '0')
if free_at < now then free_at = now end
local wait = free_at - now
if wait > max_wait then return tostring(-wait) end
local ttl = math.ceil(free_at + interval - now) + 1
redis.call('SET', KEYS[1], tostring(free_at + interval), 'EX', ttl)
return tostring(wait)
"""

_COUNT_DAY = """
local used = redis.call('INCR', KEYS[1])
if used == 1 then redis.call('EXPIRE', KEYS[1], 172800) end
if used > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  return 0
end
return 1
"""


class RateLimiter:
    def __init__(self, redis: Redis, prefix: str = "duebook:send-rate"):
        self.redis = redis
        self.prefix = prefix
        self._reserve = redis.register_script(_RESERVE)
        self._count_day = redis.register_script(_COUNT_DAY)

    def reserve(self, bucket: str, rate: float, max_wait: float = 2.0) -> float:
        """Seconds to wait before sending (>= 0), or a negative number: the bucket is booked
        further ahead than max_wait, and -result is roughly when to try again."""
        now = self.redis.time()
        now_seconds = now[0] + now[1] / 1_000_000
        result = self._reserve(keys=[f"{self.prefix}:{bucket}"],
                               args=[now_seconds, 1.0 / rate, max_wait])  # fmt: skip
        return float(result)

    def take_daily(self, bucket: str, cap: int, today: datetime | None = None) -> bool:
        """Count one send against today's cap (UTC day); False when the cap is used up."""
        day = (today or datetime.now(UTC)).strftime("%Y%m%d")
        return bool(self._count_day(keys=[f"{self.prefix}:day:{bucket}:{day}"], args=[cap]))


def next_utc_midnight(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
