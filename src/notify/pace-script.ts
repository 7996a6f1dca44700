import type { Redis } from "ioredis";

/**
 * A shared clock per pace key: returns 0 and books the next slot when a call may go now, otherwise how
 * many milliseconds to wait. Kept in Redis so two notifier processes never exceed a platform limit
 * together. `hold` pushes the next slot out (after a 429).
 */
const reserveScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nextAt = tonumber(redis.call('GET', KEYS[1]) or '0')
if nextAt > now then return nextAt - now end
local interval = tonumber(ARGV[1])
redis.call('SET', KEYS[1], now + interval, 'PX', interval + 60000)
return 0
`;

const holdScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ = now + tonumber(ARGV[1])
local nextAt = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > nextAt then redis.call('SET', KEYS[1], until_, 'PX', tonumber(ARGV[1]) + 60000) end
return until_
`;

type PaceRedis = Redis & {
  shipbotReserve(key: string, intervalMs: number): Promise<number>;
  shipbotHold(key: string, ms: number): Promise<number>;
};

export interface PaceClock {
  /** 0 when the call may go now (the slot is booked), else the wait in ms. */
  reserve(key: string, intervalMs: number): Promise<number>;
  hold(key: string, ms: number): Promise<void>;
}

export function createPaceClock(redis: Redis, keyOf: (key: string) => string): PaceClock {
  const r = redis as PaceRedis;
  if (typeof r.shipbotReserve !== "function") {
    redis.defineCommand("shipbotReserve", { numberOfKeys: 1, lua: reserveScript });
    redis.defineCommand("shipbotHold", { numberOfKeys: 1, lua: holdScript });
  }
  return {
    reserve: (key, intervalMs) => r.shipbotReserve(keyOf(key), Math.ceil(intervalMs)),
    async hold(key, ms) {
      await r.shipbotHold(keyOf(key), Math.ceil(ms));
    },
  };
}
