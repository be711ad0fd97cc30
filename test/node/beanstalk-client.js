// Drives pier's beanstalkd-protocol server with the fivebeans client (npm):
// put, use/watch, reserve-with-timeout, stats-job, bury, kick, peek,
// list-tubes, delete, and the NOT_FOUND and JOB_TOO_BIG errors. Prints
// "ok" and exits 0 when every answer is what beanstalkd would give.
// Usage: BEANSTALKD_ADDR=127.0.0.1:11300 node beanstalk-client.js
const util = require("util");
const Client = require("fivebeans").client;

const [host, port] = (process.env.BEANSTALKD_ADDR || "127.0.0.1:11300").split(":");
const c = new Client(host, Number(port));

// call runs a fivebeans command and resolves with its results as an array.
function call(name, ...args) {
  return new Promise((resolve, reject) => {
    c[name](...args, (err, ...res) => (err ? reject(new Error(`${name}: ${err}`)) : resolve(res)));
  });
}

async function refused(name, want, ...args) {
  try {
    await call(name, ...args);
  } catch (e) {
    if (String(e.message).includes(want)) return;
    throw new Error(`${name}: got ${e.message}, want ${want}`);
  }
  throw new Error(`${name}: succeeded, want ${want}`);
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

async function main() {
  await new Promise((resolve, reject) => {
    c.on("connect", resolve).on("error", reject);
    c.connect();
  });
  const [used] = await call("use", "node-jobs");
  check(used === "node-jobs", `use answered ${used}`);
  const [id] = await call("put", 5, 0, 60, JSON.stringify({ hello: "node" }));
  const [n] = await call("watch", "node-jobs");
  check(n === "2", `watching ${n}`);
  await call("ignore", "default");
  const [rid, body] = await call("reserve_with_timeout", 5);
  check(rid === id, `reserved ${rid}, put ${id}`);
  check(JSON.parse(body.toString()).hello === "node", `body ${body}`);
  const [stats] = await call("stats_job", rid);
  check(stats.state === "reserved" && stats.pri === 5 && stats.tube === "node-jobs", `stats-job ${util.inspect(stats)}`);
  await call("bury", rid, 10);
  const [pid] = await call("peek_buried");
  check(pid === id, `peek-buried ${pid}`);
  const [kicked] = await call("kick", 5);
  check(kicked === "1", `kicked ${kicked}`);
  const [again] = await call("reserve_with_timeout", 5);
  check(again === id, `reserved again ${again}`);
  await call("destroy", again);
  await refused("destroy", "NOT_FOUND", again);
  await refused("peek", "NOT_FOUND", 424242);
  await refused("put", "JOB_TOO_BIG", 0, 0, 60, "x".repeat(70000));
  const [tubes] = await call("list_tubes");
  check(tubes.includes("node-jobs"), `list-tubes ${tubes}`);
  await refused("reserve_with_timeout", "TIMED_OUT", 0);
  c.end();
  console.log("ok");
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
