// vaelab explorer: one page over the JSON/PNG API of `vaelab serve`. No build step, no external URLs.
// State: per run a latent z (its own coordinates), a category per categorical, and one shared class label.
// Slider k sets, in prior standard deviations, the k-th dimension by KL of every run.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { runs: [], maps: [], z: [], codes: [], label: 0, uploads: [] };
const THUMBNAILS = 24;
const SLIDER_RANGE = 4;

// ---- talking to the server ----
async function api(path, body, contentType = "application/json") {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": contentType },
    body: contentType === "application/json" ? JSON.stringify(body) : body,
  };
  const response = await fetch(path, options);
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = JSON.stringify((await response.json()).detail); } catch (_) { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response.headers.get("content-type").startsWith("image/") ? response.blob() : response.json();
}

function say(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

function showBlob(img, blob) {
  const old = img.src;
  img.src = URL.createObjectURL(blob);
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
}

// ---- decoding, throttled: at most one request in flight per run, the latest state wins ----
const decoding = { dirty: [], busy: [], frame: false };

function requestDecode() {
  state.runs.forEach((_, k) => { decoding.dirty[k] = true; });
  if (!decoding.frame) {
    decoding.frame = true;
    requestAnimationFrame(() => { decoding.frame = false; state.runs.forEach((_, k) => flushDecode(k)); });
  }
  drawMarkers();
}

async function flushDecode(k) {
  if (!decoding.dirty[k] || decoding.busy[k]) return;
  decoding.dirty[k] = false;
  decoding.busy[k] = true;
  const run = state.runs[k];
  try {
    const body = { z: state.z[k], codes: state.codes[k], label: run.num_classes ? state.label : null };
    showBlob($(`decoded-${k}`), await api(`/api/runs/${k}/decode`, body));
  } catch (err) {
    say(`decode failed: ${err.message}`, true);
  } finally {
    decoding.busy[k] = false;
    if (decoding.dirty[k]) flushDecode(k);
  }
}

// ---- sliders: rank r of every run, in prior standard deviations ----
const ranks = () => Math.max(...state.runs.map((r) => r.latent_dim));
const std = (run, j) => (run.prior_std[j] > 1e-12 ? run.prior_std[j] : 1);

function setRank(r, v) {
  state.runs.forEach((run, k) => {
    if (r < run.latent_dim) {
      const j = run.order[r];
      state.z[k][j] = run.prior_mean[j] + std(run, j) * v;
    }
  });
}

function rankValue(r) {
  const k = state.runs.findIndex((run) => r < run.latent_dim);
  const run = state.runs[k], j = run.order[r];
  return (state.z[k][j] - run.prior_mean[j]) / std(run, j);
}

function buildSliders() {
  let inactive = 0;
  for (let r = 0; r < ranks(); r++) {
    const names = state.runs.filter((run) => r < run.latent_dim).map((run) => {
      const j = run.order[r];
      return run.kl ? `z${j} KL ${run.kl[j].toFixed(2)}` : `z${j}`;
    });
    const active = state.runs.some((run) => r < run.latent_dim && run.active[run.order[r]]);
    const row = document.createElement("div");
    row.className = "slider";
    const id = `slider-${r}`;
    row.innerHTML = `<span class="name"></span><input type="range" id="${id}" min="${-SLIDER_RANGE}"
      max="${SLIDER_RANGE}" step="0.01" value="0"><output for="${id}">0.00</output>`;
    row.querySelector(".name").textContent = `#${r + 1}: ${names.join(" | ")}`;
    const input = row.querySelector("input");
    input.setAttribute("aria-label", `latent rank ${r + 1}`);
    input.dataset.rank = r;
    input.addEventListener("input", () => {
      setRank(r, Number(input.value));
      row.querySelector("output").textContent = Number(input.value).toFixed(2);
      requestDecode();
    });
    (active ? $("sliders") : $("inactive-sliders")).appendChild(row);
    if (!active) inactive++;
  }
  $("inactive-count").textContent = inactive;
  $("inactive").hidden = inactive === 0;
  const many = state.runs.length > 1;
  $("active-summary").textContent = state.runs.map((run) =>
    (many ? `${run.name}: ` : "") + run.active_summary).join("; ");
}

function updateSliders() {
  document.querySelectorAll(".slider input").forEach((input) => {
    const v = rankValue(Number(input.dataset.rank));
    input.value = Math.max(-SLIDER_RANGE, Math.min(SLIDER_RANGE, v));
    input.nextElementSibling.textContent = v.toFixed(2);
  });
  document.querySelectorAll("#categoricals select").forEach((select) => {
    const i = Number(select.dataset.index);
    const k = state.runs.findIndex((run) => i < run.discrete.length);
    select.value = state.codes[k][i];
  });
  const labelled = state.runs.find((run) => run.num_classes);
  if (labelled) $("label").value = state.label;
}

// ---- discrete codes (JointVAE) and the class label (conditional models) ----
function buildSelectors() {
  const categoricals = Math.max(0, ...state.runs.map((r) => r.discrete.length));
  for (let i = 0; i < categoricals; i++) {
    const size = Math.max(...state.runs.map((r) => r.discrete[i] || 0));
    const label = document.createElement("label");
    label.className = "row";
    label.textContent = `Categorical c${i} `;
    const select = document.createElement("select");
    select.dataset.index = i;
    for (let c = 0; c < size; c++) select.add(new Option(`category ${c}`, c));
    select.addEventListener("change", () => {
      state.runs.forEach((run, k) => { if (i < run.discrete.length) state.codes[k][i] = Number(select.value) % run.discrete[i]; });
      requestDecode();
    });
    label.appendChild(select);
    $("categoricals").appendChild(label);
  }
  const labelled = state.runs.find((run) => run.num_classes);
  if (labelled) {
    $("label-row").hidden = false;
    const classes = Math.max(...state.runs.map((r) => r.num_classes));
    for (let c = 0; c < classes; c++) {
      const name = labelled.class_names && labelled.class_names[c] ? `${c}: ${labelled.class_names[c]}` : `${c}`;
      $("label").add(new Option(name, c));
    }
    $("label").addEventListener("change", () => { state.label = Number($("label").value); requestDecode(); });
  }
}

// ---- the run panels ----
function buildPanels() {
  state.runs.forEach((run, k) => {
    const panel = document.createElement("div");
    panel.className = "panel";
    panel.id = `panel-${k}`;
    panel.innerHTML = `
      <h2><span class="name"></span> <span class="model"></span></h2>
      <div class="images">
        <figure><img id="decoded-${k}" class="pixels decoded" alt="decoded image"><figcaption>decoded</figcaption></figure>
        <figure><img id="input-${k}" class="pixels small" alt="last encoded image" hidden>
          <img id="reconstruction-${k}" class="pixels small upload-reconstruction" alt="its reconstruction" hidden>
          <figcaption id="input-caption-${k}">encode an image to see it here</figcaption></figure>
      </div>
      <h2>Latent map</h2>
      <canvas id="map-${k}" class="map" width="420" height="420" aria-label="latent map"></canvas>
      <ul id="legend-${k}" class="legend" aria-label="colour of each label"></ul>
      <figcaption id="map-caption-${k}"></figcaption>
      <img id="strip-${k}" class="pixels strip" alt="interpolation" hidden>`;
    panel.querySelector(".name").textContent = run.name;
    panel.querySelector(".model").textContent = `${run.model}, ${run.latent_dim}-D` +
      (run.discrete.length ? ` + [${run.discrete}]` : "") + (run.num_classes ? ", conditional" : "");
    $("panels").appendChild(panel);
    $(`map-${k}`).addEventListener("click", (event) => clickMap(k, event));
  });
}

// ---- latent maps: test points drawn once, markers on top ----
function mapView(k) {
  const points = state.maps[k].points;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const lo = [Math.min(...xs), Math.min(...ys)], hi = [Math.max(...xs), Math.max(...ys)];
  const half = Math.max(hi[0] - lo[0], hi[1] - lo[1], 1e-6) * 0.55;
  return { cx: (lo[0] + hi[0]) / 2, cy: (lo[1] + hi[1]) / 2, half, size: $(`map-${k}`).width };
}

const toPixel = (v, p) => [(0.5 + (p[0] - v.cx) / (2 * v.half)) * v.size, (0.5 - (p[1] - v.cy) / (2 * v.half)) * v.size];
const toPoint = (v, x, y) => [v.cx + (x / v.size - 0.5) * 2 * v.half, v.cy - (y / v.size - 0.5) * 2 * v.half];

function drawMaps() {
  state.maps.forEach((map, k) => {
    const view = mapView(k);
    const layer = document.createElement("canvas");
    layer.width = layer.height = view.size;
    const ctx = layer.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, view.size, view.size);
    ctx.globalAlpha = 0.6;
    const dot = Math.min(6, Math.max(2, 120 / Math.sqrt(map.points.length)));  // bigger dots when there are few
    map.points.forEach((p, i) => {
      ctx.fillStyle = map.colours[map.labels ? map.labels[i] : 0];
      const [x, y] = toPixel(view, p);
      ctx.fillRect(x - dot / 2, y - dot / 2, dot, dot);
    });
    Object.assign(map, { view, layer });
    $(`map-caption-${k}`).textContent = `${map.points.length} test images; axes ${map.axes.filter(Boolean).join(", ")}`;
    buildLegend(k);
  });
  drawMarkers();
}

