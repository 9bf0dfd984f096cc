"""Sending rates shared by every worker, kept in Redis.

`reserve_slots` books the next free slots of every bucket that applies to a message (each
allows `rate` sends a second; GCRA: a bucket remembers when its next slot is free) in one
round trip, and says how long to wait for each. Workers sleep that long and send, so two
workers together pace at the provider's rate instead of racing into its 429s. A bucket may
fall behind the clock by one slot, so a slot that came up while no worker was ready (a job
boundary, a slow commit) is used a moment late instead of lost; the rate over any second
stays within one message of the rate. A wait longer than `max_wait` books nothing: the
message is put back for later. Daily caps are a counter per bucket and day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis import Redis

# KEYS: the buckets. ARGV: max_wait, how many slots, then each bucket's interval (seconds per
# send). Reads the time inside the script: one round trip, and one clock for every worker.
_RESERVE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local max_wait = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local free = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[i + 2])
  local free_at = tonumber(redis.call('GET', key) or '0')
  if free_at < now - interval then free_at = now - interval end
  free[i] = free_at
end
local waits = {}
for n = 1, count do
  local wait = 0
  for i = 1, #KEYS do
    if free[i] - now > wait then wait = free[i] - now end
  end
  if wait > max_wait then
    if n == 1 then return {tostring(-wait)} end
    break
  end
  waits[n] = tostring(wait)
  for i = 1, #KEYS do
    local next_free = free[i] + tonumber(ARGV[i + 2])
    if next_free < now + wait then next_free = now + wait + tonumber(ARGV[i + 2]) end
    free[i] = next_free
  end
end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, tostring(free[i]), 'EX', math.ceil(free[i] - now) + 1)
end
return waits
"""

# KEYS: the day's counter. ARGV: the cap, how many sends. Returns how many may go.
_COUNT_DAY = """
local wanted = tonumber(ARGV[2])
local used = redis.call('INCRBY', KEYS[1], wanted)
if used == wanted then redis.call('EXPIRE', KEYS[1], 172800) end
local over = used - tonumber(ARGV[1])
if over <= 0 then return wanted end
local refused = math.min(over, wanted)
redis.call('DECRBY', KEYS[1], refused)
return wanted - refused
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
        return self.reserve_slots(buckets, 1, max_wait)[0]

    def reserve_slots(
        self, buckets: list[tuple[str, float]], count: int, max_wait: float = 2.0
    ) -> list[float]:
        """Book up to `count` consecutive slots in every bucket in one round trip: the seconds
        from now to each, ascending, none beyond max_wait. Or one negative number, as for
        reserve_all, when even the first is further ahead than max_wait."""
        keys = [f"{self.prefix}:{bucket}" for bucket, _ in buckets]
        intervals = [1.0 / rate for _, rate in buckets]
        return [
            float(wait) for wait in self._reserve(keys=keys, args=[max_wait, count, *intervals])
        ]

    def take_daily(self, bucket: str, cap: int, today: datetime | None = None) -> bool:
        """Count one send against today's cap (UTC day); False when the cap is used up."""
        return self.take_daily_many(bucket, cap, 1, today) == 1

    def take_daily_many(
        self, bucket: str, cap: int, count: int, today: datetime | None = None
    ) -> int:
        """Count up to `count` sends against today's cap (UTC day); how many it allowed."""
        day = (today or datetime.now(UTC)).strftime("%Y%m%d")
        key = f"{self.prefix}:day:{bucket}:{day}"
        return int(self._count_day(keys=[key], args=[cap, count]))


def next_utc_midnight(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
