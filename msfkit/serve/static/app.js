// msfkit serve: the page. Plain JS, no build step; talks to the JSON API of the same server.
// This file: helpers, search, duplicates and the views' routing; map.js the map, lists.js the
// curation lists. Paths are shown relative to the collection's root, the full path on hover.
"use strict";

const $ = (id) => document.getElementById(id);
const PAGE = Math.min(200, Number(new URLSearchParams(location.search).get("page")) || 24);  // results per page
const GROUPS = 20;     // duplicate groups per page
const state = { query: null, offset: 0, more: false, loading: false, wanted: false };
const dup = { offset: 0, more: false, choices: {}, groups: [], threshold: null, touched: false, auto: null,
              marked: new Set() };  // rows added to the removal list from the map

async function api(url, options) {
  const response = await fetch(url, options);
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const error = new Error((body && body.error) || `${response.status} ${response.statusText}`);
    error.status = response.status;  // 409: the server cannot answer this yet, and says how to make it
    throw error;
  }
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) node.append(child);
  return node;
}

const thumb = (row, size = 192) => `/api/rows/${row}/thumb?size=${size}`;
const labelOf = (hit) => hit.label || hit.folder || "";

function scoreText(hit) {
  if (hit.score === undefined) return "";
  return hit.rank !== undefined ? `${hit.rank}. ${hit.score.toFixed(3)}` : hit.score.toFixed(4);
}

// One image: thumbnail, score, label, the path relative to the collection's root (the full path on
// hover) and, when given, a line saying why it is listed.
function tile(hit, onClick, note = "") {
  const img = el("img", { src: thumb(hit.row), alt: hit.name, loading: "lazy", title: hit.path });
  const caption = el("figcaption", {},
    el("span", { class: "score" }, scoreText(hit)),
    " ", el("span", { class: "label" }, labelOf(hit)),
    note ? el("span", { class: "note" }, note) : "",
    el("span", { class: "path", title: hit.path }, hit.rel));
  const figure = el("figure", { class: "tile", "data-row": hit.row, title: hit.path }, img, caption);
  figure.addEventListener("click", () => onClick(hit));
  return figure;
}

// -- search ----------------------------------------------------------------------------------------
function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "muted";
}

function showQuery(src, caption, path = "") {
  $("query").hidden = false;
  $("query").title = path;
  $("query-img").src = src;
  $("query-caption").textContent = caption;
}

async function runSearch(reset) {
  if (!state.query) return;
  if (state.loading) { state.wanted = true; return; }  // asked for while a page loads: run once it is in
  state.loading = true;
  state.wanted = false;
  if (reset) { state.offset = 0; $("results").replaceChildren(); }
  const q = state.query;
  try {
    let body;
    const page = `offset=${state.offset}&limit=${PAGE}`;
    if (q.file) {
      const form = new FormData();
      form.append("image", q.file, q.file.name);
      body = await api(`/api/search?${page}`, { method: "POST", body: form });
    } else {
      body = await api(`/api/rows/${q.row}/neighbors?${page}`);
    }
    if (q === state.query) {  // else a newer query started meanwhile: its first page comes next
      const results = body.queries[0].results;
      for (const hit of results) $("results").append(tile(hit, (h) => { location.hash = `row=${h.row}`; }));
      state.offset += results.length;
      state.more = body.more && results.length > 0;
      $("more").hidden = !state.more;
      status(`${state.offset} neighbours of ${q.name}` + (state.more ? " (scroll for more)" : ""));
    }
  } catch (e) {
    status(e.message, true);
  } finally {
    state.loading = false;
  }
  // a query started while this page loaded: its first page; else, when the page is not full yet or
  // one scrolled to the end while this page loaded: the next page
  if (q !== state.query) runSearch(true);
  else if (state.more && (state.wanted || sentinelInView())) runSearch(false);
}