// the colour of each label on the map, named by its class (unlabelled data: one colour, no legend)
function buildLegend(k) {
  const map = state.maps[k], legend = $(`legend-${k}`);
  legend.hidden = !map.labels;
  if (!map.labels) return;
  const labels = [...new Set(map.labels)].sort((a, b) => a - b);
  legend.replaceChildren(...labels.map((c) => {
    const item = document.createElement("li"), swatch = document.createElement("span");
    const name = map.class_names && map.class_names[c];
    swatch.className = "swatch";
    swatch.style.background = map.colours[c];
    item.append(swatch, name && name !== String(c) ? `${c} ${name}` : String(c));
    return item;
  }));
}

function mapPosition(k, z) {
  const { origin, basis } = state.maps[k];
  return [0, 1].map((a) => z.reduce((sum, zj, j) => sum + (zj - origin[j]) * basis[a][j], 0));
}

function drawMarkers() {
  state.maps.forEach((map, k) => {
    if (!map.layer) return;
    const ctx = $(`map-${k}`).getContext("2d");
    ctx.drawImage(map.layer, 0, 0);
    const mark = (p, colour, radius) => {
      const [x, y] = toPixel(map.view, p);
      ctx.strokeStyle = colour;
      ctx.lineWidth = 2.5;
      ctx.beginPath();
      ctx.arc(x, y, radius, 0, 2 * Math.PI);
      ctx.stroke();
    };
    if (state.uploads[k]) mark(state.uploads[k], "#d00", 9);
    mark(mapPosition(k, state.z[k]), "#000", 6);
  });
}

