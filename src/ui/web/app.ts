// The page: the cluster network drawn with Cytoscape.js, laid out by layout.ts (the seed's
// picture row by row: Ingresses, Services, the nodes' boxes side by side with their pods in
// two columns on each side of the bridge, the underlay with its router and the client below;
// fixed sizes, so nothing is drawn over anything else), kept in step with the server's stream
// of graphs (applied as a diff, at most once per animation frame), details on click, and a
// trace drawn along the elements it crosses with its hop table and verdict below the graph.
// When the drawing has settled the root element says so (data-layout="done") and the window
// gets a `kubewire:layout` event: screenshots and tests wait for it.

import cytoscape, { type Core, type ElementDefinition } from 'cytoscape';
import { diffElements, tracePath, visible, type GraphElement, type TraceStep } from '../graph.ts';
import { fitView, layoutGraph, SIZES, type Layout, type Rect } from '../layout.ts';
import type { Leg, Trace } from '../../trace/types.ts';
import { hopWhat } from '../../trace/render.ts';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const size = (s: { w: number; h: number }) => ({ width: s.w, height: s.h });
const STYLE: cytoscape.StylesheetJson = [
  // Labels too small to read at the current zoom are not drawn (they cost the most to draw).
  { selector: 'node', style: { 'min-zoomed-font-size': 7, label: 'data(label)', 'font-size': 11, 'text-wrap': 'wrap', 'text-valign': 'center', 'text-halign': 'center', 'background-color': '#e2e8f0', 'border-width': 1, 'border-color': '#94a3b8', shape: 'round-rectangle', ...size(SIZES.pod) } },
  // A node's box: drawn under everything, as large as layout.ts makes it (not a compound node: a compound that grows restyles all it holds, on every pod that comes).
  { selector: 'node[kind = "node"]', style: { 'z-compound-depth': 'bottom', shape: 'round-rectangle', width: 'data(boxW)', height: 'data(boxH)', 'text-valign': 'top', 'text-halign': 'center', 'background-color': '#f8fafc', 'border-color': '#475569', 'border-width': 2, 'font-size': 13, 'font-weight': 'bold', 'text-margin-y': -4 } },
  { selector: 'node[kind = "pod"]', style: { 'font-size': 10, 'text-max-width': `${SIZES.pod.w - 10}px`, 'text-overflow-wrap': 'anywhere', 'background-color': '#dcfce7', 'border-color': '#16a34a' } },
  { selector: 'node.pending, node.terminating', style: { 'background-color': '#fef9c3', 'border-color': '#ca8a04', 'border-style': 'dashed' } },
  // Isolated by a NetworkPolicy (its facts name the policies): a red double border.
  { selector: 'node.isolated', style: { 'border-color': '#dc2626', 'border-width': 3, 'border-style': 'double' } },
  { selector: 'node.failed', style: { 'background-color': '#fee2e2', 'border-color': '#dc2626' } },
  // The bridge: a bar its pods' veth pairs end on; its name and address above it.
  { selector: 'node[kind = "bridge"]', style: { shape: 'rectangle', 'background-color': '#2563eb', 'border-color': '#1e40af', 'text-valign': 'top', 'text-margin-y': -3, color: '#1e3a8a', width: SIZES.bar, height: SIZES.pod.h } },
  { selector: 'node[kind = "eth0"]', style: { shape: 'rectangle', 'background-color': '#e0e7ff', ...size(SIZES.eth0) } },
  { selector: 'node[kind = "segment"]', style: { shape: 'rectangle', 'background-color': '#cbd5e1', 'font-weight': 'bold', height: SIZES.segment } },
  { selector: 'node[kind = "router"]', style: { shape: 'octagon', 'background-color': '#fde68a', 'border-color': '#b45309', ...size(SIZES.router) } },
  { selector: 'node[kind = "external"]', style: { shape: 'ellipse', 'background-color': '#fbcfe8', 'border-color': '#be185d', ...size(SIZES.external) } },
  { selector: 'node[kind = "service"]', style: { shape: 'round-hexagon', 'background-color': '#ede9fe', 'border-color': '#7c3aed', 'text-max-width': `${SIZES.service.w - 20}px`, ...size(SIZES.service) } },
  { selector: 'node[kind = "ingress"]', style: { shape: 'round-tag', 'background-color': '#ffedd5', 'border-color': '#ea580c', 'text-max-width': `${SIZES.ingress.w - 20}px`, ...size(SIZES.ingress) } },
  { selector: 'edge', style: { 'min-zoomed-font-size': 7, width: 1.5, 'line-color': '#94a3b8', 'curve-style': 'straight', label: 'data(label)', 'font-size': 8, 'text-rotation': 'autorotate', color: '#475569', 'text-background-color': '#ffffff', 'text-background-opacity': 0.8 } },
  { selector: 'edge[kind = "link"]', style: { width: 3, 'line-color': '#64748b' } },
  // A veth pair: the line from the pod to its bridge (its names are in the pod's box).
  { selector: 'edge[kind = "veth"]', style: { width: 2, 'line-color': '#16a34a', label: '' } },
  // A Service's endpoints and an Ingress's backends: faint until one of their ends is selected.
  // (Haystack lines: the cheapest to draw, and there may be hundreds.)
  { selector: 'edge[kind = "endpoint"]', style: { 'curve-style': 'haystack', 'haystack-radius': 0, 'line-color': '#a78bfa', label: '', opacity: 0.35 } },
  { selector: 'edge[kind = "backend"]', style: { 'line-style': 'dashed', 'line-color': '#fb923c', 'target-arrow-shape': 'triangle', 'target-arrow-color': '#fb923c', opacity: 0.6 } },
  { selector: 'edge.many', style: { display: 'none' } },
  { selector: 'edge.near-selected', style: { display: 'element', opacity: 1, width: 2.5 } },
  // Where layout.ts ends a veth pair or a link on its bar, and how long a bar is.
  { selector: 'edge[end]', style: { 'target-endpoint': 'data(end)' } },
  { selector: 'node[barH]', style: { width: 'data(barW)', height: 'data(barH)' } },
  { selector: 'node[kind = "eth0"][barH]', style: { 'text-valign': 'top', 'text-margin-y': -3, 'background-color': '#6366f1' } },
  // A trace: the request in orange along the elements it crossed (arrows its way, the steps' numbers), the reply's arrows in blue; where the reply went another way, dashed blue.
  { selector: 'edge.t-req', style: { width: 6, 'line-color': '#ea580c', 'z-index': 10, label: 'data(step)', 'font-size': 11, 'font-weight': 'bold', color: '#9a3412', 'text-rotation': 'none', opacity: 1 } },
  { selector: 'edge.t-req.t-f', style: { 'mid-target-arrow-shape': 'triangle', 'mid-target-arrow-color': '#9a3412', 'arrow-scale': 1.2 } },
  { selector: 'edge.t-req.t-b', style: { 'mid-source-arrow-shape': 'triangle', 'mid-source-arrow-color': '#9a3412', 'arrow-scale': 1.2 } },
  { selector: 'edge.t-rep', style: { 'z-index': 9, opacity: 1 } },
  { selector: 'edge.t-rep[^step]', style: { width: 4, 'line-color': '#1d4ed8', 'line-style': 'dashed' } },
  { selector: 'edge.t-rep.r-f', style: { 'mid-target-arrow-shape': 'triangle', 'mid-target-arrow-color': '#1d4ed8', 'arrow-scale': 1.2 } },
  { selector: 'edge.t-rep.r-b', style: { 'mid-source-arrow-shape': 'triangle', 'mid-source-arrow-color': '#1d4ed8', 'arrow-scale': 1.2 } },
  { selector: 'edge.t-jump', style: { 'line-style': 'dotted', 'curve-style': 'unbundled-bezier', 'control-point-distances': 30 } },
  { selector: 'node.on-path', style: { 'border-width': 3, 'border-color': '#ea580c' } },
  { selector: 'node.stopped', style: { 'border-width': 5, 'border-color': '#dc2626', 'background-color': '#fecaca' } },
  { selector: ':selected', style: { 'overlay-color': '#6366f1', 'overlay-opacity': 0.25 } },
];

