// steadynet serve: draw a digit, watch the model read it, look inside.
// Plain JavaScript, no build step; everything it needs comes from this server's JSON API
// (documented in docs/serve.md).
"use strict";

const SIDE = 28;
const SEND_SIDE = 112; // the drawing is sent at 112x112: plenty for the 20x20 fit, and small
const $ = (id) => document.getElementById(id);

const state = {
  model: null,
  drawing: false,       // a stroke is in progress
  hasInk: false,        // something is on the pad
  request: null,        // the body of the last prediction asked for
  inFlight: false,      // a prediction is on its way
  pending: false,       // the pad changed while it was
  last: null,           // the last prediction shown
  unit: null,           // {layer, unit} whose weights are shown
  version: null,        // the model version the view was computed with
  generation: 0,        // bumped by Clear: answers to older requests are dropped
};

// ------------------------------------------------------------------ API

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || `${path}: HTTP ${response.status}`);
  return data;
}

function showMessage(text) { $("message").textContent = text || ""; }

// ------------------------------------------------------------------ drawing

const pad = $("pad");
const ctx = pad.getContext("2d");

function clearPad() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
  state.hasInk = false;
}

function padPoint(event) {
  const rect = pad.getBoundingClientRect();
  return [(event.clientX - rect.left) * pad.width / rect.width,
          (event.clientY - rect.top) * pad.height / rect.height];
}

function strokeTo(event) {
  // coalesced events: every point the pen or finger went through, not only one per frame
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const e of (events.length ? events : [event])) {
    const [x, y] = padPoint(e);
    ctx.lineTo(x, y);
  }
  ctx.stroke();
  const [x, y] = padPoint(event);
  ctx.beginPath();
  ctx.moveTo(x, y);
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  if (state.request && state.request.input) $("source").textContent = "your drawing";
  state.drawing = true;
  state.hasInk = true;
  ctx.strokeStyle = "#fff";
  ctx.fillStyle = "#fff";
  ctx.lineWidth = 18;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  const [x, y] = padPoint(event);
  ctx.beginPath();
  ctx.arc(x, y, ctx.lineWidth / 2, 0, 2 * Math.PI);
  ctx.fill();
  ctx.beginPath();
  ctx.moveTo(x, y);
  predictDrawing();
});

pad.addEventListener("pointermove", (event) => {
  if (!state.drawing) return;
  event.preventDefault();
  strokeTo(event);
  predictDrawing();
});

