// The API server's defaults for discovery.k8s.io/v1 EndpointSlices: each port's protocol
// TCP and name "" (kubernetes/kubernetes pkg/apis/discovery/v1/defaults.go). Pure.

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- objects as clients send them

export function defaultEndpointSlice<T extends Obj>(s: T): T {
  if (!Array.isArray(s.ports)) return s;
  return { ...s, ports: s.ports.map((p: Obj) => (typeof p === 'object' && p !== null ? { ...p, name: p.name ?? '', protocol: p.protocol || 'TCP' } : p)) };
}
