// The explorer page: run choice, tabs, and the Sample, Move and Interpolate tabs
// (Arithmetic, Draw, Map and Run are in panels.js).
import { $, api, className, clearPicks, el, image, info, latest, onPicks, options, pick, showError, slider,
  state } from "./core.js";
import { initPanels, showPanel } from "./panels.js";

// --- tabs ---------------------------------------------------------------------------------------
let current = "sample";
function showTab(name) {
  current = name;
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".tab").forEach((s) => { s.hidden = s.id !== `tab-${name}`; });
  if (name === "move") refreshMove();
  else if (name === "interp") refreshInterp();
  else showPanel(name);
}

// --- sample -------------------------------------------------------------------------------------
function sampleRequest(seed) {
  const run = info();
  const body = { seed, n: 16 };
  const label = $("class-select").value;
  if (run.classes && label !== "") body.label = Number(label);
  if (run.captions && $("caption").value.trim()) body.caption = $("caption").value.trim();
  if (run.codes) {
    const cat = $("category-select").value;
    if (cat !== "") body.category = Number(cat);
    if ($("fix-cont").checked) body.cont = [...document.querySelectorAll(".cont-slider")].map((s) => Number(s.value));
  }
  return body;
}

const drawSamples = latest(async () => {
  const seed = Number($("seed").value) || 0;
  const out = await api("sample", { body: sampleRequest(seed) });
  const run = info();
  $("sample-grid").replaceChildren(...out.images.map((src, i) => {
    const img = image(src, "cell sample");
    img.dataset.i = i;
    if (out.z && run.decode) {
      img.title = "click to pick";
      img.addEventListener("click", () => pick({ image: src, z: out.z[i], y: out.y ? out.y[i] : undefined }));
    }
    return img;
  }));
});

function setupSample() {
  const run = info();
  $("class-box").hidden = !run.classes;
  if (run.classes) {
    options($("class-select"), [["", "one per class"],
      ...Array.from({ length: run.classes }, (_, k) => [k, className(run, k)])], "");
  }
  $("caption-box").hidden = !run.captions;
  if (run.captions) $("caption").title = `words: ${run.caption_words.join(" ")}`;
  $("codes-box").hidden = !run.codes;
  if (run.codes) {
    options($("category-select"), [["", "random"],
      ...Array.from({ length: run.codes.categories }, (_, k) => [k, String(k)])], "");
    $("cont-sliders").replaceChildren(...Array.from({ length: run.codes.cont }, (_, k) =>
      slider(`c${k + 1}`, { min: -2, max: 2, step: 0.05, cls: "cont-slider", onInput: () => {
        $("fix-cont").checked = true;
        drawSamples();
      } })));
  }
  drawSamples();
}

// --- move along z -------------------------------------------------------------------------------
let moveOffsets = {};
const moveTarget = () => state.picks[state.picks.length - 1];

const drawMove = latest(async () => {
  const p = moveTarget();
  if (!p) return;
  const out = await api("move", { body: { z: p.z, y: p.y, offsets: moveOffsets } });
  $("move-image").src = out.image;
});

async function refreshMove() {
  const run = info();
  if (!run.decode) {
    $("move-note").textContent = "this model has no decode(z): nothing to move";
    $("move-sliders").replaceChildren();
    return;
  }
  const p = moveTarget();
  if (!p) {  // pick the first sample so the tab always shows something; the pick calls back here
    const first = document.querySelector("#sample-grid img.sample");
    if (first) first.click();
    else $("move-note").textContent = "draw samples on the Sample tab and pick one";
    return;
  }
  const dirs = await api("directions");
  $("move-note").textContent = dirs.kind === "pca"
    ? "sliders move the last pick along the principal directions of the encoded data (±3 standard deviations)"
    : "sliders add to the first latent dimensions of the last pick";
  moveOffsets = {};
  $("move-sliders").replaceChildren(...dirs.names.map((name, k) => slider(name, {
    min: -3, max: 3, step: 0.05, cls: "move-slider", onInput: (v) => { moveOffsets[k] = v; drawMove(); },
  })));
  $("move-image").src = p.image;
}

// --- interpolate --------------------------------------------------------------------------------
function ends() {
  const n = state.picks.length;
  return n >= 2 ? [state.picks[n - 2], state.picks[n - 1]] : null;
}

const drawScrub = latest(async () => {
  const e = ends();
  if (!e) return;
  const out = await api("interpolate", { body: { a: e[0].z, b: e[1].z, y: e[1].y, slerp: $("slerp").checked,
    t: Number($("scrub").value) } });
  $("scrub-image").src = out.images[0];
});

const drawStrip = latest(async () => {
  const e = ends();
  if (!e || !info().decode) {
    $("interp-strip").replaceChildren(el("span", { class: "muted" }, "pick two samples first"));
    return;
  }
  const steps = Math.min(32, Math.max(2, Number($("interp-steps").value) || 10));
  const out = await api("interpolate", { body: { a: e[0].z, b: e[1].z, y: e[1].y, steps, slerp: $("slerp").checked } });
  $("interp-strip").replaceChildren(...out.images.map((src) => image(src, "cell interp")));
  drawScrub();
});

function refreshInterp() { drawStrip(); }

// --- start --------------------------------------------------------------------------------------
function selectRun(i) {
  state.run = i;
  const run = info();
  $("run-info").textContent = `${run.model} on ${run.data}, latent ${run.latent || "—"}` +
    `${run.encoder ? ", encoder" : ""}${run.classes ? `, ${run.classes} classes` : ""}` +
    `${run.codes ? ", codes" : ""}${run.captions ? ", captions" : ""}`;
  clearPicks();
  showError(null);
  setupSample();
  showTab(current);
}

async function main() {
  const out = await api("runs");
  state.runs = out.runs;
  state.maxUpload = out.max_upload;
  options($("run-select"), state.runs.map((r, i) => [i, r.name]), 0);
  $("run-select").addEventListener("change", () => selectRun(Number($("run-select").value)));
  document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  $("seed").addEventListener("change", drawSamples);
  $("new-seed").addEventListener("click", () => {
    $("seed").value = Math.floor(Math.random() * 1e6);
    drawSamples();
  });
  for (const id of ["class-select", "category-select", "fix-cont"]) $(id).addEventListener("change", drawSamples);
  $("caption").addEventListener("change", drawSamples);
  $("clear-picks").addEventListener("click", clearPicks);
  $("move-reset").addEventListener("click", refreshMove);
  $("interp-steps").addEventListener("change", drawStrip);
  $("slerp").addEventListener("change", drawStrip);
  $("scrub").addEventListener("input", drawScrub);
  onPicks(() => {
    if (current === "interp") drawStrip();
    if (current === "move") refreshMove();
  });
  initPanels({ onTab: (name) => current === name });
  selectRun(0);
  document.body.dataset.ready = "1";
}

main().catch((err) => showError(err));
