// flawscope operator page: upload images, show verdicts, latest results and the control chart.
// Plain JavaScript, no libraries, no network access beyond this server.
"use strict";

const REFRESH_MS = 5000;
const MAX_CARDS = 40;
const TOKEN_KEY = "flawscope.token";
const BATCH_KEY = "flawscope.batch";

const $ = (id) => document.getElementById(id);
const state = { token: localStorage.getItem(TOKEN_KEY) || "", authRequired: false,
  queue: [], busy: false, done: 0, failed: 0, chartKey: null };

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// ---------------------------------------------------------------- API
async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.token) headers.set("Authorization", "Bearer " + state.token);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (err) {
    setConnection(false, "server unreachable");
    throw new ApiError(0, "the server cannot be reached; check the network and that it runs");
  }
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    if (response.status === 401) showTokenBanner(message);
    throw new ApiError(response.status, message);
  }
  return response;
}

async function apiJson(path, options) { return (await api(path, options)).json(); }

// Images behind the token cannot be plain <img src>: fetch them and show a blob URL.
async function loadImage(img, url) {
  const blob = await (await api(url)).blob();
  if (img.dataset.blobUrl) URL.revokeObjectURL(img.dataset.blobUrl);
  img.dataset.blobUrl = URL.createObjectURL(blob);
  img.src = img.dataset.blobUrl;
}

// ---------------------------------------------------------------- formatting
function fmt(x) {
  if (x === null || x === undefined || !isFinite(x)) return "–";
  const a = Math.abs(x);
  if (a >= 100) return x.toFixed(1);
  if (a >= 1) return x.toFixed(3);
  if (a === 0) return "0";
  return x.toPrecision(3);
}

function fmtTime(iso) {
  if (!iso) return "";
  const t = new Date(iso);
  const today = new Date().toDateString() === t.toDateString();
  const time = t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  return today ? time : t.toLocaleDateString() + " " + time;
}

// Saved uploads are named <name>-<16 hex digits of the content hash>.<ext>: show <name>.<ext>.
function displayName(name) { return (name || "").replace(/-[0-9a-f]{16}(\.[A-Za-z]+)$/, "$1"); }

function text(tag, value, cls) {
  const el = document.createElement(tag);
  el.textContent = value;
  if (cls) el.className = cls;
  return el;
}

// ---------------------------------------------------------------- header, token
function setConnection(ok, message) {
  $("conn-dot").className = "dot " + (ok ? "ok" : "bad");
  $("conn-text").textContent = message;
}

function showTokenBanner(message) {
  $("token-message").textContent = state.token
    ? "The saved API token was refused. Enter the right one."
    : "This server needs an API token.";
  $("token-banner").hidden = false;
  $("token-input").focus();
  if (message) $("token-banner").title = message;
}

function setupToken() {
  $("token-toggle").addEventListener("click", () => {
    $("token-banner").hidden = !$("token-banner").hidden;
    $("token-message").textContent = state.authRequired ? "API token of this server:" : "API token (this server does not need one):";
    $("token-input").value = state.token;
  });
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = $("token-input").value.trim();
    localStorage.setItem(TOKEN_KEY, state.token);
    $("token-banner").hidden = true;
    state.chartKey = null;
    refresh();
  });
  $("token-clear").addEventListener("click", () => {
    state.token = "";
    localStorage.removeItem(TOKEN_KEY);
    $("token-input").value = "";
  });
}

async function loadHealth() {
  try {
    const h = await apiJson("/health");
    $("model-id").textContent = h.model_id || "?";
    $("model-name").textContent = h.model_name || "?";
    $("model-threshold").textContent = h.normalised_scores ? "1.0 (normalised)" : fmt(h.threshold);
    $("footer-version").textContent = "flawscope " + h.version;
    $("footer-store").textContent = "store " + h.store;
    state.authRequired = !!h.auth_required;
    setConnection(true, "online");
    if (state.authRequired && !state.token) showTokenBanner();
  } catch (err) {
    setConnection(false, err.status ? "error " + err.status : "offline");
  }
}

// ---------------------------------------------------------------- batch
function currentBatch() { return $("batch-input").value.trim(); }

function setupBatch() {
  const input = $("batch-input");
  input.value = localStorage.getItem(BATCH_KEY) || "";
  const update = () => {
    localStorage.setItem(BATCH_KEY, input.value.trim());
    const hint = $("batch-hint");
    hint.textContent = input.value.trim()
      ? "New images are recorded in this batch."
      : "No batch set: results are not charted.";
    hint.classList.toggle("warn", !input.value.trim());
    $("summary-batch").textContent = input.value.trim() || "—";
  };
  input.addEventListener("input", update);
  input.addEventListener("change", refresh);
  update();
}

