// msfkit serve: the curation lists (GET /api/curate/{view}), each computed by the server on its first
// request, then kept: outliers (by the score chosen above the list), label issues, and leaks between
// the stores the index holds (choose which store is TEST and the similarity above the list). Click an
// image to search from it.
"use strict";

const LISTS = {
  outliers: {
    title: "Outliers",
    about: (score) => (score === "mahalanobis"
      ? "Images far from the collection's mean along directions in which it hardly varies (score: the " +
        "squared Mahalanobis distance under its covariance), most foreign first: it finds a batch of foreign " +
        "images that resemble each other, which the k-NN score misses."
      : "Images far from their nearest neighbours (score: the mean cosine distance to the k nearest), most " +
        "foreign first; few images have an outlier among their own neighbours."),
    note: (item) => `neighbour of ${item.in_degree} images`,
  },
  "label-issues": {
    title: "Label issues",
    about: () => "Images whose k nearest neighbours vote for another label (confident learning, as " +
      "cleanlab's k-NN label issues), least confident in their own label first.",
    note: (item) => `${item.label} \u2192 ${item.suggested} (${(100 * item.confidence).toFixed(0)}% of neighbours; ` +
      `own label ${(100 * item.self_confidence).toFixed(0)}%)`,
  },
  leaks: {
    title: "Leaks between stores",
    about: () => "Images of the TEST store (the index's last store unless chosen below) with a near copy " +
      "in another of its stores (TRAIN), as msfkit dedup TRAIN --against TEST finds them.",
    note: (item) => el("span", { title: item.match.path }, `copy of ${item.match.rel}`),
  },
};
// the list shown; `asked` numbers the requests, so that only the latest one's answer is shown
const list = { view: null, offset: 0, asked: 0, test: null, threshold: "0.95", score: "knn" };
const storeName = (path) => path.split("/").filter(Boolean).pop();

function listStatus(text, error = false) {
  $("list-status").textContent = text;
  $("list-status").className = error ? "error" : "muted";
}

function listQuery() {
  const page = `offset=${list.offset}&limit=${PAGE}`;
  if (list.view === "outliers") return `${page}&score=${list.score}`;
  if (list.view !== "leaks") return page;
  return `${page}&threshold=${list.threshold}` + (list.test === null ? "" : `&test=${list.test}`);
}

// The leaks' bar: the index's stores (TEST the one chosen), shown once the server has named them.
function showLeaksBar(body) {
  const choice = $("leaks-test");
  if (choice.options.length !== body.stores.length) {
    choice.replaceChildren(...body.stores.map((s, i) => el("option", { value: String(i), title: s }, storeName(s))));
  }
  choice.value = String(body.test);
  $("leaks-bar").hidden = false;
}

function leaksAbout(body) {
  const test = el("span", { title: body.stores[body.test] }, storeName(body.stores[body.test]));
  return el("span", {}, `${body.total} images of `, test, ` have a near copy in another store ` +
    `(similarity >= ${body.threshold})`);
}

async function loadList(reset) {
  const view = list.view, spec = LISTS[view], asked = ++list.asked;
  if (reset) { list.offset = 0; $("list-grid").replaceChildren(); $("list-more").hidden = true; }
  listStatus(`finding ${spec.title.toLowerCase()} (computed once, then kept)...`);
  try {
    const body = await api(`/api/curate/${view}?${listQuery()}`);
    if (asked !== list.asked) return;  // another list, store or threshold was asked for meanwhile
    for (const item of body.items) {
      $("list-grid").append(tile(item, (h) => { location.hash = `row=${h.row}`; }, spec.note(item)));
    }
    list.offset += body.items.length;
    $("list-more").hidden = !body.more;
    if (view === "leaks") showLeaksBar(body);
    $("list-status").replaceChildren(view === "leaks" ? leaksAbout(body) : `${body.total} images listed (k = ${body.k})`);
    $("list-status").className = "muted";
  } catch (e) {
    if (asked === list.asked) listStatus(e.message, e.status !== 409);  // a 409 says how to get the list
  }
}

function showList(view) {
  if (list.view === view) return;
  list.view = view;
  $("list-title").textContent = LISTS[view].title;
  $("list-about").textContent = LISTS[view].about(list.score);
  $("outliers-bar").hidden = view !== "outliers";
  $("leaks-bar").hidden = true;  // until the server names the stores
  loadList(true);
}

function setupList() {
  $("list-more").addEventListener("click", () => loadList(false));
  $("outliers-score").addEventListener("change", (e) => {
    list.score = e.target.value;
    $("list-about").textContent = LISTS.outliers.about(list.score);
    loadList(true);
    if (map.points && $("map-colour").value === "outlier") loadColours().catch((err) => mapStatus(err.message, true));
  });
  $("leaks-test").addEventListener("change", (e) => { list.test = Number(e.target.value); loadList(true); });
  $("leaks-threshold").addEventListener("change", (e) => {
    if (!e.target.checkValidity() || e.target.value === "") return listStatus("a similarity between -1 and 1", true);
    list.threshold = e.target.value;
    loadList(true);
  });
}
