// msfkit serve: the curation lists (GET /api/curate/{view}), each computed by the server on its first
// request, then kept: outliers, label issues, and leaks between the stores the index holds. Click an
// image to search from it.
"use strict";

const LISTS = {
  outliers: {
    title: "Outliers",
    about: "Images far from their 10 nearest neighbours (score: the mean cosine distance to them), most " +
      "foreign first; few images have an outlier among their own neighbours.",
    note: (item) => `neighbour of ${item.in_degree} images`,
  },
  "label-issues": {
    title: "Label issues",
    about: "Images whose 10 nearest neighbours vote for another label (confident learning, as cleanlab's " +
      "k-NN label issues), least confident in their own label first.",
    note: (item) => `${item.label} \u2192 ${item.suggested} (${(100 * item.confidence).toFixed(0)}% of neighbours; ` +
      `own label ${(100 * item.self_confidence).toFixed(0)}%)`,
  },
  leaks: {
    title: "Leaks between stores",
    about: "Images of the last store the index holds (TEST) with a near copy in another of its stores " +
      "(TRAIN), as msfkit dedup TRAIN --against TEST finds them.",
    note: (item) => el("span", { title: item.match.path }, `copy of ${item.match.rel}`),
  },
};
const list = { view: null, offset: 0 };

function listStatus(text, error = false) {
  $("list-status").textContent = text;
  $("list-status").className = error ? "error" : "muted";
}

function leaksAbout(body) {
  const name = (path) => path.split("/").filter(Boolean).pop();
  const stores = body.stores.map((s, i) => el("span", { title: s }, i === body.test ? `${name(s)} (TEST)` : name(s)));
  const about = el("span", {}, `${body.total} images leak at similarity >= ${body.threshold}; stores: `);
  stores.forEach((s, i) => about.append(i ? ", " : "", s));
  return about;
}

async function loadList(reset) {
  const view = list.view, spec = LISTS[view];
  if (reset) { list.offset = 0; $("list-grid").replaceChildren(); }
  listStatus(`finding ${spec.title.toLowerCase()} (computed once, then kept)...`);
  try {
    const body = await api(`/api/curate/${view}?offset=${list.offset}&limit=${PAGE}`);
    if (view !== list.view) return;  // another list was opened meanwhile
    for (const item of body.items) {
      $("list-grid").append(tile(item, (h) => { location.hash = `row=${h.row}`; }, spec.note(item)));
    }
    list.offset += body.items.length;
    $("list-more").hidden = !body.more;
    $("list-status").replaceChildren(view === "leaks" ? leaksAbout(body) : `${body.total} images listed`);
    $("list-status").className = "muted";
  } catch (e) {
    if (view === list.view) listStatus(e.message, true);
  }
}

function showList(view) {
  if (list.view === view) return;
  list.view = view;
  $("list-title").textContent = LISTS[view].title;
  $("list-about").textContent = LISTS[view].about;
  loadList(true);
}

function setupList() {
  $("list-more").addEventListener("click", () => loadList(false));
}