function nearestTestImage(k, p) {
  let best = 0, bestDistance = Infinity;
  state.maps[k].points.forEach((q, i) => {
    const d = (q[0] - p[0]) ** 2 + (q[1] - p[1]) ** 2;
    if (d < bestDistance) { best = i; bestDistance = d; }
  });
  return best;
}

async function clickMap(k, event) {
  const canvas = $(`map-${k}`), box = canvas.getBoundingClientRect();
  const map = state.maps[k];
  const p = toPoint(map.view, (event.clientX - box.left) * canvas.width / box.width,
    (event.clientY - box.top) * canvas.height / box.height);
  state.z[k] = map.origin.map((o, j) => o + p[0] * map.basis[0][j] + p[1] * map.basis[1][j]);
  const index = nearestTestImage(k, p);  // the other runs go to their own latents of the nearest test image
  try {
    await Promise.all(state.runs.map(async (_, other) => {
      if (other !== k) setEncoded(other, await api(`/api/runs/${other}/encode`, { index }));
    }));
    say(`map position (${p[0].toFixed(2)}, ${p[1].toFixed(2)}) of ${state.runs[k].name}` +
      (state.runs.length > 1 ? `; the other runs show test image ${index}, the nearest` : ""));
  } catch (err) {
    say(`encode failed: ${err.message}`, true);
  }
  updateSliders();
  requestDecode();
}

// ---- encoding test images and uploads ----
function setEncoded(k, encoded, caption) {
  state.z[k] = encoded.z;
  state.codes[k] = encoded.codes;
  if (encoded.label !== null) state.label = encoded.label;
  if (caption) {
    $(`input-${k}`).src = encoded.image;
    $(`reconstruction-${k}`).src = encoded.reconstruction;
    $(`input-${k}`).hidden = $(`reconstruction-${k}`).hidden = false;
    $(`input-caption-${k}`).textContent = caption;
  }
}

async function encodeTest(index) {
  try {
    const results = await Promise.all(state.runs.map((_, k) => api(`/api/runs/${k}/encode`, { index })));
    results.forEach((encoded, k) => setEncoded(k, encoded, `test image ${index} and its reconstruction`));
    say(`encoded test image ${index}`);
  } catch (err) {
    say(`encode failed: ${err.message}`, true);
  }
  updateSliders();
  requestDecode();
}

