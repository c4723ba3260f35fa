// The snn page: predictions, every neuron's activation and weights (a convolution's feature maps and
// kernels), and a run's dashboard: its curves, every neuron during training, and the invocation timeline.
// The charts come from charts.js.
"use strict";
const $ = (id) => document.getElementById(id);
let model = null;
let lastInput = null; // {kind: "file", file} or {kind: "array", input}

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({})); // a proxy's error page is not JSON
  if (!response.ok) throw Object.assign(new Error(body.error || `${response.status} ${response.statusText}`),
                                        { status: response.status });
  return body;
}

function colour(value, lo, hi) {
  const t = hi > lo ? (value - lo) / (hi - lo) : 0.5;
  const c = Math.round(255 * (1 - t));
  return `rgb(${c}, ${Math.round(120 + 100 * (1 - t))}, 255)`;
}

function request(path) {
  if (lastInput.kind === "file") {
    const form = new FormData();
    form.append("file", lastInput.file);
    return api(path, { method: "POST", body: form });
  }
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" },
                     body: JSON.stringify({ input: lastInput.input }) });
}

async function predict() {
  $("error").textContent = "";
  try {
    const result = await request("/explain");
    $("bars").replaceChildren();
    if (result.values) { // a regression: each target's value
      $("label").textContent = Object.entries(result.values).map(([name, v]) => `${name}: ${v.toPrecision(6)}`)
        .join(", ");
      showLayers(result.layers);
      return;
    }
    $("label").textContent = `${result.label} (${(100 * result.probability).toFixed(1)}%)`;
    // Class names come from the model file: they are text, never markup.
    for (const [name, p] of Object.entries(result.probabilities)) {
      const bar = element("div");
      bar.style.width = `${Math.round(200 * p)}px`;
      $("bars").appendChild(element("div", "bar", [element("span", "", name), bar, element("span", "", p.toFixed(3))]));
    }
    showLayers(result.layers);
  } catch (e) {
    $("error").textContent = e.message;
  }
}

// A row per layer, in the order of /explain, so row n is /neuron/n/...: a dense layer's neurons as cells, an image
// layer's output as its feature maps, a flatten layer as one line (its values are the maps above it).
function showLayers(layers) {
  $("layers").replaceChildren(...layers.map((layer, i) =>
    layer.shape && layer.shape.length === 3 ? mapsRow(layer, i + 1) : layer.a ? neuronsRow(layer, i + 1)
      : element("div", "layer", [element("b", "", `layer ${i + 1}`),
                                 element("span", "hint", `${layer.type}: the maps above as ${layer.shape[0]} values`)])));
}

function neuronsRow(layer, n) {
  const row = element("div", "layer", [element("b", "", `layer ${n}`)]);
  const [lo, hi] = extent(layer.a);
  layer.a.forEach((a, unit) => {
    const cell = document.createElement("div");
    cell.className = "cell";
    cell.dataset.layer = n;
    cell.dataset.unit = unit;
    cell.title = `layer ${n}, neuron ${unit}: ${layer.activation} = ${a.toFixed(4)}`;
    cell.style.background = colour(a, lo, hi);
    cell.onclick = () => showNeuron(n, unit, a, cell);
    row.appendChild(cell);
  });
  return row;
}

// The maps come as 8-bit levels on one scale for the whole layer (see service.py), so they are drawn as they come.
function mapsRow(layer, n) {
  const row = element("div", "layer", [element("b", "", `layer ${n}`)]);
  const [channels, h, w] = layer.shape;
  (layer.maps || []).forEach((map, unit) => {
    const thumb = picture(w, h, grey(map.flat(), 0, 255));
    thumb.className = "map";
    thumb.dataset.layer = n;
    thumb.dataset.unit = unit;
    thumb.title = `layer ${n} (${layer.type}), ${layer.type === "conv2d" ? "filter" : "channel"} ${unit}: ` +
      `mean ${layer.a[unit].toFixed(4)}`;
    thumb.onclick = () => showMap(n, unit, layer, thumb);
    row.appendChild(thumb);
  });
  const sent = layer.maps ? layer.maps.length : 0;
  if (sent < channels) row.appendChild(element("span", "hint", `${sent} of ${channels} maps of ${h}x${w} sent`));
  return row;
}

