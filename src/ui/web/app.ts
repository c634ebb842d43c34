// The page: the cluster network drawn with Cytoscape.js (compound boxes for nodes, laid out
// by ELK's layered algorithm in a Web Worker, so that the page never waits for it:
// Ingresses and Services above, the nodes with their pods, cni0 and eth0, the underlay with
// its router and the client below; a node's pods re-laid at once by Cytoscape's grid layout
// when they change), kept in step with the server's
// stream of graphs (applied as a diff, at most once per animation frame), details on click,
// and a trace drawn on the graph hop by hop with its table and verdict.

import cytoscape, { type Core, type ElementDefinition, type NodeSingular } from 'cytoscape';
import ELK, { type ElkNode } from 'elkjs/lib/elk-api.js';
import { diffElements, visible, type GraphElement } from '../graph.ts';
import type { Hop, Leg, Trace } from '../../trace/types.ts';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const STYLE: cytoscape.StylesheetJson = [
  // Labels too small to read at the current zoom are not drawn (they cost the most to draw).
  { selector: 'node', style: { 'min-zoomed-font-size': 7, label: 'data(label)', 'font-size': 11, 'text-wrap': 'wrap', 'text-valign': 'center', 'text-halign': 'center', 'background-color': '#e2e8f0', 'border-width': 1, 'border-color': '#94a3b8', width: 'label', height: 'label', padding: '6px', shape: 'round-rectangle' } },
  { selector: 'node[kind = "node"]', style: { 'text-valign': 'top', 'text-halign': 'center', 'background-color': '#f8fafc', 'border-color': '#475569', 'border-width': 2, 'font-size': 13, 'font-weight': 'bold', padding: '14px' } },
  { selector: 'node[kind = "pod"]', style: { 'background-color': '#dcfce7', 'border-color': '#16a34a' } },
  { selector: 'node.pending, node.terminating', style: { 'background-color': '#fef9c3', 'border-color': '#ca8a04', 'border-style': 'dashed' } },
  { selector: 'node.failed', style: { 'background-color': '#fee2e2', 'border-color': '#dc2626' } },
  { selector: 'node[kind = "bridge"]', style: { shape: 'diamond', 'background-color': '#dbeafe', 'border-color': '#2563eb', 'text-valign': 'bottom', width: 34, height: 34, 'text-margin-y': 4 } },
  { selector: 'node[kind = "eth0"]', style: { shape: 'rectangle', 'background-color': '#e0e7ff' } },
  { selector: 'node[kind = "segment"]', style: { shape: 'rectangle', 'background-color': '#cbd5e1', 'font-weight': 'bold', padding: '10px' } },
  { selector: 'node[kind = "router"]', style: { shape: 'octagon', 'background-color': '#fde68a', 'border-color': '#b45309' } },
  { selector: 'node[kind = "external"]', style: { shape: 'ellipse', 'background-color': '#fbcfe8', 'border-color': '#be185d' } },
  { selector: 'node[kind = "service"]', style: { shape: 'hexagon', 'background-color': '#ede9fe', 'border-color': '#7c3aed' } },
  { selector: 'node[kind = "ingress"]', style: { shape: 'tag', 'background-color': '#ffedd5', 'border-color': '#ea580c' } },
  { selector: 'edge', style: { 'min-zoomed-font-size': 8, width: 1.5, 'line-color': '#94a3b8', 'curve-style': 'bezier', label: 'data(label)', 'font-size': 7, 'text-rotation': 'autorotate', color: '#475569' } },
  { selector: 'edge[kind = "link"]', style: { width: 3, 'line-color': '#64748b' } },
  { selector: 'edge[kind = "endpoint"]', style: { 'line-style': 'dashed', 'line-color': '#a78bfa', 'target-arrow-shape': 'triangle', 'target-arrow-color': '#a78bfa', label: '' } },
  { selector: 'edge[kind = "backend"]', style: { 'line-style': 'dashed', 'line-color': '#fb923c', 'target-arrow-shape': 'triangle', 'target-arrow-color': '#fb923c' } },
  { selector: 'edge.trace-request', style: { width: 4, 'line-color': '#c2410c', 'target-arrow-shape': 'triangle', 'target-arrow-color': '#c2410c', 'z-index': 10, label: 'data(label)', 'font-size': 9, color: '#9a3412' } },
  { selector: 'edge.trace-reply', style: { width: 3, 'line-color': '#1d4ed8', 'line-style': 'dashed', 'target-arrow-shape': 'triangle', 'target-arrow-color': '#1d4ed8', 'z-index': 9, label: 'data(label)', 'font-size': 9, color: '#1e3a8a' } },
  { selector: 'node.on-path', style: { 'border-width': 3, 'border-color': '#c2410c' } },
  { selector: 'node.stopped', style: { 'border-width': 5, 'border-color': '#dc2626', 'background-color': '#fecaca' } },
  { selector: ':selected', style: { 'overlay-color': '#6366f1', 'overlay-opacity': 0.25 } },
];

