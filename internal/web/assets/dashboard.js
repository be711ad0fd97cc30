// pier dashboard glue: feeds uPlot charts from the app's metrics JSON and
// trims the live log tail. Everything else is htmx attributes in the pages.
(function () {
  "use strict";
  const specs = {
    rps: { series: [{ label: "req/s", key: "rps", stroke: "#1f5fbf" }] },
    latency: { series: [{ label: "p50 ms", key: "p50", stroke: "#1b7f3b" }, { label: "p99 ms", key: "p99", stroke: "#b3261e" }] },
    cpu: { series: [{ label: "cores", key: "cpu", stroke: "#9a6700" }] },
    rss: { series: [{ label: "MiB", key: "rss_mb", stroke: "#6b3fa0" }] },
  };
  const charts = new Map(); // element -> uPlot
  // A chart follows its box (a window resized, a phone turned); until it
  // has, the box's overflow: hidden keeps it from widening the page.
  const resized = new ResizeObserver((entries) => {
    for (const e of entries) {
      const u = charts.get(e.target);
      if (u && Math.abs(u.width - width(e.target)) > 1) u.setSize({ width: width(e.target), height: 160 });
    }
  });
  let fetching = false;

  const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

  function width(el) { return Math.max(200, el.clientWidth || el.parentElement.clientWidth || 300); }

  function draw(el, m) {
    const spec = specs[el.dataset.chart];
    const data = [m.times].concat(spec.series.map((s) => m[s.key] || []));
    let u = charts.get(el);
    if (!u) {
      u = new uPlot({
        width: width(el), height: 160,
        series: [{}].concat(spec.series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, spanGaps: true }))),
        // Times of day without uPlot's date under the first tick (the
        // chart's left edge cut it), far enough apart to stay legible; room
        // on the right for the last one. A static legend names the series,
        // the figure's caption has the latest value.
        // Values to three significant digits: uPlot's own rounding showed
        // 0.0005 and 0.001 both as "0.001" on a quiet app's CPU chart.
        axes: [{ space: 70, values: (u, ticks) => ticks.map(clock) }, { size: 60, values: (u, ticks) => ticks.map((v) => String(+v.toPrecision(3))) }],
        padding: [8, 36, 0, 0],
        legend: { show: true, live: false },
      }, data, el);
      charts.set(el, u);
      resized.observe(el);
    } else {
      u.setData(data);
    }
    el.dataset.points = String(m.times.length);
    el.dataset.last = m.times.length ? String(m.times[m.times.length - 1]) : "";
  }

  async function refresh() {
    const els = document.querySelectorAll("[data-chart]");
    if (!els.length || fetching || typeof uPlot === "undefined") return;
    fetching = true;
    try {
      const bySrc = new Map();
      for (const el of els) {
        if (!bySrc.has(el.dataset.src)) {
          const r = await fetch(el.dataset.src, { credentials: "same-origin", headers: { Accept: "application/json" } });
          if (!r.ok) continue;
          bySrc.set(el.dataset.src, await r.json());
        }
        const m = bySrc.get(el.dataset.src);
        if (m) draw(el, m);
      }
      const m = bySrc.values().next().value;
      if (m) {
        for (const out of document.querySelectorAll("output[data-latest]")) {
          const v = m[out.dataset.latest] || [];
          out.textContent = v.length ? "now " + Number(v[v.length - 1]).toFixed(2) : "no data yet";
        }
      }
    } catch (e) {
      console.warn("metrics", e);
    } finally {
      fetching = false;
    }
  }

  function trimLogs(evt) {
    const list = evt.target.closest && evt.target.closest("[data-keep]");
    if (!list) return;
    const keep = Number(list.dataset.keep) || 500;
    while (list.children.length > keep) list.removeChild(list.firstElementChild);
    list.scrollTop = list.scrollHeight;
  }

  document.addEventListener("DOMContentLoaded", () => {
    refresh();
    setInterval(refresh, 3000);
    document.body.addEventListener("htmx:afterSwap", trimLogs);
    document.body.addEventListener("htmx:sseMessage", (e) => {
      const list = e.target;
      if (list && list.scrollHeight) list.scrollTop = list.scrollHeight;
      if (list && list.dataset && list.dataset.keep) trimLogs({ target: list });
    });
  });
})();
