// meta ui: the runs, and one run's structure and units, kept live by the server's events.
// The page never polls: it asks for what it shows (a window of a section's units, one unit's
// details) and otherwise waits for the server to push changes.
"use strict";

const ROW = 26;            // px per list row (fixed, so the list can be virtualised)
const PAGE = 200;          // unit rows fetched per request
const AUTO_EXPAND = 500;   // runs with at most this many units open their sections at load
const STATES = ["running", "succeeded", "failed", "cancelled", "cached", "skipped"];
const COLORS = {
  running: "#2f80ed", succeeded: "#27a567", failed: "#d9453b", cancelled: "#9aa1ad",
  cached: "#8e6fd1", skipped: "#d5d9e0", pending: "#ffffff",
};

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
};
const api = async (path, params) => {
  const response = await fetch(`${path}?${new URLSearchParams(params)}`);
  if (!response.ok) throw new Error(await response.text());
  return response.json();
};
const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "-");
const took = (s) => (s == null ? "-" : s < 60 ? `${s.toFixed(1)}s` : `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, "0")}s`);

let current = null;  // the run shown: {key, source, cy, summary, groups, ...}
let runsSource = null;  // the runs list's event stream, while the list is shown

window.addEventListener("hashchange", route);
route();

function route() {
  if (current) { current.source?.close(); current = null; }
  if (runsSource) { runsSource.close(); runsSource = null; }
  const match = location.hash.match(/^#\/run\/(.+)$/);
  if (match) showRun(decodeURIComponent(match[1])); else showRuns();
}

// The runs

function showRuns() {
  $("run-view").hidden = true; $("runs-view").hidden = false;
  $("crumbs").replaceChildren(el("span", {}, "runs")); $("counts").replaceChildren();
  $("live").className = "live";
  const source = runsSource = new EventSource("/api/runs/events");
  source.onopen = () => { $("live").className = "live on"; };
  source.onerror = () => { $("live").className = "live"; };
  source.addEventListener("runs", (e) => { if (runsSource === source) drawRuns(JSON.parse(e.data).runs); });
}

function drawRuns(runs) {
  $("runs-empty").hidden = runs.length > 0;
  $("runs").replaceChildren(...runs.map((run) => {
    const row = el("tr", { class: "run", "data-run": run.run },
      el("td", {}, el("b", {}, run.flow)), el("td", { class: "muted" }, run.run),
      el("td", {}, el("span", { class: `state ${run.state}` }, run.state)),
      el("td", {}, when(run.startedAt)), el("td", {}, took(run.durationSeconds)),
      el("td", {}, chips(run.units, false)));
    row.onclick = () => { location.hash = `#/run/${encodeURIComponent(run.run)}`; };
    return row;
  }));
}

function chips(counts, dark) {
  const box = el("span", { class: "counts" });
  for (const state of [...STATES, "retried"]) {
    if (!counts[state]) continue;
    const chip = el("span", { class: "chip", "data-count": state }, el("b", {}, String(counts[state])), ` ${state}`);
    if (!dark) chip.style.boxShadow = `inset 3px 0 0 ${COLORS[state] || "#e8912d"}`;
    box.append(chip);
  }
  return box;
}

// One run

async function showRun(key) {
  $("runs-view").hidden = true; $("run-view").hidden = false;
  const run = current = {
    key, summary: null, groups: [], expanded: new Map(), rows: new Map(), loading: new Set(),
    selected: null, source: null, cy: null, flat: [],
  };
  const [graph, summary] = await Promise.all([api("/api/graph", { run: key }), api("/api/run", { run: key })]);
  if (current !== run) return;
  run.graph = graph;
  run.groups = groupsInOrder(graph.nodes);
  drawGraph(run, graph);
  applySummary(run, summary);
  const source = run.source = new EventSource(`/api/events?${new URLSearchParams({ run: key })}`);
  source.onopen = () => { $("live").className = "live on"; };
  source.onerror = () => { $("live").className = "live"; };
  source.addEventListener("summary", (e) => applySummary(run, JSON.parse(e.data)));
  source.addEventListener("update", (e) => applyUpdate(run, JSON.parse(e.data)));
  $("list").onscroll = () => renderList(run);
  window.metaUi = run;  // for tests and the screenshot script
}

function groupsInOrder(nodes) {
  const kinds = new Set(["section", "flowRef", "generate", "group"]);
  const groups = nodes.filter((n) => kinds.has(n.kind));
  const children = new Map();
  for (const g of groups) {
    const parent = groups.some((p) => p.id === g.parent) ? g.parent : null;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(g);
  }
  const ordered = [];
  const walk = (parent, depth) => {
    for (const g of children.get(parent) || []) { ordered.push({ ...g, depth }); walk(g.id, depth + 1); }
  };
  walk(null, 0);
  return ordered;
}

function applySummary(run, summary) {
  const first = run.summary === null;
  run.summary = summary;
  const total = STATES.reduce((n, s) => n + summary.units[s], 0);
  if (first) {
    for (const g of run.groups) run.expanded.set(g.id, total <= AUTO_EXPAND);
  }
  $("crumbs").replaceChildren(
    el("a", { href: "#/" }, "runs"), el("span", { class: "muted" }, "/"),
    el("span", { class: "flow" }, summary.flow),
    el("span", { class: `state ${summary.state}`, id: "run-state" }, summary.state),
    el("span", { class: "path" }, summary.run));
  $("counts").replaceChildren(chips(summary.units, true));
  const note = summary.structureFault
    ? `The run's structure is not drawn (${summary.structureFault}); units are shown by id.`
    : summary.reason ? `${summary.failedUnit ? summary.failedUnit + ": " : ""}${summary.reason}` : "";
  $("run-note").hidden = !note; $("run-note").textContent = note;
  paintGraph(run);
  renderList(run);
}

function applyUpdate(run, update) {
  for (const row of update.rows) {
    const rows = run.rows.get(row.group);
    if (rows) rows.set(row.i, row);
    if (run.selected === row.id) showUnit(run, row.id);
  }
  if (update.more) { run.rows.clear(); run.loading.clear(); }
  applySummary(run, update.summary);
}

// The graph: the flow's structure, each node painted with the counts of its instances

function drawGraph(run, graph) {
  if (run.cy) run.cy.destroy();
  const elements = [
    ...graph.nodes.map((n) => ({ data: { ...n, text: n.label, parent: n.parent || undefined }, classes: nodeClasses(n) })),
    ...graph.edges.map((e) => ({ data: e })),
  ];
  run.cy = cytoscape({
    container: $("graph"), elements, boxSelectionEnabled: false,
    style: [
      { selector: "node", style: {
        "shape": "round-rectangle", "width": 168, "height": 46, "background-color": "#fff",
        "border-width": 2, "border-color": "#b9c0cc", "label": "data(text)", "text-wrap": "wrap",
        "text-valign": "center", "text-halign": "center", "font-size": 11, "color": "#1d2330",
        "text-max-width": 160 } },
      { selector: "node.generate", style: { "shape": "hexagon" } },
      { selector: "node.choice", style: { "shape": "diamond", "width": 60, "height": 40, "label": "", "background-color": "#eef0f4" } },
      { selector: "$node > node", style: {
        "padding": 36, "text-valign": "top", "text-halign": "center", "text-margin-y": 32,
        "font-size": 11, "text-max-width": 400, "background-opacity": 1 } },
      { selector: "node.macro", style: { "background-color": "#eef3fc", "border-color": "#3f5f9f", "border-style": "solid" } },
      { selector: "node.micro", style: { "background-color": "#fdf6e9", "border-color": "#b7791f", "border-style": "dashed", "border-width": 2.5 } },
      { selector: "node.flowRef", style: { "background-color": "#f4f4f6", "border-style": "dotted" } },
      { selector: "node.st-running", style: { "background-color": COLORS.running, "color": "#fff", "border-color": "#1b5fbf" } },
      { selector: "node.st-succeeded", style: { "background-color": COLORS.succeeded, "color": "#fff", "border-color": "#1c7c4d" } },
      { selector: "node.st-failed", style: { "background-color": COLORS.failed, "color": "#fff", "border-color": "#a5281f" } },
      { selector: "node.st-cancelled", style: { "background-color": COLORS.cancelled, "color": "#fff" } },
      { selector: "node.st-cached", style: { "background-color": COLORS.cached, "color": "#fff" } },
      { selector: "node.st-skipped", style: { "background-color": COLORS.skipped, "color": "#4a5060", "border-style": "dashed" } },
      { selector: "node.retried", style: { "border-color": "#e8912d", "border-width": 4 } },
      { selector: "node:selected", style: { "overlay-opacity": 0.12, "overlay-color": "#2f80ed" } },
      { selector: "edge", style: {
        "width": 1.5, "line-color": "#9aa3b5", "target-arrow-color": "#9aa3b5",
        "target-arrow-shape": "triangle", "curve-style": "bezier", "label": "data(label)",
        "font-size": 10, "color": "#6b7385", "text-background-color": "#fff", "text-background-opacity": 0.85 } },
    ],
  });
  paintGraph(run);
  run.cy.layout({ name: "dagre", rankDir: "TB", nodeSep: 30, rankSep: 45, padding: 24, fit: true }).run();
  run.cy.on("tap", "node", (e) => focusGroup(run, e.target.data()));
}

function nodeClasses(node) {
  return [node.kind, node.scope || ""].join(" ");
}

function paintGraph(run) {
  if (!run.cy || !run.summary) return;
  const { groups, nodes } = run.summary;
  run.cy.batch(() => run.cy.nodes().forEach((node) => {
    const data = node.data();
    const name = data.label;
    if (data.kind === "section") {
      const g = groups[data.id];
      const c = g ? g.counts : {};
      const done = (c.succeeded || 0) + (c.cached || 0);
      const seen = STATES.reduce((n, s) => n + (c[s] || 0), 0);
      const more = `${c.running ? ` · ${c.running} running` : ""}${c.failed ? ` · ${c.failed} failed` : ""}`;
      node.data("text", `${name} — ${data.pattern}, ${data.scope}\nmax ${data.maxActive} · peak ${g ? g.peak : 0} · ${done}/${seen} done${more}`);
      return;
    }
    const c = (data.kind === "step" ? nodes[data.id] : groups[data.id] && groups[data.id].counts) || null;
    node.removeClass("st-running st-succeeded st-failed st-cancelled st-cached st-skipped retried");
    if (!c) { node.data("text", name); return; }
    const state = c.failed ? "failed" : c.running ? "running" : c.cancelled ? "cancelled" : c.succeeded ? "succeeded" : c.cached ? "cached" : c.skipped ? "skipped" : null;
    if (state && data.kind !== "flowRef") node.addClass(`st-${state}`);
    if (c.retried) node.addClass("retried");
    const parts = STATES.filter((s) => c[s]).map((s) => `${c[s]} ${s}`);
    if (c.retried) parts.push(`${c.retried} retried`);
    node.data("text", `${name}\n${parts.join(" · ")}`);
  }));
}

function focusGroup(run, data) {
  const id = data.kind === "step" || data.kind === "choice" ? data.parent : data.id;
  if (!run.expanded.has(id)) return;
  // Open it and every section around it, so its row is in the list.
  for (let at = run.groups.find((g) => g.id === id); at; at = run.groups.find((g) => g.id === at.parent)) {
    run.expanded.set(at.id, true);
  }
  renderList(run);
  const index = run.flat.findIndex((item) => item.group && item.group.id === id);
  if (index >= 0) $("list").scrollTop = index * ROW;
}

// The list: groups with their counts, and when open their units, virtualised

function renderList(run) {
  if (!run.summary) return;
  // A big open section is one range of the flat list, not 100,000 objects: see rowsAt.
  run.flat = flattenLazy(run);
  const list = $("list");
  const space = $("list-space");
  space.style.height = `${run.flat.length * ROW}px`;
  const first = Math.max(0, Math.floor(list.scrollTop / ROW) - 10);
  const last = Math.min(run.flat.length, Math.ceil((list.scrollTop + list.clientHeight) / ROW) + 10);
  const rows = [];
  for (let index = first; index < last; index++) rows.push(drawRow(run, run.flat.at(index), index));
  space.replaceChildren(...rows);
}

function flattenLazy(run) {
  // Segments: a group row, then (when open) a run of `size` unit rows; `at(i)` finds the
  // segment by binary search, so the list costs O(groups) however many units are open.
  const segments = [];
  let length = 0;
  const hidden = new Set();
  for (const g of run.groups) {
    if (hidden.has(g.parent)) { hidden.add(g.id); continue; }
    const info = run.summary.groups[g.id] || { counts: {}, size: 0, peak: 0 };
    segments.push({ start: length, group: g, info }); length += 1;
    if (!run.expanded.get(g.id)) { hidden.add(g.id); continue; }
    if (info.size) { segments.push({ start: length, unitsOf: g, size: info.size }); length += info.size; }
  }
  return {
    length,
    findIndex: (test) => { for (const s of segments) if (s.group && test(s)) return s.start; return -1; },
    at(index) {
      let lo = 0, hi = segments.length - 1;
      while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (segments[mid].start <= index) lo = mid; else hi = mid - 1; }
      const s = segments[lo];
      return s.group ? s : { unitOf: s.unitsOf.id, i: index - s.start, depth: s.unitsOf.depth + 1 };
    },
  };
}