const cy: Core = cytoscape({ container: $('graph'), style: STYLE, elements: [], minZoom: 0.05, maxZoom: 3, wheelSensitivity: 0.3, pixelRatio: 1, autoungrabify: true });
// Cytoscape's texture caches are left out: the canvas is drawn directly, each element each frame
// (a millisecond or two for the whole picture: what is too small to read is not drawn, nor what is
// out of view). The caches pay off for a picture that stays still; this one changes every few
// hundred ms while pods come, and each change cost them more than a direct redraw: a new or
// changed element drawn into a shared texture (tens of ms for a few pods, in the frame), and the
// layered cache drawing every element again into one layer a quarter of a second after each
// change, in one frame. (Internal to its canvas renderer, which draws directly when a cache
// gives nothing; if a cytoscape release moves them, nothing here breaks: the caches stay.)
// Nor are the unused caches told of each change (each works out the changed element's keys).
type TextureCache = { getElement?: () => unknown; getLayers?: () => unknown; invalidateElements?: () => void };
const caches = (cy as unknown as { renderer?: () => { data?: Record<string, TextureCache | undefined> } }).renderer?.().data ?? {};
for (const name of ['eleTxrCache', 'lblTxrCache', 'slbTxrCache', 'tlbTxrCache']) {
  const c = caches[name];
  if (c?.getElement && c.invalidateElements) (c.getElement = () => null), (c.invalidateElements = () => {});
}
const layered = caches.lyrTxrCache;
if (layered?.getLayers && layered.invalidateElements) (layered.getLayers = () => null), (layered.invalidateElements = () => {});
let all: GraphElement[] = [];
let shown: GraphElement[] = [];
const page = { cy, ready: false, updates: 0, lastTrace: undefined as Trace | undefined, lastPath: undefined as { request: TraceStep[]; reply: TraceStep[] } | undefined, slowest: { total: 0, diff: 0, graph: 0, layout: 0, lists: 0 }, diffs: [] as Array<{ add: number; remove: number; update: string[] }> };
(window as unknown as { kubewire: typeof page }).kubewire = page;

