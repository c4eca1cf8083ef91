// tinygrad_edu studio: the page. The server trains; this file shows what it pushes (Server-Sent
// Events from /api/events) and sends the controls back as small JSON requests. Everything here
// is drawn from the snapshot: the heat map by running the network forward on a grid in the
// browser (the weights are in the snapshot), the curves, the network and the gradient norms as SVG.
"use strict";

const C0 = "#b2182b", C1 = "#2166ac", BIG = "#f0a30a", SVGNS = "http://www.w3.org/2000/svg";
const $ = (sel) => document.querySelector(sel);
let snap = null;          // the latest snapshot
let pts = null;           // {version, train: {xy, label}, test: {xy, label}}
let fields = null;        // the settings' table from /api/config
let pointsLoading = false;
let frameQueued = false;
let updates = 0;

// ---- talking to the server -------------------------------------------------------------------

function showError(text) {
  const el = $("#error");
  el.textContent = text || "";
  el.dataset.error = text || "";
}

async function send(path, body) {
  let response;
  try {
    response = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                  body: JSON.stringify(body)});
  } catch (err) {
    showError("the studio server is not answering (was it stopped?)");
    return null;
  }
  const data = await response.json().catch(() => ({error: response.statusText}));
  if (!response.ok) {
    showError(data.error || `request failed (${response.status})`);
    if (snap) fillSettings(snap.config, true);  // back to the server's values
    return null;
  }
  showError("");
  return data;
}

async function loadPoints() {
  if (pointsLoading) return;
  pointsLoading = true;
  try {
    const response = await fetch("/api/points");
    if (response.ok) pts = await response.json();
  } finally {
    pointsLoading = false;
  }
  queueFrame();
}

function connect() {
  const events = new EventSource("/api/events");
  events.onmessage = (message) => {
    snap = JSON.parse(message.data);
    updates += 1;
    document.body.dataset.updates = String(updates);
    if (!pts || pts.version !== snap.points.version) loadPoints();
    queueFrame();
  };
  events.onerror = () => {
    $("#status").textContent = "reconnecting to the studio server…";
  };
}

function queueFrame() {
  if (!frameQueued) {
    frameQueued = true;
    requestAnimationFrame(() => { frameQueued = false; render(); });
  }
}

// ---- settings and controls -----------------------------------------------------------------------

function fillSettings(config, force) {
  for (const el of document.querySelectorAll("[data-field]")) {
    if (!force && document.activeElement === el) continue;
    const value = config[el.dataset.field];
    el.value = Array.isArray(value) ? value.join(",") : String(value);
  }
  const sgd = config.optimizer === "sgd";
  $('[data-field="momentum"]').disabled = !sgd;
}

function readField(el) {
  const kind = fields[el.dataset.field].kind;
  const text = el.value.trim();
  if (kind === "sizes") {
    if (text === "") return [];
    return text.split(",").map((s) => (/^\s*\d+\s*$/.test(s) ? Number(s) : s.trim()));
  }
  if (kind === "int" || kind === "float") return text === "" || isNaN(Number(text)) ? text : Number(text);
  return text;
}

async function setupSettings() {
  const response = await fetch("/api/config");
  const data = await response.json();
  fields = data.fields;
  for (const el of document.querySelectorAll("select[data-field]")) {
    const f = fields[el.dataset.field];
    if (f.kind === "choice") {
      for (const choice of f.choices) el.add(new Option(choice, choice));
    }
    if (f.help) el.title = f.help;
  }
  for (const el of document.querySelectorAll("[data-field]")) {
    if (fields[el.dataset.field].help) el.title = fields[el.dataset.field].help;
    el.addEventListener("change", () => send("/api/config", {[el.dataset.field]: readField(el)}));
  }
  fillSettings(data.config, true);
  for (const button of document.querySelectorAll("[data-action]")) {
    button.addEventListener("click", () => send("/api/control", {action: button.dataset.action}));
  }
}

// ---- the network, run forward in the browser for the heat map ------------------------------------

const ACT = {
  relu: (z) => (z > 0 ? z : 0),
  tanh: Math.tanh,
  sigmoid: (z) => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z))),
  linear: (z) => z,
};

