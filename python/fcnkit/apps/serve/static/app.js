// The upload page: ask /api/models what is offered, send the chosen file to /api/remove.json with
// images=true (one inference gives the mask, the result and the metadata), show them side by side.
"use strict";

const $ = (id) => document.getElementById(id);
let models = [];
let limits = {};
let current = null;        // the File shown
let originalUrl = null;

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function describeModel() {
  const m = models.find((x) => x.name === $("model").value);
  if (!m) return;
  const def = models.find((x) => x.default);
  $("model-info").textContent = `${m.description}. Trained on ${m.trained_on}. Backend: ${m.backend}.` +
    (def ? ` Default: ${def.name}${m.default ? " (this one)" : ""}.` : "");
}

async function loadModels() {
  try {
    const r = await fetch("/api/models");
    const info = await r.json();
    models = info.models;
    limits = info.limits;
    for (const m of models) {
      const o = document.createElement("option");
      o.value = m.name;
      o.textContent = m.default ? `${m.name} (default)` : m.name;
      o.selected = m.default;
      $("model").appendChild(o);
    }
    const mb = limits.max_bytes / 1e6;
    $("limits").textContent = `Up to ${mb >= 1 ? mb.toFixed(0) + " MB" : (limits.max_bytes / 1e3).toFixed(0) + " kB"}` +
      ` and ${(limits.max_pixels / 1e6).toFixed(1)} megapixels; PNG, JPEG, WebP, BMP, TIFF or GIF.`;
    describeModel();
  } catch (e) {
    setStatus("error", `Cannot reach the server: ${e}`);
  }
}

function params() {
  const output = document.querySelector("input[name=output]:checked").value;
  const p = { model: $("model").value, postprocess: $("postprocess").checked ? "true" : "false",
              format: $("format").value, images: "true", output: output === "mask" ? "mask" : "cutout" };
  if (output === "colour") {
    const h = $("bgcolor").value;
    p.bgcolor = [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)).join(",");
  }
  return p;
}

function clearResults() {
  for (const id of ["mask", "result"]) $(id).removeAttribute("src");
  $("download").hidden = true;
  $("meta").textContent = "";
}

async function run() {
  if (!current) return;
  clearResults();
  if (limits.max_bytes && current.size > limits.max_bytes) {
    setStatus("error", `Rejected ${current.name}: ${current.size.toLocaleString()} bytes is over the ` +
      `${limits.max_bytes.toLocaleString()}-byte limit.`);
    return;
  }
  const p = params();
  const form = new FormData();
  form.append("file", current, current.name);
  for (const [k, v] of Object.entries(p)) form.append(k, v);
  setStatus("working", `Removing the background of ${current.name}…`);
  const t0 = performance.now();
  let r, body;
  try {
    r = await fetch("/api/remove.json", { method: "POST", body: form });
    body = await r.json();
  } catch (e) {
    setStatus("error", `The request failed: ${e}`);
    return;
  }
  if (!r.ok) {
    const wait = r.headers.get("Retry-After");
    setStatus("error", `Rejected ${current.name} (HTTP ${r.status}): ${body.error}` +
      (wait ? ` Try again in ${wait} s.` : ""));
    return;
  }
  $("mask").src = body.images.mask;
  $("result").src = body.images.result;
  const stem = current.name.replace(/\.[^.]*$/, "") || "image";
  const ext = { png: "png", webp: "webp", jpeg: "jpg" }[p.format];
  const a = $("download");
  a.href = body.images.result;
  a.download = `${stem}_${p.output}.${ext}`;
  a.hidden = false;
  const box = body.bbox ? `${body.bbox.width}×${body.bbox.height} at (${body.bbox.x}, ${body.bbox.y})` : "none";
  $("meta").textContent = `${body.width}×${body.height} px · model ${body.model} · foreground ` +
    `${(100 * body.foreground).toFixed(1)} % · box ${box} · uncertain ${(100 * body.uncertain).toFixed(1)} %` +
    (body.review ? ` · review: ${body.reasons.join(", ")}` : " · looks fine");
  setStatus("done", `Done in ${((performance.now() - t0) / 1000).toFixed(2)} s.`);
}

function choose(file) {
  if (!file) return;
  current = file;
  if (originalUrl) URL.revokeObjectURL(originalUrl);
  originalUrl = URL.createObjectURL(file);
  $("original").src = originalUrl;
  run();
}

document.addEventListener("DOMContentLoaded", () => {
  loadModels();
  $("file").addEventListener("change", (e) => choose(e.target.files[0]));
  $("model").addEventListener("change", () => { describeModel(); run(); });
  for (const el of document.querySelectorAll("#controls input, #format")) el.addEventListener("change", run);
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    choose(e.dataTransfer.files[0]);
  });
});
