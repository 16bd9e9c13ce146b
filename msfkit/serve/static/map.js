// msfkit serve: the map of the collection. Every row is a point of a 2-D projection (GET /api/map),
// drawn into one ImageData (one putImageData per frame, no DOM node per point: 100,000 points stay
// smooth), coloured by label, duplicate group or outlier score (GET /api/map/colours). Drag a lasso
// round points: the server answers the rows inside (POST /api/map/select), shown as a grid; click one
// to search from it, or add them all to the duplicates view's removal list.
"use strict";

const SELECTION = 60;  // tiles of a selection per page
const PAD = 14;        // pixels round the points
const PALETTE = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
  "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d",
  "#9edae5", "#393b79",
];
const NONE = "#c8c8c8";  // no group, no score
const map = { method: null, points: null, colours: null, image: null, view: null, lasso: null,
              polygon: null, rows: [], offset: 0, loading: null, summary: "" };

// "#rrggbb" -> a pixel of a little-endian Uint32Array over RGBA bytes
function pixel(hex) {
  const v = parseInt(hex.slice(1), 16);
  return (0xff << 24 | (v & 0xff) << 16 | (v & 0xff00) | (v >> 16) & 0xff) >>> 0;
}

function ramp(t) {  // an outlier score's colour: blue (belongs) to red (foreign)
  const r = Math.round(40 + 210 * t), b = Math.round(220 - 190 * t), g = Math.round(90 + 60 * (1 - Math.abs(2 * t - 1)));
  return (0xff << 24 | b << 16 | g << 8 | r) >>> 0;
}

