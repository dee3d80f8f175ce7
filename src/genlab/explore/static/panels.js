// The Arithmetic & attributes, Draw, Map and Run tabs.
import { $, api, el, image, info, latest, onPicks, options, pick, showError, slider, state }
  from "./core.js";

let isTab = () => false;

// --- arithmetic and attributes -------------------------------------------------------------------
let strengths = {};

const drawArith = latest(async () => {
  const p = state.picks;
  if (p.length < 3) {
    $("arith-row").replaceChildren(el("span", { class: "muted" }, "pick three samples: A, B and C"));
    return;
  }
  const out = await api("arithmetic", { body: { a: p[0].z, b: p[1].z, c: p[2].z, y: p[2].y } });
  const fig = (src, text) => el("figure", {}, image(src, "big"), el("figcaption", {}, text));
  $("arith-row").replaceChildren(fig(p[0].image, "A"), el("span", { class: "op" }, "−"), fig(p[1].image, "B"),
    el("span", { class: "op" }, "+"), fig(p[2].image, "C"), el("span", { class: "op" }, "="),
    fig(out.image, "A − B + C"));
});

const drawAttr = latest(async () => {
  const p = state.picks[0];
  if (!p) return;
  const out = await api("move", { body: { z: p.z, y: p.y, attributes: strengths } });
  $("attr-image").src = out.image;
});

async function refreshArith() {
  if (!info().decode) {
    $("arith-row").replaceChildren(el("span", { class: "muted" }, "this model has no decode(z)"));
    return;
  }
  drawArith();
  const names = (await api("attributes")).names;
  strengths = {};
  $("attr-sliders").replaceChildren(...names.map((name) => slider(name, {
    min: -3, max: 3, step: 0.05, cls: "attr-slider", onInput: (v) => { strengths[name] = v; drawAttr(); },
  })));
  if (state.picks[0]) $("attr-image").src = state.picks[0].image;
}

// --- draw and upload ----------------------------------------------------------------------------
let drawn = null;  // the last result, for "pin as a pick"

function setupCanvas() {
  const canvas = $("draw-canvas");
  const ctx = canvas.getContext("2d");
  const clear = () => {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  };
  clear();
  let last = null;
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
  };
  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    last = at(e);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!last) return;
    const p = at(e);
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = canvas.width / 14;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(...last);
    ctx.lineTo(...p);
    ctx.stroke();
    last = p;
  });
  const end = () => {
    if (!last) return;
    last = null;
    canvas.toBlob((blob) => send(blob, true), "image/png");
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("draw-clear").addEventListener("click", clear);
  $("upload").addEventListener("change", () => {
    const file = $("upload").files[0];
    if (!file) return;
    if (state.maxUpload && file.size > state.maxUpload) {  // the server refuses it too; say so at once
      showError(new Error(`the file is ${(file.size / 1e6).toFixed(1)} MB; the limit is ` +
        `${(state.maxUpload / 1e6).toFixed(1)} MB`), $("draw-error"));
    }
    send(file, false);
  });
  $("draw-pin").addEventListener("click", () => {
    if (drawn) pick({ image: drawn.image, z: drawn.z });
  });
}

const send = latest(async (blob, centre) => {
  if (!info().decode) throw new Error("this model has no decode(z)");
  $("draw-how").textContent = info().encoder ? "encoding…" : "projecting (a few seconds)…";
  try {
    drawn = await api(`image${centre ? "?centre=1" : ""}`, { raw: blob });
  } catch (err) {
    $("draw-how").textContent = "";
    throw err;
  }
  $("draw-how").textContent = "";
  $("draw-input").src = drawn.input;
  $("draw-output").src = drawn.image;
  $("draw-output-caption").textContent = drawn.how;
  $("draw-pin").disabled = false;
  const z = drawn.z.slice(0, 16).map((v) => v.toFixed(2)).join(" ");
  $("draw-code").textContent = `z (${drawn.z.length}): ${z}${drawn.z.length > 16 ? " …" : ""}`;
  $("draw-neighbours").replaceChildren(...(drawn.neighbours || []).map((src) => image(src, "cell")));
  if (drawn.neighbours) $("draw-neighbours").prepend(el("span", { class: "muted" }, "nearest training images: "));
}, $("draw-error"));

// --- map ----------------------------------------------------------------------------------------
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf"];
let map = null;

async function refreshMap() {
  const run = info();
  if (!run.decode) {
    $("map-note").textContent = "this model has no decode(z): no map";
    return;
  }
  $("map-note").textContent = "computing the map…";
  const data = await api("map");
  const xs = data.xy.map((p) => p[0]);
  const ys = data.xy.map((p) => p[1]);
  const pad = 0.05;
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  map = { ...data, box: [x0 - pad * (x1 - x0), x1 + pad * (x1 - x0), y0 - pad * (y1 - y0), y1 + pad * (y1 - y0)] };
  $("map-note").textContent = `${data.xy.length} points of ${data.source} (${data.axes} axes), coloured by ` +
    `${data.y ? "label" : "nothing: no labels"}; hover shows an image, a click decodes that point`;
  const canvas = $("map-canvas");
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  data.xy.forEach((p, i) => {
    const [cx, cy] = toCanvas(p);
    ctx.fillStyle = data.y ? PALETTE[data.y[i] % PALETTE.length] : "#555";
    ctx.fillRect(cx - 2, cy - 2, 4, 4);
  });
  const labels = data.y ? [...new Set(data.y)].sort((a, b) => a - b) : [];
  $("map-legend").replaceChildren(...labels.map((k) => el("span", { class: "legend" },
    el("i", { style: `background:${PALETTE[k % PALETTE.length]}` }), data.class_names ? data.class_names[k] : k)));
}

