// graphile-worker: DB jobs (env N) added in one call, then one runner at concurrency C
// drains them. Prints one JSON line: the seconds from the runner's start until the
// job table is empty (a job leaves it once its completion is committed).
import { run, runMigrations } from "graphile-worker";
import pg from "pg";

const url = process.env.DB;
const jobs = Number(process.env.N);
const concurrency = Number(process.env.C);
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

await runMigrations({ connectionString: url });
const client = new pg.Client({ connectionString: url });
await client.connect();
await client.query(
  `SELECT graphile_worker.add_jobs(ARRAY(
     SELECT json_populate_record(NULL::graphile_worker.job_spec,
                                 json_build_object('identifier', 'noop'))
     FROM generate_series(1, $1::int)))`,
  [jobs],
);

let ran = 0;
const started = performance.now();
const runner = await run({
  connectionString: url,
  concurrency,
  noHandleSignals: true,
  pollInterval: 1000,
  taskList: { noop: async () => { ran += 1; } },
});
// Counted in this process first, so the table is only read near the end.
while (ran < jobs) await sleep(5);
const left = async () =>
  (await client.query("SELECT count(*)::int AS n FROM graphile_worker._private_jobs")).rows[0].n;
while (await left()) await sleep(5);
const seconds = (performance.now() - started) / 1000;
await runner.stop();
await client.end();
console.log(JSON.stringify({ jobs, ran, drain_seconds: seconds, jobs_per_second: jobs / seconds }));