function decodePoints(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

// The screen transform: the points' box fitted in the canvas, one scale for both axes, y upwards.
function fit(canvas) {
  const p = map.points;
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (let i = 0; i < p.length; i += 2) {
    x0 = Math.min(x0, p[i]); x1 = Math.max(x1, p[i]); y0 = Math.min(y0, p[i + 1]); y1 = Math.max(y1, p[i + 1]);
  }
  const scale = Math.min((canvas.width - 2 * PAD) / (x1 - x0 || 1), (canvas.height - 2 * PAD) / (y1 - y0 || 1));
  map.view = { scale, cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, w: canvas.width, h: canvas.height };
}

const toScreen = (x, y) => [map.view.w / 2 + (x - map.view.cx) * map.view.scale, map.view.h / 2 - (y - map.view.cy) * map.view.scale];
const toMap = (sx, sy) => [map.view.cx + (sx - map.view.w / 2) / map.view.scale, map.view.cy - (sy - map.view.h / 2) / map.view.scale];

function colourPixels(body) {
  const n = map.points.length / 2, out = new Uint32Array(n);
  const palette = PALETTE.map(pixel), none = pixel(NONE);
  if (body.kind === "score") {
    let lo = Infinity, hi = -Infinity;  // a loop: Math.min(...values) overflows the stack at 100,000
    for (const v of body.values) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    body.values.forEach((v, i) => { out[i] = v === null ? none : ramp(hi > lo ? (v - lo) / (hi - lo) : 0); });
  } else {
    body.values.forEach((v, i) => { out[i] = v < 0 ? none : palette[v % palette.length]; });
  }
  return out;
}

function legend(body) {
  const box = $("map-legend");
  box.replaceChildren();
  const swatch = (colour, text) => {
    const chip = el("i");
    chip.style.background = colour;  // a CSSOM property: the page's CSP allows no inline style attribute
    return el("span", { class: "swatch" }, chip, text);
  };
  if (body.kind === "category") {
    body.names.slice(0, PALETTE.length).forEach((name, i) => box.append(swatch(PALETTE[i], name)));
    if (body.names.length > PALETTE.length) box.append(`(+${body.names.length - PALETTE.length} more, colours repeat)`);
  } else if (body.kind === "group") {
    box.append(`${body.total} groups at similarity >= ${body.threshold}; `, swatch(NONE, "no near duplicate"));
  } else {
    box.append(`${body.score === "mahalanobis" ? "Mahalanobis" : "k-NN"} score: `, swatch("rgb(40,90,220)", "belongs"),
      swatch("rgb(250,90,30)", "foreign"), swatch(NONE, "no score"));
  }
}

// The points into one ImageData (squares of 7, 5 or 3 pixels: the more points, the smaller); the
// lasso on top.
function draw() {
  const canvas = $("map-canvas"), ctx = canvas.getContext("2d");
  if (!map.image) {
    const image = ctx.createImageData(canvas.width, canvas.height), px = new Uint32Array(image.data.buffer);
    px.fill(pixel("#ffffff"));
    const p = map.points, w = canvas.width, h = canvas.height, n = p.length / 2;
    const r = n <= 1000 ? 3 : n <= 20000 ? 2 : 1;
    for (let i = 0; i < n; i++) {
      const [sx, sy] = toScreen(p[2 * i], p[2 * i + 1]);
      const x = Math.round(sx), y = Math.round(sy);
      for (let dy = -r; dy <= r; dy++) for (let dx = -r; dx <= r; dx++) {
        if (x + dx >= 0 && x + dx < w && y + dy >= 0 && y + dy < h) px[(y + dy) * w + x + dx] = map.colours[i];
      }
    }
    map.image = image;
  }
  ctx.putImageData(map.image, 0, 0);
  const line = map.lasso || map.polygon;
  if (line && line.length > 1) {
    ctx.beginPath();
    ctx.moveTo(...line[0]);
    for (const point of line.slice(1)) ctx.lineTo(...point);
    if (!map.lasso) ctx.closePath();
    ctx.strokeStyle = "#2255cc";
    ctx.lineWidth = 2;
    ctx.stroke();
  }
}

function mapStatus(text, error = false) {
  $("map-status").textContent = text;
  $("map-status").className = error ? "error" : "muted";
}

async function loadColours() {
  const params = new URLSearchParams({ by: $("map-colour").value, threshold: dup.threshold, score: list.score });
  mapStatus(`colouring by ${$("map-colour").value}...`);
  const body = await api(`/api/map/colours?${params}`);
  map.colours = colourPixels(body);
  map.image = null;
  legend(body);
  draw();
  mapStatus(map.summary);
}

async function loadMap() {
  const method = $("map-method").value;
  mapStatus(`projecting the collection (${method.toUpperCase()}, computed once)...`);
  try {
    const body = await api(`/api/map?method=${method}`);
    map.method = body.method;
    map.points = decodePoints(body.points);
    $("map-method").querySelector('[value="umap"]').disabled = !body.methods.includes("umap");
    fit($("map-canvas"));
    const explained = body.explained.map((e) => `${(100 * e).toFixed(0)}%`).join(" + ");
    map.summary = `${body.count} images, ${method.toUpperCase()}` +
      (explained ? ` (the axes explain ${explained} of the variance)` : "") +
      "; drag a lasso round points to see those images";
    await loadColours();
  } catch (e) {
    mapStatus(e.message, true);
  }
}

function showMap() {
  if (!map.loading) map.loading = loadMap();
}

async function loadSelection(reset) {
  if (reset) { map.offset = 0; $("map-grid").replaceChildren(); }
  const polygon = map.polygon.map(([sx, sy]) => toMap(sx, sy));
  try {
    const body = await api(`/api/map/select?offset=${map.offset}&limit=${SELECTION}`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ method: map.method, polygon }),
    });
    map.rows = body.rows;
    for (const hit of body.items) $("map-grid").append(tile(hit, (h) => { location.hash = `row=${h.row}`; }));
    map.offset += body.items.length;
    $("map-more").hidden = !body.more;
    $("map-selection").hidden = false;
    $("map-selection-text").textContent = `${body.total} images inside the lasso`;
    $("map-removed").textContent = "";
  } catch (e) {
    mapStatus(e.message, true);
  }
}

function setupMap() {
  const canvas = $("map-canvas");
  canvas.addEventListener("mousedown", (e) => { if (map.points) map.lasso = [[e.offsetX, e.offsetY]]; });
  canvas.addEventListener("mousemove", (e) => {
    if (!map.lasso) return;
    const [px, py] = map.lasso[map.lasso.length - 1];
    if (Math.hypot(e.offsetX - px, e.offsetY - py) >= 3 && map.lasso.length < 1000) {
      map.lasso.push([e.offsetX, e.offsetY]);
      draw();
    }
  });
  const finish = () => {
    if (!map.lasso) return;
    if (map.lasso.length >= 3) { map.polygon = map.lasso; loadSelection(true); }
    map.lasso = null;
    draw();
  };
  canvas.addEventListener("mouseup", finish);
  canvas.addEventListener("mouseleave", finish);
  $("map-method").addEventListener("change", () => { map.polygon = null; $("map-selection").hidden = true; map.loading = loadMap(); });
  $("map-colour").addEventListener("change", () => loadColours().catch((e) => mapStatus(e.message, true)));
  $("map-more").addEventListener("click", () => loadSelection(false));
  $("map-remove").addEventListener("click", () => {
    for (const row of map.rows) dup.marked.add(row);
    $("map-removed").textContent = `${dup.marked.size} images on the removal list (download it from Duplicates)`;
  });
}