/** The drawing is settled (data-layout="done" and a `kubewire:layout` event once the frame is painted), or is about to change. */
function layoutState(state: 'pending' | 'done'): void {
  if (state === 'pending') {
    document.documentElement.dataset.layout = 'pending';
    return;
  }
  requestAnimationFrame(() => {
    if (latest) return; // a newer graph is on its way
    lists(); // the lists too, before anyone is told the page is settled
    document.documentElement.dataset.layout = 'done';
    window.dispatchEvent(new CustomEvent('kubewire:layout', { detail: { pods: cy.nodes('[kind = "pod"]').length } }));
  });
}

function filters(): { namespace?: string; labels?: Record<string, string> } {
  const namespace = $<HTMLSelectElement>('namespace').value || undefined;
  const text = $<HTMLInputElement>('labels').value.trim();
  const labels = Object.fromEntries(text ? text.split(',').map((kv) => kv.split('=').map((s) => s.trim()) as [string, string]).filter(([k]) => k) : []);
  return { ...(namespace ? { namespace } : {}), labels };
}

/** The elements the filters let through, edges only between shown nodes. */
function select(elements: GraphElement[]): GraphElement[] {
  const f = filters();
  const nodes = elements.filter((e) => e.group === 'nodes' && visible(e, f));
  const ids = new Set(nodes.map((e) => e.data.id));
  return [...nodes, ...elements.filter((e) => e.group === 'edges' && ids.has(e.data.source!) && ids.has(e.data.target!))];
}


let bounds: Rect = { x: 0, y: 0, w: 1, h: 1 };
let placed: Layout | undefined;
const same = (a: Rect | undefined, b: Rect) => a !== undefined && a.x === b.x && a.y === b.y && a.w === b.w && a.h === b.h;

/**
 * Every element where layout.ts puts it: positions, the bars' lengths, where the veth pairs
 * and links end on them. Only what the layout moved is touched (what was just added came at its
 * place, placedDefinition): a new
 * pod moves nobody else (a pod keeps its place as it gets its address), and each element
 * touched costs cytoscape a style pass. The layout is of the whole graph received, drawn or
 * not yet: the boxes take their size for a burst of pods at once, not a slice at a time.
 */
