// NetworkPolicy at scale (issue 31's figures): 1,000 policies over 1,000 pods on 4 nodes
// (20 namespaces × 50 pods, 50 policies per namespace: each selects one app, admits two
// other apps of its namespace, a labelled namespace and an ipBlock with an except, on two
// ports and a named one). Per node: compile (the pure model) + render + `nft -f` of the whole
// table into a lab namespace (the full sync), the same through iptables-legacy + ipset, one
// pod's label change re-synced, connection setup through a node whose table holds it all
// against the same node with no policy (ratio, taken in the same run), and the memory the
// compiled view costs. Everything happens in lab namespaces made and removed here.
//   npm run bench:netpol        PODS=1000 POLICIES=1000 NODES=4 (defaults)

import { linux } from '../src/dataplane/linux/host.ts';
import { Lab } from '../src/lab/lab.ts';
import { compileNode, type NetworkPolicyObject, type PodInfo, type PolicyWorld } from '../src/netpol/model.ts';
import { IptablesPolicyBackend, renderIptables } from '../src/netpol/iptables.ts';
import { NftablesPolicyBackend, renderNftables } from '../src/netpol/nftables.ts';

const PODS = Number(process.env.PODS ?? 1000);
const POLICIES = Number(process.env.POLICIES ?? 1000);
const NODES = Number(process.env.NODES ?? 4);
const NAMESPACES = 20;
const APPS = Math.max(1, Math.round(PODS / NAMESPACES));
const CONNECTS = 300;
/** The client and server of the connection test: pods of ns-0, app-0 (the server is selected by policies). */
const CLIENT = '10.250.0.2';
const SERVER = '10.250.1.2';

