// Shared pieces of the explorer page: the API client, the page state, small DOM helpers.

export const $ = (id) => document.getElementById(id);

export const state = {
  runs: [],        // what /api/runs describes
  run: 0,          // index of the run the tabs use
  picks: [],       // [{image, z, y, label}] picked samples, drawings or uploads
  maxUpload: 0,
};

export const info = () => state.runs[state.run];

let pending = 0;
function busy(delta) {
  pending += delta;
  $("busy").hidden = pending === 0;
}

const BUSY_RETRIES = 10;

// fetch JSON from the API; throws an Error carrying the server's message
export async function api(path, { method = "GET", body, raw, run = state.run } = {}) {
  const opts = { method };
  if (raw !== undefined) {
    opts.method = "POST";
    opts.body = raw;
  } else if (body !== undefined) {
    opts.method = "POST";
    opts.headers = { "Content-Type": "application/json" };
    opts.body = JSON.stringify(body);
  }
  const url = path === "runs" ? "/api/runs" : `/api/runs/${run}/${path}`;
  busy(1);
  try {
    let res = await fetch(url, opts);
    // 503: the server's workers and queue are full; wait as it asks (Retry-After, seconds), a few times
    for (let attempt = 0; res.status === 503 && attempt < BUSY_RETRIES; attempt++) {
      const seconds = Number(res.headers.get("Retry-After")) || 1;
      await new Promise((done) => setTimeout(done, seconds * 1000));
      res = await fetch(url, opts);
    }
    const data = await res.json().catch(() => ({ error: `${res.status} ${res.statusText}` }));
    if (!res.ok) throw new Error(data.error || `${res.status} ${res.statusText}`);
    return data;
  } finally {
    busy(-1);
  }
}

export function showError(err, where) {
  const box = where || $("error");
  box.textContent = err ? String(err.message || err) : "";
  box.hidden = !err;
}

// run fn with the newest arguments only: while a request is in flight, later calls replace each
// other, and the last one runs when it returns (a slider never queues stale work)
export function latest(fn, errorBox) {
  let running = false;
  let next = null;
  return (...args) => {
    next = args;
    if (running) return;
    running = true;
    (async () => {
      while (next) {
        const a = next;
        next = null;
        try {
          await fn(...a);
          showError(null, errorBox);
        } catch (err) {
          showError(err, errorBox);
        }
      }
      running = false;
    })();
  };
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

export function image(src, cls = "cell") {
  const img = el("img", { class: cls, alt: "" });
  img.src = src;
  return img;
}

// a labelled range input; onInput(value) on every move
export function slider(label, { min, max, step, value = 0, onInput, cls = "" }) {
  const out = el("output", {}, Number(value).toFixed(2));
  const input = el("input", { type: "range", min, max, step, value, class: cls });
  input.addEventListener("input", () => {
    out.textContent = Number(input.value).toFixed(2);
    onInput(Number(input.value));
  });
  return el("label", { class: "slider" }, el("span", {}, label), input, out);
}

export function options(select, items, selected) {
  select.replaceChildren(...items.map(([value, text]) => el("option", { value }, text)));
  if (selected !== undefined) select.value = selected;
}

export function className(run, k) {
  return run.class_names ? `${k}: ${run.class_names[k]}` : String(k);
}

// --- picks --------------------------------------------------------------------------------------
const listeners = [];
export const onPicks = (fn) => listeners.push(fn);

export function pick(item) {
  state.picks.push(item);
  if (state.picks.length > 3) state.picks.shift();
  renderPicks();
}

export function clearPicks() {
  state.picks = [];
  renderPicks();
}

function renderPicks() {
  $("picks").replaceChildren(...state.picks.map((p, i) => {
    const img = image(p.image, "cell pick");
    img.title = `pick ${"ABC"[i]}`;
    return el("span", { class: "pick-wrap" }, el("b", {}, "ABC"[i]), img);
  }));
  listeners.forEach((fn) => fn());
}
