// Drives pier's dashboard in Debian's chromium through playwright-core.
// Started by test/e2e/web_test.go against a real engine with apps already
// deployed; it exits non-zero on the first thing that does not hold.
//
// Env: DASH_URL (the engine API's root, where the dashboard lives),
// DASH_TOKEN (the admin token), DASH_APP (an app deployed from
// examples/hello-python, with a config var DASH_SECRET), DASH_DEPLOY_DIR
// (that app's directory, deployed again from the CLI while the browser
// watches), PIER_BIN (the pier binary), DASH_ERRORS_APP (an app with an
// error issue), DASH_TASKS_APP and DASH_TASKS_QUEUE (an app with a dead
// task), SCREENSHOTS (where to save them), CHROMIUM (default
// /usr/bin/chromium).
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", "node", "package.json"));
const { chromium } = require("playwright-core");

const env = (k, def) => {
  const v = process.env[k] ?? def;
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const base = env("DASH_URL");
const token = env("DASH_TOKEN");
const app = env("DASH_APP");
const shots = env("SCREENSHOTS");
mkdirSync(shots, { recursive: true });

const step = (what) => console.log(`[dashboard] ${new Date().toISOString().slice(11, 19)} ${what}`);
const T = 30_000; // the longest any one condition is waited for

const userDir = mkdtempSync(join(tmpdir(), "pier-chromium-"));
const ctx = await chromium.launchPersistentContext(userDir, {
  executablePath: env("CHROMIUM", "/usr/bin/chromium"),
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  viewport: { width: 1280, height: 900 },
});
const problems = [];
let page;
try {
  page = ctx.pages()[0] ?? (await ctx.newPage());
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  page.setDefaultTimeout(T);
  const shot = async (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

  step("log in");
  await page.goto(base + "/");
  await page.waitForURL(/\/login/);
  await page.getByLabel("Admin token").fill("not-the-token");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("alert").filter({ hasText: "Wrong token" }).waitFor();
  await shot("01-login");
  await page.getByLabel("Admin token").fill(token);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL(base + "/");

  step("see the app in the overview");
  const row = page.locator(`tr[data-app="${app}"]`);
  await row.waitFor();
  await row.getByText("running").waitFor();
  await shot("02-overview");

  step("open the app page");
  await row.getByRole("link", { name: app }).click();
  await page.waitForURL(`${base}/apps/${app}`);
  await page.locator('tr[data-instance="web.1"][data-state="running"]').waitFor();

  step("config values are hidden until asked");
  const envBox = page.locator("#env");
  await envBox.getByText("DASH_SECRET").waitFor();
  if ((await envBox.textContent()).includes("s3cret-value")) throw new Error("config value shown before it was asked for");
  await envBox.getByRole("link", { name: "Show values" }).click();
  await envBox.getByText("s3cret-value").waitFor();

  step("live log tail");
  await page.locator("ol.logs li").first().waitFor();

  step("scale web to 2 from the page and see the new instance");
  await page.getByLabel("web instances").fill("2");
  await page.getByRole("button", { name: "Scale" }).click();
  await page.locator('tr[data-instance="web.2"][data-state="running"]').waitFor({ timeout: T });

  step("see a chart update");
  const chart = page.locator("#chart-rps");
  await chart.locator("canvas").waitFor();
  await page.waitForFunction(() => Number(document.querySelector("#chart-rps").dataset.points) > 0, null, { timeout: T });
  const last = await chart.getAttribute("data-last");
  await page.waitForFunction((l) => document.querySelector("#chart-rps").dataset.last !== l, last, { timeout: T });
  await shot("03-app");

  step("phone width");
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByRole("button", { name: "Scale" }).waitFor();
  await shot("04-app-phone");
  await page.setViewportSize({ width: 1280, height: 900 });

  step("follow a CLI deploy live");
  await page.goto(`${base}/apps/${app}/deploys`);
  const events = page.locator("ol.events li");
  await events.first().waitFor();
  const before = await page.evaluate(() => Math.max(0, ...[...document.querySelectorAll("ol.events li")].map((li) => Number(li.dataset.release))));
  const cli = spawn(env("PIER_BIN"), ["deploy"], { cwd: env("DASH_DEPLOY_DIR"), env: process.env, stdio: ["ignore", "pipe", "pipe"] });
  let cliOut = "";
  cli.stdout.on("data", (d) => (cliOut += d));
  cli.stderr.on("data", (d) => (cliOut += d));
  const cliDone = new Promise((resolve) => cli.on("close", resolve));
  const builds = await page.locator('ol.events li[data-type="build"]').count();
  const want = before + 1;
  // The first event of a deploy ("Received bundle") comes before its
  // release has a number.
  await page.locator('ol.events li[data-type="build"]').nth(builds).waitFor({ timeout: T });
  await shot("05-deploy-building");
  await page.locator(`ol.events li[data-release="${want}"][data-type="done"]`).waitFor({ timeout: 60_000 });
  for (const t of ["start", "health", "swap"]) {
    if (!(await page.locator(`ol.events li[data-release="${want}"][data-type="${t}"]`).count())) throw new Error(`deploy view missed the ${t} event of v${want}`);
  }
  await shot("05-deploy");
  const code = await cliDone;
  if (code !== 0) throw new Error(`pier deploy exited ${code}:\n${cliOut}`);

  step("roll back from the releases list");
  await page.goto(`${base}/apps/${app}`);
  await page.getByRole("button", { name: `Roll back to v${before}` }).click();
  await page.waitForURL(`${base}/apps/${app}/deploys`);
  await page.locator(`ol.events li[data-release="${want + 1}"][data-type="done"]`).waitFor({ timeout: 60_000 });

  const errApp = process.env.DASH_ERRORS_APP;
  if (errApp) {
    step("open an error's stack trace");
    await page.goto(`${base}/apps/${errApp}`);
    const issue = page.locator("#errors li a").first();
    await issue.waitFor();
    await issue.click();
    await page.waitForURL(new RegExp(`/apps/${errApp}/errors/`));
    await page.locator("ol.stack li").first().waitFor();
    await page.getByText("PaymentError").first().waitFor();
    await shot("06-error");
  }

  const taskApp = process.env.DASH_TASKS_APP;
  if (taskApp) {
    step("retry a dead task");
    await page.goto(`${base}/apps/${taskApp}#queues`);
    const dead = page.locator("#queues li[data-task]").first();
    await dead.waitFor();
    const id = await dead.getAttribute("data-task");
    await shot("07-queues");
    await dead.getByRole("button", { name: `Retry task ${id}` }).click();
    await page.waitForURL(new RegExp(`/apps/${taskApp}`));
    await page.locator("#queues").waitFor();
    if (await page.locator(`#queues li[data-task="${id}"]`).count()) throw new Error(`task ${id} is still dead after retry`);
  }

  step("log out");
  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForURL(/\/login/);
  await page.goto(`${base}/apps/${app}`);
  await page.waitForURL(/\/login/);

  const real = problems.filter((p) => !p.includes("net::ERR_") && !p.includes("401"));
  if (real.length) throw new Error("browser problems:\n" + real.join("\n"));
  step("ok");
} catch (e) {
  if (page) await page.screenshot({ path: join(shots, "failure.png"), fullPage: true }).catch(() => {});
  console.error(e);
  if (problems.length) console.error(problems.join("\n"));
  process.exitCode = 1;
} finally {
  await ctx.close();
  rmSync(userDir, { recursive: true, force: true });
}
