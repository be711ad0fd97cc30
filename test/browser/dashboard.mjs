// Drives pier's dashboard in Debian's chromium through playwright-core.
// Started by test/e2e/web_test.go against a real engine with apps already
// deployed; it exits non-zero on the first thing that does not hold.
//
// Env: DASH_URL (the engine API's root, where the dashboard lives),
// DASH_TOKEN (the admin token), DASH_APP (an app deployed from
// examples/hello-python, with a config var DASH_SECRET), DASH_DEPLOY_DIR
// (that app's directory, deployed again from the CLI while the browser
// watches), PIER_BIN (the pier binary), DASH_ERRORS_APP (an app with an
// open error issue), DASH_TASKS_APP and DASH_TASKS_QUEUE (an app with a
// dead task in that queue, default email), SCREENSHOTS (where to save them), CHROMIUM (default
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
  // screen is what the viewport shows, at full resolution (a full page
  // at phone width is too tall to read when shrunk to fit).
  const screen = async (name) => page.screenshot({ path: join(shots, `${name}.png`) });

  // inView fails unless every visible button of the page's main part lies
  // within the viewport's width and within its card (a table scrolling
  // sideways in its card hides a button while its box is still on the
  // screen), and nothing scrolls sideways.
  const inView = async (what, { buttons = true } = {}) => {
    const vw = page.viewportSize().width;
    const bad = await page.evaluate((vw) => {
      const out = [];
      const all = [...document.querySelectorAll("main button")].filter((b) => b.checkVisibility());
      for (const b of all) {
        const r = b.getBoundingClientRect();
        const name = b.getAttribute("aria-label") || b.textContent.trim();
        if (r.left < 0 || r.right > vw) out.push(`button "${name}" at x ${Math.round(r.left)}-${Math.round(r.right)} is outside the viewport (0-${vw})`);
        const card = b.closest(".card") || document.querySelector("main");
        const c = card.getBoundingClientRect();
        if (r.left < c.left - 0.5 || r.right > c.right + 0.5) out.push(`button "${name}" at x ${Math.round(r.left)}-${Math.round(r.right)} is outside its card (${Math.round(c.left)}-${Math.round(c.right)})`);
      }
      for (const el of document.querySelectorAll(".scroll")) {
        if (el.scrollWidth > el.clientWidth + 1) out.push(`the table in #${el.closest("section")?.id} scrolls sideways (${el.scrollWidth} px in ${el.clientWidth})`);
      }
      if (document.documentElement.scrollWidth > vw) out.push(`the page is ${document.documentElement.scrollWidth} px wide`);
      return { out, count: all.length };
    }, vw);
    if (buttons && bad.count === 0) throw new Error(`${what}: no buttons to check`);
    if (bad.out.length) throw new Error(`${what} at ${vw} px:\n` + bad.out.join("\n"));
  };
  const phone = { width: 390, height: 844 };
  const desktop = { width: 1280, height: 900 };

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
  step("the overview at a glance: instances, req/s, p99, error rate (the table refreshes every 5 s)");
  await row.locator('[data-glance="instances"]').filter({ hasText: /^\d+\/\d+$/ }).waitFor();
  await page.waitForFunction((a) => {
    const cell = (g) => document.querySelector(`tr[data-app="${a}"] [data-glance="${g}"]`)?.textContent.trim() ?? "";
    return Number(cell("rps")) > 0 && / ms$/.test(cell("p99")) && /%$/.test(cell("error-rate"));
  }, app, { timeout: T });
  const cache = (await row.locator('[data-glance="cache-hits"]').textContent()).trim();
  if (!/^(—|\d+(\.\d)?%)$/.test(cache)) throw new Error(`cache hits column: ${JSON.stringify(cache)}`);
  await shot("02-overview");
  await page.setViewportSize(phone);
  await inView("overview", { buttons: false });
  await screen("02-overview-phone");
  await page.setViewportSize(desktop);

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
  step("every button in view at 1280 px");
  await inView("app page");
  await shot("03-app");

  step("phone width: every button in view at 390 px");
  await page.setViewportSize(phone);
  await page.getByRole("button", { name: "Scale" }).waitFor();
  await inView("app page");
  await shot("04-app-phone");
  await screen("04-app-phone-top");
  await page.getByRole("button", { name: "Roll back to v1" }).scrollIntoViewIfNeeded();
  await screen("04-app-phone-releases");
  await page.setViewportSize(desktop);

  step("follow a CLI deploy live");
  const before = await page.evaluate(() => Math.max(0, ...[...document.querySelectorAll("#releases tr[data-release]")].map((tr) => Number(tr.dataset.release))));
  await page.goto(`${base}/apps/${app}/deploys`);
  // The view replays the app's past events first: wait for the current
  // release's end, then count, before the CLI starts (its first event
  // can come at once).
  await page.locator(`ol.events li[data-release="${before}"][data-type="done"]`).waitFor();
  const builds = await page.locator('ol.events li[data-type="build"]').count();
  const cli = spawn(env("PIER_BIN"), ["deploy"], { cwd: env("DASH_DEPLOY_DIR"), env: process.env, stdio: ["ignore", "pipe", "pipe"] });
  let cliOut = "";
  cli.stdout.on("data", (d) => (cliOut += d));
  cli.stderr.on("data", (d) => (cliOut += d));
  const cliDone = new Promise((resolve) => cli.on("close", resolve));
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

  step("a config var pier sets itself is refused, with the reason and a way back");
  await page.goto(`${base}/apps/${app}#config`);
  const seen = problems.length; // the refusal's page comes with a 400, which the browser logs
  await page.getByLabel("Config var", { exact: true }).fill("PIER_APP");
  await page.getByLabel("Value", { exact: true }).fill("x");
  await page.getByRole("button", { name: "Set", exact: true }).click();
  await page.getByRole("alert").filter({ hasText: "PIER_APP is set by pier itself" }).waitFor();
  await shot("08-config-refused");
  await page.getByRole("link", { name: `Back to ${app}` }).click();
  await page.waitForURL(`${base}/apps/${app}`);
  if (await page.locator(`#releases tr[data-release="${want + 2}"]`).count()) throw new Error("a refused config change made a release");
  problems.push(...problems.splice(seen).filter((p) => !p.includes("status of 400")));

  step("set a config var from the page and see the new release");
  await page.getByLabel("Config var", { exact: true }).fill("DASH_COLOR");
  await page.getByLabel("Value", { exact: true }).fill("teal-from-the-page");
  await page.getByRole("button", { name: "Set", exact: true }).click();
  await page.waitForURL(`${base}/apps/${app}/deploys`);
  await page.locator(`ol.events li[data-release="${want + 2}"][data-type="done"]`).waitFor({ timeout: 60_000 });
  await page.goto(`${base}/apps/${app}`);
  await page.locator(`#releases tr[data-release="${want + 2}"]`).filter({ hasText: "env set DASH_COLOR" }).waitFor();
  await page.locator(`#releases tr[data-release="${want + 2}"]`).getByText("active").waitFor();
  await envBox.locator('[data-env="DASH_COLOR"]').waitFor();
  if ((await envBox.textContent()).includes("teal-from-the-page")) throw new Error("the new config value is shown before it was asked for");
  await envBox.getByRole("link", { name: "Show values" }).click();
  await envBox.getByText("teal-from-the-page").waitFor();
  await shot("08-config-set");

  step("unset it from the page");
  await envBox.getByRole("button", { name: "Unset DASH_COLOR" }).click();
  await page.waitForURL(`${base}/apps/${app}/deploys`);
  await page.locator(`ol.events li[data-release="${want + 3}"][data-type="done"]`).waitFor({ timeout: 60_000 });
  await page.goto(`${base}/apps/${app}`);
  await page.locator(`#releases tr[data-release="${want + 3}"]`).filter({ hasText: "env unset DASH_COLOR" }).waitFor();
  if (await envBox.locator('[data-env="DASH_COLOR"]').count()) throw new Error("DASH_COLOR is still listed after the unset");

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

    step("resolve the issue and see it leave the open list");
    const id = (await page.url()).split("/errors/")[1];
    await page.goto(`${base}/apps/${errApp}#errors`);
    const open = page.locator(`#open-issues li[data-issue="${id}"]`);
    await open.waitFor();
    for (const w of [desktop, phone]) {
      await page.setViewportSize(w);
      await inView("errors app page");
    }
    await page.setViewportSize(desktop);
    await open.getByRole("button", { name: /^Resolve issue: / }).click();
    await page.waitForURL(new RegExp(`/apps/${errApp}#errors$`));
    await page.locator(`#closed-issues li[data-issue="${id}"][data-status="resolved"]`).waitFor({ state: "attached" });
    if (await page.locator(`#open-issues li[data-issue="${id}"]`).count()) throw new Error(`issue ${id} is still in the open list after Resolve`);
    await page.locator("#errors details.closed summary").click();
    await page.locator(`#closed-issues li[data-issue="${id}"]`).getByRole("button", { name: /^Unresolve issue: / }).waitFor();
    await page.locator("#errors").screenshot({ path: join(shots, "06-error-resolved.png") });
  }

  const taskApp = process.env.DASH_TASKS_APP;
  if (taskApp) {
    step("the queues: every button in view");
    await page.goto(`${base}/apps/${taskApp}#queues`);
    const dead = page.locator("#queues li[data-task]").first();
    await dead.waitFor();
    const id = await dead.getAttribute("data-task");
    for (const w of [desktop, phone]) {
      await page.setViewportSize(w);
      await inView("queues app page");
    }
    await page.setViewportSize(desktop);

    step("pause the queue, see it paused, resume it");
    const q = env("DASH_TASKS_QUEUE", "email");
    const qrow = page.locator(`#queues tr[data-queue="${q}"]`);
    await qrow.getByRole("button", { name: `Pause queue ${q}` }).click();
    await page.waitForURL(new RegExp(`/apps/${taskApp}#queues$`));
    await page.locator(`#queues tr[data-queue="${q}"][data-paused="true"]`).getByText("paused").waitFor();
    await shot("07-queues");
    await page.setViewportSize(phone);
    await page.locator("#queues").scrollIntoViewIfNeeded();
    await screen("07-queues-phone");
    await page.setViewportSize(desktop);
    await qrow.getByRole("button", { name: `Resume queue ${q}` }).click();
    await page.waitForURL(new RegExp(`/apps/${taskApp}#queues$`));
    await page.locator(`#queues tr[data-queue="${q}"][data-paused="false"]`).getByText("active").waitFor();

    step("retry a dead task");
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