const elk = new ELK({ workerUrl: '/elk-worker.js' });
const cy: Core = cytoscape({ container: $('graph'), style: STYLE, elements: [], minZoom: 0.1, maxZoom: 3, wheelSensitivity: 0.3, hideEdgesOnViewport: true, textureOnViewport: true, pixelRatio: 1 });
let all: GraphElement[] = [];
let shown: GraphElement[] = [];
let laidOut = false;
const page = { cy, ready: false, updates: 0, lastTrace: undefined as Trace | undefined, slowest: { total: 0, diff: 0, graph: 0, layout: 0, lists: 0 }, elkPrep: 0, elkApply: 0 };
(window as unknown as { kubewire: typeof page }).kubewire = page;

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

let settle: ReturnType<typeof setTimeout> | undefined;
let generation = 0;

/** ELK's layered layout of the whole graph, computed in the worker, then applied in one batch (a newer run wins). */
async function layered(): Promise<void> {
  const run = ++generation;
  const p0 = performance.now();
  const nodes = cy.nodes();
  const boxes = new Map<string, ElkNode>();
  const leaf = (n: NodeSingular): ElkNode => {
    const d = n.layoutDimensions({ nodeDimensionsIncludeLabels: true });
    return { id: n.id(), width: d.w, height: d.h };
  };
  const root: ElkNode = { id: 'root', children: [], edges: [], layoutOptions: { 'elk.algorithm': 'layered', 'elk.direction': 'DOWN', 'elk.hierarchyHandling': 'INCLUDE_CHILDREN', 'elk.layered.spacing.nodeNodeBetweenLayers': '40', 'elk.spacing.nodeNode': '20', 'elk.padding': '[top=24,left=12,bottom=12,right=12]' } };
  for (const n of nodes.filter((x) => x.isParent())) boxes.set(n.id(), { id: n.id(), children: [], layoutOptions: { 'elk.padding': '[top=28,left=12,bottom=12,right=12]' } });
  for (const n of nodes) {
    const el = boxes.get(n.id()) ?? leaf(n);
    const parent = n.isChild() ? boxes.get(n.parent().first().id()) : undefined;
    (parent ?? root).children!.push(el);
  }
  root.edges = cy.edges().not('.trace-request, .trace-reply').map((e) => ({ id: e.id(), sources: [e.data('source') as string], targets: [e.data('target') as string] }));
  page.elkPrep = Math.max(page.elkPrep, performance.now() - p0);
  const laid = await elk.layout(root);
  const a0 = performance.now();
  if (run !== generation) return;
  const at = new Map<string, { x: number; y: number }>();
  const walk = (n: ElkNode, ox: number, oy: number) => {
    for (const c of n.children ?? []) {
      const x = ox + (c.x ?? 0);
      const y = oy + (c.y ?? 0);
      if (c.children?.length) walk(c, x, y);
      else at.set(c.id, { x: x + (c.width ?? 0) / 2, y: y + (c.height ?? 0) / 2 });
    }
  };
  walk(laid, 0, 0);
  cy.batch(() => {
    for (const [id, p] of at) {
      const n = cy.getElementById(id);
      if (n.nonempty() && !n.isParent()) n.position(p).scratch('_placed', true);
    }
  });
  cy.fit(undefined, 20);
  page.elkApply = Math.max(page.elkApply, performance.now() - a0);
}


/**
 * Lays out the whole graph (first time, or when nodes, Services or Ingresses come and go);
 * else re-lays at once only the boxes whose pods changed, and the whole graph once changes
 * have been quiet for a second (so that a box that grew pushes its neighbours aside).
 */
