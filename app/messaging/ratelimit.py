"""Sending rates shared by every worker, kept in Redis.

`reserve` books the next free slot of every bucket that applies to a message (each allows
`rate` sends a second; GCRA: a bucket remembers when its next slot is free) in one round trip,
and says how long to wait for the latest of them. Workers sleep that long and send, so two
workers together pace at the provider's rate instead of racing into its 429s. A bucket may
fall behind the clock by one slot, so a slot that came up while no worker was ready (a job
boundary, a slow commit) is used a moment late instead of lost; the rate over any second
stays within one message of the rate. A wait longer than `max_wait` books nothing: the
message is put back for later. Daily caps are a counter per bucket and day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis import Redis

# KEYS: the buckets. ARGV: max_wait, then each bucket's interval (seconds per send).
# Reads the time inside the script: one round trip, and one clock for every worker.
_RESERVE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local max_wait = tonumber(ARGV[1])
local slots = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[i + 1])
  local free_at = tonumber(redis.call('GET', key) or '0')
  if free_at < now - interval then free_at = now - interval end
  slots[i] = free_at
  if free_at - now > wait then wait = free_at - now end
end
if wait > max_wait then return tostring(-wait) end
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[i + 1])
  local next_free = slots[i] + interval
  if next_free < now + wait then next_free = now + wait + interval end
  redis.call('SET', key, tostring(next_free), 'EX', math.ceil(next_free - now) + 1)
end
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
        return self.reserve_all([(bucket, rate)], max_wait)

    def reserve_all(self, buckets: list[tuple[str, float]], max_wait: float = 2.0) -> float:
        """Seconds to wait before sending (>= 0), having booked a slot in every bucket; or a
        negative number: some bucket is booked further ahead than max_wait (nothing booked),
        and -result is roughly when to try again."""
        keys = [f"{self.prefix}:{bucket}" for bucket, _ in buckets]
        intervals = [1.0 / rate for _, rate in buckets]
        return float(self._reserve(keys=keys, args=[max_wait, *intervals]))

    def take_daily(self, bucket: str, cap: int, today: datetime | None = None) -> bool:
        """Count one send against today's cap (UTC day); False when the cap is used up."""
        day = (today or datetime.now(UTC)).strftime("%Y%m%d")
        return bool(self._count_day(keys=[f"{self.prefix}:day:{bucket}:{day}"], args=[cap]))


def next_utc_midnight(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
