// Copies the dashboard's front-end libraries from node_modules (installed
// from package-lock.json by `npm ci`) into assets/vendor/, which the Go
// package embeds. Run: npm ci && npm run vendor
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "assets", "vendor");
mkdirSync(out, { recursive: true });

const files = [
  ["htmx.org", "dist/htmx.min.js", "htmx.min.js"],
  ["htmx-ext-sse", "dist/sse.min.js", "htmx-ext-sse.min.js"],
  ["uplot", "dist/uPlot.iife.min.js", "uPlot.iife.min.js"],
  ["uplot", "dist/uPlot.min.css", "uPlot.min.css"],
];
const versions = {};
for (const [pkg, from, to] of files) {
  copyFileSync(join(here, "node_modules", pkg, from), join(out, to));
  versions[pkg] = JSON.parse(readFileSync(join(here, "node_modules", pkg, "package.json"), "utf8")).version;
}
console.log("vendored", JSON.stringify(versions));
