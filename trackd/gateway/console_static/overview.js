// trackd console, the overview: the last hour per minute (an SVG chart drawn here), the
// top event names and violations, and the webhook endpoints. Loaded after console.js,
// whose helpers ($, el, svg, clock, headers, errorText) it uses; DOM APIs only.
"use strict";

const COLORS = { stored: "#2f6fdb", duplicates: "#8a6fd1", rate_limited: "#d99100" };
const REASON_COLORS = ["#c0392b", "#e4572e", "#a3281f", "#f08a5d", "#7b1e1e", "#d35400"];


async function loadOverview() {
  try {
    const response = await fetch("/console/api/overview", { headers: headers(), cache: "no-store" });
    if (!response.ok) throw new Error(await errorText(response));
    renderOverview(await response.json());
  } catch (error) {
    $("overview-updated").textContent = `could not load the overview: ${error.message || error}`;
  }
}

function renderOverview(data) {
  drawChart(data.minutes || []);
  fillCounts($("top-names"), data.top_event_names, "no events stored in the last hour");
  fillCounts($("top-violations"), data.top_violations,
    "no tracking-plan violations in the last hour");
  const box = $("webhooks");
  box.replaceChildren();
  if (data.webhooks === null) {
    box.append(el("p", { class: "muted" }, `not shown: ${data.webhooks_error}`));
  } else if (!data.webhooks.length) {
    box.append(el("p", { class: "muted" }, "no webhook endpoints"));
  } else {
    const rows = data.webhooks.map((w) => el("tr", {},
      el("td", { class: "mono" }, w.url), el("td", {}, w.state.replace(/_/g, " ")),
      el("td", {}, `${w.lag_seconds.toFixed(1)} s`), el("td", {}, String(w.dead_letters)),
      el("td", {}, w.last_error || "—")));
    box.append(el("table", {}, el("thead", {}, el("tr", {}, ...["URL", "state", "lag",
      "dead letters", "last error"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...rows)));
  }
  $("overview-updated").textContent = `updated ${clock(new Date().toISOString())}`;
}

function fillCounts(list, items, empty) {
  list.replaceChildren(...(items || []).map((item) =>
    el("li", {}, el("span", { class: "mono" }, item.name), el("span", {}, String(item.count)))));
  if (!list.children.length) list.replaceChildren(el("li", { class: "muted" }, empty));
}

function drawChart(minutes) {
  const width = 1000, height = 240, left = 44, bottom = 26, top = 12;
  const reasons = [...new Set(minutes.flatMap((m) => Object.keys(m.refused || {})))].sort();
  const series = [["stored", COLORS.stored], ["duplicates", COLORS.duplicates],
    ["rate_limited", COLORS.rate_limited],
    ...reasons.map((r, i) => [`refused ${r}`, REASON_COLORS[i % REASON_COLORS.length]])];
  const value = (m, name) => name.startsWith("refused ")
    ? (m.refused || {})[name.slice(8)] || 0 : m[name] || 0;
  const totals = minutes.map((m) => series.reduce((sum, [name]) => sum + value(m, name), 0));
  const max = Math.max(1, ...totals);
  const plotW = width - left - 8, plotH = height - top - bottom;
  const step = plotW / Math.max(1, minutes.length);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-labelledby": "chart-title chart-desc", id: "chart-svg" },
    svg("desc", { id: "chart-desc" }, `Per minute over the last hour: ${series.map(([n]) => n)
      .join(", ")}. Highest minute: ${max}.`));
  chart.append(svg("line", { class: "axis", x1: left, y1: top + plotH, x2: width - 8, y2: top + plotH }));
  chart.append(svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: top + plotH }));
  chart.append(svg("text", { x: left - 6, y: top + 10, "text-anchor": "end" }, String(max)));
  chart.append(svg("text", { x: left - 6, y: top + plotH, "text-anchor": "end" }, "0"));
  chart.append(svg("text", { x: left, y: height - 6 }, "60 min ago"));
  chart.append(svg("text", { x: width - 8, y: height - 6, "text-anchor": "end" }, "now"));
  minutes.forEach((m, i) => {
    let y = top + plotH;
    for (const [name, color] of series) {
      const v = value(m, name);
      if (!v) continue;
      const h = (v / max) * plotH;
      y -= h;
      chart.append(svg("rect", { x: (left + i * step + 1).toFixed(1), y: y.toFixed(1),
        width: Math.max(1, step - 2).toFixed(1), height: Math.max(0.5, h).toFixed(1),
        fill: color, class: "bar", "data-series": name },
        svg("title", {}, `${clock(m.minute).slice(0, 5)} ${name}: ${v}`)));
    }
  });
  $("chart").replaceChildren(chart);
  $("legend").replaceChildren(...series.map(([name, color]) => el("li", {},
    svg("svg", { width: 12, height: 12, class: "swatch", "aria-hidden": "true" },
      svg("rect", { width: 12, height: 12, fill: color })), name.replace("_", " "))));
}