// ---------------------------------------------------------------- uploads
function setupDrop() {
  const zone = $("dropzone");
  const input = $("file-input");
  $("pick-button").addEventListener("click", (ev) => { ev.stopPropagation(); input.click(); });
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); input.click(); }
  });
  input.addEventListener("change", () => { enqueue(input.files); input.value = ""; });
  ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (ev) => {
    ev.preventDefault(); zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, (ev) => {
    ev.preventDefault(); zone.classList.remove("over");
  }));
  zone.addEventListener("drop", (ev) => enqueue(ev.dataTransfer.files));
  // a file dropped next to the zone must not make the browser navigate away
  window.addEventListener("dragover", (ev) => ev.preventDefault());
  window.addEventListener("drop", (ev) => ev.preventDefault());
}

function enqueue(files) {
  const batch = currentBatch();
  for (const file of Array.from(files || [])) state.queue.push({ file, batch, card: newCard(file) });
  updateQueueStatus();
  pump();
}

function updateQueueStatus() {
  const waiting = state.queue.length + (state.busy ? 1 : 0);
  $("queue-status").textContent = waiting
    ? `Inspecting… ${waiting} image${waiting > 1 ? "s" : ""} to go`
    : state.done || state.failed
      ? `${state.done} inspected${state.failed ? `, ${state.failed} refused` : ""} this session`
      : "";
}

async function pump() {
  if (state.busy) return;
  state.busy = true;
  while (state.queue.length) {
    const job = state.queue.shift();
    updateQueueStatus();
    await upload(job);
  }
  state.busy = false;
  updateQueueStatus();
  refresh();
}

async function upload(job) {
  const form = new FormData();
  form.append("file", job.file, job.file.name);
  form.append("batch", job.batch);
  try {
    const result = await apiJson("/inspect", { method: "POST", body: form });
    state.done += 1;
    showResult(job.card, result);
  } catch (err) {
    state.failed += 1;
    showError(job.card, err);
  }
}

// ---------------------------------------------------------------- cards
function newCard(file) {
  $("cards-empty").hidden = true;
  const card = $("card-template").content.firstElementChild.cloneNode(true);
  card.querySelector(".card-name").textContent = file.name;
  card.querySelector(".card-name").title = file.name;
  card.querySelectorAll("img").forEach((img) => {
    img.addEventListener("error", () => img.closest("figure").classList.add("broken"));
  });
  const input = card.querySelector(".img-input");
  input.src = URL.createObjectURL(file);
  const cards = $("cards");
  cards.insertBefore(card, cards.querySelector(".card"));
  const all = cards.querySelectorAll(".card");
  for (let i = MAX_CARDS; i < all.length; i++) dropCard(all[i]);
  return card;
}

function dropCard(card) {
  card.querySelectorAll("img").forEach((img) => {
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  });
  card.remove();
}

function showResult(card, r) {
  card.dataset.verdict = r.verdict;
  card.querySelector(".verdict").textContent = r.verdict.toUpperCase();
  const max = r.threshold > 0 ? 2 * r.threshold : Math.max(r.score, 1);
  card.querySelector(".gauge-fill").style.width = Math.min(100, (100 * r.score) / max) + "%";
  const score = card.querySelector(".card-score");
  score.replaceChildren("score ", text("b", fmt(r.score)), " / threshold ", text("b", fmt(r.threshold)));
  const tags = card.querySelector(".card-tags");
  tags.replaceChildren(text("span", r.batch ? "batch " + r.batch : "no batch", "tag"));
  if (r.group) tags.append(text("span", "group " + r.group, "tag"));
  if (r.stored) tags.append(text("span", "from store", "tag"));
  if (r.far) tags.append(text("span", "unfamiliar view", "tag tag-warn"));
  if (r.anomalous_fraction !== null && r.anomalous_fraction !== undefined) {
    tags.append(text("span", (100 * r.anomalous_fraction).toFixed(1) + " % anomalous", "tag"));
  }
  const map = card.querySelector(".img-map");
  if (r.anomaly_map_url) {
    loadImage(map, r.anomaly_map_url).catch(() => { map.alt = "anomaly map unavailable"; });
  }
  const last = $("last-verdict");
  last.dataset.verdict = r.verdict;
  $("last-verdict-text").textContent = r.verdict.toUpperCase();
  $("last-verdict-name").textContent = `${r.filename || r.name} · score ${fmt(r.score)} / ${fmt(r.threshold)}`;
}

function showError(card, err) {
  card.dataset.verdict = "error";
  card.querySelector(".verdict").textContent = err.status ? `Refused (${err.status})` : "Not sent";
  card.querySelector(".gauge").hidden = true;
  card.querySelector(".card-score").replaceChildren(text("span", err.message, "card-error"));
  card.querySelector(".img-map").closest("figure").hidden = true;
}