function drawRow(run, item, index) {
  const top = `${index * ROW}px`;
  if (item.group) {
    const g = item.group, c = item.info.counts;
    const open = run.expanded.get(g.id);
    const kind = g.kind === "section" ? `${g.pattern} · ${g.scope} · max ${g.maxActive} · peak ${item.info.peak}` : g.kind;
    const row = el("div", { class: `row group ${g.scope || ""}`, "data-group": g.id },
      el("span", { class: "toggle" }, open ? "▾" : "▸"),
      el("span", { class: "name" }, g.label, " ", el("span", { class: "kind" }, kind)),
      el("span", { class: "meta", title: "units reached" }, String(STATES.reduce((n, s) => n + (c[s] || 0), 0))), bar(c));
    row.style.top = top; row.style.paddingLeft = `${10 + g.depth * 14}px`;
    row.onclick = () => { run.expanded.set(g.id, !open); renderList(run); };
    return row;
  }
  const unit = rowOf(run, item.unitOf, item.i);
  const row = el("div", { class: "row unit" });
  row.style.top = top; row.style.paddingLeft = `${24 + item.depth * 14}px`;
  if (!unit) { row.append(el("span", { class: "muted" }, "…")); return row; }
  row.setAttribute("data-unit", unit.id); row.setAttribute("data-state", unit.state);
  if (unit.id === run.selected) row.classList.add("selected");
  row.append(...[el("span", { class: "mark" }), el("span", { class: "name", title: unit.id }, localName(run, item.unitOf, unit.id)),
    unit.attempt > 1 ? el("span", { class: "again" }, `↻ attempt ${unit.attempt}`) : null,
    el("span", { class: "meta" }, unit.state)].filter(Boolean));
  row.onclick = () => { run.selected = unit.id; showUnit(run, unit.id); renderList(run); };
  return row;
}

