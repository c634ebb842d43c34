// The graph the page draws, and the decisions the page makes on it (pure, and free of
// Node's modules: this file is bundled into the page as well).

import type { Hop } from '../trace/types.ts';

export interface GraphElement {
  group: 'nodes' | 'edges';
  data: {
    id: string;
    label?: string;
    /** Compound nodes: the box it is drawn in. */
    parent?: string;
    source?: string;
    target?: string;
    /** What the element is, for style, filters and details. */
    kind: 'segment' | 'router' | 'external' | 'node' | 'eth0' | 'bridge' | 'pod' | 'service' | 'ingress' | 'link' | 'veth' | 'endpoint' | 'backend';
    namespace?: string;
    labels?: Record<string, string>;
    ip?: string;
    phase?: string;
    /** Everything else worth showing at a glance (detail lines). */
    facts?: string[];
  };
  classes?: string;
}

/** Each element's JSON, made once (an element of the last graph is compared again with the next one). */
const texts = new WeakMap<GraphElement, string>();
function text(e: GraphElement): string {
  let t = texts.get(e);
  if (t === undefined) texts.set(e, (t = JSON.stringify(e)));
  return t;
}

/** Changes from one graph to the next, by id: what the page adds, removes and updates. */
export function diffElements(before: GraphElement[], after: GraphElement[]): { add: GraphElement[]; remove: string[]; update: GraphElement[] } {
  const old = new Map(before.map((e) => [e.data.id, e]));
  const next = new Map(after.map((e) => [e.data.id, e]));
  const add: GraphElement[] = [];
  const update: GraphElement[] = [];
  for (const [id, e] of next) {
    const was = old.get(id);
    if (!was) add.push(e);
    // A compound's parent cannot change in place: such an element is removed and added again.
    else if (was.data.parent !== e.data.parent) {
      add.push(e);
    } else if (text(was) !== text(e)) update.push(e);
  }
  const remove = [...old.keys()].filter((id) => !next.has(id) || old.get(id)!.data.parent !== next.get(id)!.data.parent);
  return { add, remove, update };
}

/** Whether an element passes the page's filters: a namespace, and a label selector (k=v,k2=v2) on pods, Services and Ingresses. */
export function visible(e: GraphElement, filter: { namespace?: string; labels?: Record<string, string> }): boolean {
  const namespaced = e.data.kind === 'pod' || e.data.kind === 'service' || e.data.kind === 'ingress';
  if (!namespaced) return true;
  if (filter.namespace && e.data.namespace !== filter.namespace) return false;
  for (const [k, v] of Object.entries(filter.labels ?? {})) if (e.data.labels?.[k] !== v) return false;
  return true;
}

/** Where a trace's hop is on the graph: the pod; on a node, the device it came in or left by (cni0, eth0; a veth is the node's bridge side); the underlay or its router; the client. Undefined: inside a node's stack, between its devices. */
export function placeOf(h: Pick<Hop, 'netns' | 'kind' | 'in' | 'out' | 'detail'>, has: (id: string) => boolean): string | undefined {
  if (h.netns.startsWith('pod/')) return h.netns;
  if (h.netns.startsWith('node/')) {
    const node = h.netns.slice('node/'.length);
    const dev = h.out ?? h.in ?? (/\bbridge cni0\b/.test(h.detail) ? 'cni0' : undefined);
    if (dev === 'cni0' || (dev?.startsWith('veth') && has(`cni0/${node}`))) return `cni0/${node}`;
    // eth0, the VXLAN device on it, or (vpc mode, no bridge) a ptp pair's host end.
    if (dev === 'eth0' || dev === 'flannel.1' || dev?.startsWith('veth')) return `eth0/${node}`;
    return undefined;
  }
  if (h.netns === 'network') return h.kind === 'l2' && !h.in ? 'underlay' : 'router';
  if (h.netns === 'external') return 'external';
  return undefined;
}

/** One step of a drawn trace: the graph's own edge it crosses (forward: from its source to its target), or a jump where the graph has none. */
export type TraceStep = { edge: string; forward: boolean; from: string; to: string } | { jump: true; from: string; to: string };

/**
 * A trace leg as a path across the graph's elements: the places of its hops in order (the same
 * place twice in a row is one), the gaps between two places filled with the elements between
 * them (eth0 to the router crosses the underlay), each step on an edge the graph has (a veth
 * pair, a link), never a new edge between two boxes. Pods are never crossed on the way.
 */
export function tracePath(hops: Array<Pick<Hop, 'netns' | 'kind' | 'in' | 'out' | 'detail'>>, elements: GraphElement[]): { places: string[]; steps: TraceStep[] } {
  const ids = new Set(elements.filter((e) => e.group === 'nodes').map((e) => e.data.id));
  const kinds = new Map(elements.map((e) => [e.data.id, e.data.kind]));
  const places: string[] = [];
  for (const h of hops) {
    const id = placeOf(h, (x) => ids.has(x));
    if (id && ids.has(id) && places.at(-1) !== id) places.push(id);
  }
  // The graph's wires (not the Services' endpoint arrows or the Ingresses' backends).
  const wires = new Map<string, Array<{ edge: string; other: string; forward: boolean }>>();
  for (const e of elements) {
    if (e.group !== 'edges' || (e.data.kind !== 'link' && e.data.kind !== 'veth')) continue;
    const s = e.data.source!;
    const t = e.data.target!;
    wires.set(s, [...(wires.get(s) ?? []), { edge: e.data.id, other: t, forward: true }]);
    wires.set(t, [...(wires.get(t) ?? []), { edge: e.data.id, other: s, forward: false }]);
  }
  const steps: TraceStep[] = [];
  const route = (from: string, to: string): TraceStep[] | undefined => {
    // Breadth first, through anything but pods.
    const prev = new Map<string, { at: string; edge: string; forward: boolean }>([[from, { at: '', edge: '', forward: true }]]);
    const queue = [from];
    while (queue.length) {
      const at = queue.shift()!;
      if (at === to) break;
      for (const w of wires.get(at) ?? []) {
        if (prev.has(w.other) || (w.other !== to && kinds.get(w.other) === 'pod')) continue;
        prev.set(w.other, { at, edge: w.edge, forward: w.forward });
        queue.push(w.other);
      }
    }
    if (!prev.has(to)) return undefined;
    const out: TraceStep[] = [];
    for (let at = to; at !== from; ) {
      const p = prev.get(at)!;
      out.unshift({ edge: p.edge, forward: p.forward, from: p.at, to: at });
      at = p.at;
    }
    return out;
  };
  for (let i = 1; i < places.length; i++) steps.push(...(route(places[i - 1]!, places[i]!) ?? [{ jump: true as const, from: places[i - 1]!, to: places[i]! }]));
  return { places, steps };
}
