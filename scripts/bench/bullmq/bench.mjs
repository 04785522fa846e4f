// BullMQ reference: add JOBS jobs with addBulk, then drain them with a no-op Worker at each
// concurrency, on the same Redis as taquilla but in another database number (BULLMQ_REDIS_DB,
// default 3) and under the key prefix `bullbench`, so taquilla's keys are never touched.
//
//   node bench.mjs [CONCURRENCY...]        default: 1 50
// Env: JOBS (default 50000), BULLMQ_REDIS_HOST/PORT/DB, TIMEOUT_S (default 300).
import { Queue, Worker } from 'bullmq';

const jobs = Number(process.env.JOBS ?? 50000);
const timeoutS = Number(process.env.TIMEOUT_S ?? 300);
const connection = {
  host: process.env.BULLMQ_REDIS_HOST ?? '127.0.0.1',
  port: Number(process.env.BULLMQ_REDIS_PORT ?? 6379),
  db: Number(process.env.BULLMQ_REDIS_DB ?? 3),
  maxRetriesPerRequest: null,
};
if (!['127.0.0.1', 'localhost', '::1'].includes(connection.host)) {
  throw new Error('this benchmark only talks to a Redis on this machine');
}
const prefix = 'bullbench';
const name = 'drain';
const concurrencies = process.argv.slice(2).map(Number);
if (concurrencies.length === 0) concurrencies.push(1, 50);

for (const concurrency of concurrencies) {
  const queue = new Queue(name, { connection, prefix });
  await queue.obliterate({ force: true });
  let t = performance.now();
  for (let i = 0; i < jobs; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(i + 1000, jobs); j++) {
      batch.push({ name: 'noop', data: { n: j }, opts: { removeOnComplete: true, removeOnFail: true } });
    }
    await queue.addBulk(batch);
  }
  const addS = (performance.now() - t) / 1000;
  const waiting = await queue.getWaitingCount();

  let done = 0;
  let resolveAll;
  const all = new Promise((r) => (resolveAll = r));
  t = performance.now();
  const worker = new Worker(name, async () => {}, { connection, prefix, concurrency, autorun: false });
  worker.on('completed', () => {
    if (++done === jobs) resolveAll();
  });
  worker.on('error', (e) => console.error('worker error', e));
  worker.run();
  const timer = setTimeout(() => resolveAll('timeout'), timeoutS * 1000);
  const outcome = await all;
  const drainS = (performance.now() - t) / 1000;
  clearTimeout(timer);
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  console.log(
    `BULLMQ concurrency=${concurrency} jobs=${jobs} waiting_before=${waiting} completed=${done}` +
      `${outcome === 'timeout' ? ' TIMEOUT' : ''} add_s=${addS.toFixed(2)} add_jobs_per_s=${Math.round(jobs / addS)}` +
      ` drain_s=${drainS.toFixed(2)} drain_jobs_per_s=${Math.round(done / drainS)}`,
  );
}
process.exit(0);