// ---------------------------------------------------------------- results, summary, chart
function renderResults(page) {
  const body = $("results-body");
  const batch = currentBatch();
  if (!page.items.length) {
    body.replaceChildren();
    const row = body.insertRow();
    const cell = row.insertCell();
    cell.colSpan = 8;
    cell.className = "empty";
    cell.textContent = "No results yet.";
  } else {
    body.replaceChildren(...page.items.map((r) => {
      const row = document.createElement("tr");
      if (batch && r.batch === batch) row.className = "current";
      const name = text("td", displayName(r.name), "name");
      name.title = r.name;
      const verdict = document.createElement("td");
      verdict.append(text("span", r.verdict.toUpperCase(), "pill pill-" + r.verdict));
      const fraction = r.anomalous_fraction === null || r.anomalous_fraction === undefined
        ? "–" : (100 * r.anomalous_fraction).toFixed(1) + " %";
      row.append(text("td", fmtTime(r.time)), text("td", r.batch || "—"), name,
        text("td", r.group || "—"), text("td", fmt(r.score), "num"),
        text("td", fmt(r.threshold), "num"), text("td", fraction, "num"), verdict);
      return row;
    }));
  }
  $("results-total").textContent = `${page.items.length} of ${page.total} results shown (newest first)`;
  $("results-updated").textContent = "updated " + new Date().toLocaleTimeString([], { hour12: false });
}

function renderSummary(batches) {
  const batch = currentBatch();
  const b = batches.find((x) => x.batch === batch);
  $("stat-count").textContent = b ? b.count : 0;
  $("stat-pass").textContent = b ? b.count - b.fails : 0;
  $("stat-fail").textContent = b ? b.fails : 0;
  $("stat-rate").textContent = b ? (100 * b.fail_rate).toFixed(1) + " %" : "–";
  $("stat-mean").textContent = b ? fmt(b.mean_score) : "–";
}

function renderRecent(page) {
  const strip = $("recent-strip");
  if (!page || !page.items.length) {
    strip.replaceChildren(text("span", "none yet", "muted small"));
    return;
  }
  strip.replaceChildren(...page.items.slice().reverse().map((r) => {
    const cell = text("span", "", "cell" + (r.verdict === "fail" ? " fail" : ""));
    cell.title = `${displayName(r.name)}: ${r.verdict.toUpperCase()} (score ${fmt(r.score)})`;
    return cell;
  }));
}

// The current batch on the chart: in control, or which rules it breaks.
function renderCaption(spc) {
  const caption = $("chart-caption");
  const batch = currentBatch();
  const row = spc && spc.batches.find((b) => b.name === batch);
  if (!row) { caption.hidden = true; return; }
  const label = { mean_score: "mean score", fail_rate: "fail rate", nqi: "nQI" };
  const statistic = $("chart-statistic").value;
  const value = row[statistic];
  const shown = statistic === "fail_rate" ? (100 * value).toFixed(1) + " %" : fmt(value);
  const status = row.flags.length
    ? text("span", "OUT OF CONTROL: " + row.flags.join("; "), "ooc")
    : text("span", "in control", "ok");
  caption.replaceChildren(`Current batch ${batch}: ${label[statistic]} ${shown}`,
    row.reference ? " (reference batch) · " : " · ", status);
  caption.hidden = false;
}

async function renderChart(batchCount) {
  const statistic = $("chart-statistic").value;
  const img = $("chart-image");
  const message = $("chart-message");
  try {
    await loadImage(img, "/spc/chart.png?statistic=" + encodeURIComponent(statistic));
    img.hidden = false;
    message.hidden = true;
    renderCaption(await apiJson("/spc"));
  } catch (err) {
    $("chart-caption").hidden = true;
    img.hidden = true;
    message.hidden = false;
    message.textContent = err.status === 409
      ? `The control chart needs results from at least 3 batches; this model has ${batchCount} so far. ` +
        "Set a batch name above for each production lot."
      : "Control chart unavailable: " + err.message;
  }
}

async function refresh() {
  try {
    const batch = currentBatch();
    const [page, batches, recent] = await Promise.all([
      apiJson("/results?limit=15"),
      apiJson("/batches"),
      apiJson("/results?limit=40&batch=" + encodeURIComponent(batch)),
    ]);
    setConnection(true, "online");
    renderResults(page);
    renderRecent(recent);
    const list = batches.batches;
    renderSummary(list);
    const named = list.filter((b) => b.batch).length;
    const key = [page.total, page.items[0] ? page.items[0].id : "", $("chart-statistic").value, batch].join(":");
    if (key !== state.chartKey) {
      state.chartKey = key;
      await renderChart(named);
    }
  } catch (err) {
    if (err.status === 401) {
      $("chart-message").textContent = "Enter the API token to see results.";
    }
  }
}

// ---------------------------------------------------------------- start
document.addEventListener("DOMContentLoaded", async () => {
  setupToken();
  setupBatch();
  setupDrop();
  $("clear-cards").addEventListener("click", () => {
    document.querySelectorAll("#cards .card").forEach(dropCard);
    $("cards-empty").hidden = false;
  });
  $("chart-statistic").addEventListener("change", () => { state.chartKey = null; refresh(); });
  await loadHealth();
  await refresh();
  setInterval(refresh, REFRESH_MS);
  setInterval(loadHealth, 6 * REFRESH_MS);
});
