// PostgreSQL 17 with TimescaleDB, compiled to WASM (pglite), served on a TCP port.
// Used by tests/test_timescale_storage.py to prove the hypertable storage path:
// the machine's own PostgreSQL has no TimescaleDB and none is installable as a server.
// The database lives in memory and is gone when this process exits. One client
// connection is served at a time; others wait in a queue until it closes.
//
//   node server.mjs --port 55432 [--host 127.0.0.1]
import { PGlite } from '@electric-sql/pglite'
import { timescaledb } from '@electric-sql/pglite/timescaledb'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '55432' },
    host: { type: 'string', default: '127.0.0.1' },
  },
})

const db = await PGlite.create({ extensions: { timescaledb } })
const server = new PGLiteSocketServer({
  db,
  port: Number(values.port),
  host: values.host,
  // migrate and the checks run one after another; give a queued client time to wait its turn
  connectionQueueTimeout: 120000,
})
await server.start()
// The test waits for this line before it connects.
console.log(`pglite-timescaledb listening on ${values.host}:${values.port}`)

async function stop() {
  await server.stop()
  await db.close()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