function probabilityGrid(net, n) {
  // P(class 1) on an n x n grid over [-1, 1]^2, row 0 at y = 1 (the top of the canvas).
  const out = new Float64Array(n * n);
  const hidden = ACT[net.activation], last = ACT[net.output_activation];
  const layers = net.layers;
  let a = new Float64Array(64), b = new Float64Array(64);
  for (let r = 0; r < n; r++) {
    const y = 1 - (2 * r) / (n - 1);
    for (let c = 0; c < n; c++) {
      a[0] = -1 + (2 * c) / (n - 1); a[1] = y;
      for (let l = 0; l < layers.length; l++) {
        const {w, b: bias} = layers[l];
        const f = l === layers.length - 1 ? last : hidden;
        for (let j = 0; j < w.length; j++) {
          const row = w[j];
          let z = bias[j];
          for (let k = 0; k < row.length; k++) z += row[k] * a[k];
          b[j] = f(z);
        }
        [a, b] = [b, a];
      }
      out[r * n + c] = a[0];
    }
  }
  return out;
}

function mix(p) {
  // RdBu-like: P = 0 red, 0.5 near white, 1 blue.
  const lo = [178, 24, 43], mid = [247, 247, 247], hi = [33, 102, 172];
  const t = Math.min(1, Math.max(0, p));
  const [from, to, s] = t < 0.5 ? [lo, mid, t * 2] : [mid, hi, (t - 0.5) * 2];
  return from.map((v, i) => Math.round(v + (to[i] - v) * s));
}

const gridCanvas = document.createElement("canvas");

function drawContour(ctx, P, n, step, level) {
  // The P = level line by marching squares: in each grid cell, the points where P crosses the
  // level on the cell's edges (linearly interpolated) are joined pairwise.
  ctx.beginPath();
  const cross = (a, b) => (level - a) / (b - a);
  for (let r = 0; r + 1 < n; r++) {
    for (let c = 0; c + 1 < n; c++) {
      const p00 = P[r * n + c], p01 = P[r * n + c + 1], p10 = P[(r + 1) * n + c], p11 = P[(r + 1) * n + c + 1];
      const hits = [];
      if ((p00 > level) !== (p01 > level)) hits.push([c + cross(p00, p01), r]);
      if ((p01 > level) !== (p11 > level)) hits.push([c + 1, r + cross(p01, p11)]);
      if ((p11 > level) !== (p10 > level)) hits.push([c + cross(p10, p11), r + 1]);
      if ((p10 > level) !== (p00 > level)) hits.push([c, r + cross(p00, p10)]);
      for (let k = 0; k + 1 < hits.length; k += 2) {
        ctx.moveTo(hits[k][0] * step, hits[k][1] * step);
        ctx.lineTo(hits[k + 1][0] * step, hits[k + 1][1] * step);
      }
    }
  }
  ctx.lineWidth = 2;
  ctx.strokeStyle = "#111";
  ctx.stroke();
}

function drawBoundary() {
  const canvas = $("#boundary"), ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  const net = snap.network;
  const params = net.layers.reduce((s, l) => s + l.w.length * (l.w[0].length + 1), 0);
  // a coarser grid while training (the frames go by), the full one when the run stands still
  const most = snap.status === "training" ? 64 : 120;
  const n = Math.max(32, Math.min(most, Math.floor(Math.sqrt(2e6 / params))));
  const ok = net.layers.every((l) => l.w.every((row) => row.every((v) => v !== null)));
  ctx.clearRect(0, 0, W, H);
  if (ok) {
    const P = probabilityGrid(net, n);
    gridCanvas.width = n; gridCanvas.height = n;
    const g = gridCanvas.getContext("2d"), img = g.createImageData(n, n);
    for (let i = 0; i < n * n; i++) img.data.set([...mix(P[i]), 210], i * 4);
    g.putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = true;
    // grid value (r, c) sits at canvas (c, r) * step: the image's pixel centres on the grid points
    const step = W / (n - 1);
    ctx.drawImage(gridCanvas, -step / 2, -step / 2, W + step, H + step);
    drawContour(ctx, P, n, step, 0.5);
  }
  if (!pts) return;
  const showTest = $("#show-test").checked;
  const key = `${pts.version}/${showTest}/${W}x${H}`;
  if (pointsKey !== key) {  // the points change rarely: drawn once onto their own layer
    pointsKey = key;
    pointsLayer.width = W; pointsLayer.height = H;
    drawPoints(pointsLayer.getContext("2d"), W, H, showTest);
  }
  ctx.drawImage(pointsLayer, 0, 0);
}

const pointsLayer = document.createElement("canvas");
let pointsKey = "";

