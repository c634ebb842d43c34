// Where the page draws each element (pure, free of Node's modules: bundled into the page).
// The seed's picture, row by row, so that nothing is drawn over anything else at any size:
//
//   Ingresses                                   (a row, wrapped)
//   Services                                    (a row, wrapped)
//   ┌ node-1 ───────────────┐ ┌ node-2 ───────────────┐
//   │        cni0 10.244.1.1│ │                       │
//   │ [pod a]──┃──[pod b]    │ │ [pod c]──┃──[pod d]   │   pods in two columns, one row per
//   │ [pod e]──┃──[pod f]    │ │          ┃            │   pair, each joined to its node's
//   │          ┃             │ │          ┃            │   bridge (a bar) by a horizontal
//   │     [eth0 172.18.0.11] │ │     [eth0 ...]        │   line: its veth pair
//   └───────────┬───────────┘ └──────────┬────────────┘
//   ════════════ underlay ═════════════════════════════
//            [router]              [external]
//
// Every element has a fixed size (SIZES: the page's style uses the same), so the layout needs
// no measuring, takes microseconds for hundreds of pods, and puts a pod in the same place
// each time. A box grows downwards as its pods come; boxes never overlap.

import type { GraphElement } from './graph.ts';

export const SIZES = {
  pod: { w: 184, h: 50 },
  service: { w: 210, h: 44 },
  ingress: { w: 210, h: 44 },
  eth0: { w: 170, h: 26 },
  router: { w: 160, h: 34 },
  external: { w: 160, h: 34 },
  /** The bridge (or, in vpc mode, eth0) as a bar its pods' veth pairs end on. */
  bar: 14,
  /** The underlay's bar. */
  segment: 30,
};

const ROW_GAP = 12; // between two rows of pods
const BUS = 38; // between a column of pods and the bar: the veth pairs' lines
const HUB_LABEL = 22; // above the bar: its label (cni0 and its address)
const ETH0_GAP = 36; // between the bar and eth0
const PAD = 14; // a box's padding (the page's style has the same)
const BOX_LABEL = 28; // above a box: its label (the node's name and podCIDR)
const BOX_GAP = 48; // between two boxes
const ROW = 30; // between the rows of the picture

export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface Layout {
  /** Each drawn (leaf) element's centre and size. */
  at: Map<string, Rect>;
  /** Each node's box (its children and padding; its label above it). */
  boxes: Map<string, Rect>;
  /** Where an edge ends on a bar, relative to the bar's centre (cytoscape's target-endpoint): the veth pairs and the links to the underlay. */
  ends: Map<string, { dx: number; dy: number }>;
  /** The whole picture (its centre and size), labels included. */
  bounds: Rect;
  /** Each pod's place in its node's box (0, 1: the first row, left and right; 2, 3: the second...): kept by the next layout. */
  slots: Map<string, { box: string; slot: number }>;
}

/**
 * The viewport that shows the whole picture in a canvas, with a margin, never magnified past
 * maxZoom (cytoscape's fit, without measuring anything); with room (a fraction of its height)
 * left below it for the picture to grow into.
 */
export function fitView(picture: Rect, canvas: { w: number; h: number }, margin = 24, maxZoom = 1.25, room = 0): { zoom: number; pan: { x: number; y: number } } {
  const bounds = { ...picture, y: picture.y + (picture.h * room) / 2, h: picture.h * (1 + room) };
  const zoom = Math.max(0.05, Math.min(maxZoom, (canvas.w - 2 * margin) / Math.max(1, bounds.w), (canvas.h - 2 * margin) / Math.max(1, bounds.h)));
  return { zoom, pan: { x: canvas.w / 2 - bounds.x * zoom, y: canvas.h / 2 - bounds.y * zoom } };
}

/** Rectangles overlap (touching edges do not). */
export function overlaps(a: Rect, b: Rect): boolean {
  return Math.abs(a.x - b.x) * 2 < a.w + b.w && Math.abs(a.y - b.y) * 2 < a.h + b.h;
}

const byId = (a: GraphElement, b: GraphElement) => (a.data.id < b.data.id ? -1 : a.data.id > b.data.id ? 1 : 0);

/** An IPv4 address as a number (pods without one: after every address). */
function ipOrder(ip: string | undefined): number {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip ?? '');
  return m ? ((Number(m[1]) * 256 + Number(m[2])) * 256 + Number(m[3])) * 256 + Number(m[4]) : Number.MAX_SAFE_INTEGER;
}

