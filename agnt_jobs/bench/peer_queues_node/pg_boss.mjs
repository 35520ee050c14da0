// pg-boss: N jobs inserted in one call, then C workers of one process drain them,
// each fetching up to B jobs at a time. A pg-boss worker waits its polling interval
// after every fetch, even one that found jobs (0.5 s, the shortest it takes), so its
// rate is bounded by C * B / 0.5 s. Prints one JSON line: the seconds from the first
// work() until every job is recorded completed.
import PgBoss from "pg-boss";

const url = process.env.DB;
const jobs = Number(process.env.N);
const concurrency = Number(process.env.C);
const batch = Number(process.env.B);
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

const boss = new PgBoss({ connectionString: url, supervise: false, schedule: false });
boss.on("error", (error) => console.error(error));
await boss.start();
await boss.createQueue("noop");
await boss.insert(Array.from({ length: jobs }, () => ({ name: "noop", data: {} })));

let ran = 0;
const started = performance.now();
for (let worker = 0; worker < concurrency; worker += 1) {
  await boss.work("noop", { pollingIntervalSeconds: 0.5, batchSize: batch }, async (fetched) => {
    ran += fetched.length;
  });
}
while (ran < jobs) await sleep(5);
const completed = async () =>
  (await boss.getDb().executeSql(
    "SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'noop' AND state = 'completed'",
  )).rows[0].n;
while ((await completed()) < jobs) await sleep(5);
const seconds = (performance.now() - started) / 1000;
console.log(JSON.stringify({ jobs, ran, drain_seconds: seconds, jobs_per_second: jobs / seconds }));
await boss.stop({ graceful: false, wait: false });
process.exit(0);