function place(l: Layout, added: Set<string>): void {
  const before = placed;
  for (const [id, r] of l.at) {
    if (added.has(id) || same(before?.at.get(id), r)) continue;
    const n = cy.getElementById(id);
    if (n.empty()) continue;
    n.position({ x: r.x, y: r.y });
    // Bars (a bridge, vpc's eth0 with its ptp pairs, the underlay) are as long as what they join.
    const kind = n.data('kind') as string;
    if ((kind === 'bridge' || kind === 'segment' || (kind === 'eth0' && r.w === SIZES.bar)) && (n.data('barW') !== r.w || n.data('barH') !== r.h)) n.data({ barW: r.w, barH: r.h });
  }
  for (const [id, r] of l.boxes) {
    if (added.has(id) || same(before?.boxes.get(id), r)) continue;
    const n = cy.getElementById(id);
    if (n.empty()) continue;
    n.position({ x: r.x, y: r.y });
    n.data({ boxW: r.w, boxH: r.h });
  }
  for (const [id, e] of l.ends) {
    const was = before?.ends.get(id);
    if (added.has(id) || (was && was.dx === e.dx && was.dy === e.dy)) continue;
    const edge = cy.getElementById(id);
    const end = `${e.dx}px ${e.dy}px`;
    if (edge.nonempty() && edge.data('end') !== end) edge.data('end', end);
  }
  placed = l;
  bounds = l.bounds;
  // Past a few dozen, the Services' endpoint lines cross everything: drawn for the selected element only.
  const endpoints = cy.edges('[kind = "endpoint"]');
  const many = endpoints.length > MANY_ENDPOINTS;
  if (many !== manyEndpoints) {
    manyEndpoints = many;
    endpoints.toggleClass('many', many);
  } else if (many) for (const id of added) cy.getElementById(id).filter('[kind = "endpoint"]').addClass('many');
}
const MANY_ENDPOINTS = 40;
let manyEndpoints = false;

/** The whole picture in the canvas, from the layout's own bounds (nothing measured). */
function fit(): void {
  following = true;
  fitted = `${cy.width()}x${cy.height()}`;
  cy.viewport(fitView(bounds, { w: cy.width(), h: cy.height() }, 24, 1.25, ROOM));
}

/**
 * The picture fitted again only when it no longer fits the canvas, fills less than half of it,
 * or the canvas changed: each zoom makes cytoscape draw every element anew. A fit leaves room
 * below for the pods to come.
 */
function refit(): void {
  if (!following && fitted === `${cy.width()}x${cy.height()}`) return; // the view is on a trace
  const e = cy.extent();
  const b = bounds;
  const inside = b.x - b.w / 2 >= e.x1 && b.x + b.w / 2 <= e.x2 && b.y - b.h / 2 >= e.y1 && b.y + b.h / 2 <= e.y2;
  const small = b.w < e.w / 2 && b.h < e.h / 2;
  if (fitted !== `${cy.width()}x${cy.height()}` || !inside || small) fit();
}
const ROOM = 0.2;
let fitted = '';
/** Whether the view follows the whole picture (not when it shows a trace's path; a double click on the background brings it back). */
let following = true;

/** An element's data as cytoscape holds it: a copy, its node's box named `box` (boxes are drawn behind their pods, not as compound nodes). */
function drawn(e: GraphElement): Record<string, unknown> {
  const { parent, ...data } = e.data;
  return { ...data, ...(parent ? { box: parent } : {}), ...(e.data.kind === 'node' ? { boxW: 1, boxH: 1 } : {}) };
}

/**
 * An element to add, where the layout puts it: a node at its place with its size, an edge with
 * where it ends on its bar. Added so, it costs cytoscape one style pass, not a second one for
 * each position and size set after it was drawn at the origin.
 */