function layout(changedBoxes: Set<string>, whole: boolean): void {
  clearTimeout(settle);
  if (!whole && laidOut) settle = setTimeout(() => layout(new Set(), true), 1_000);
  if (whole || !laidOut) {
    void layered();
    laidOut = true;
    return;
  }
  // Meanwhile a new pod waits beside its node's bridge, in a grid by its place among the
  // node's pods (no layout run: with a hundred pods a layout per change costs frames).
  for (const id of changedBoxes) {
    const box = cy.getElementById(id);
    const bridge = cy.getElementById(`cni0/${id.slice('node/'.length)}`);
    if (box.empty() || bridge.empty()) continue;
    const origin = bridge.position();
    box.children('[kind = "pod"]').forEach((pod, i) => {
      if (pod.scratch('_placed')) return;
      pod.position({ x: origin.x - 150 + (i % 4) * 100, y: origin.y - 60 - Math.floor(i / 4) * 40 });
      pod.scratch('_placed', true);
    });
  }
}

function render(): void {
  const t0 = performance.now();
  const next = select(all);
  const d = diffElements(shown, next);
  const t1 = performance.now();
  if (!d.add.length && !d.remove.length && !d.update.length) return;
  const boxes = new Set<string>();
  for (const e of [...d.add, ...d.update]) if (e.data.parent) boxes.add(e.data.parent);
  const old = new Map(shown.map((e) => [e.data.id, e]));
  for (const id of d.remove) {
    const parent = old.get(id)?.data.parent;
    if (parent) boxes.add(parent);
  }
  const whole = [...d.add, ...d.remove.map((id) => old.get(id)!)].some((e) => e && (e.data.kind === 'node' || e.data.kind === 'service' || e.data.kind === 'ingress' || e.data.kind === 'segment'));
  cy.batch(() => {
    for (const id of d.remove) cy.getElementById(id).remove();
    // Nodes before edges, parents before children.
    const adds = [...d.add].sort((a, b) => (a.group === b.group ? (a.data.parent ? 1 : 0) - (b.data.parent ? 1 : 0) : a.group === 'nodes' ? -1 : 1));
    cy.add(adds as unknown as ElementDefinition[]);
    for (const e of d.update) {
      const el = cy.getElementById(e.data.id);
      el.data(e.data);
      el.classes(e.classes ?? '');
    }
  });
  const t2 = performance.now();
  cy.batch(() => layout(boxes, whole));
  const t3 = performance.now();
  shown = next;
  page.updates++;
  inventory();
  choices();
  const t4 = performance.now();
  // The slowest update so far, by part (for bench:ui's breakdown).
  if (t4 - t0 > page.slowest.total) page.slowest = { total: t4 - t0, diff: t1 - t0, graph: t2 - t1, layout: t3 - t2, lists: t4 - t3 };
}

// The server's graphs: only the latest is applied, once per frame.
let latest: GraphElement[] | undefined;
function receive(elements: GraphElement[]): void {
  latest = elements;
  requestAnimationFrame(() => {
    if (!latest) return;
    all = latest;
    latest = undefined;
    render();
    page.ready = true;
    $('status').textContent = `${all.filter((e) => e.data.kind === 'pod').length} pods, ${all.filter((e) => e.data.kind === 'node').length} nodes`;
  });
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
function inventory(): void {
  namespaces();
  const nav = $('inventory');
  const items = shown.filter((e) => e.group === 'nodes');
  // Rebuilt only when it changed, and the focus kept on the same element (keyboard users).
  const signature = items.map((e) => `${e.data.id} ${e.data.ip ?? ''} ${e.data.phase ?? ''}`).join('\n');
  if (signature === listed) return;
  listed = signature;
  const focused = (document.activeElement as HTMLElement | null)?.dataset?.id;
  nav.replaceChildren(
    ...items.map((e) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.dataset.id = e.data.id;
      b.textContent = `${e.data.kind} ${e.data.id.replace(/^\w+\//, '')}${e.data.ip ? ` ${e.data.ip}` : ''}${e.data.phase && e.data.phase !== 'Running' ? ` (${e.data.phase})` : ''}`;
      b.addEventListener('click', () => void show(e.data.id));
      return b;
    }),
  );
  if (focused) nav.querySelector<HTMLElement>(`button[data-id="${CSS.escape(focused)}"]`)?.focus();
}