// A unit's id after its group's (or, for a templated section, the one around it), so the row
// shows the instance keys that tell its units apart.
function localName(run, groupId, id) {
  const group = run.groups.find((g) => g.id === groupId);
  for (const prefix of [groupId, group && group.parent]) {
    if (prefix && id.startsWith(prefix + "/")) return id.slice(prefix.length + 1);
  }
  return id;
}

function bar(counts) {
  const seen = STATES.reduce((n, s) => n + (counts[s] || 0), 0) || 1;
  const box = el("span", { class: "bar", title: STATES.map((s) => `${counts[s] || 0} ${s}`).join(", ") });
  for (const s of STATES) {
    if (!counts[s]) continue;
    const part = el("i"); part.style.width = `${(100 * counts[s]) / seen}%`; part.style.background = COLORS[s];
    box.append(part);
  }
  return box;
}

function rowOf(run, group, i) {
  let rows = run.rows.get(group);
  if (!rows) run.rows.set(group, (rows = new Map()));
  const row = rows.get(i);
  if (row) return row;
  const page = Math.floor(i / PAGE) * PAGE;
  const key = `${group}\n${page}`;
  if (!run.loading.has(key)) {
    run.loading.add(key);
    api("/api/units", { run: run.key, group, offset: page, limit: PAGE }).then(({ rows: got }) => {
      if (current !== run) return;
      got.forEach((r, n) => rows.set(page + n, r));
      run.loading.delete(key);
      renderList(run);
    });
  }
  return null;
}