function sentinelInView() {
  const box = $("sentinel").getBoundingClientRect();
  return !$("view-search").hidden && box.top < window.innerHeight + 200;
}

function searchFile(file) {
  if (!file) return;
  state.query = { file, name: file.name };
  if (state.preview) URL.revokeObjectURL(state.preview);
  state.preview = URL.createObjectURL(file);
  showQuery(state.preview, `uploaded: ${file.name}`);
  if (location.hash.startsWith("#row=")) history.replaceState(null, "", "#search");
  status(`searching with ${file.name}...`);
  runSearch(true);
}

async function searchRow(row) {
  state.query = { row, name: `row ${row}` };
  try {
    const info = await api(`/api/rows/${row}`);
    state.query.name = info.name;
    showQuery(thumb(row, 256), `${info.name} (row ${row}) ${labelOf(info)}\n${info.rel}`, info.path);
  } catch (e) {
    status(e.message, true);
    return;
  }
  runSearch(true);
}

function setupSearch() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    searchFile(e.dataTransfer.files[0]);
  });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
  $("file").addEventListener("change", (e) => searchFile(e.target.files[0]));
  $("more").addEventListener("click", () => runSearch(false));
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && state.more && !$("view-search").hidden) runSearch(false);
  }, { rootMargin: "200px" }).observe($("sentinel"));
}

// -- duplicates ------------------------------------------------------------------------------------
function removalUrl() {
  const choose = Object.entries(dup.choices).map(([g, r]) => `${g}:${r}`).join(",");
  const params = new URLSearchParams({ threshold: dup.threshold, keep: $("keep").value });
  if (choose) params.set("choose", choose);
  return `/api/dedup/removals.csv?${params}`;
}