/**
 * A node's pods in the order they are drawn: by address, then name. A node's IPAM hands out
 * addresses in order, so a new pod comes after the others and nobody moves: the page redraws
 * only what came.
 */
export const podOrder = (a: GraphElement, b: GraphElement) => ipOrder(a.data.ip) - ipOrder(b.data.ip) || byId(a, b);

/**
 * Where everything goes. Given the previous layout, a pod keeps its place (its slot in its
 * node's box) as long as it stays in that box: a pod that gets its address, or goes, moves
 * nobody else; new pods take the free places from the top, in podOrder. Without one, the
 * places follow podOrder (the same graph gives the same layout).
 */
export function layoutGraph(elements: GraphElement[], previous?: Pick<Layout, 'slots'>): Layout {
  const at = new Map<string, Rect>();
  const boxes = new Map<string, Rect>();
  const ends = new Map<string, { dx: number; dy: number }>();
  const slots = new Map<string, { box: string; slot: number }>();
  const nodes = elements.filter((e) => e.group === 'nodes');
  const ids = new Set(nodes.map((e) => e.data.id));
  const children = new Map<string, GraphElement[]>();
  for (const e of nodes) if (e.data.parent) children.set(e.data.parent, [...(children.get(e.data.parent) ?? []), e]);
  const boxesOf = nodes.filter((e) => e.data.kind === 'node').sort(byId);

  // A node's box, in its own coordinates (0, 0 at the top left of its content).
  const inner = { w: 2 * SIZES.pod.w + 2 * BUS + SIZES.bar, h: 0 };
  const barX = SIZES.pod.w + BUS + SIZES.bar / 2;
  interface Local { rects: Map<string, Rect>; h: number }
  const locals = new Map<string, Local>();
  for (const box of boxesOf) {
    const kids = children.get(box.data.id) ?? [];
    const pods = kids.filter((k) => k.data.kind === 'pod').sort(podOrder);
    const bridge = kids.find((k) => k.data.kind === 'bridge');
    const eth0 = kids.find((k) => k.data.kind === 'eth0');
    // The bar the pods' pairs end on: the bridge; in vpc mode (no bridge) eth0, where the ptp pairs end.
    const hub = bridge ?? eth0;
    // Past 4 rows, a box grows 4 rows at a time, room for the pods to come: each time it grows,
    // the page restyles the bridge and every line that ends on it.
    const place = new Map<string, number>();
    const taken = new Set<number>();
    for (const p of pods) {
      const was = previous?.slots.get(p.data.id);
      if (was && was.box === box.data.id && !taken.has(was.slot)) (place.set(p.data.id, was.slot), taken.add(was.slot));
    }
    let free = 0;
    for (const p of pods) {
      if (place.has(p.data.id)) continue;
      while (taken.has(free)) free++;
      place.set(p.data.id, free);
      taken.add(free);
    }
    for (const [id, slot] of place) slots.set(id, { box: box.data.id, slot });
    const needed = Math.max(1, Math.ceil((Math.max(-1, ...taken) + 1) / 2));
    const rows = needed <= 4 ? needed : Math.ceil(needed / 4) * 4;
    const barTop = HUB_LABEL;
    const barH = rows * (SIZES.pod.h + ROW_GAP) - ROW_GAP;
    const rects = new Map<string, Rect>();
    if (hub) rects.set(hub.data.id, { x: barX, y: barTop + barH / 2, w: SIZES.bar, h: barH });
    pods.forEach((p) => {
      const i = place.get(p.data.id)!;
      const left = i % 2 === 0;
      const y = barTop + Math.floor(i / 2) * (SIZES.pod.h + ROW_GAP) + SIZES.pod.h / 2;
      rects.set(p.data.id, { x: left ? SIZES.pod.w / 2 : inner.w - SIZES.pod.w / 2, y, w: SIZES.pod.w, h: SIZES.pod.h });
      if (hub) ends.set(`veth:${p.data.id}->${hub.data.id}`, { dx: left ? -SIZES.bar / 2 : SIZES.bar / 2, dy: y - (barTop + barH / 2) });
    });
    let h = barTop + barH;
    if (bridge && eth0) {
      rects.set(eth0.data.id, { x: barX, y: h + ETH0_GAP + SIZES.eth0.h / 2, w: SIZES.eth0.w, h: SIZES.eth0.h });
      h += ETH0_GAP + SIZES.eth0.h;
    }
    // Anything else a box may hold one day: a row below.
    const others = kids.filter((k) => !rects.has(k.data.id));
    others.forEach((k, i) => rects.set(k.data.id, { x: SIZES.pod.w / 2 + (i % 2) * (inner.w - SIZES.pod.w), y: h + ROW_GAP + Math.floor(i / 2) * (SIZES.pod.h + ROW_GAP) + SIZES.pod.h / 2, w: SIZES.pod.w, h: SIZES.pod.h }));
    if (others.length) h += ROW_GAP + Math.ceil(others.length / 2) * (SIZES.pod.h + ROW_GAP) - ROW_GAP;
    locals.set(box.data.id, { rects, h });
  }

  const boxW = inner.w + 2 * PAD;
  const width = Math.max(boxesOf.length * boxW + Math.max(0, boxesOf.length - 1) * BOX_GAP, 2 * SIZES.service.w + ROW);
  let y = 0;
  // A row of same-sized elements, wrapped at the picture's width.
  const row = (items: GraphElement[], size: { w: number; h: number }) => {
    if (!items.length) return;
    const perRow = Math.max(1, Math.floor((width + ROW) / (size.w + ROW)));
    items.sort(byId).forEach((e, i) => {
      const inRow = Math.min(perRow, items.length - Math.floor(i / perRow) * perRow);
      const rowW = inRow * size.w + (inRow - 1) * ROW;
      at.set(e.data.id, { x: (width - rowW) / 2 + (i % perRow) * (size.w + ROW) + size.w / 2, y: y + Math.floor(i / perRow) * (size.h + ROW) + size.h / 2, w: size.w, h: size.h });
    });
    y += Math.ceil(items.length / perRow) * (size.h + ROW);
  };
  row(nodes.filter((e) => e.data.kind === 'ingress'), SIZES.ingress);
  row(nodes.filter((e) => e.data.kind === 'service'), SIZES.service);

  // The boxes, side by side.
  y += BOX_LABEL;
  const tallest = Math.max(0, ...[...locals.values()].map((l) => l.h));
  boxesOf.forEach((box, i) => {
    const local = locals.get(box.data.id)!;
    const left = i * (boxW + BOX_GAP);
    boxes.set(box.data.id, { x: left + boxW / 2, y: y + (local.h + 2 * PAD) / 2, w: boxW, h: local.h + 2 * PAD });
    for (const [id, r] of local.rects) at.set(id, { ...r, x: left + PAD + r.x, y: y + PAD + r.y });
  });
  y += tallest + 2 * PAD + ROW + 10;

  // The underlay: a bar under every box, the nodes' eth0 (or vpc's bars) joined to it straight down.
  const segment = nodes.find((e) => e.data.kind === 'segment');
  if (segment) {
    const bar = { x: width / 2, y: y + SIZES.segment / 2, w: width, h: SIZES.segment };
    at.set(segment.data.id, bar);
    y += SIZES.segment;
    const below = nodes.filter((e) => e.data.kind === 'router' || e.data.kind === 'external').sort((a, b) => (a.data.kind === 'router' ? -1 : b.data.kind === 'router' ? 1 : byId(a, b)));
    y += ROW + 10;
    const spread = Math.min(width / Math.max(1, below.length), 2 * SIZES.router.w + ROW);
    below.forEach((e, i) => {
      const r = { x: width / 2 + (i - (below.length - 1) / 2) * spread, y: y + SIZES.router.h / 2, w: SIZES.router.w, h: SIZES.router.h };
      at.set(e.data.id, r);
      ends.set(`link:${e.data.id}->${segment.data.id}`, { dx: r.x - bar.x, dy: SIZES.segment / 2 });
    });
    if (below.length) y += SIZES.router.h + ROW;
    for (const box of boxesOf) {
      const name = box.data.id.slice('node/'.length);
      const eth0 = at.get(`eth0/${name}`);
      if (eth0) ends.set(`link:eth0/${name}->${segment.data.id}`, { dx: eth0.x - bar.x, dy: -SIZES.segment / 2 });
    }
  }

  // Anything else (a kind this layout does not know yet): a row at the bottom.
  row(nodes.filter((e) => !at.has(e.data.id) && !boxes.has(e.data.id) && (!e.data.parent || !ids.has(e.data.parent))), SIZES.pod);
  const h = Math.max(1, y - ROW); // the last row's gap below it
  return { at, boxes, ends, bounds: { x: width / 2, y: h / 2, w: width, h }, slots };
}
