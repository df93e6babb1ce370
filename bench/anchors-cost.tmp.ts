import { Redis } from 'ioredis'
import { v7 as uuidv7 } from 'uuid'
import { createRedisLocationStore } from '../src/platform/live/redis/locations.js'
const redis = new Redis(process.env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379')
const prefix = `anchors-cost-${Date.now()}:`
const store = createRedisLocationStore(redis, prefix)
for (const n of [1, 2, 8]) {
  let bytes = 0
  const N = 2000
  for (let i = 0; i < N; i++) {
    const id = uuidv7()
    const points = Array.from({ length: n }, () => ({ lat: 48.8 + Math.random() * 0.1, lon: 2.3 + Math.random() * 0.1 }))
    await store.set(id, { lat: 48.85, lon: 2.35, roles: ['WORKER'], expiresAt: new Date(Date.now() + 600_000), card: 'c', version: 1, anchors: { points, expiresAt: new Date(Date.now() + 30 * 86400_000) } })
    bytes += Number(await redis.call('MEMORY', 'USAGE', `${prefix}loc:anchors:${id}`, 'SAMPLES', '0'))
  }
  console.log(`${n} anchors: ${(bytes / N).toFixed(1)} bytes a key (MEMORY USAGE)`)
}
store.stop()
let cursor = '0'
do {
  const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
  cursor = next
  if (keys.length) await redis.unlink(...keys)
} while (cursor !== '0')
redis.disconnect()
