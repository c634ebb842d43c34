// The graph the page draws, and the decisions the page makes on it (pure, and free of
// Node's modules: this file is bundled into the page as well).

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
    } else if (JSON.stringify(was) !== JSON.stringify(e)) update.push(e);
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