function select(node) {
  document.querySelectorAll("#layers .selected").forEach((c) => c.classList.remove("selected"));
  node.classList.add("selected");
}

// The neuron box shows a dense neuron's weights, or a map large and the kernels that made it.
function showBox(title, facts, maps) {
  $("neuron").hidden = false;
  $("neuron-title").textContent = title;
  $("neuron-facts").textContent = facts;
  $("weights").hidden = maps;
  $("map").hidden = !maps;
  $("kernels").hidden = !maps;
}

// /neuron/{layer}/{unit}, or null with its error shown on the page.
async function neuronOf(layer, unit) {
  try {
    return await api(`/neuron/${layer}/${unit}`);
  } catch (e) {
    $("error").textContent = e.message;
    return null;
  }
}

async function showNeuron(layer, unit, activation, cell) {
  select(cell);
  const n = await neuronOf(layer, unit);
  if (!n) return;
  showBox(`Layer ${layer}, neuron ${unit} (${n.activation})`,
          `bias ${n.bias.toFixed(5)}, activation ${activation.toFixed(5)}, ${n.weights.length} incoming weights`, false);
  drawWeights(n.weights, n.shape);
}

// A conv filter: its kernels (one per input channel) from /neuron and its map; a pooled channel: its map alone.
async function showMap(layer, unit, info, thumb) {
  select(thumb);
  const [, h, w] = info.shape;
  let title = `Layer ${layer}, channel ${unit} (${info.type})`, facts = "", kernels = [];
  if (info.type === "conv2d") {
    const n = await neuronOf(layer, unit);
    if (!n) return;
    title = `Layer ${layer}, filter ${unit} (${n.activation})`;
    facts = `bias ${n.bias.toFixed(5)}, ${n.shape[0]} kernel(s) of ${n.shape[1]}x${n.shape[2]}, `;
    kernels = n.kernels;
  }
  showBox(title, `${facts}map ${h}x${w}, mean activation ${info.a[unit].toFixed(5)}`, true);
  blowUp($("map"), picture(w, h, grey(info.maps[unit].flat(), 0, 255)));
  const [lo, hi] = extent(kernels.flat(2)); // one scale for all of a filter's kernels, so they compare
  $("kernels").replaceChildren(...kernels.map((k, c) => {
    const canvas = picture(k[0].length, k.length, grey(k.flat(), lo, hi));
    canvas.className = "kernel";
    canvas.title = `input channel ${c}`;
    return canvas;
  }));
}

// Pixel i of a picture as a grey level: values from lo (black) to hi (white).
function grey(values, lo, hi) {
  return (i) => { const v = level(values[i], lo, hi); return [v, v, v]; };
}

function level(v, lo, hi) {
  return Math.round(255 * (hi > lo ? (v - lo) / (hi - lo) : 0.5));
}