// One unit

async function showUnit(run, id) {
  const unit = await api("/api/unit", { run: run.key, id });
  if (current !== run || run.selected !== id) return;
  const box = $("detail");
  const fields = [
    ["id", unit.id], ["section", unit.section], ["scope", unit.scope || "-"],
    ["attempts", String(unit.attempt)], ["exit code", unit.exitCode == null ? "-" : String(unit.exitCode)],
    ["started", when(unit.startedAt)],
    ["took", unit.finishedAt ? took(unit.finishedAt - unit.startedAt) : "-"],
  ];
  if (unit.reason) fields.push(["reason", unit.reason]);
  const attempts = unit.attempts.slice().reverse().map((a) => el("div", { class: "attempt", "data-attempt": String(a.attempt) },
    el("div", { class: "head" }, el("b", {}, `attempt ${a.attempt}`), el("span", {}, when(a.startedAt))),
    a.stderr ? el("pre", { class: "log stderr", "data-stream": "stderr (tail)" }, a.stderr) : null,
    a.stdout ? el("pre", { class: "log stdout", "data-stream": "stdout (tail)" }, a.stdout) : null,
    !a.stderr && !a.stdout ? el("div", { class: "muted" }, "no output") : null));
  // In a cluster: the unit's pod, and its containers (a micro pod's slots and quarterback).
  const pod = unit.pod ? [
    el("h3", {}, "pod"),
    el("div", { class: "pod", "data-pod": unit.pod.name },
      el("div", { class: "head" }, el("b", {}, unit.pod.name), el("span", {}, unit.pod.phase),
        el("span", { class: "muted" }, unit.pod.node || "not scheduled")),
      el("ul", { class: "containers" }, ...unit.pod.containers.map((c) => el("li",
        { class: "container", "data-container": c.name, "data-state": c.state },
        el("b", {}, c.name), ` ${c.state}`, el("span", { class: "muted" }, ` ${c.image || ""}`),
        c.restarts ? ` (${c.restarts} restarts)` : null)))),
  ] : [];
  box.replaceChildren(
    el("h2", {}, unit.name, el("span", { class: `state ${unit.state}`, id: "unit-state" }, unit.state)),
    el("dl", {}, ...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
    ...pod,
    ...(unit.result == null ? [] : [el("h3", {}, "result"),
      el("pre", { class: "result" }, JSON.stringify(unit.result, null, 2))]),
    el("h3", {}, "attempts (last first)"), ...attempts,
    el("h3", {}, "input"),
    unit.input == null ? el("div", { class: "muted" }, "kept in RAM scratch only while the step runs")
      : el("pre", { class: "input" }, JSON.stringify(unit.input, null, 2)),
    el("h3", {}, "outputs"),
    unit.outputs == null ? el("div", { class: "muted" }, "none kept")
      : el("ul", { class: "outputs" }, ...unit.outputs.map((o) => el("li", {}, `${o.path} (${o.bytes} B)`))));
  box.setAttribute("data-unit", unit.id);
}
