// Small SVG charts: line charts over steps and histograms. Fixed viewBox, so no layout shift.
"use strict";
(() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 400, H = 200, M = { left: 46, right: 18, top: 10, bottom: 26 };
  const COLORS = ["#1f5fa8", "#c2410c", "#15803d", "#7e22ce", "#a16207"];

  function svgEl(tag, attrs = {}) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    return node;
  }

  function tickText(v) {
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-2 || a >= 1e4)) return v.toExponential(1);
    return Number.isInteger(v) ? String(v) : v.toFixed(a < 1 ? 3 : 2);
  }

  function extent(values, pad) {
    let lo = Math.min(...values), hi = Math.max(...values);
    if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
    if (lo === hi) { lo -= pad || Math.abs(lo) * 0.1 || 1; hi += pad || Math.abs(hi) * 0.1 || 1; }
    return [lo, hi];
  }

  function frame(svg, xs, ys, xLabel) {
    const [x0, x1] = xs, [y0, y1] = ys;
    const sx = (x) => M.left + ((x - x0) / (x1 - x0 || 1)) * (W - M.left - M.right);
    const sy = (y) => H - M.bottom - ((y - y0) / (y1 - y0 || 1)) * (H - M.top - M.bottom);
    svg.append(svgEl("line", { x1: M.left, y1: H - M.bottom, x2: W - M.right, y2: H - M.bottom, class: "axis" }));
    svg.append(svgEl("line", { x1: M.left, y1: M.top, x2: M.left, y2: H - M.bottom, class: "axis" }));
    for (let i = 0; i <= 4; i++) {
      const y = y0 + ((y1 - y0) * i) / 4;
      svg.append(svgEl("line", { x1: M.left, y1: sy(y), x2: W - M.right, y2: sy(y), class: "grid" }));
      const t = svgEl("text", { x: M.left - 4, y: sy(y) + 3, class: "tick", "text-anchor": "end" });
      t.textContent = tickText(y);
      svg.append(t);
    }
    for (const x of [x0, (x0 + x1) / 2, x1]) {
      const t = svgEl("text", { x: sx(x), y: H - M.bottom + 13, class: "tick", "text-anchor": "middle" });
      t.textContent = tickText(Math.round(x * 100) / 100);
      svg.append(t);
    }
    const label = svgEl("text", { x: W - M.right, y: H - 2, class: "tick", "text-anchor": "end" });
    label.textContent = xLabel;
    svg.append(label);
    return { sx, sy };
  }

  function reset(container, title) {
    container.replaceChildren();
    const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, class: "chart" });
    container.append(svg);
    return svg;
  }

  function empty(svg, message) {
    const t = svgEl("text", { x: W / 2, y: H / 2, class: "empty", "text-anchor": "middle" });
    t.textContent = message;
    svg.append(t);
  }

  // series: [{label, points: [[x, y], ...]}]
  function lineChart(container, title, series, opts = {}) {
    const svg = reset(container, title);
    const legend = document.createElement("ul");
    legend.className = "legend";
    const drawn = series.map((s) => ({ ...s, points: s.points.filter((p) => p[1] !== null && Number.isFinite(p[1])) }))
      .filter((s) => s.points.length);
    if (!drawn.length) {
      empty(svg, opts.emptyText || "No data yet");
      container.append(legend);
      return;
    }
    const xs = drawn.flatMap((s) => s.points.map((p) => p[0]));
    const ys = drawn.flatMap((s) => s.points.map((p) => p[1]));
    const { sx, sy } = frame(svg, extent(xs, 1), extent(ys), opts.xLabel || "step");
    drawn.forEach((s, i) => {
      const color = COLORS[i % COLORS.length];
      const d = s.points.map((p, j) => `${j ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
      svg.append(svgEl("path", { d, fill: "none", stroke: color, "stroke-width": 1.8, class: "series" }));
      if (s.points.length === 1) svg.append(svgEl("circle", { cx: sx(s.points[0][0]), cy: sy(s.points[0][1]), r: 3, fill: color }));
      const last = s.points[s.points.length - 1][1];
      const item = document.createElement("li");
      item.innerHTML = `<span class="swatch" style="background:${color}"></span>`;
      item.append(`${s.label}: ${tickText(Math.round(last * 1000) / 1000)}`);
      legend.append(item);
    });
    container.append(legend);
  }

  function bins(values, lo, hi, n) {
    const counts = new Array(n).fill(0);
    for (const v of values) {
      const k = Math.min(n - 1, Math.max(0, Math.floor(((v - lo) / (hi - lo || 1)) * n)));
      counts[k] += 1;
    }
    return counts;
  }

  // groups: [{label, values}] drawn as overlaid translucent histograms on a shared axis.
  function histogram(container, title, groups, opts = {}) {
    const svg = reset(container, title);
    const legend = document.createElement("ul");
    legend.className = "legend";
    const all = groups.flatMap((g) => g.values);
    if (!all.length) {
      empty(svg, opts.emptyText || "No molecules yet");
      container.append(legend);
      return;
    }
    const n = opts.bins || 20;
    const [lo, hi] = opts.range || extent(all);
    const counted = groups.map((g) => bins(g.values, lo, hi, n).map((c) => (opts.density ? c / Math.max(1, g.values.length) : c)));
    const top = Math.max(...counted.flat(), 1e-9);
    const { sx, sy } = frame(svg, [lo, hi], [0, top], opts.xLabel || "reward");
    counted.forEach((counts, gi) => {
      const color = COLORS[gi % COLORS.length];
      counts.forEach((c, k) => {
        if (!c) return;
        const x = sx(lo + ((hi - lo) * k) / n), x2 = sx(lo + ((hi - lo) * (k + 1)) / n);
        svg.append(svgEl("rect", { x: x + 0.5, y: sy(c), width: Math.max(0.5, x2 - x - 1), height: sy(0) - sy(c),
          fill: color, "fill-opacity": groups.length > 1 ? 0.45 : 0.8 }));
      });
      const item = document.createElement("li");
      item.innerHTML = `<span class="swatch" style="background:${color}"></span>`;
      item.append(`${groups[gi].label} (n = ${groups[gi].values.length})`);
      legend.append(item);
    });
    container.append(legend);
  }

  // A scatter of `points` [{x, y}] (grey) with a highlighted set `front` [{x, y, href, label}] drawn
  // on top as links (each with a title and an accessible name), joined by its staircase.
  function scatter(container, title, points, front, opts = {}) {
    const svg = reset(container, title);
    const legend = document.createElement("ul");
    legend.className = "legend";
    const all = points.concat(front);
    if (!all.length) {
      empty(svg, opts.emptyText || "No molecules with both scores yet");
      container.append(legend);
      return;
    }
    const { sx, sy } = frame(svg, extent(all.map((p) => p.x), 0.05), extent(all.map((p) => p.y), 0.05), opts.xLabel || "x");
    const yLabel = svgEl("text", { x: M.left + 4, y: M.top + 8, class: "tick", "text-anchor": "start" });
    yLabel.textContent = `↑ ${opts.yLabel || "y"}`;
    svg.append(yLabel);
    const cloud = svgEl("g", { class: "cloud", "aria-hidden": "true" });
    for (const p of points) cloud.append(svgEl("circle", { cx: sx(p.x).toFixed(1), cy: sy(p.y).toFixed(1), r: 2.2 }));
    svg.append(cloud);
    const steps = [...front].sort((a, b) => b.x - a.x || a.y - b.y);  // x descending: y rises along the staircase
    if (steps.length > 1) {
      const d = steps.map((p, i) => (i ? `H${sx(p.x).toFixed(1)}V${sy(p.y).toFixed(1)}` : `M${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`)).join("");
      svg.append(svgEl("path", { d, class: "front-line", fill: "none" }));
    }
    const marks = svgEl("g", { class: "front" });
    for (const p of front) {
      const link = svgEl("a", { href: p.href, "aria-label": p.label, class: "front-point" });
      const dot = svgEl("circle", { cx: sx(p.x).toFixed(1), cy: sy(p.y).toFixed(1), r: 4 });
      const tip = svgEl("title");
      tip.textContent = p.label;
      dot.append(tip);
      link.append(dot);
      marks.append(link);
    }
    svg.append(marks);
    legend.innerHTML = '<li><span class="swatch cloud-swatch"></span></li><li><span class="swatch front-swatch"></span></li>';
    legend.children[0].append(`${opts.cloudLabel || "molecules"} (n = ${points.length})`);
    legend.children[1].append(`${opts.frontLabel || "highlighted"} (n = ${front.length})`);
    container.append(legend);
  }

  window.synflowPlot = { lineChart, histogram, scatter };
})();