const ms = (t0: number) => performance.now() - t0;
const fmt = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(1)} ms`);

function world(): PolicyWorld {
  const pods: PodInfo[] = [];
  for (let i = 0; i < PODS; i++) {
    const ns = `ns-${i % NAMESPACES}`;
    const app = `app-${Math.floor(i / NAMESPACES) % APPS}`;
    pods.push({ namespace: ns, name: `p-${i}`, labels: { app, tier: i % 3 === 0 ? 'front' : 'back' }, ip: `10.244.${(i >> 8) & 255}.${i & 255}`, node: `node-${i % NODES}`, ports: [{ name: 'http', containerPort: 8080 }] });
  }
  // The connection test's pair: a server on node-0 selected by its namespace's policies, a client they admit.
  pods.push({ namespace: 'ns-0', name: 'server', labels: { app: 'app-0', tier: 'back' }, ip: SERVER, node: 'node-0', ports: [{ name: 'http', containerPort: 8080 }] });
  pods.push({ namespace: 'ns-0', name: 'client', labels: { app: `app-${APPS - 1}`, tier: 'front' }, ip: CLIENT, node: 'node-1', ports: [] });
  const policies: NetworkPolicyObject[] = [];
  for (let k = 0; k < POLICIES; k++) {
    const ns = `ns-${k % NAMESPACES}`;
    const app = (n: number) => `app-${n % APPS}`;
    const sel = Math.floor(k / NAMESPACES);
    policies.push({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { namespace: ns, name: `pol-${k}` },
      spec: {
        podSelector: { matchLabels: { app: app(sel) } },
        policyTypes: ['Ingress'],
        ingress: [
          { from: [{ podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: [app(sel + 1), app(sel + 2)] }] } }], ports: [{ port: 8080 }, { port: 'http' }] },
          { from: [{ namespaceSelector: { matchLabels: { team: `t-${k % 5}` } }, podSelector: { matchLabels: { tier: 'front' } } }, { ipBlock: { cidr: '192.168.0.0/16', except: [`192.168.${k % 256}.0/24`] } }], ports: [{ protocol: 'TCP', port: 9000, endPort: 9100 }] },
        ],
      },
    });
  }
  // The last rule the server's chain reaches admits the client (the connection pays for every rule before it).
  policies.push({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: 'ns-0', name: 'zz-client' }, spec: { podSelector: { matchLabels: { app: 'app-0' } }, ingress: [{ from: [{ ipBlock: { cidr: `${CLIENT}/32` } }], ports: [{ port: 8080 }] }] } });
  const namespaces = new Map(Array.from({ length: NAMESPACES }, (_, i) => [`ns-${i}`, { team: `t-${i % 5}` }]));
  return { pods, policies, namespaces };
}

const CONNECT_SCRIPT = `
const net = require('node:net');
const [host, port, n] = process.argv.slice(1);
(async () => {
  const times = [];
  for (let i = 0; i < Number(n); i++) {
    const t0 = process.hrtime.bigint();
    await new Promise((resolve, reject) => { const s = net.connect(Number(port), host, () => { s.destroy(); resolve(); }); s.setTimeout(2000, () => reject(new Error('connect timed out'))); s.once('error', reject); });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({ p50: times[Math.floor(times.length / 2)] }));
})().catch((e) => { console.error(e.message); process.exit(1); });
`;

async function connectP50(lab: Lab, client: string): Promise<number> {
  const out = await lab.exec(client, [process.execPath, '-e', CONNECT_SCRIPT, SERVER, '8080', String(CONNECTS)]);
  return (JSON.parse(out) as { p50: number }).p50;
}

async function main(): Promise<void> {
  const lab = new Lab('kwb-netpol');
  try {
    const rss0 = process.memoryUsage().rss;
    let t0 = performance.now();
    const w = world();
    const generate = ms(t0);
    const compiled = [];
    t0 = performance.now();
    for (let n = 0; n < NODES; n++) compiled.push(compileNode(w, `node-${n}`));
    const compile = ms(t0) / NODES;
    const rssGrowth = (process.memoryUsage().rss - rss0) / 1e6;

    const node = await lab.netns('node');
    const client = await lab.netns('client');
    const server = await lab.netns('server');
    const ipt = await lab.netns('ipt');
    await lab.link({ netns: client, ifName: 'eth0', address: `${CLIENT}/24` }, { netns: node, ifName: 'eth0', address: '10.250.0.1/24' });
    await lab.link({ netns: server, ifName: 'eth0', address: `${SERVER}/24` }, { netns: node, ifName: 'eth1', address: '10.250.1.1/24' });
    await lab.exec(client, ['ip', 'route', 'add', 'default', 'via', '10.250.0.1']);
    await lab.exec(server, ['ip', 'route', 'add', 'default', 'via', '10.250.1.1']);
    await linux.at(node).setSysctls({ 'net/ipv4/ip_forward': '1' });
    await lab.echoServer(server, 8080, 'bench');

    // Full sync per node: render + nft -f of the whole table (best of two, each node's view).
    const nft = new NftablesPolicyBackend(linux.at(node));
    const syncs: number[] = [];
    let counts: Record<string, number> = {};
    for (const c of compiled) {
      let best = Infinity;
      for (let i = 0; i < 2; i++) {
        t0 = performance.now();
        counts = await nft.apply(c);
        best = Math.min(best, ms(t0));
      }
      syncs.push(best + compile);
    }
    const renderOnly = (() => {
      const t = performance.now();
      renderNftables(compiled[0]!);
      return ms(t);
    })();
    // The last synced view is node-(NODES-1)'s; the connection test wants node-0's (the server's).
    // Alternating, three times each: the best p50 of each (the machine's noise only ever adds).
    let withPolicy = Infinity;
    let without = Infinity;
    for (let i = 0; i < 3; i++) {
      await nft.apply(compiled[0]!);
      withPolicy = Math.min(withPolicy, await connectP50(lab, client));
      await nft.remove();
      without = Math.min(without, await connectP50(lab, client));
    }
    await nft.apply(compiled[0]!);

    // One pod's label change: recompile node-0's view and sync it whole.
    const changed = { ...w, pods: w.pods.map((p, i) => (i === 0 ? { ...p, labels: { ...p.labels, app: 'app-7' } } : p)) };
    t0 = performance.now();
    await nft.apply(compileNode(changed, 'node-0'));
    const change = ms(t0);

    // The iptables + ipset backend (legacy iptables: the user-mode Linux kernel's), node-0's view.
    const iptables = new IptablesPolicyBackend(linux.at(ipt), 'legacy');
    t0 = performance.now();
    const iptCounts = await iptables.apply(compiled[0]!);
    const iptFull = ms(t0);
    t0 = performance.now();
    await iptables.apply(compileNode(changed, 'node-0'));
    const iptChange = ms(t0);
    const r = renderIptables(compiled[0]!);

    const ratio = withPolicy / without;
    console.log(`NetworkPolicy at scale: ${POLICIES} policies over ${PODS} pods on ${NODES} nodes (load ${(await import('node:os')).loadavg()[0]!.toFixed(1)})\n`);
    console.log(`generate world            ${fmt(generate)}`);
    console.log(`compile per node          ${fmt(compile)}   (render alone ${fmt(renderOnly)})`);
    console.log(`nftables full sync/node   ${syncs.map(fmt).join(', ')}   (compile + render + nft -f; target <= 2 s)   node-0: ${JSON.stringify(counts)}`);
    console.log(`nftables pod label change ${fmt(change)}   (recompile + whole table)`);
    console.log(`iptables+ipset full sync  ${fmt(iptFull)}   change ${fmt(iptChange)}   ${JSON.stringify(iptCounts)}, ${r.filter.split('\n').length} restore lines`);
    console.log(`connection setup p50      ${withPolicy.toFixed(3)} ms with the table, ${without.toFixed(3)} ms without: ${ratio.toFixed(2)}x (target <= 1.1x; best of 3 alternating runs of ${CONNECTS})`);
    console.log(`RSS growth (world + ${NODES} compiled views) ${rssGrowth.toFixed(0)} MB (target <= 100 MB)`);
  } finally {
    await lab.cleanup();
  }
}

await main();