function endStroke(event) {
  if (!state.drawing) return;
  state.drawing = false;
  predictDrawing();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

$("clear").addEventListener("click", () => {
  state.generation += 1;
  clearPad();
  state.request = null;
  state.last = null;
  $("source").textContent = "your drawing";
  showMessage("");
  resetView();
});

// the pad as a grey image, rows of 0-255 values (white ink on black)
function padImage() {
  const small = document.createElement("canvas");
  small.width = small.height = SEND_SIDE;
  const sctx = small.getContext("2d");
  sctx.imageSmoothingQuality = "high";
  sctx.drawImage(pad, 0, 0, SEND_SIDE, SEND_SIDE);
  const rgba = sctx.getImageData(0, 0, SEND_SIDE, SEND_SIDE).data;
  const rows = [];
  for (let r = 0; r < SEND_SIDE; r++) {
    const row = new Array(SEND_SIDE);
    for (let c = 0; c < SEND_SIDE; c++) row[c] = rgba[4 * (r * SEND_SIDE + c)];
    rows.push(row);
  }
  return rows;
}

// ------------------------------------------------------------------ prediction

function predictDrawing() {
  if (!state.hasInk) return;
  state.request = null; // built when sent, so the newest strokes go
  ask();
}

// at most one request in flight; changes meanwhile are sent once it returns
async function ask() {
  if (state.inFlight) { state.pending = true; return; }
  state.inFlight = true;
  state.pending = false;
  document.body.dataset.busy = "true";
  try {
    const body = state.request || { image: padImage() };
    state.request = body.input ? body : null;
    const generation = state.generation;
    const result = await api("/api/predict", body);
    if (generation !== state.generation) return;
    state.last = result;
    state.lastBody = body;
    state.version = result.version;
    showMessage("");
    render(result);
  } catch (error) {
    showMessage(error.message);
  } finally {
    state.inFlight = false;
    if (state.pending) ask(); else document.body.dataset.busy = "false";
  }
}

function resetView() {
  $("top-guess").textContent = "–";
  $("top-prob").textContent = "";
  renderBars(null);
  for (const id of ["input28", "saliency"]) {
    const c = $(id).getContext("2d");
    c.clearRect(0, 0, SIDE, SIDE);
  }
  renderHidden(null);
}

function render(result) {
  const P = result.probabilities;
  $("top-guess").textContent = String(result.label);
  $("top-prob").textContent = `${(100 * P[result.label]).toFixed(1)}% sure`;
  renderBars(P);
  drawValues($("input28"), result.input, [SIDE, SIDE], "grey");
  drawValues($("saliency"), result.saliency, [SIDE, SIDE], "diverging");
  $("saliency-class").textContent = `class ${result.saliency_class}`;
  renderHidden(result.hidden);
}

function renderBars(P) {
  const bars = $("bars");
  const n = state.model ? state.model.classes.length : 10;
  if (bars.children.length !== n) {
    bars.textContent = "";
    for (let k = 0; k < n; k++) {
      const row = document.createElement("div");
      row.className = "bar-row";
      row.innerHTML = `<span class="bar-label">${k}</span><span class="bar-track"><span class="bar"></span></span><span class="bar-value"></span>`;
      bars.appendChild(row);
    }
  }
  const top = P ? P.indexOf(Math.max(...P)) : -1;
  Array.from(bars.children).forEach((row, k) => {
    const p = P ? P[k] : 0;
    row.classList.toggle("top", k === top);
    row.dataset.probability = String(p);
    row.querySelector(".bar").style.width = `${100 * p}%`;
    row.querySelector(".bar-value").textContent = P ? `${(100 * p).toFixed(1)}%` : "";
  });
}

// ------------------------------------------------------------------ images

// values (row by row) drawn into a canvas of shape [rows, cols]: "grey" maps [0, 1] to
// black..white, "diverging" maps negative..positive to blue..white..red, scaled by max |v|
function drawValues(canvas, values, shape, colormap) {
  const [rows, cols] = shape;
  canvas.width = cols;
  canvas.height = rows;
  const c = canvas.getContext("2d");
  const image = c.createImageData(cols, rows);
  let scale = 1;
  if (colormap === "diverging") {
    scale = values.reduce((m, v) => Math.max(m, Math.abs(v)), 0) || 1;
  }
  values.forEach((v, i) => {
    let r, g, b;
    if (colormap === "grey") {
      r = g = b = Math.round(255 * Math.min(Math.max(v, 0), 1));
    } else {
      const t = Math.min(Math.abs(v) / scale, 1);
      const fade = Math.round(255 * (1 - t));
      [r, g, b] = v >= 0 ? [255, fade, fade] : [fade, fade, 255];
    }
    image.data.set([r, g, b, 255], 4 * i);
  });
  c.putImageData(image, 0, 0);
}

// ------------------------------------------------------------------ hidden units

function renderHidden(hidden) {
  const box = $("hidden");
  const sizes = state.model ? state.model.layer_sizes.slice(1, -1) : [];
  if (box.children.length !== sizes.length) {
    box.textContent = "";
    sizes.forEach((n, i) => {
      const layer = document.createElement("div");
      layer.className = "layer";
      layer.setAttribute("aria-label", `hidden layer ${i + 1}`);
      for (let j = 0; j < n; j++) {
        const unit = document.createElement("button");
        unit.type = "button";
        unit.className = "unit";
        unit.title = `layer ${i + 1}, unit ${j}`;
        unit.addEventListener("click", () => showUnit(i + 1, j));
        layer.appendChild(unit);
      }
      box.appendChild(layer);
    });
  }
  Array.from(box.children).forEach((layer, i) => {
    const A = hidden ? hidden[i] : null;
    const scale = A ? A.reduce((m, a) => Math.max(m, Math.abs(a)), 0) || 1 : 1;
    Array.from(layer.children).forEach((unit, j) => {
      const level = A ? Math.round(255 * Math.abs(A[j]) / scale) : 0;
      unit.style.background = `rgb(${level}, ${level}, ${level})`;
      unit.title = A ? `layer ${i + 1}, unit ${j}: activation ${A[j].toFixed(3)}` : `layer ${i + 1}, unit ${j}`;
    });
  });
}

async function showUnit(layer, unit) {
  try {
    const w = await api(`/api/unit?layer=${layer}&unit=${unit}`);
    state.unit = { layer, unit };
    document.querySelectorAll(".unit.selected").forEach((u) => u.classList.remove("selected"));
    $("hidden").children[layer - 1].children[unit].classList.add("selected");
    $("unit-title").textContent = `Weights of layer ${layer}, unit ${unit} (bias ${w.bias.toFixed(3)})`;
    drawValues($("weights"), w.weights, w.shape, "diverging");
  } catch (error) {
    showMessage(error.message);
  }
}

// ------------------------------------------------------------------ mistakes

async function loadMistakes() {
  try {
    const page = await api("/api/mistakes?limit=40");
    $("mistakes-summary").textContent =
      `${page.n_wrong} of ${page.n_test} test images are misclassified ` +
      `(accuracy ${(100 * page.accuracy).toFixed(2)}%); the most confident mistakes first. Click one to open it.`;
    const box = $("mistakes");
    box.textContent = "";
    for (const m of page.mistakes) {
      const item = document.createElement("button");
      item.type = "button";
      item.className = "mistake";
      item.dataset.index = m.index;
      item.title = `test image ${m.index}: labelled ${m.label}, predicted ${m.predicted}`;
      const thumb = document.createElement("canvas");
      drawValues(thumb, m.pixels.map((v) => v / 255), [SIDE, SIDE], "grey");
      const caption = document.createElement("span");
      caption.textContent = `${m.label} → ${m.predicted} · ${(100 * m.confidence).toFixed(0)}%`;
      item.append(thumb, caption);
      item.addEventListener("click", () => openTestImage(m.index));
      box.appendChild(item);
    }
  } catch (error) {
    $("mistakes-summary").textContent = error.message;
  }
}

async function openTestImage(index) {
  try {
    const test = await api(`/api/test/${index}`);
    // shown on the pad, scaled up; the model gets the exact 28x28 pixels
    const small = document.createElement("canvas");
    drawValues(small, test.input, [SIDE, SIDE], "grey");
    clearPad();
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(small, 0, 0, pad.width, pad.height);
    state.hasInk = true;
    $("source").textContent = `test image ${index}, labelled ${test.label}`;
    state.request = { input: test.input };
    ask();
  } catch (error) {
    showMessage(error.message);
  }
}

// ------------------------------------------------------------------ training curves

async function pollRun() {
  let run;
  try {
    run = await api("/api/run");
  } catch (error) {
    $("run-status").textContent = error.message;
    setTimeout(pollRun, 5000);
    return;
  }
  if (run.run === null) return; // a model file: no run to follow
  $("run-panel").hidden = false;
  const epochs = run.epochs || [];
  const planned = run.epochs_planned ? ` of ${run.epochs_planned}` : "";
  let status = `${run.run}: ${run.status}, epoch ${epochs.length}${planned}`;
  if (run.test_accuracy != null) status += `, test accuracy ${(100 * run.test_accuracy).toFixed(2)}%`;
  $("run-status").textContent = status;
  drawCurves(epochs);
  if (run.version !== state.version && state.version !== null) {
    state.version = run.version; // a newer model: read the same input again, and the mistakes
    if (state.lastBody) { state.request = state.lastBody.input ? state.lastBody : null; ask(); }
    loadMistakes();
  }
  if (run.status === "running" || run.status === "starting") setTimeout(pollRun, 2000);
}

function drawCurves(epochs) {
  const canvas = $("curves");
  const c = canvas.getContext("2d");
  c.clearRect(0, 0, canvas.width, canvas.height);
  const half = canvas.width / 2;
  plot(c, 0, half, canvas.height, epochs, "loss", [["train_loss", "#2f6fdf"], ["val_loss", "#e07b00"]]);
  plot(c, half, half, canvas.height, epochs, "accuracy", [["train_accuracy", "#2f6fdf"], ["val_accuracy", "#e07b00"]]);
}

function plot(c, left, width, height, epochs, title, series) {
  const m = { l: 48, r: 12, t: 22, b: 28 };
  const x0 = left + m.l, x1 = left + width - m.r, y0 = height - m.b, y1 = m.t;
  const values = series.flatMap(([key]) => epochs.map((e) => e[key]).filter((v) => v != null));
  c.fillStyle = "#1d2330";
  c.font = "13px system-ui, sans-serif";
  c.fillText(title, x0, 15);
  c.strokeStyle = "#d8dce3";
  c.strokeRect(x0, y1, x1 - x0, y0 - y1);
  if (!values.length) return;
  const lo = Math.min(...values), hi = Math.max(...values);
  const span = hi - lo || 1;
  const n = Math.max(epochs.length, 2);
  const px = (i) => x0 + (x1 - x0) * i / (n - 1);
  const py = (v) => y0 - (y0 - y1) * (v - lo) / span;
  c.fillStyle = "#667085";
  c.fillText(hi.toPrecision(3), left + 4, y1 + 10);
  c.fillText(lo.toPrecision(3), left + 4, y0);
  c.fillText(`epoch ${epochs.length}`, x1 - 60, height - 8);
  series.forEach(([key, colour], s) => {
    c.strokeStyle = colour;
    c.fillStyle = colour;
    c.lineWidth = 2;
    c.beginPath();
    epochs.forEach((e, i) => {
      if (e[key] == null) return;
      if (i === 0 || epochs[i - 1][key] == null) c.moveTo(px(i), py(e[key])); else c.lineTo(px(i), py(e[key]));
      c.fillRect(px(i) - 2, py(e[key]) - 2, 4, 4);
    });
    c.stroke();
    c.fillText(key.replace("_", " "), x0 + 8 + 110 * s, y1 + 16);
  });
}

// ------------------------------------------------------------------ start

async function start() {
  clearPad();
  try {
    state.model = await api("/api/model");
    const m = state.model;
    $("model-desc").textContent = `${m.layer_sizes.join("-")} ${m.activation} · ` +
      `${m.n_params.toLocaleString("en")} parameters · ${m.path}`;
    state.version = m.version;
  } catch (error) {
    showMessage(error.message);
  }
  resetView();
  loadMistakes();
  pollRun();
  document.body.dataset.ready = "true"; // for tests: the page is wired up
}

start();