async function encodeUpload(blob) {
  try {
    const results = await Promise.all(state.runs.map((run, k) => {
      const query = run.num_classes ? `?label=${state.label}` : "";
      return api(`/api/runs/${k}/upload${query}`, blob, blob.type || "application/octet-stream");
    }));
    results.forEach((encoded, k) => {
      setEncoded(k, encoded, "your image (as the model sees it) and its reconstruction");
      state.uploads[k] = encoded.point;
    });
    say("encoded your image: the red ring marks it on the map");
  } catch (err) {
    say(`upload failed: ${err.message}`, true);
  }
  updateSliders();
  requestDecode();
}

async function interpolate() {
  const body = {
    i: Number($("interp-from").value), j: Number($("interp-to").value),
    steps: Number($("interp-steps").value), slerp: $("interp-slerp").checked,
  };
  try {
    const strips = await Promise.all(state.runs.map((_, k) => api(`/api/runs/${k}/interpolate`, body)));
    strips.forEach((blob, k) => { showBlob($(`strip-${k}`), blob); $(`strip-${k}`).hidden = false; });
    say(`interpolated test images ${body.i} → ${body.j}`);
  } catch (err) {
    say(`interpolation failed: ${err.message}`, true);
  }
}

// ---- buttons, thumbnails, drawing pad ----
function gaussian() {
  const u = 1 - Math.random(), v = Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

function reset() {
  state.z = state.runs.map((run) => run.prior_mean.slice());
  state.codes = state.runs.map((run) => run.discrete.map(() => 0));
}

function wireControls() {
  $("random").addEventListener("click", () => {
    for (let r = 0; r < ranks(); r++) setRank(r, gaussian());
    const draws = Array.from({ length: 64 }, () => Math.floor(Math.random() * 1e6));
    state.runs.forEach((run, k) => { state.codes[k] = run.discrete.map((size, i) => draws[i] % size); });
    updateSliders();
    requestDecode();
  });
  $("reset").addEventListener("click", () => { reset(); updateSliders(); requestDecode(); });
  $("encode-test").addEventListener("click", () => encodeTest(Number($("test-index").value)));
  $("interpolate").addEventListener("click", interpolate);
  $("upload").addEventListener("change", () => { if ($("upload").files[0]) encodeUpload($("upload").files[0]); });
  const n = Math.min(THUMBNAILS, state.runs[0].n_test);
  for (let i = 0; i < n; i++) {
    const img = document.createElement("img");
    img.className = "pixels";
    img.src = `/api/runs/0/test-images/${i}`;
    img.alt = `test image ${i}`;
    img.title = `test image ${i}: click to encode`;
    img.addEventListener("click", () => { $("test-index").value = i; encodeTest(i); });
    $("thumbnails").appendChild(img);
  }
  for (const id of ["test-index", "interp-from", "interp-to"]) $(id).max = state.runs[0].n_test - 1;
  wirePad();
}

function wirePad() {
  const pad = $("pad"), ctx = pad.getContext("2d");
  const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, pad.width, pad.height); };
  clear();
  let drawing = false;
  const at = (event) => {
    const box = pad.getBoundingClientRect();
    return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
  };
  pad.addEventListener("pointerdown", (event) => { drawing = true; pad.setPointerCapture(event.pointerId); ctx.beginPath(); ctx.moveTo(...at(event)); });
  pad.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    Object.assign(ctx, { strokeStyle: "#fff", lineWidth: 14, lineCap: "round", lineJoin: "round" });
    ctx.lineTo(...at(event));
    ctx.stroke();
  });
  pad.addEventListener("pointerup", () => { drawing = false; });
  $("clear-drawing").addEventListener("click", clear);
  $("encode-drawing").addEventListener("click", () => pad.toBlob((blob) => encodeUpload(blob), "image/png"));
}

async function start() {
  try {
    state.runs = await api("/api/runs");
    state.maps = await Promise.all(state.runs.map((_, k) => api(`/api/runs/${k}/map`)));
  } catch (err) {
    say(`cannot load the runs: ${err.message}`, true);
    return;
  }
  reset();
  buildPanels();
  buildSelectors();
  buildSliders();
  wireControls();
  drawMaps();
  updateSliders();
  requestDecode();
  say(`${state.runs.map((r) => r.name).join(" vs ")}: move a slider, click the map, encode an image`);
  document.body.dataset.ready = "true";
}

start();