function placedDefinition(e: GraphElement, l: Layout): ElementDefinition {
  const data = drawn(e);
  if (e.group === 'edges') {
    const end = l.ends.get(e.data.id);
    return { group: 'edges', data: { ...data, ...(end ? { end: `${end.dx}px ${end.dy}px` } : {}) }, ...(e.classes ? { classes: e.classes } : {}) } as unknown as ElementDefinition;
  }
  const box = l.boxes.get(e.data.id);
  const r = box ?? l.at.get(e.data.id);
  const kind = e.data.kind;
  if (box) Object.assign(data, { boxW: box.w, boxH: box.h });
  else if (r && (kind === 'bridge' || kind === 'segment' || (kind === 'eth0' && r.w === SIZES.bar))) Object.assign(data, { barW: r.w, barH: r.h });
  return { group: 'nodes', data, ...(r ? { position: { x: r.x, y: r.y } } : {}), ...(e.classes ? { classes: e.classes } : {}) } as unknown as ElementDefinition;
}

function render(): void {
  if (slicing) return; // the next slice is on its way, and takes the latest graph and filters
  const t0 = performance.now();
  const next = select(all);
  const d = diffElements(shown, next);
  const t1 = performance.now();
  if (!d.add.length && !d.remove.length && !d.update.length) return layoutState('done');
  page.diffs.push({ add: d.add.length, remove: d.remove.length, update: d.update.map((e) => e.data.id) });
  if (page.diffs.length > 50) page.diffs.shift();
  // A burst of pods is drawn a slice at a time, a frame between slices (the first graph whole).
  const nodes = d.add.filter((e) => e.group === 'nodes').sort((a, b) => Number(a.data.kind === 'pod') - Number(b.data.kind === 'pod'));
  const taken = shown.length ? nodes.slice(0, SLICE) : nodes;
  const drawnIds = new Set(shown.map((e) => e.data.id));
  for (const id of d.remove) drawnIds.delete(id);
  for (const e of taken) drawnIds.add(e.data.id);
  const edges = d.add.filter((e) => e.group === 'edges' && drawnIds.has(e.data.source!) && drawnIds.has(e.data.target!));
  for (const e of edges) drawnIds.add(e.data.id);
  const adds = [...taken, ...edges];
  // The layout first (microseconds): what is added comes at its place.
  const l = layoutGraph(next, placed);
  const added = new Set(adds.map((e) => e.data.id));
  cy.batch(() => {
    for (const id of d.remove) cy.getElementById(id).remove();
    // Copies: cytoscape keeps the data object it is given, and the page adds to it (where an edge ends on its bar, a trace's steps); the graph as received stays as it came, for the next diff.
    cy.add(adds.map((e) => placedDefinition(e, l)));
    for (const e of d.update) {
      const el = cy.getElementById(e.data.id);
      const data = drawn(e);
      if (e.data.kind === 'node') delete data.boxW, delete data.boxH; // the layout's, not the placeholder's
      el.data(data);
      el.classes([e.classes ?? '', ...el.classes().filter((c) => /^(t-|r-|on-path|stopped|near-selected|many)/.test(c))].join(' '));
    }
  });
  shown = adds.length === d.add.length ? next : next.filter((e) => drawnIds.has(e.data.id));
  const more = adds.length < d.add.length;
  const t2 = performance.now();
  cy.batch(() => place(l, added));
  refit();
  const t3 = performance.now();
  page.updates++;
  // The side lists in a task of their own: the canvas's change and theirs are two shorter tasks.
  listsLater();
  // The slowest update so far, by part (for bench:ui's breakdown; the lists' own task adds its time).
  if (t3 - t0 > page.slowest.total) page.slowest = { total: t3 - t0, diff: t1 - t0, graph: t2 - t1, layout: t3 - t2, lists: page.slowest.lists };
  // The next slice once cytoscape has drawn this one (its own animation frame), in a task of its
  // own, a little later (frames in between with nothing to do: on a busy machine a page that
  // keeps the CPU busy frame after frame waits longer for it); one slice at a time (a graph
  // received meanwhile is taken up by the next slice).
  if (more) {
    slicing = true;
    cy.one('render', () =>
      setTimeout(() => {
        slicing = false;
        render();
      }, SLICE_GAP_MS),
    );
  } else layoutState('done');
}
let slicing = false;