// A canvas of w x h pixels, pixel i coloured rgb(i) = [r, g, b]; built with ImageData, never markup.
function picture(w, h, rgb) {
  const canvas = document.createElement("canvas");
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    img.data.set(rgb(i), 4 * i);
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

// A picture over the width of a canvas (and its height, or the height given), pixels kept square-edged.
function blowUp(canvas, source, height = canvas.height) {
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(source, 0, 0, canvas.width, height);
}

// A neuron's incoming weights as a picture of the input's shape (h x w, in grey or RGB), from lo to hi.
function weightPicture(w, shape, lo, hi) {
  const [h, wd, ch] = shape.length >= 2 ? [shape[0], shape[1], shape[2] || 1] : [1, shape[0], 1];
  const rgb = (i) => [0, 1, 2].map((c) => level(w[i * ch + (ch === 3 ? c : 0)], lo, hi));
  return picture(wd, h, rgb);
}

function drawWeights(w, shape) {
  const [lo, hi] = extent(w);
  blowUp($("weights"), weightPicture(w, shape, lo, hi), shape.length < 2 ? 24 : undefined);
}

// A table model: one number field per feature, named as the model names them (text, never markup).
function setupRow(pre) {
  const n = pre.shape.reduce((a, b) => a * b, 1);
  if (n > 64) return; // past that a form is no way to type an example: send JSON to /predict
  const names = pre.features || Array.from({ length: n }, (_, j) => `feature ${j + 1}`);
  const fields = names.map((name, j) => {
    const input = element("input");
    Object.assign(input, { type: "number", step: "any", id: `feature-${j}`, value: pre.mean ? pre.mean[j] : 0 });
    input.setAttribute("aria-label", name);
    return element("label", "feature", [element("span", "", name), input]);
  });
  $("row-fields").replaceChildren(...fields);
  $("row-box").hidden = false;
  $("upload").hidden = true;
  $("row-predict").onclick = () => {
    lastInput = { kind: "array", input: names.map((_, j) => Number($(`feature-${j}`).value)) };
    predict();
  };
}

function setupDrawing(shape) {
  $("draw-box").hidden = false;
  const canvas = $("draw"), ctx = canvas.getContext("2d");
  ctx.fillStyle = "black"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  let down = false;
  const at = (e) => { const r = canvas.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
  canvas.onpointerdown = (e) => { down = true; ctx.beginPath(); ctx.moveTo(...at(e)); };
  canvas.onpointermove = (e) => {
    if (!down) return;
    ctx.lineWidth = 22; ctx.lineCap = "round"; ctx.strokeStyle = "white"; ctx.lineTo(...at(e)); ctx.stroke();
  };
  window.onpointerup = () => { down = false; };
  $("draw-clear").onclick = () => { ctx.fillStyle = "black"; ctx.fillRect(0, 0, canvas.width, canvas.height); };
  $("draw-predict").onclick = () => {
    const small = document.createElement("canvas");
    small.width = shape[1]; small.height = shape[0];
    const s = small.getContext("2d");
    s.drawImage(canvas, 0, 0, shape[1], shape[0]);
    const px = s.getImageData(0, 0, shape[1], shape[0]).data;
    const input = [];
    for (let y = 0; y < shape[0]; y++) {
      const row = [];
      for (let x = 0; x < shape[1]; x++) row.push(px[4 * (y * shape[1] + x)]);
      input.push(row);
    }
    lastInput = { kind: "array", input };
    predict();
  };
}

// --- the run's dashboard ---------------------------------------------------------------------------------------------

const run = { cost: null, accuracy: null, history: [], epochs: -1, from: null, to: null, timeline: null };
const METRIC_NAMES = { weight_norm: "weight norm", grad_norm: "gradient norm", mean_activation: "mean activation",
                       inactive: "dead fraction", saturated: "saturated fraction" };
const RECTIFIED = ["relu", "leaky_relu"];
const NEURON = "rgba(31, 59, 87, 0.45)", WARNING = "#d00000";

function setupRun() {
  run.cost = chart($("cost-chart"), { y: "cost" });
  run.accuracy = chart($("accuracy-chart"), { y: "accuracy" });
  $("cost-log").onchange = drawHistory;
  $("zoom").onclick = () => {
    run.from = Number($("step-from").value);
    run.to = Number($("step-to").value);
    refreshTimeline();
  };
  $("zoom-all").onclick = () => {
    run.from = run.to = null;
    $("step-from").value = $("step-to").value = "";
    refreshTimeline();
  };
  $("timeline-canvas").onmousemove = hoverTimeline;
  $("timeline-canvas").onmouseleave = () => { $("timeline-tip").hidden = true; };
  $("replay-epoch").oninput = () => showSnapshot(Number($("replay-epoch").value));
  $("replay-change").onchange = () => showSnapshot(Number($("replay-epoch").value));
  $("replay-play").onclick = playReplay;
}

// Every 2 s: the history; the telemetry and the timeline again only when an epoch has ended since.
async function refreshRun() {
  try {
    run.history = await api("/run/history");
  } catch (e) {
    $("run-facts").textContent = e.message;
    return;
  }
  const last = run.history.length ? run.history[run.history.length - 1].epoch : 0;
  if (last === run.epochs) return;
  run.epochs = last;
  drawHistory();
  await Promise.all([refreshTelemetry(), refreshTimeline()]);
}

function drawHistory() {
  const series = (keys) => keys.map(([key, name, colour]) =>
    ({ name, colour, points: run.history.map((r) => [r.epoch, r[key]]) }));
  plot(run.cost, series([["cost", "cost", "#1f3b57"], ["val_cost", "validation cost", "#e07000"]]),
       { log: $("cost-log").checked });
  plot(run.accuracy, series([["train_accuracy", "train accuracy", "#2e8b57"],
                             ["val_accuracy", "validation accuracy", "#e07000"]]), { yRange: [0, 1] });
}

// --- every neuron during training: small multiples per layer, and the first layer's weights replayed

async function refreshTelemetry() {
  let t;
  try {
    t = await api("/run/telemetry");
  } catch (e) {
    $("telemetry-facts").textContent = e.status === 404 ? "No telemetry in this run (training.telemetry_every is 0, " +
      "or it was trained before snn recorded it)." : e.message;
    $("telemetry").replaceChildren();
    return;
  }
  const [first, last] = [t.epochs[0], t.epochs[t.epochs.length - 1]];
  $("telemetry-facts").textContent = `${t.samples} samples, from epoch ${first} to ${last}, each on the same ` +
    `${t.examples} training examples; flagged at the last one.`;
  $("telemetry").replaceChildren(...t.layers.map((layer) => multiples(layer, t.epochs)));
  setupReplay(t.snapshots);
}

// A layer's row: one chart per metric, one thin line per neuron, its flagged neurons in red (drawn last, on top).
function multiples(layer, epochs) {
  const flagged = new Set([...layer.dead, ...layer.saturated]);
  const charts = element("div", "charts");
  const what = (layer.type === "conv2d" ? "filter" : "unit") + (layer.units === 1 ? "" : "s");
  const row = element("div", "multiples", [
    element("h4", "", `layer ${layer.layer}: ${layer.type}, ${layer.units} ${what}, ${layer.activation}`), charts,
    flagsLine(layer)]);
  row.dataset.layer = layer.layer;
  row.dataset.dead = layer.dead.join(",");
  row.dataset.saturated = layer.saturated.join(",");
  const fourth = RECTIFIED.includes(layer.activation) ? "inactive" : "saturated";
  for (const metric of ["weight_norm", "grad_norm", "mean_activation", fourth]) {
    const c = chart(charts, { width: 250, height: 130, y: METRIC_NAMES[metric] });
    c.box.dataset.metric = metric;
    const rows = layer.metrics[metric]; // one row per sample, one column per unit
    const units = rows[0].map((_, u) => u).sort((a, b) => flagged.has(a) - flagged.has(b));
    const lines = units.map((u) => ({ name: `unit ${u}`, colour: flagged.has(u) ? WARNING : NEURON,
                                      width: flagged.has(u) ? 2 : 1, points: epochs.map((e, i) => [e, rows[i][u]]) }));
    plot(c, lines, { yRange: metric === fourth ? [0, 1] : null, legend: false });
  }
  return row;
}

function flagsLine(layer) {
  const parts = [];
  if (layer.dead.length) parts.push(`dead (off on every sampled example): units ${layer.dead.join(", ")}`);
  if (layer.saturated.length) {
    parts.push(`saturated (near a bound on most examples): units ${layer.saturated.join(", ")}`);
  }
  return element("p", parts.length ? "flags warning" : "flags hint", parts.join("; ") || "no dead or saturated units");
}

const replay = { snapshots: null, cache: new Map(), timer: null };

function setupReplay(snapshots) {
  $("replay").hidden = !snapshots;
  if (!snapshots) return;
  const slider = $("replay-epoch");
  const grew = !replay.snapshots || replay.snapshots.epochs.length !== snapshots.epochs.length;
  replay.snapshots = snapshots;
  slider.max = snapshots.epochs.length - 1;
  if (grew) slider.value = slider.max; // a live run: follow its newest snapshot
  showSnapshot(Number(slider.value));
}

// Snapshot k: the weights, or (the box ticked) what training changed in them since the first snapshot, which
// random initial weights otherwise hide.
async function showSnapshot(k) {
  const change = $("replay-change").checked, key = `${k}:${replay.snapshots.epochs[k]}:${change}`;
  try {
    if (!replay.cache.has(key)) replay.cache.set(key, await api(`/run/telemetry/weights/${k}?change=${change}`));
  } catch (e) {
    $("replay-label").textContent = e.message;
    return;
  }
  const snap = replay.cache.get(key);
  $("replay-label").textContent = `epoch ${snap.epoch} (snapshot ${k + 1} of ${snap.count}): ${snap.units} units, ` +
    `each from its least (dark) to its greatest ${change ? `change since epoch ${snap.since}` : "weight"} (light)`;
  drawSnapshot(snap);
}

// The first layer's units side by side, each its weights as an image of the input's shape.
function drawSnapshot(snap) {
  const levels = Uint8Array.from(atob(snap.levels), (c) => c.charCodeAt(0)), n = levels.length / snap.units;
  const canvas = $("replay-canvas"), cols = Math.min(snap.units, 10), tile = Math.floor(canvas.width / cols);
  canvas.height = tile * Math.ceil(snap.units / cols);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  for (let u = 0; u < snap.units; u++) {
    const image = weightPicture(levels.subarray(u * n, (u + 1) * n), snap.shape, 0, 255);
    ctx.drawImage(image, (u % cols) * tile + 1, Math.floor(u / cols) * tile + 1, tile - 2, tile - 2);
  }
}

function playReplay() {
  if (replay.timer) {
    clearInterval(replay.timer);
    replay.timer = null;
    $("replay-play").textContent = "Play";
    return;
  }
  $("replay-play").textContent = "Pause";
  replay.timer = setInterval(() => {
    const slider = $("replay-epoch");
    slider.value = (Number(slider.value) + 1) % (Number(slider.max) + 1);
    showSnapshot(Number(slider.value));
  }, 600);
}

// --- the invocation timeline: a lane per (phase, layer), occupancy per pixel column, computed by the server

const LANE = 24, FLAG_ROW = 8, AXIS = 20, TL = { left: 2, right: 12 };
const PHASE_COLOURS = { forward: "#4a7fb0", backward: "#e07000", loss: "#2e8b57" };

async function refreshTimeline() {
  const canvas = $("timeline-canvas");
  const query = new URLSearchParams({ bins: canvas.width - TL.left - TL.right });
  if (run.from !== null) query.set("step_from", run.from);
  if (run.to !== null) query.set("step_to", run.to);
  try {
    run.timeline = await api(`/run/timeline?${query}`);
  } catch (e) {
    run.timeline = null;
    $("lane-labels").replaceChildren();
    canvas.height = 30;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#666";
    ctx.fillText(e.status === 404 ? "no invocations: this run trained in process" : e.message, 10, 20);
    $("run-facts").textContent = e.status === 404 ? "" : e.message;
    $("timeline").dataset.steps = "none";
    return;
  }
  drawTimeline(run.timeline);
}

function drawTimeline(t) {
  const canvas = $("timeline-canvas"), ctx = canvas.getContext("2d");
  canvas.height = t.lanes.length * LANE + FLAG_ROW + AXIS;
  const width = canvas.width - TL.left - TL.right, col = width / t.bins;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  t.lanes.forEach((lane, k) => {
    const top = k * LANE, peak = typical(lane.occupancy);
    ctx.fillStyle = k % 2 ? "#f3f3f3" : "#fafafa";
    ctx.fillRect(TL.left, top, width, LANE);
    ctx.fillStyle = PHASE_COLOURS[lane.phase] || "#777";
    lane.occupancy.forEach((v, i) => {
      if (v <= 0) return;
      const h = Math.max(1, (LANE - 3) * Math.min(1, v / peak)); // each lane on its own scale: small layers show
      ctx.fillRect(TL.left + i * col, top + LANE - 1 - h, Math.max(1, col), h);
    });
  });
  ctx.fillStyle = "#b00020";
  t.flagged.forEach((n, i) => {
    if (n) ctx.fillRect(TL.left + i * col, t.lanes.length * LANE + 2, Math.max(1, col), 5);
  });
  const [s0, s1] = t.seconds, f = { x: (v) => TL.left + width * (s1 > s0 ? (v - s0) / (s1 - s0) : 0) };
  const y = canvas.height - AXIS;
  ctx.fillStyle = "#444";
  ctx.strokeStyle = "#888";
  ctx.font = "10px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const v of ticks(s0, s1, 8)) {
    const x = Math.round(f.x(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x, y + 4); ctx.stroke();
    ctx.fillText(short(v), x, y + 6);
  }
  $("lane-labels").replaceChildren(...t.lanes.map((lane) => element("div", "lane-label", [
    lane.label, element("span", "hint", ` ${lane.invocations} calls, ${lane.busy_seconds.toFixed(1)} s`)])));
  if (!$("step-from").value) $("step-from").value = t.step_from;
  if (!$("step-to").value) $("step-to").value = t.step_to;
  [$("step-from").min, $("step-from").max, $("step-to").min, $("step-to").max] = [...t.steps, ...t.steps];
  $("run-facts").textContent = `${t.invocations} invocations of steps ${t.step_from} to ${t.step_to} on ` +
    `${t.workers} worker${t.workers === 1 ? "" : "s"}, over ${(s1 - s0).toFixed(3)} s` +
    (t.truncated ? " (the ledger's last rows only)" : "");
  $("timeline").dataset.steps = `${t.step_from}-${t.step_to}`; // what is drawn, for whoever waits for it
}

// A lane's full height: the 98th percentile of its busy columns, so one straggler does not flatten the rest.
function typical(values) {
  const busy = values.filter((v) => v > 0).sort((a, b) => a - b);
  return busy.length ? busy[Math.floor(0.98 * (busy.length - 1))] : 1;
}

function hoverTimeline(e) {
  const t = run.timeline, canvas = $("timeline-canvas"), tip = $("timeline-tip");
  const r = canvas.getBoundingClientRect(), px = e.clientX - r.left, py = e.clientY - r.top;
  const lane = t && t.lanes[Math.floor(py / LANE)], width = canvas.width - TL.left - TL.right;
  const i = Math.floor((px - TL.left) / (width / (t ? t.bins : 1)));
  if (!lane || i < 0 || i >= t.bins) { tip.hidden = true; return; }
  const [s0, s1] = t.seconds, bin = (s1 - s0) / t.bins;
  tip.textContent = `${lane.label}, ${(s0 + i * bin).toFixed(3)} to ${(s0 + (i + 1) * bin).toFixed(3)} s: ` +
    `${lane.occupancy[i]} running on average`;
  place(tip, canvas, px, py);
}

// Dense layers as sizes, 784-16-10 (relu, softmax); other kinds by type and output shape.
function architecture(a) {
  const activations = `(${a.layers.map((l) => l.activation).join(", ")})`;
  if (!a.layers.some((l) => l.type)) return `${a.n_input}-${a.layers.map((l) => l.units).join("-")} ${activations}`;
  const parts = a.layers.map((l) => l.type ? `${l.type} ${l.output_shape.join("x")}` : `${l.units}`);
  return `${a.input_shape.join("x")} → ${parts.join(" → ")} ${activations}`;
}

async function start() {
  try {
    model = await api("/model");
  } catch (e) {
    $("model-name").textContent = `the model cannot be shown: ${e.message}`;
    return;
  }
  $("model-name").textContent = `${architecture(model.architecture)}, classes: ${model.classes.join(", ")}`;
  const shape = model.preprocessing.shape;
  if (model.preprocessing.kind === "image" && shape.length === 2) setupDrawing(shape);
  if (model.preprocessing.kind === "table") setupRow(model.preprocessing);
  $("upload").onchange = () => {
    if (!$("upload").files.length) return;
    lastInput = { kind: "file", file: $("upload").files[0] };
    predict();
  };
  if (model.is_run) {
    $("run").hidden = false;
    setupRun();
    refreshRun();
    setInterval(refreshRun, 2000);
  }
}

start();
