// The layers of src/, checked by `npm test` (dependency-cruiser): a folder imports only
// folders of a lower rank, never one of its own rank or above, and nothing imports in a
// cycle. Leaves first; see README's Architecture for what each layer holds.
const RANK = {
  netaddr: 0, state: 0, supervisor: 0,
  // Scheduling shared by the node components (kube-proxy's pkg/util/async).
  async: 0,
  // The cluster's PKI, its API's address and kubeconfigs: read by the kernel host as by the daemon.
  identity: 0.5,
  dataplane: 1, api: 1, kernel: 1,
  lab: 2, cni: 2, manifest: 2, apiserver: 2,
  // Clients of the Kubernetes API from outside the API server (HTTPS, a kubeconfig): over the
  // ObjectClient interface and informers of apiserver, for node programs (proxy, cni, policy).
  client: 2.5,
  cluster: 3, workloads: 3,
  // NetworkPolicy: the pure model (read by trace and describe) and the per-node enforcer.
  netpol: 3,
  // The VPC stands between the cluster's plan and what reads the network: trace names its drops.
  vpc: 3.5,
  controllers: 4, node: 4, proxy: 4, ingress: 4, dns: 4, trace: 4,
  daemon: 5, ui: 5,
  lifecycle: 6,
  cli: 7,
};
const folders = Object.keys(RANK);

const layering = folders.flatMap((from) => {
  const above = folders.filter((to) => to !== from && RANK[to] >= RANK[from]);
  return above.length
    ? [{ name: `layer:${from}`, severity: 'error', comment: `src/${from} (rank ${RANK[from]}) imports only lower layers`, from: { path: `^src/${from}/` }, to: { path: `^src/(${above.join('|')})/` } }]
    : [];
});

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'no import cycles, type-only imports included', from: { path: '^src/' }, to: { circular: true } },
    {
      name: 'processes-through-the-port',
      severity: 'error',
      comment: 'processes start in the dataplane (network tools) or the supervisor (everything else), nowhere else',
      from: { path: '^src/', pathNot: '^src/(dataplane/linux|supervisor)/' },
      to: { dependencyTypes: ['core'], path: '^(node:)?child_process$' },
    },
    {
      name: 'kernel-through-the-port',
      severity: 'error',
      comment: 'components get a Dataplane (port.ts); only composition roots pick the Linux one',
      from: { path: '^src/', pathNot: ['^src/dataplane/', '^src/(daemon|lifecycle|cli|lab)/', '^src/cni/plugins/main\\.ts$'] },
      to: { path: '^src/dataplane/linux/' },
    },
    {
      // Issue 29's seam: every component reads through informers (apiserver/informer.ts) and
      // writes through the ObjectClient (apiserver/objects.ts: LocalClient in the daemon,
      // client/rest.ts over the REST API); the store and the Api in front of it are the API
      // server's own, so a component that works here works against any API server.
      name: 'store-behind-the-api',
      severity: 'error',
      comment: 'only src/apiserver touches the store (store, cache, api, writes, deletion): components use the ObjectClient and informers',
      from: {
        path: '^src/',
        pathNot: [
          '^src/apiserver/',
          // The composition root: opens the Store, makes the Api, its servers and the one LocalClient the daemon's components share.
          '^src/daemon/daemon\\.ts$',
          // Not yet moved (kept here until they are): the node agent (being made an API client, issue 29),
          '^src/node/agent\\.ts$',
          // the kubelet's half of logs/exec/attach/port-forward, which reads pods inside the API server's request (moves with the agent),
          '^src/daemon/streams\\.ts$',
          // and the NetworkPolicy enforcer's constructor, which only makes its LocalClient from the Api (the enforcer itself is a client).
          '^src/netpol/node\\.ts$',
        ],
      },
      to: { path: '^src/apiserver/(store|cache|api|writes|deletion)\\.ts$' },
    },
    { name: 'no-test-code-in-src', severity: 'error', from: { path: '^src/' }, to: { path: '^(test|bench)/' } },
    { name: 'every-folder-has-a-layer', severity: 'error', comment: 'a new folder of src/ gets a rank in .dependency-cruiser.cjs', from: { path: '^src/', pathNot: `^src/(${folders.join('|')})/` }, to: {} },
    ...layering,
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: 'node_modules' },
  },
};
