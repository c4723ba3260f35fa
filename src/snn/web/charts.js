// Charts on canvas with axes, ticks and labels, and the value under the mouse in a tooltip. Loaded before app.js.
// Axis labels and the tooltip are DOM text (textContent, never markup), so they can be read, found and tested.
"use strict";

// An element with a class and children; strings become text nodes, so nothing is parsed as HTML.
function element(tag, className = "", children = []) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...(typeof children === "string" ? [children] : children));
  return node;
}

// The least and greatest of many numbers (spreading a first layer's weights into Math.min overflows the stack).
function extent(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return [lo, hi];
}

const MARGIN = { left: 52, right: 16, top: 8, bottom: 20 };

// Round numbers from lo to hi, about n of them: steps of 1, 2 or 5 times a power of ten.
function ticks(lo, hi, n = 5) {
  if (!(hi > lo)) return [lo];
  const rough = (hi - lo) / n, p = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((k) => k * p).find((s) => s >= rough);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-6; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

// Ticks of a log axis, as log10 of their values (lo and hi are log10 of the range): 1, 2 and 5 times the powers of
// ten in it, or only the powers when there are many.
function logTicks(lo, hi) {
  const out = [];
  for (let k = Math.floor(lo); k <= Math.ceil(hi); k++) {
    for (const m of [1, 2, 5]) { const v = k + Math.log10(m); if (v >= lo && v <= hi) out.push(v); }
  }
  return out.length > 8 ? out.filter((v) => Number.isInteger(v)) : out;
}

// A number as a tick label says it: short.
function short(v) {
  const a = Math.abs(v);
  return a !== 0 && (a >= 1e5 || a < 1e-3) ? v.toExponential(0) : String(Number(v.toPrecision(4)));
}

// A chart inside `parent`: a canvas, its axis labels beside it and a tooltip. x and y name the axes.
function chart(parent, { width = 520, height = 200, x = "epoch", y = "" } = {}) {
  const canvas = element("canvas");
  canvas.width = width;
  canvas.height = height;
  const tip = element("div", "tooltip");
  tip.hidden = true;
  const box = element("div", "chart", [element("div", "y-label", y),
                                        element("div", "plot", [canvas, element("div", "x-label", x), tip])]);
  parent.appendChild(box);
  const c = { box, canvas, tip, x, series: [], frame: null };
  canvas.onmousemove = (e) => hover(c, e);
  canvas.onmouseleave = () => { tip.hidden = true; };
  return c;
}

// Draw series ([{name, colour, width, points: [[x, y], ...] in x order}]) over axes with ticks. Points that are not
// numbers (a run file's cell may be anything) are left out, and so are values <= 0 on a log axis.
// yRange: a fixed [lo, hi] (accuracies, fractions); legend: the series' names in their colours.
function plot(c, series, { log = false, yRange = null, legend = true } = {}) {
  const ctx = c.canvas.getContext("2d"), W = c.canvas.width, H = c.canvas.height, m = MARGIN;
  ctx.clearRect(0, 0, W, H);
  const ok = ([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!log || y > 0);
  c.series = series.map((s) => ({ ...s, points: s.points.filter(ok) })).filter((s) => s.points.length);
  c.frame = null;
  c.tip.hidden = true;
  if (!c.series.length) {
    ctx.fillStyle = "#666";
    ctx.fillText("nothing recorded yet", m.left + 8, H / 2);
    return;
  }
  const t = (y) => (log ? Math.log10(y) : y);
  const [x0, x1] = extent(c.series.flatMap((s) => s.points.map((p) => p[0])));
  let [y0, y1] = yRange || extent(c.series.flatMap((s) => s.points.map((p) => t(p[1]))));
  const pad = y1 > y0 ? (yRange ? 0 : 0.05 * (y1 - y0)) : Math.abs(y0) * 0.1 || 1; // a flat line sits mid-height
  y0 -= pad; y1 += pad;
  const f = {
    x: (v) => m.left + (W - m.left - m.right) * (x1 > x0 ? (v - x0) / (x1 - x0) : 0.5),
    ty: (v) => H - m.bottom - (H - m.top - m.bottom) * (v - y0) / (y1 - y0), // an axis value (log10 on a log axis)
  };
  f.y = (v) => f.ty(t(v));
  axes(ctx, f, [x0, x1], [y0, y1], log);
  for (const s of c.series) line(ctx, s, f);
  if (legend) {
    ctx.textAlign = "right";
    ctx.textBaseline = "top";
    c.series.forEach((s, i) => {
      ctx.fillStyle = s.colour;
      ctx.fillText(s.name, W - m.right - 4, m.top + 2 + 12 * i);
    });
  }
  c.frame = f;
}

function axes(ctx, f, [x0, x1], [y0, y1], log) {
  const W = ctx.canvas.width, H = ctx.canvas.height, m = MARGIN;
  ctx.font = "10px system-ui, sans-serif";
  ctx.lineWidth = 1;
  ctx.fillStyle = "#444";
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const v of log ? logTicks(y0, y1) : ticks(y0, y1, Math.max(2, Math.floor((H - m.top - m.bottom) / 30)))) {
    const y = Math.round(f.ty(v)) + 0.5;
    ctx.strokeStyle = "#eee";
    ctx.beginPath(); ctx.moveTo(m.left, y); ctx.lineTo(W - m.right, y); ctx.stroke();
    ctx.fillText(short(log ? 10 ** v : v), m.left - 5, y);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  ctx.strokeStyle = "#888";
  for (const v of ticks(x0, x1, Math.max(3, Math.floor((W - m.left - m.right) / 70)))) {
    const x = Math.round(f.x(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(x, H - m.bottom); ctx.lineTo(x, H - m.bottom + 4); ctx.stroke();
    ctx.fillText(short(v), x, H - m.bottom + 6);
  }
  ctx.beginPath();
  ctx.moveTo(m.left + 0.5, m.top);
  ctx.lineTo(m.left + 0.5, H - m.bottom + 0.5);
  ctx.lineTo(W - m.right, H - m.bottom + 0.5);
  ctx.stroke();
}

function line(ctx, s, f) {
  ctx.strokeStyle = s.colour;
  ctx.lineWidth = s.width || 1.5;
  ctx.beginPath();
  s.points.forEach(([x, y], i) => (i ? ctx.lineTo(f.x(x), f.y(y)) : ctx.moveTo(f.x(x), f.y(y))));
  ctx.stroke();
  if (s.points.length === 1) { // one epoch: a point
    const [x, y] = s.points[0];
    ctx.fillStyle = s.colour;
    ctx.fillRect(f.x(x) - 3, f.y(y) - 3, 6, 6);
  }
}

// The point nearest the mouse (each series' nearest in x, then the nearest of those): its x and value in the tooltip,
// as text and, exactly, in data-x and data-value.
function hover(c, e) {
  if (!c.frame) return;
  const r = c.canvas.getBoundingClientRect(), px = e.clientX - r.left, py = e.clientY - r.top;
  let best = null;
  for (const s of c.series) {
    const p = nearest(s.points, c.frame, px);
    const d = Math.hypot(c.frame.x(p[0]) - px, c.frame.y(p[1]) - py);
    if (!best || d < best.d) best = { d, s, p };
  }
  const [x, y] = best.p;
  c.tip.textContent = `${c.x} ${x}: ${best.s.name} ${y.toPrecision(6)}`;
  Object.assign(c.tip.dataset, { x, value: y, series: best.s.name });
  place(c.tip, c.canvas, px, py);
}

function place(tip, canvas, px, py) {
  tip.hidden = false;
  tip.style.left = `${Math.max(0, Math.min(px + 12, canvas.width - tip.offsetWidth))}px`;
  tip.style.top = `${Math.max(0, py - 30)}px`;
}

function nearest(points, f, px) {
  let lo = 0, hi = points.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (f.x(points[mid][0]) < px) lo = mid; else hi = mid;
  }
  return Math.abs(f.x(points[lo][0]) - px) <= Math.abs(f.x(points[hi][0]) - px) ? points[lo] : points[hi];
}
