// The API server's defaults for networking.k8s.io/v1 NetworkPolicies
// (kubernetes/kubernetes pkg/apis/networking/v1/defaults.go): policyTypes [Ingress], plus
// Egress when the policy has egress rules; every port's protocol TCP; and the podSelector a
// struct upstream (never missing: `{}` when not given). Pure.

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- objects as clients send them

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function rules(list: unknown): unknown {
  if (!Array.isArray(list)) return list;
  return list.map((r) => (isObj(r) && Array.isArray(r.ports) ? { ...r, ports: r.ports.map((p: unknown) => (isObj(p) && (p.protocol === undefined || p.protocol === null) ? { ...p, protocol: 'TCP' } : p)) } : r));
}

export function defaultNetworkPolicy<T extends Obj>(np: T): T {
  const spec = np.spec;
  if (!isObj(spec)) return np;
  const out: Obj = { ...spec, podSelector: spec.podSelector ?? {} };
  if (spec.ingress !== undefined) out.ingress = rules(spec.ingress);
  if (spec.egress !== undefined) out.egress = rules(spec.egress);
  if (!Array.isArray(spec.policyTypes) || spec.policyTypes.length === 0) {
    out.policyTypes = Array.isArray(spec.egress) && spec.egress.length ? ['Ingress', 'Egress'] : ['Ingress'];
  }
  return { ...np, spec: out };
}