/** The trace form's choices: every pod, node and the client as sources; pods and Services as targets. */
function choices(): void {
  const from = $<HTMLSelectElement>('from');
  const keep = from.value;
  const sources = ['external', ...all.filter((e) => e.data.kind === 'node').map((e) => e.data.id), ...all.filter((e) => e.data.kind === 'pod' && e.data.phase === 'Running').map((e) => e.data.id)];
  // Rebuilt only when the choices changed (an open list is not swept away by each update).
  if (sources.join() !== [...from.options].map((o) => o.value).join()) {
    from.replaceChildren(...sources.map((s) => Object.assign(document.createElement('option'), { value: s, textContent: s })));
    if (sources.includes(keep)) from.value = keep;
  }
  const targets = [...all.filter((e) => e.data.kind === 'pod' && e.data.ip).map((e) => e.data.id), ...all.filter((e) => e.data.kind === 'service' && e.data.ip).map((e) => e.data.id.replace(/^svc\//, 'service/'))];
  $('targets').replaceChildren(...targets.map((t) => Object.assign(document.createElement('option'), { value: t })));
}

async function show(id: string): Promise<void> {
  cy.elements().unselect();
  const el = cy.getElementById(id);
  el.select();
  if (el.nonempty()) cy.animate({ center: { eles: el } }, { duration: 150 });
  $('details').textContent = 'reading...';
  const r = await fetch(`/api/details?id=${encodeURIComponent(id)}`);
  const body = (await r.json()) as { lines?: string[]; error?: string };
  $('details').textContent = body.lines?.join('\n') ?? body.error ?? '';
}

cy.on('tap', 'node', (ev) => void show(ev.target.id()));
// A narrower window (or the panel moving below the graph) resizes the drawing with its box.
new ResizeObserver(() => {
  cy.resize();
  cy.fit(undefined, 20);
}).observe($('graph'));

/** A hop's place on the graph: the pod, the node's cni0 or eth0 (or the node), the router or the underlay, the client. */
function placeOf(h: Hop): string {
  if (h.netns.startsWith('pod/')) return h.netns;
  if (h.netns.startsWith('node/')) {
    const node = h.netns.slice(5);
    const dev = h.out ?? h.in ?? (/bridge cni0/.test(h.detail) ? 'cni0' : undefined);
    if (dev === 'cni0') return `cni0/${node}`;
    if (dev === 'eth0') return `eth0/${node}`;
    return `node/${node}`;
  }
  if (h.netns === 'network') return h.kind === 'l2' && !h.in ? 'underlay' : 'router';
  return 'external';
}

function drawLeg(leg: Leg, kind: 'request' | 'reply'): string[] {
  const path: string[] = [];
  for (const h of leg.hops) {
    const id = placeOf(h);
    if (path.at(-1) !== id && cy.getElementById(id).nonempty()) path.push(id);
  }
  cy.add(path.slice(1).map((target, i) => ({ group: 'edges' as const, data: { id: `trace-${kind}-${i}`, source: path[i]!, target, label: String(i + 1) }, classes: `trace-${kind}` })));
  for (const id of path) cy.getElementById(id).addClass('on-path');
  return path;
}

function drawTrace(t: Trace): void {
  cy.remove(cy.edges('.trace-request, .trace-reply'));
  cy.nodes().removeClass('on-path stopped');
  const request = drawLeg(t, 'request');
  if (t.reply) drawLeg(t.reply, 'reply');
  if (t.verdict !== 'delivered' && request.length) cy.getElementById(request.at(-1)!).addClass('stopped');
  const rows = [...t.hops.map((h) => ({ h, kind: 'request' })), ...(t.reply?.hops ?? []).map((h) => ({ h, kind: 'reply' }))];
  const body = $('hops').querySelector('tbody')!;
  body.replaceChildren(
    ...rows.map(({ h, kind }, i) => {
      const tr = document.createElement('tr');
      tr.className = kind;
      for (const text of [String(i + 1), h.netns, h.kind, h.in ?? '', h.out ?? '', [h.detail, h.rule && `rule: ${h.rule}`, h.translation && `NAT: ${h.translation}`].filter(Boolean).join('; ')]) {
        const td = document.createElement('td');
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }),
  );
  $('hops').hidden = false;
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
  events.onmessage = (m) => receive((JSON.parse(m.data as string) as { elements: GraphElement[] }).elements);
})();