/** The inventory and the trace form's choices brought up to date in a task of their own (one for any number of updates meanwhile). */
let listsPending = false;
function listsLater(): void {
  if (listsPending) return;
  listsPending = true;
  setTimeout(lists, 0);
}
function lists(): void {
  if (!listsPending) return;
  listsPending = false;
  const t0 = performance.now();
  inventory();
  choices();
  page.slowest.lists = Math.max(page.slowest.lists, performance.now() - t0);
}
/** Pods (with their veth pairs) added per slice: each new element costs cytoscape its style, its label's size and its drawing (2: a slice's task stays short on a busy machine). */
const SLICE = 2;
const SLICE_GAP_MS = 30;

// The server's graphs: only the latest is applied, at most every APPLY_MS (a burst of pods
// is drawn in a few steps, not one redraw of the whole canvas per step).
const APPLY_MS = 250;
/** The latest graph received and not applied yet: as it came (a stream's message is parsed only if it is the one applied). */
let latest: GraphElement[] | string | undefined;
let applied = 0;
let queued = false;
function receive(elements: GraphElement[] | string): void {
  latest = elements;
  layoutState('pending');
  if (queued) return;
  queued = true;
  // A task of its own, not an animation frame callback: cytoscape draws the change in the next
  // frame, so that the page's update and the drawing are two tasks, each shorter than both.
  setTimeout(() => {
    queued = false;
    if (!latest) return;
    all = typeof latest === 'string' ? (JSON.parse(latest) as { elements: GraphElement[] }).elements : latest;
    latest = undefined;
    applied = performance.now();
    render();
    page.ready = true;
    $('status').textContent = `${all.filter((e) => e.data.kind === 'pod').length} pods, ${all.filter((e) => e.data.kind === 'node').length} nodes`;
  }, Math.max(0, applied + APPLY_MS - performance.now()));
}

function namespaces(): void {
  const sel = $<HTMLSelectElement>('namespace');
  const have = new Set([...sel.options].map((o) => o.value));
  for (const ns of new Set(all.map((e) => e.data.namespace).filter((n): n is string => Boolean(n)))) {
    if (have.has(ns)) continue;
    const o = document.createElement('option');
    o.value = o.textContent = ns;
    sel.append(o);
  }
}

let listed = '';
const buttons = new Map<string, HTMLButtonElement>();
function inventory(): void {
  namespaces();
  const nav = $('inventory');
  const items = shown.filter((e) => e.group === 'nodes');
  // Rebuilt only when it changed, and the focus kept on the same element (keyboard users).
  const signature = items.map((e) => `${e.data.id} ${e.data.ip ?? ''} ${e.data.phase ?? ''}`).join('\n');
  if (signature === listed) return;
  listed = signature;
  const focused = (document.activeElement as HTMLElement | null)?.dataset?.id;
  // Each element's line kept, changed in place, new ones put in their place: no list rebuilt for one pod.
  const keep = new Set(items.map((e) => e.data.id));
  for (const [id, b] of buttons) if (!keep.has(id)) (b.remove(), buttons.delete(id));
  let prev: HTMLButtonElement | undefined;
  for (const e of items) {
    let b = buttons.get(e.data.id);
    if (!b) {
      b = document.createElement('button');
      b.type = 'button';
      b.dataset.id = e.data.id;
      const id = e.data.id;
      b.addEventListener('click', () => void show(id, 'list'));
      buttons.set(id, b);
    }
    const text = `${e.data.kind} ${e.data.id.replace(/^\w+\//, '')}${e.data.ip ? ` ${e.data.ip}` : ''}${e.data.phase && e.data.phase !== 'Running' ? ` (${e.data.phase})` : ''}`;
    if (b.textContent !== text) b.textContent = text;
    if ((prev ? prev.nextElementSibling : nav.firstElementChild) !== b) (prev ? prev.after(b) : nav.prepend(b));
    prev = b;
  }
  if (focused && document.activeElement?.getAttribute('data-id') !== focused) buttons.get(focused)?.focus();
}