function drawPoints(ctx, W, H, showTest) {
  const sx = (x) => ((x + 1) / 2) * W, sy = (y) => ((1 - y) / 2) * H;
  const drawSet = (set, filled) => {
    const {xy, label} = set;
    for (let i = 0; i < label.length; i++) {
      ctx.beginPath();
      ctx.arc(sx(xy[2 * i]), sy(xy[2 * i + 1]), filled ? 2.6 : 2.8, 0, 2 * Math.PI);
      if (filled) {
        ctx.fillStyle = label[i] ? C1 : C0; ctx.fill();
        ctx.lineWidth = 0.6; ctx.strokeStyle = "#fff"; ctx.stroke();
      } else {
        ctx.lineWidth = 1.2; ctx.strokeStyle = label[i] ? C1 : C0; ctx.stroke();
      }
    }
  };
  if (showTest) drawSet(pts.test, false);
  drawSet(pts.train, true);
}

// ---- SVG charts --------------------------------------------------------------------------------

function el(name, attrs, parent) {
  const node = document.createElementNS(SVGNS, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

function text(parent, x, y, content, attrs) {
  const t = el("text", {x, y, "font-size": 10, "font-family": "sans-serif", fill: "#444", ...attrs}, parent);
  t.textContent = content;
  return t;
}

function chart(svg, box, series, opts) {
  // Lines (series: [{xs, ys, color, name}]) in box {x, y, w, h}; opts: {title, log, ymin, ymax, xmax}.
  const g = el("g", {}, svg);
  const xs = series.flatMap((s) => s.xs), ys = series.flatMap((s) => s.ys).filter((v) => v !== null && isFinite(v) && (!opts.log || v > 0));
  const xmax = Math.max(opts.xmax || 1, ...xs, 1);
  let ymin = opts.ymin !== undefined ? opts.ymin : Math.min(...ys), ymax = opts.ymax !== undefined ? opts.ymax : Math.max(...ys);
  if (!ys.length) { ymin = opts.log ? 1e-3 : 0; ymax = 1; }
  if (opts.log) { ymin = Math.log10(Math.max(ymin, 1e-12)); ymax = Math.log10(Math.max(ymax, 1e-12)); }
  if (ymax - ymin < 1e-9) { ymax += 0.5; ymin -= 0.5; }
  const X = (x) => box.x + (x / xmax) * box.w;
  const Y = (y) => box.y + box.h - ((y - ymin) / (ymax - ymin)) * box.h;
  el("rect", {x: box.x, y: box.y, width: box.w, height: box.h, fill: "none", stroke: "#ccc"}, g);
  text(g, box.x, box.y - 4, opts.title, {"font-weight": "bold"});
  const fmt = (v) => (opts.log ? `1e${Math.round(v)}` : Math.abs(v) >= 10 ? v.toFixed(0) : v.toFixed(2));
  for (const v of [ymin, (ymin + ymax) / 2, ymax]) {
    text(g, box.x - 3, Y(v) + 3, fmt(v), {"text-anchor": "end"});
    el("line", {x1: box.x, x2: box.x + box.w, y1: Y(v), y2: Y(v), stroke: "#eee"}, g);
  }
  text(g, box.x + box.w, box.y + box.h + 11, `epoch ${Math.round(xmax * 100) / 100}`, {"text-anchor": "end"});
  series.forEach((s, i) => {
    const points = [];
    for (let k = 0; k < s.xs.length; k++) {
      let v = s.ys[k];
      if (v === null || !isFinite(v) || (opts.log && v <= 0)) continue;
      if (opts.log) v = Math.log10(v);
      points.push(`${X(s.xs[k]).toFixed(1)},${Y(v).toFixed(1)}`);
    }
    el("polyline", {points: points.join(" "), fill: "none", stroke: s.color, "stroke-width": 1.5}, g);
    text(g, box.x + 4 + 62 * i, box.y + box.h + 11, s.name, {fill: s.color});
  });
}

function drawCurves() {
  const svg = $("#curves");
  svg.replaceChildren();
  const h = snap.history;
  const pct = (list) => list.map((v) => 100 * v);
  chart(svg, {x: 34, y: 16, w: 160, h: 140}, [
    {xs: h.epoch, ys: h.train_loss, color: C1, name: "train"},
    {xs: h.epoch, ys: h.test_loss, color: C0, name: "test"}], {title: "loss", ymin: 0, xmax: snap.target_epochs});
  chart(svg, {x: 250, y: 16, w: 160, h: 140}, [
    {xs: h.epoch, ys: pct(h.train_accuracy), color: C1, name: "train"},
    {xs: h.epoch, ys: pct(h.test_accuracy), color: C0, name: "test"}],
    {title: "accuracy (%)", ymax: 100, xmax: snap.target_epochs});
}

const LAYER_COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e"];

function drawNorms() {
  const svg = $("#norms");
  svg.replaceChildren();
  const g = snap.grad_norms;
  chart(svg, {x: 40, y: 16, w: 370, h: 125}, g.layers.map((ys, i) => ({
    xs: g.epoch, ys, color: LAYER_COLORS[i % LAYER_COLORS.length], name: `layer ${i + 1}`})),
    {title: "norm of each layer's gradient (weights and biases)", log: true, xmax: snap.target_epochs});
}

let netShape = "";
let netEdges = [], netNodes = [], netMarks = [];

function drawNetwork() {
  const svg = $("#network");
  const net = snap.network, sizes = net.sizes, shape = sizes.join("-");
  const W = Number(svg.getAttribute("width")), H = Number(svg.getAttribute("height"));
  const colX = (l) => 30 + (l * (W - 60)) / (sizes.length - 1);
  const rowY = (l, i) => (H / 2) + (i - (sizes[l] - 1) / 2) * Math.min(26, (H - 30) / sizes[l]);
  if (shape !== netShape) {  // build the elements once per architecture, then only restyle them
    svg.replaceChildren();
    netShape = shape; netEdges = []; netNodes = []; netMarks = [];
    const edges = el("g", {}, svg), marks = el("g", {}, svg), nodes = el("g", {}, svg);
    for (let l = 0; l + 1 < sizes.length; l++) {
      for (let j = 0; j < sizes[l + 1]; j++) {
        for (let k = 0; k < sizes[l]; k++) {
          const x1 = colX(l), y1 = rowY(l, k), x2 = colX(l + 1), y2 = rowY(l + 1, j);
          netEdges.push({l, j, k, node: el("line", {x1, y1, x2, y2, "stroke-linecap": "round"}, edges)});
          netMarks.push(el("circle", {cx: x1 + (x2 - x1) * 0.3, cy: y1 + (y2 - y1) * 0.3, r: 2.6, fill: BIG,
                                        visibility: "hidden"}, marks));
        }
      }
    }
    sizes.forEach((n, l) => {
      for (let i = 0; i < n; i++) {
        netNodes.push({l, i, node: el("circle", {cx: colX(l), cy: rowY(l, i), r: 6, stroke: "#333", "stroke-width": 1}, nodes)});
      }
    });
    text(svg, colX(0), 12, "input", {"text-anchor": "middle"});
    text(svg, colX(sizes.length - 1), 12, "P(class 1)", {"text-anchor": "middle"});
  }
  let wmax = 1e-12, gmax = 0;
  for (const layer of net.layers) {
    for (const row of layer.w) for (const v of row) wmax = Math.max(wmax, Math.abs(v || 0));
    for (const row of layer.gw) for (const v of row) gmax = Math.max(gmax, Math.abs(v || 0));
  }
  let large = 0;
  netEdges.forEach((e, i) => {
    const w = net.layers[e.l].w[e.j][e.k], gw = net.layers[e.l].gw[e.j][e.k];
    e.node.setAttribute("stroke", w === null ? "#999" : w >= 0 ? C1 : C0);
    e.node.setAttribute("stroke-width", (0.4 + 4.6 * Math.abs(w || 0) / wmax).toFixed(2));
    e.node.setAttribute("stroke-opacity", (0.35 + 0.6 * Math.abs(w || 0) / wmax).toFixed(2));
    const isLarge = gmax > 0 && Math.abs(gw || 0) >= 0.5 * gmax;
    netMarks[i].setAttribute("visibility", isLarge ? "visible" : "hidden");
    large += isLarge ? 1 : 0;
  });
  svg.dataset.largeGradients = String(large);
  for (const n of netNodes) {
    const bias = n.l === 0 ? 0 : net.layers[n.l - 1].b[n.i] || 0;
    n.node.setAttribute("fill", n.l === 0 ? "#eee" : bias >= 0 ? "#d1e5f0" : "#fddbc7");
  }
}

// ---- the state line, status and the whole frame ----------------------------------------------------

function render() {
  if (!snap) return;
  const m = snap.metrics, state = $("#state"), status = $("#status");
  const train = (100 * m.train_accuracy).toFixed(2), test = (100 * m.test_accuracy).toFixed(2);
  Object.assign(state.dataset, {epoch: String(snap.epoch), trainAccuracy: train, testAccuracy: test,
                                points: String(snap.points.train), status: snap.status});
  const part = snap.batch ? ` (+${snap.batch}/${snap.batches_per_epoch} batches)` : "";
  state.textContent = `epoch ${snap.epoch}${part} · train ${train}% · test ${test}% · ${snap.points.train} training points`;
  status.dataset.status = snap.status;
  status.textContent = snap.status === "diverged" ? snap.message
    : snap.status === "training" ? `training to epoch ${snap.target_epochs}…`
    : snap.status === "done" ? `done: ${snap.message}` : snap.status;
  // Redraw only what changed: the settings and curves change at most once an epoch, the gradient
  // norms ten times an epoch; the heat map and the network follow the weights every frame.
  const configKey = JSON.stringify(snap.config);
  if (configKey !== drawn.config) { drawn.config = configKey; fillSettings(snap.config, false); }
  const curvesKey = `${snap.history.epoch.length}/${snap.target_epochs}/${snap.points.version}/${snap.history.test_accuracy.slice(-1)}`;
  if (curvesKey !== drawn.curves) { drawn.curves = curvesKey; drawCurves(); }
  const normsKey = `${snap.grad_norms.epoch.length}/${snap.grad_norms.epoch.slice(-1)}/${snap.target_epochs}/${snap.network.sizes}`;
  if (normsKey !== drawn.norms) { drawn.norms = normsKey; drawNorms(); }
  drawBoundary();
  drawNetwork();
}

const drawn = {config: "", curves: "", norms: ""};

// ---- clicks on the plot: add, remove, explore -------------------------------------------------------

function nearest(set, x, y, radius) {
  // the index of the point of `set` nearest to (x, y) within `radius` (in data units), or -1
  let best = -1, bestD = radius * radius;
  for (let i = 0; i < set.label.length; i++) {
    const dx = set.xy[2 * i] - x, dy = set.xy[2 * i + 1] - y, d = dx * dx + dy * dy;
    if (d <= bestD) { best = i; bestD = d; }
  }
  return best;
}

function openExplorer(which, index) {
  const url = `/explore?set=${which}&index=${index}`;
  fetch(url).then(async (response) => {
    if (!response.ok) {
      const message = (await response.json().catch(() => null)) || {error: await response.text()};
      showError(message.error || `the explorer did not open (${response.status})`);
      return;
    }
    const box = $("#explorer");
    $("#explorer-title").textContent = `the loss graph of ${which} point ${index}, with the current weights`;
    $("#explorer-frame").src = url;
    box.hidden = false;
    box.dataset.open = "true";
    box.dataset.set = which;
    box.dataset.index = String(index);
  });
}

function setupPlot() {
  const canvas = $("#boundary");
  canvas.addEventListener("click", (event) => {
    const rect = canvas.getBoundingClientRect();
    const x = ((event.clientX - rect.left) / rect.width) * 2 - 1;
    const y = 1 - ((event.clientY - rect.top) / rect.height) * 2;
    const radius = (8 / rect.width) * 2;  // 8 pixels
    if (!pts) return;
    if (event.shiftKey) {
      const i = nearest(pts.train, x, y, radius);
      if (i < 0) showError("shift-click on a training point to remove it");
      else send("/api/points/remove", {index: i});
      return;
    }
    const tool = document.querySelector("input[name=tool]:checked").value;
    if (tool === "explore") {
      const i = nearest(pts.train, x, y, radius);
      const j = i < 0 ? nearest(pts.test, x, y, radius) : -1;
      if (i >= 0) openExplorer("train", i);
      else if (j >= 0) openExplorer("test", j);
      else showError("click on a point to open its graph");
      return;
    }
    send("/api/points", {x: Number(x.toFixed(4)), y: Number(y.toFixed(4)), label: tool === "add1" ? 1 : 0});
  });
  $("#show-test").addEventListener("change", queueFrame);
  $("#explorer-close").addEventListener("click", () => {
    const box = $("#explorer");
    box.hidden = true;
    box.dataset.open = "false";
    $("#explorer-frame").removeAttribute("src");
  });
}

// ---- saving the views --------------------------------------------------------------------------

function download(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

function setupSaves() {
  const svgBlob = (id) => new Blob([new XMLSerializer().serializeToString($(id))], {type: "image/svg+xml"});
  const actions = {
    boundary: () => $("#boundary").toBlob((blob) => download(blob, "boundary.png"), "image/png"),
    curves: () => download(svgBlob("#curves"), "curves.svg"),
    network: () => download(svgBlob("#network"), "network.svg"),
    norms: () => download(svgBlob("#norms"), "gradients.svg"),
    disk: async () => {
      const data = await send("/api/save", {});
      if (data) showError(""), ($("#status").textContent = `wrote ${data.paths.join(", ")}`);
    },
  };
  for (const button of document.querySelectorAll("button[data-save]")) {
    button.addEventListener("click", () => actions[button.dataset.save]());
  }
}

setupSettings().then(() => { setupPlot(); setupSaves(); connect(); });
