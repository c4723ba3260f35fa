// The snn page: predictions, every neuron's activation and weights (a convolution's feature maps and
// kernels), and a run's dashboard.
"use strict";
const $ = (id) => document.getElementById(id);
let model = null;
let lastInput = null; // {kind: "file", file} or {kind: "array", input}

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({})); // a proxy's error page is not JSON
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

// The least and greatest of many numbers (spreading a first layer's weights into Math.min overflows the stack).
function extent(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return [lo, hi];
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

// An element with a class and children; strings become text nodes, so nothing is parsed as HTML.
function element(tag, className = "", children = []) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...(typeof children === "string" ? [children] : children));
  return node;
}

async function predict() {
  $("error").textContent = "";
  try {
    const result = await request("/explain");
    $("label").textContent = `${result.label} (${(100 * result.probability).toFixed(1)}%)`;
    // Class names come from the model file: they are text, never markup.
    $("bars").replaceChildren();
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

function drawWeights(w, shape) {
  const [h, wd, ch] = shape.length >= 2 ? [shape[0], shape[1], shape[2] || 1] : [1, shape[0], 1];
  const [lo, hi] = extent(w);
  const rgb = (i) => [0, 1, 2].map((c) => level(w[i * ch + (ch === 3 ? c : 0)], lo, hi));
  blowUp($("weights"), picture(wd, h, rgb), h === 1 ? 24 : undefined);
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

function drawCurves(history) {
  const canvas = $("curves"), ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!history.length) return;
  const series = [["cost", "#1f3b57"], ["train_accuracy", "#2e8b57"], ["val_accuracy", "#e07000"]];
  const n = history.length, pad = 30;
  for (const [key, stroke] of series) {
    const ys = history.map((r) => r[key]).filter((v) => v !== null);
    if (!ys.length) continue;
    const hi = key === "cost" ? extent(ys)[1] : 1;
    ctx.strokeStyle = stroke; ctx.beginPath();
    history.forEach((r, i) => {
      if (r[key] === null) return;
      const x = pad + (canvas.width - 2 * pad) * (n > 1 ? i / (n - 1) : 0);
      const y = canvas.height - pad - (canvas.height - 2 * pad) * (r[key] / hi);
      i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
      if (n === 1) { ctx.fillStyle = stroke; ctx.fillRect(x - 3, y - 3, 6, 6); } // one epoch: a point
    });
    ctx.stroke();
    ctx.fillStyle = stroke; ctx.fillText(key, canvas.width - 110, 14 + 14 * series.findIndex((s) => s[0] === key));
  }
  const last = history[n - 1]; // a run file's cells may be null: nothing here assumes a number
  ctx.fillStyle = "#222";
  ctx.fillText(`epoch ${last.epoch}: cost ${typeof last.cost === "number" ? last.cost.toFixed(5) : "?"}`, pad, 14);
}

function drawGantt(rows) {
  const canvas = $("gantt"), ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!rows.length) { ctx.fillText("no invocations: this run trained in process", 10, 20); return; }
  const workers = [...new Set(rows.map((r) => r.worker || "coordinator"))];
  const t0 = extent(rows.map((r) => r.start))[0], t1 = extent(rows.map((r) => r.end))[1];
  const lane = (canvas.height - 10) / workers.length;
  for (const r of rows) {
    const x = 5 + (canvas.width - 10) * (r.start - t0) / (t1 - t0 || 1);
    const w = Math.max(1, (canvas.width - 10) * (r.end - r.start) / (t1 - t0 || 1));
    ctx.fillStyle = r.duplicate ? "#c07000" : r.attempt > 0 ? "#b00020" : "#4a7fb0";
    ctx.fillRect(x, 5 + lane * workers.indexOf(r.worker || "coordinator"), w, lane - 2);
  }
  $("run-facts").textContent = `${rows.length} invocations on ${workers.length} workers`;
}

async function refreshRun() {
  try {
    drawCurves(await api("/run/history"));
    drawGantt(await api("/run/invocations?limit=3000"));
  } catch (e) {
    $("run-facts").textContent = e.message;
  }
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
  $("upload").onchange = () => {
    if (!$("upload").files.length) return;
    lastInput = { kind: "file", file: $("upload").files[0] };
    predict();
  };
  if (model.is_run) {
    $("run").hidden = false;
    refreshRun();
    setInterval(refreshRun, 2000);
  }
}

start();
