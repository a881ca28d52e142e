// Lumen's status page: fetches the sidecar's JSON and draws it in place
// (no reload, no network but the sidecar). Every text goes in through
// textContent or an attribute, never as HTML.
"use strict";
(function () {
  const root = document.body;
  const sloPath = root.dataset.sloPath || "/v1/slo";
  const windowParam = root.dataset.window || "1h";
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#1a73e8", "#e37400", "#d93025", "#188038", "#9334e6", "#5f6368"];
  const SEVERITY = { CRITICAL: 0, WARNING: 1, HEALTHY: 2, NO_DATA: 3 };

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }
  function fmt(v, unit) {
    if (v === null || v === undefined || Number.isNaN(v)) return "n/a";
    const digits = Math.abs(v) < 1 && v !== 0 ? 3 : (Math.abs(v) < 100 ? 2 : 1);
    return Number(v.toFixed(digits)) + (unit ? (unit === "%" ? "%" : " " + unit) : "");
  }
  async function json(path) {
    const r = await fetch(path, { headers: { accept: "application/json" } });
    if (!r.ok) throw new Error(path + ": HTTP " + r.status);
    return r.json();
  }

  // A line chart: series [{name, points: [[x, y|null]]}], optional
  // horizontal target lines [{y, name}], x as time unless opts.xLabels.
  function lineChart(id, title, series, opts) {
    const box = document.getElementById(id);
    box.replaceChildren();
    box.append(el("h3", {}, title));
    const W = 560, H = 200, L = 48, R = 8, T = 8, B = 24;
    const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
    const all = series.flatMap((x) => x.points.filter((p) => p[1] !== null && p[1] !== undefined));
    const targets = (opts && opts.targets) || [];
    const ys = all.map((p) => p[1]).concat(targets.map((t) => t.y));
    const xs = series.flatMap((x) => x.points.map((p) => p[0]));
    let yMin = opts && opts.yMin !== undefined ? opts.yMin : Math.min(0, ...ys);
    let yMax = opts && opts.yMax !== undefined ? opts.yMax : Math.max(1, ...ys) * 1.05;
    if (opts && opts.fitY && ys.length) { yMin = Math.min(...ys); yMax = Math.max(...ys); if (yMax - yMin < 1e-9) { yMin -= 1; yMax += 1; } }
    const xMin = xs.length ? Math.min(...xs) : 0, xMax = xs.length ? Math.max(...xs) : 1;
    const X = (x) => L + (xMax === xMin ? 0.5 : (x - xMin) / (xMax - xMin)) * (W - L - R);
    const Y = (y) => T + (1 - (y - yMin) / (yMax - yMin || 1)) * (H - T - B);
    s.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" }));
    s.append(svg("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" }));
    for (let i = 0; i <= 4; i++) {
      const y = yMin + (yMax - yMin) * i / 4;
      const t = svg("text", { x: L - 4, y: Y(y) + 4, "text-anchor": "end", "font-size": 10 });
      t.textContent = fmt(y);
      s.append(t);
    }
    // Spans kept off the error budget, shaded; deploys, marked.
    const xEnd = (opts && opts.xEnd) || xMax;
    const inside = (x) => xs.length && x >= xMin && x <= xEnd;
    for (const sp of (opts && opts.shade) || []) {
      const a = Math.max(sp.from_ms, xMin), b = Math.min(sp.to_ms, xMax);
      if (!xs.length || b <= a) continue;
      const r = svg("rect", { x: X(a), y: T, width: Math.max(1, X(b) - X(a)), height: H - T - B, fill: "#9aa0a6", "fill-opacity": 0.25, class: "excluded" });
      const tip = svg("title", {});
      tip.textContent = "kept off the error budget: " + sp.reason;
      r.append(tip);
      s.append(r);
    }
    for (const d of (opts && opts.marks) || []) {
      if (!inside(d.at_ms)) continue;
      const dx = X(Math.min(d.at_ms, xMax));
      const m = svg("line", { x1: dx, y1: T, x2: dx, y2: H - B, stroke: "#1a73e8", "stroke-dasharray": "2 2", class: "deploy" });
      const tip = svg("title", {});
      tip.textContent = "deploy: " + d.revision;
      m.append(tip);
      s.append(m);
    }
    const xl = svg("text", { x: W - R, y: H - 6, "text-anchor": "end", "font-size": 10 });
    xl.textContent = opts && opts.xLabels ? opts.xLabels : (xs.length ? new Date(xMin).toISOString().slice(11, 16) + "–" + new Date(xMax).toISOString().slice(11, 16) + " UTC" : "");
    s.append(xl);
    for (const t of targets) {
      s.append(svg("line", { x1: L, y1: Y(t.y), x2: W - R, y2: Y(t.y), stroke: "#d93025", "stroke-dasharray": "4 3" }));
      const tt = svg("text", { x: W - R, y: Y(t.y) - 3, "text-anchor": "end", "font-size": 10, fill: "#d93025" });
      tt.textContent = t.name;
      s.append(tt);
    }
    let drawn = 0;
    const has = (p) => p && p[1] !== null && p[1] !== undefined;
    series.forEach((ser, i) => {
      const color = COLORS[i % COLORS.length];
      let d = "";
      ser.points.forEach((p, k) => {
        if (!has(p)) return;
        const [x, y] = p;
        d += (has(ser.points[k - 1]) ? "L" : "M") + X(x).toFixed(1) + " " + Y(y).toFixed(1) + " ";
        drawn++;
        // A point without a neighbour would be an invisible path: a dot.
        if (ser.points.length < 40 || (!has(ser.points[k - 1]) && !has(ser.points[k + 1]))) {
          s.append(svg("circle", { cx: X(x), cy: Y(y), r: 2.5, fill: color }));
        }
      });
      if (d) s.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 1.5 }));
    });
    s.setAttribute("data-points", drawn);
    box.append(s);
    const legend = el("p", { class: "legend" });
    series.forEach((ser, i) => {
      const k = el("span", { style: `color:${COLORS[i % COLORS.length]}` }, "■ ");
      legend.append(k, document.createTextNode(ser.name + "  "));
    });
    box.append(legend);
  }

  function cards(slo, budget, health) {
    // Budgets and health are this sidecar's own; with a fleet source the
    // SLO values are the fleet's. Say which is which.
    const own = sloPath.includes("fleet") ? " (this instance)" : "";
    const box = document.getElementById("cards");
    box.replaceChildren();
    for (const s of slo.slos) {
      const b = budget && budget.slos.find((x) => x.name === s.name);
      const card = el("div", { class: "card " + (s.met ? "met" : "missed"), "data-slo": s.name });
      card.append(el("h3", {}, s.name.replace(/_/g, " ")));
      card.append(el("p", { class: "current", "data-value": s.current === null ? "" : s.current }, fmt(s.current, s.unit)));
      card.append(el("p", { class: "target", "data-value": s.target }, "target " + s.comparison + " " + fmt(s.target, s.unit)));
      const left = b ? b.remaining_percent : null;
      card.append(el("p", { class: "budget", "data-value": left === null || left === undefined ? "" : left }, "budget left" + own + " " + fmt(left, "%")));
      box.append(card);
    }
    if (health) {
      const card = el("div", { class: "card", "data-slo": "health" });
      card.append(el("h3", {}, "health" + own));
      const score = health.health_score;
      card.append(el("p", { class: "current", "data-value": score === null ? "" : score }, fmt(score) + " " + health.band));
      card.append(el("p", {}, "ROI " + fmt(health.roi && health.roi.roi_percent, "%") + " · maturity " + fmt(health.maturity && health.maturity.score)));
      box.append(card);
    }
  }

  let sortKey = "worst", sortDir = 1, lastRoutes = [];
  const COLS = [
    ["route", "Route"], ["requests", "Requests"], ["status", "Status"],
    ["availability", "Availability"], ["latency_p95", "P95"], ["error_rate", "Error rate"], ["hit_rate", "Cache hit rate"],
  ];
  function cell(r, key) {
    const slo = (n) => { const s = r.slos.find((x) => x.name === n); return s ? s.current : null; };
    switch (key) {
      case "route": return r.route === null ? "(none)" : r.route;
      case "requests": return r.requests;
      case "status": return r.status;
      case "availability": return slo("availability");
      case "latency_p95": return slo("latency_p95");
      case "error_rate": return slo("error_rate");
      case "hit_rate": return r.cache.hit_rate;
      default: return null;
    }
  }
  function routeTable(routes) {
    lastRoutes = routes;
    const table = document.getElementById("routes");
    table.replaceChildren();
    const head = el("tr");
    for (const [key, name] of COLS) {
      const th = el("th", { "data-key": key, tabindex: 0 }, name + (sortKey === key ? (sortDir > 0 ? " ▲" : " ▼") : ""));
      th.addEventListener("click", () => { sortDir = sortKey === key ? -sortDir : 1; sortKey = key; routeTable(lastRoutes); });
      head.append(th);
    }
    table.append(head);
    const rows = routes.slice();
    rows.sort((a, b) => {
      if (sortKey === "worst") {
        return (SEVERITY[a.status] - SEVERITY[b.status]) || ((a.compliance_rate ?? 101) - (b.compliance_rate ?? 101)) || (b.requests - a.requests);
      }
      const x = cell(a, sortKey), y = cell(b, sortKey);
      if (x === y) return 0;
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * sortDir;
    });
    for (const r of rows) {
      const tr = el("tr", { class: "route" });
      for (const [key] of COLS) {
        const v = cell(r, key);
        const unit = key === "latency_p95" ? "ms" : (["availability", "error_rate", "hit_rate"].includes(key) ? "%" : "");
        tr.append(el("td", { "data-value": v === null ? "" : v }, typeof v === "number" && unit ? fmt(v, unit) : (v === null ? "n/a" : v)));
      }
      table.append(tr);
    }
  }

  function charts(slo, series, budget) {
    // The series and budgets are this sidecar's own; with a fleet store the
    // cards and routes are the fleet's. Say so.
    document.getElementById("charts-scope").textContent = sloPath.includes("fleet")
      ? "Charts: this instance's traffic (cards and routes: the whole fleet)."
      : "";
    const pts = series.points;
    const at = (f) => pts.map((p) => [p.start_ms, f(p)]);
    const lat = (k) => at((p) => (p.latency ? p.latency[k] : null));
    const target = (n) => { const s = slo.slos.find((x) => x.name === n); return s ? s.target : null; };
    // Every time chart shades what is kept off the budget and marks deploys.
    const xEnd = pts.length ? pts[pts.length - 1].start_ms + series.step_s * 1000 : 0;
    const time = (o) => Object.assign({ shade: series.excluded || [], marks: series.deploys || [], xEnd }, o || {});
    lineChart("chart-latency", "Latency (ms) per " + series.step_s / 60 + " min", [
      { name: "P50", points: lat("p50_ms") }, { name: "P95", points: lat("p95_ms") }, { name: "P99", points: lat("p99_ms") },
    ], time({ targets: [{ y: target("latency_p95"), name: "P95 target" }, { y: target("latency_p99"), name: "P99 target" }].filter((t) => t.y !== null) }));
    lineChart("chart-requests", "Requests per minute", [
      { name: "requests/min", points: at((p) => p.requests / (series.step_s / 60)) },
    ], time());
    lineChart("chart-errors", "Error rate (%)", [{ name: "error rate", points: at((p) => p.error_rate_percent) }],
      time({ targets: [{ y: target("error_rate"), name: "target" }].filter((t) => t.y !== null) }));
    lineChart("chart-availability", "Availability (%)", [{ name: "availability", points: at((p) => p.availability_percent) }],
      time({ fitY: true, targets: [{ y: target("availability"), name: "target" }].filter((t) => t.y !== null) }));
    lineChart("chart-cache", "Cache hit rate (%)", [{ name: "hit rate", points: at((p) => p.cache_hit_rate_percent) }], time({ yMin: 0, yMax: 100 }));
    // Burn-down over the period: the budget left at the end of each hour.
    const burn = budget.slos
      .filter((b) => b.burndown && b.burndown.length)
      .map((b) => ({ name: b.name.replace("_", " "), points: b.burndown.map((p) => [p.at_ms, p.remaining_percent]) }));
    lineChart("chart-burndown", "Error budget left over the " + budget.period + " period (%)", burn,
      { targets: [{ y: 0, name: "exhausted" }], shade: budget.excluded || [], marks: series.deploys || [] });
    const windows = budget.slos.length ? budget.slos[0].burn_rates.map((w) => w.window) : [];
    lineChart("chart-burnrates", "Burn rates by window (" + windows.join(", ") + ")",
      budget.slos.map((b) => ({ name: b.name.replace("_", " "), points: b.burn_rates.map((w, i) => [i, w.rate]) })),
      { xLabels: windows.join(" · "), targets: [{ y: 1, name: "1× (budget lasts the period)" }] });
    const curve = series.distribution;
    lineChart("chart-distribution", "Latency distribution of the window (ms by percentile)",
      [{ name: "latency", points: curve.map((c) => [-Math.log10(1 - c.percentile / 100), c.latency_ms]) }],
      { xLabels: curve.length ? "P" + curve[0].percentile + " … P" + curve[curve.length - 1].percentile : "" });
  }

  const OUTCOMES = {
    running: "running", no_difference: "no detectable difference: A stays",
    sample_ratio_mismatch: "sample-ratio mismatch: A stays", stopped: "stopped: A stays",
  };
  function outcomeText(o) {
    if (o.kind === "winner") return o.arm.toUpperCase() + " wins";
    if (o.kind === "guardrail_regression") return "blocked by the guardrail " + o.metric + ": A stays";
    return OUTCOMES[o.kind] || o.kind;
  }
  // The running experiment, else the latest decided one: its arms, its
  // verdict, and the primary's B − A with its always-valid interval at
  // every look.
  function experiments(x) {
    const box = document.getElementById("experiments");
    const e = x.running || (x.decided && x.decided[0]);
    box.replaceChildren();
    if (!e) {
      box.append(el("p", { class: "scope" }, "No experiment has run on this sidecar."));
      return;
    }
    box.append(el("p", { id: "experiment-title" }, "Experiment " + e.id + ": " + e.spec.param + " = " + e.spec.a +
      " (A) against " + e.spec.b + " (B), " + e.spec.share_b_percent + " % to B · " + outcomeText(e.outcome)));
    box.append(el("p", { class: "scope" }, e.why + (x.scope === "fleet" ? " (the fleet's requests)" : " (this instance's requests)")));
    const wrap = el("div", { class: "scroll" });
    const table = el("table", { id: "experiment-arms" });
    const head = el("tr");
    for (const h of ["Arm", "Value", "Requests", "Hit rate", "Error rate", "P95", "P99"]) head.append(el("th", {}, h));
    table.append(head);
    for (const a of e.arms) {
      const tr = el("tr", { class: "arm" });
      const assigned = a.counts.requests + a.counts.cancelled;
      for (const [v, text] of [[a.arm, a.arm.toUpperCase()], [a.value, a.value], [assigned, assigned],
        [a.hit_rate, fmt(a.hit_rate, "%")], [a.error_rate, fmt(a.error_rate, "%")], [a.p95_ms, fmt(a.p95_ms, "ms")], [a.p99_ms, fmt(a.p99_ms, "ms")]]) {
        tr.append(el("td", { "data-value": v === null ? "" : v }, text));
      }
      table.append(tr);
    }
    wrap.append(table);
    box.append(wrap);
    const chart = el("div", { class: "chart", id: "chart-experiment" });
    box.append(chart);
    const look = (i) => e.timeline.map((l) => [l.at_ms, l.effect_points ? l.effect_points[i] : null]);
    lineChart("chart-experiment", e.spec.primary + ": B − A (points) with its always-valid interval, at each look",
      [{ name: "B − A", points: look(0) }, { name: "low", points: look(1) }, { name: "high", points: look(2) }],
      { fitY: true, targets: [{ y: 0, name: "no difference" }] });
  }

  async function refresh() {
    try {
      const [slo, series, budget, health, trials] = await Promise.all([
        json(sloPath + "?window=" + windowParam), json("/v1/series?window=" + windowParam),
        json("/v1/budget"), json("/v1/health?window=" + windowParam), json("/v1/experiments"),
      ]);
      document.getElementById("status").textContent = slo.status;
      document.getElementById("status").className = "badge " + slo.status;
      document.getElementById("compliance").textContent = fmt(slo.compliance_rate, "%");
      document.getElementById("requests").textContent = slo.requests;
      document.getElementById("evaluated").textContent = new Date(slo.evaluated_at_ms).toISOString();
      cards(slo, budget, health);
      routeTable(slo.routes);
      charts(slo, series, budget);
      experiments(trials);
      document.getElementById("error").textContent = "";
      root.dataset.ready = "1";
    } catch (e) {
      document.getElementById("error").textContent = "update failed: " + e.message;
    }
  }
  refresh();
  setInterval(refresh, 10000);
})();