// The removal list: the groups' files to remove, and the rows marked on the map (POSTed: a lasso may
// mark more rows than a URL holds), downloaded as the server's CSV.
async function downloadRemovals(event) {
  event.preventDefault();
  try {
    const response = await fetch(removalUrl(), {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ remove: [...dup.marked] }),
    });
    if (!response.ok) throw new Error((await response.json()).error);
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: `removals-${dup.threshold}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (e) {
    $("dedup-status").textContent = e.message;
    $("dedup-status").className = "error";
  }
}

function showMarked() {
  $("marked").hidden = dup.marked.size === 0;
  $("marked-text").textContent = `${dup.marked.size} images marked on the map are on the removal list too. `;
}

function drawGroup(group) {
  const kept = dup.choices[group.group] ?? group.kept;
  const grid = el("div", { class: "grid" });
  for (const m of group.members) {
    const figure = tile(m, () => { dup.choices[group.group] = m.row; redrawGroup(group); });
    figure.classList.toggle("keep", m.row === kept);
    figure.querySelector("figcaption").prepend(el("span", { class: "badge" }, m.row === kept ? "keep " : "remove "));
    grid.append(figure);
  }
  return el("div", { class: "group", "data-group": group.group },
    el("h3", {}, `Group ${group.group + 1}: ${group.size} images`), grid);
}

function redrawGroup(group) {
  document.querySelector(`.group[data-group="${group.group}"]`).replaceWith(drawGroup(group));
  $("download").href = removalUrl();
}

// The threshold the groups are at: the slider's value, or the measured one exactly (the slider's
// steps would round it).
function setThreshold(value) {
  const slider = $("threshold");
  dup.threshold = String(value);
  if (Number(value) < Number(slider.min)) slider.min = (Math.floor(Number(value) * 100) / 100).toFixed(2);
  slider.value = value;
  $("threshold-value").textContent = dup.threshold;
}

// GET /api/dedup/auto once: the server measures a threshold on copies of the collection's images.
// The slider starts there when copies and distinct images separate; else it stays and says why.
async function autoThreshold() {
  $("dedup-status").textContent = "measuring a threshold for this collection (copies of a sample of its images)...";
  $("dedup-status").className = "muted";
  try {
    const auto = await api("/api/dedup/auto");
    $("dedup-auto").textContent = auto.explanation;
    $("dedup-auto").className = auto.threshold === null ? "error" : "muted";
    if (auto.threshold !== null && !dup.touched) setThreshold(auto.threshold);
  } catch (e) {
    $("dedup-auto").textContent = `threshold auto: ${e.message}`;
    $("dedup-auto").className = "error";
  }
}

async function loadGroups(reset) {
  if (reset) { dup.offset = 0; dup.choices = {}; $("groups").replaceChildren(); }
  const threshold = dup.threshold;
  $("dedup-status").textContent = `finding groups at ${threshold}...`;
  $("dedup-status").className = "muted";
  try {
    const params = new URLSearchParams({ threshold, keep: $("keep").value, offset: dup.offset, limit: GROUPS });
    const body = await api(`/api/dedup?${params}`);
    if (threshold !== dup.threshold) return;  // the slider moved on
    for (const group of body.groups) $("groups").append(drawGroup(group));
    dup.offset += body.groups.length;
    dup.more = body.more;
    $("more-groups").hidden = !body.more;
    $("dedup-status").textContent =
      `${body.groups_total} groups, ${body.images} images at similarity >= ${threshold}`;
    $("download").href = removalUrl();
  } catch (e) {
    $("dedup-status").textContent = e.message;
    $("dedup-status").className = "error";
  }
}

function setupDedup() {
  const slider = $("threshold");
  slider.addEventListener("input", () => { $("threshold-value").textContent = Number(slider.value).toFixed(3); });
  slider.addEventListener("change", () => {
    dup.touched = true;
    setThreshold(slider.value);
    loadGroups(true);
  });
  $("keep").addEventListener("change", () => loadGroups(true));
  $("more-groups").addEventListener("click", () => loadGroups(false));
  $("download").addEventListener("click", downloadRemovals);
  $("marked-clear").addEventListener("click", () => { dup.marked.clear(); showMarked(); });
}

// -- views -----------------------------------------------------------------------------------------
const VIEWS = { search: "view-search", dedup: "view-dedup", map: "view-map",
                outliers: "view-list", "label-issues": "view-list", leaks: "view-list" };

function route() {
  const hash = location.hash.slice(1);
  const view = VIEWS[hash] ? hash : "search";  // #row=N is the search view too
  for (const [name, id] of Object.entries(VIEWS)) {
    $(id).hidden = VIEWS[view] !== id;
    $(`tab-${name}`).classList.toggle("active", name === view);
  }
  if (view === "dedup") {
    showMarked();
    if (!dup.auto) dup.auto = autoThreshold().then(() => loadGroups(true));
    else if (!$("groups").childElementCount) loadGroups(true);
  }
  if (view === "map") showMap();
  if (VIEWS[view] === "view-list") showList(view);
  const row = /^row=(\d+)$/.exec(hash);
  if (row) searchRow(Number(row[1]));
}

async function start() {
  setupSearch();
  setupDedup();
  setupMap();
  setupList();
  setThreshold($("threshold").value);
  window.addEventListener("hashchange", route);
  try {
    const info = await api("/api/info");
    // a model folder by its name (the full path on hover), a Hub id as it is
    const name = info.model.name || "", shown = name.startsWith("/") ? name.split("/").filter(Boolean).pop() : name;
    const model = info.model.loaded ? shown : "no model: search by row only";
    $("about").textContent = `${info.index.count} images, ${info.index.type} index, model ${model}`;
    $("about").title = info.model.loaded ? name : "";
    if (!info.model.loaded) $("drop").title = info.model.note;
  } catch (e) {
    $("about").textContent = e.message;
  }
  route();
  if (!state.query) status("Drop or pick an image to see its nearest neighbours; click a result to explore from it.");
}

document.addEventListener("DOMContentLoaded", start);  // once map.js and lists.js are in too