function toCanvas([u, v]) {
  const c = $("map-canvas");
  const [x0, x1, y0, y1] = map.box;
  return [(u - x0) / (x1 - x0) * c.width, (1 - (v - y0) / (y1 - y0)) * c.height];
}

function fromEvent(e) {
  const c = $("map-canvas");
  const r = c.getBoundingClientRect();
  const px = (e.clientX - r.left) * c.width / r.width;
  const py = (e.clientY - r.top) * c.height / r.height;
  const [x0, x1, y0, y1] = map.box;
  return { px, py, u: x0 + px / c.width * (x1 - x0), v: y0 + (1 - py / c.height) * (y1 - y0) };
}

const hover = latest(async (k) => { $("map-hover").src = (await api(`map/${k}`)).image; });
const decodeAt = latest(async (u, v, y) => { $("map-decoded").src = (await api("map/decode", { body: { u, v, y } })).image; });

function setupMap() {
  const canvas = $("map-canvas");
  canvas.addEventListener("mousemove", (e) => {
    if (!map) return;
    const { px, py } = fromEvent(e);
    let best = -1;
    let bestD = 64;  // within 8 canvas pixels
    map.xy.forEach((p, i) => {
      const [cx, cy] = toCanvas(p);
      const d = (cx - px) ** 2 + (cy - py) ** 2;
      if (d < bestD) { bestD = d; best = i; }
    });
    if (best >= 0) hover(best);
  });
  canvas.addEventListener("click", (e) => {
    if (!map) return;
    const { u, v } = fromEvent(e);
    decodeAt(u, v, info().classes ? Number($("class-select").value || 0) : undefined);
  });
}

// --- run: curves, config, two runs side by side ---------------------------------------------------
function chart(name, s) {
  const w = 240, h = 110, pad = 4;
  const xs = s.step, ys = s.value;
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const pts = xs.map((x, i) => `${pad + (x - x0) / ((x1 - x0) || 1) * (w - 2 * pad)},` +
    `${h - pad - (ys[i] - y0) / ((y1 - y0) || 1) * (h - 2 * pad)}`).join(" ");
  const svg = `<svg width="${w}" height="${h}" class="chart"><polyline fill="none" stroke="#1f77b4" ` +
    `stroke-width="1.5" points="${pts}"/></svg>`;
  const box = el("figure", { class: "curve" });
  box.innerHTML = svg;
  box.append(el("figcaption", {}, `${name}: ${ys[ys.length - 1].toPrecision(4)} (${y0.toPrecision(3)}..` +
    `${y1.toPrecision(3)})`));
  return box;
}

async function runView(i, target) {
  const seed = Number($("run-seed").value) || 0;
  const [rec, samples] = await Promise.all([api("record", { run: i }), api("sample", { run: i, body: { seed, n: 16 } })]);
  const curves = Object.entries(rec.curves).filter(([, s]) => s.step.length > 1);
  target.replaceChildren(
    el("div", { class: "grid" }, ...samples.images.map((src) => image(src, "cell"))),
    el("h3", {}, "curves"),
    el("div", { class: "curves" }, ...(curves.length ? curves.map(([n, s]) => chart(n, s))
      : [el("span", { class: "muted" }, "no curves recorded")])),
    el("h3", {}, "config.json"),
    el("pre", { class: "config" }, JSON.stringify(rec.config, null, 1)));
}

const refreshRun = latest(async () => {
  await Promise.all([runView(Number($("run-a").value), $("run-a-view")),
    runView(Number($("run-b").value), $("run-b-view"))]);
});

function setupRun() {
  const items = state.runs.map((r, i) => [i, r.name]);
  options($("run-a"), items, 0);
  options($("run-b"), items, Math.min(1, items.length - 1));
  for (const id of ["run-a", "run-b", "run-seed"]) $(id).addEventListener("change", refreshRun);
}

// --- wiring -------------------------------------------------------------------------------------
export function showPanel(name) {
  if (name === "arith") refreshArith().catch((e) => showError(e));
  else if (name === "map") refreshMap().catch((e) => showError(e));
  else if (name === "run") refreshRun();
}

export function initPanels({ onTab }) {
  isTab = onTab;
  setupCanvas();
  setupMap();
  setupRun();
  onPicks(() => {
    if (isTab("arith")) { drawArith(); drawAttr(); }
  });
  $("run-select").addEventListener("change", () => { map = null; });
}