/** The trace form's choices: every pod, node and the client as sources; pods and Services as targets. */
function choices(): void {
  const sources = ['external', ...all.filter((e) => e.data.kind === 'node').map((e) => e.data.id), ...all.filter((e) => e.data.kind === 'pod' && e.data.phase === 'Running').map((e) => e.data.id)];
  // Changed in place (an open list is not swept away by each update, the choice kept).
  options($<HTMLSelectElement>('from'), sources, true);
  const targets = [...all.filter((e) => e.data.kind === 'pod' && e.data.ip).map((e) => e.data.id), ...all.filter((e) => e.data.kind === 'service' && e.data.ip).map((e) => e.data.id.replace(/^svc\//, 'service/'))];
  options($('targets'), targets, false);
}

/** A list's options made the given values, in order: those that stay are kept, only what came or went is touched (a pod that comes is one option, not a list rebuilt). */
function options(list: HTMLElement, values: string[], text: boolean): void {
  const signature = values.join('\n');
  if (list.dataset.signature === signature) return;
  list.dataset.signature = signature;
  const have = new Map([...list.children].map((o) => [(o as HTMLOptionElement).value, o as HTMLOptionElement]));
  const keep = new Set(values);
  for (const [v, o] of have) if (!keep.has(v)) (o.remove(), have.delete(v));
  let prev: HTMLOptionElement | undefined;
  for (const v of values) {
    let o = have.get(v);
    if (!o) {
      o = document.createElement('option');
      o.value = v;
      if (text) o.textContent = v;
    }
    if ((prev ? prev.nextElementSibling : list.firstElementChild) !== o) (prev ? prev.after(o) : list.prepend(o));
    prev = o;
  }
}

/**
 * An element's details in the side panel. A click on the graph leaves the view where it is;
 * picked from the list, an element out of view is brought to the middle of the canvas.
 */
async function show(id: string, from: 'graph' | 'list'): Promise<void> {
  cy.elements().unselect();
  cy.edges('.near-selected').removeClass('near-selected');
  const el = cy.getElementById(id);
  el.select();
  if (el.nonempty() && el.isNode()) {
    el.connectedEdges('[kind = "endpoint"], [kind = "backend"]').addClass('near-selected');
    const e = cy.extent();
    const b = el.boundingBox();
    if (from === 'list' && (b.x1 < e.x1 || b.x2 > e.x2 || b.y1 < e.y1 || b.y2 > e.y2)) cy.animate({ center: { eles: el } }, { duration: 150 });
  }
  $('details').textContent = 'reading...';
  const r = await fetch(`/api/details?id=${encodeURIComponent(id)}`);
  const body = (await r.json()) as { lines?: string[]; error?: string };
  $('details').textContent = body.lines?.join('\n') ?? body.error ?? '';
}

/** The view on a trace's path, where its names can be read (not its bars or the Service: they span too much). */
function fitPath(): void {
  fitted = `${cy.width()}x${cy.height()}`;
  const onPath = cy.nodes('.on-path').filter((n) => !['bridge', 'segment', 'service'].includes(n.data('kind') as string) && !n.data('barH'));
  if (onPath.empty()) return fit();
  cy.fit(onPath, 48);
  if (cy.zoom() > 1.25) {
    cy.zoom(1.25);
    cy.center(onPath);
  }
}

cy.on('tap', 'node', (ev) => void show(ev.target.id(), 'graph'));
cy.on('dbltap', (ev) => ev.target === cy && fit());
// The canvas resized (a narrower window, the trace's table opening below it): the picture fitted again.
new ResizeObserver(() => {
  cy.resize();
  if (following) fit();
  else fitPath();
}).observe($('graph'));

/** A leg's steps on the graph: the edges it crossed marked (its direction, its steps' numbers), a dotted jump where the graph has no edge. */
function drawLeg(leg: Leg, kind: 'request' | 'reply'): TraceStep[] {
  const { steps } = tracePath(leg.hops, shown);
  const numbers = new Map<string, number[]>();
  steps.forEach((s, i) => {
    let edge = 'edge' in s ? cy.getElementById(s.edge) : cy.collection();
    let forward = 'edge' in s ? s.forward : true;
    if (!('edge' in s) || edge.empty()) {
      edge = cy.add({ group: 'edges', data: { id: `trace-${kind}-${i}`, source: s.from, target: s.to, kind: 'link', label: '' }, classes: 't-jump' });
      forward = true;
    }
    edge.addClass(kind === 'request' ? `t-req ${forward ? 't-f' : 't-b'}` : `t-rep ${forward ? 'r-f' : 'r-b'}`);
    if (kind === 'request') numbers.set(edge.id(), [...(numbers.get(edge.id()) ?? []), i + 1]);
    cy.getElementById(s.from).addClass('on-path');
    cy.getElementById(s.to).addClass('on-path');
  });
  for (const [id, n] of numbers) cy.getElementById(id).data('step', n.join(', '));
  return steps;
}

function clearTrace(): void {
  cy.remove(cy.edges('.t-jump'));
  cy.edges('.t-req, .t-rep').forEach((e) => {
    e.removeClass('t-req t-rep t-f t-b r-f r-b');
    e.removeData('step');
  });
  cy.nodes().removeClass('on-path stopped');
}

function drawTrace(t: Trace): void {
  clearTrace();
  const request = drawLeg(t, 'request');
  const reply = t.reply ? drawLeg(t.reply, 'reply') : [];
  // The Service the probe was sent to, if any: its VIP is the probe's destination.
  cy.nodes('[kind = "service"]').filter((n) => n.data('ip') === t.probe.dst).addClass('on-path');
  const last = request.at(-1)?.to ?? tracePath(t.hops, shown).places.at(-1);
  if (t.verdict !== 'delivered' && last) cy.getElementById(last).addClass('stopped');
  page.lastPath = { request, reply };
  following = false;
  fitPath();
  const rows = [...t.hops.map((h) => ({ h, kind: 'request' })), ...(t.reply?.hops ?? []).map((h) => ({ h, kind: 'reply' }))];
  const body = $('hops').querySelector('tbody')!;
  body.replaceChildren(
    ...rows.map(({ h, kind }, i) => {
      const tr = document.createElement('tr');
      tr.className = kind;
      for (const text of [String(i + 1), h.netns, h.kind, h.in ?? '', h.out ?? '', hopWhat(h)]) {
        const td = document.createElement('td');
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }),
  );
  $('hops').hidden = false;
  $('legend').hidden = false;
  const v = $('verdict');
  v.className = t.verdict;
  v.textContent = `${t.verdict.toUpperCase()}: ${t.reason} (the sender saw: ${t.fate})`;
  page.lastTrace = t;
}

$('trace-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  void (async () => {
    const from = $<HTMLSelectElement>('from').value;
    const fromPod = /^pod\/([^/]+)\/(.+)$/.exec(from);
    const to = $<HTMLInputElement>('to').value.trim();
    const toPod = /^pod\/([^/]+)\/(.+)$/.exec(to);
    const namespace = fromPod?.[1] ?? toPod?.[1] ?? (/^service\/([^/]+)\//.exec(to)?.[1]) ?? 'default';
    const body = {
      from: fromPod ? `pod/${fromPod[2]}` : from,
      to: toPod ? `pod/${toPod[2]}` : to.replace(/^service\/[^/]+\//, 'service/'),
      namespace,
      ...($<HTMLSelectElement>('protocol').value ? { protocol: $<HTMLSelectElement>('protocol').value } : {}),
      ...($<HTMLInputElement>('port').value ? { port: Number($<HTMLInputElement>('port').value) } : {}),
    };
    $('trace-result').hidden = false;
    $('verdict').className = '';
    $('verdict').textContent = 'tracing...';
    const r = await fetch('/api/trace', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const t = (await r.json()) as Trace & { error?: string };
    if (!r.ok) {
      $('verdict').className = 'error';
      $('verdict').textContent = t.error ?? `trace failed (${r.status})`;
      return;
    }
    drawTrace(t);
  })();
});

for (const id of ['namespace', 'labels']) $(id).addEventListener('input', () => render());

void (async () => {
  const r = await fetch('/api/topology');
  const first = (await r.json()) as { cluster: string; elements: GraphElement[] };
  $('cluster').textContent = `cluster ${first.cluster}`;
  receive(first.elements);
  const events = new EventSource('/api/events');
  events.onmessage = (m) => receive(m.data as string);
})();
