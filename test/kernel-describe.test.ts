// `describe pod` (and `describe node`) of a cluster in its own kernel, run on the host (no root, no kernel): which
// command lines stay on the host, and the description made from what a stand-in guest end
// answers: the pod's view of names read there, `ip` and `bridge` run there in the pod's and
// the node's namespaces, their output turned into the Network section.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Pod } from '../src/api/types.ts';
import { describePodInKernel } from '../src/cli/describe-kernel.ts';
import type { ClusterPlan } from '../src/cluster/plan.ts';
import { run } from '../src/dataplane/linux/exec.ts';
import { describedOnHost, readInKernel, runsInGuest } from '../src/kernel/client.ts';
import { encodeFrame, FrameReader, type Frame } from '../src/kernel/frames.ts';

test('describe of a pod or a node stays on the host, whatever the options around it; other kinds go in', () => {
  for (const argv of [['describe', 'pod', 'p'], ['describe', 'pods', 'p'], ['describe', 'po/p'], ['describe', '-n', 'kube-system', 'pod/p'], ['describe', '--cluster', 'c', 'pod', 'p'], ['describe', '--namespace=x', 'pod', 'p'], ['describe', 'node', 'n'], ['describe', 'no/n']]) {
    assert.equal(describedOnHost(argv), true, argv.join(' '));
    assert.equal(runsInGuest(argv, true), false, argv.join(' '));
  }
  for (const argv of [['describe', 'service/pod'], ['describe', '-n', 'pod', 'svc', 'x'], ['describe', 'podx', 'p'], ['describe', 'nodex', 'n'], ['get', 'pod', 'p']]) {
    assert.equal(describedOnHost(argv), false, argv.join(' '));
    assert.equal(runsInGuest(argv, true), argv[0] !== 'get', argv.join(' '));
  }
});

const link = (ifname: string, ifindex: number, address: string, more: object = {}) => ({ ifname, ifindex, address, ...more });
const batch = (links: object[], routes: object[], neighbours: object[]) => [links, routes, neighbours].map((x) => JSON.stringify(x)).join('\n');

test("describe pod from the host: the view read in the guest, ip and bridge run there in the pod's and the node's namespaces, all at once", async () => {
  const state = mkdtempSync(join(tmpdir(), 'kwt-kdescribe-'));
  const prev = process.env.KUBEWIRE_STATE_DIR;
  process.env.KUBEWIRE_STATE_DIR = state;
  mkdirSync(join(state, 'c1'));
  writeFileSync(join(state, 'c1', 'kernel.json'), '{"kernel":"uml"}');
  const runs: Array<Extract<Frame, { t: 'run' }> & { input: string }> = [];
  let reads: string[] = [];
  let open = 0;
  let most = 0;
  const podNs = '/var/run/netns/kw_c1_pod_c1-node-1_default_p1';
  const etc = '/run/kubewire/c1/nodes/c1-node-1/pods/default_p1_u1/etc';
  // The guest's side, played here: answers a read at once, each run once its stdin has ended.
  const server = createServer((socket) => {
    let first: Frame | undefined;
    let input = '';
    const r = new FrameReader((f) => {
      first ??= f;
      if (f.t === 'read') {
        reads = f.paths;
        socket.write(encodeFrame({ t: 'out', d: Buffer.from(JSON.stringify({ [`${etc}/resolv.conf`]: 'nameserver 10.96.0.10\n', [`${etc}/hostname`]: 'p1\n' })).toString('base64') }));
        socket.end(encodeFrame({ t: 'exit', code: 0 }));
      }
      if (f.t === 'run') most = Math.max(most, ++open);
      if (f.t === 'in') input += Buffer.from(f.d, 'base64').toString();
      if (f.t === 'eof' && first?.t === 'run') {
        const run = first;
        runs.push({ ...run, input });
        setTimeout(() => {
          open--;
          const inPod = run.netns === podNs;
          const out = run.argv[0] === 'bridge'
            ? JSON.stringify([{ mac: '0a:00:00:00:00:02', ifname: 'veth1', flags: [] }])
            : inPod
              ? batch([link('lo', 1, '00:00:00:00:00:00'), link('eth0', 2, '0a:00:00:00:00:02', { link_index: 7, addr_info: [{ family: 'inet', local: '10.244.0.3', prefixlen: 24 }] })], [{ dst: 'default', gateway: '10.244.0.1', dev: 'eth0' }], [])
              : batch([link('cni0', 3, '0a:00:00:00:00:01'), link('veth1', 7, '0a:00:00:00:00:07', { link_index: 2, master: 'cni0' })], [], [{ dst: '10.244.0.3', lladdr: '0a:00:00:00:00:02', state: ['REACHABLE'], dev: 'cni0' }]);
          socket.write(encodeFrame({ t: 'out', d: Buffer.from(out).toString('base64') }));
          socket.end(encodeFrame({ t: 'exit', code: 0 }));
        }, 30);
      }
    });
    socket.on('data', (b) => r.push(b));
  });
  await new Promise<void>((resolve) => server.listen(join(state, 'c1', 'kernel.sock'), resolve));
  try {
    const plan = { spec: { name: 'c1' }, nodes: [{ name: 'c1-node-1', netns: 'kw_c1_node-1', ip: '172.18.0.11' }] } as unknown as ClusterPlan;
    const pod: Pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p1', namespace: 'default', uid: 'u1' }, spec: { nodeName: 'c1-node-1', containers: [{ name: 'c', image: 'x' }] }, status: { phase: 'Running', podIP: '10.244.0.3' } };
    const text = await describePodInKernel('c1', plan, pod);
    assert.deepEqual(reads, [`${etc}/resolv.conf`, `${etc}/hostname`]);
    assert.match(text, /^Hostname:\s+p1$/m);
    assert.match(text, /^resolv\.conf:\s+nameserver 10\.96\.0\.10$/m);
    assert.match(text, /eth0 \(in the pod\):\s+eth0@if7\s+ifindex 2\s+mac 0a:00:00:00:00:02\s+10\.244\.0\.3\/24/);
    assert.match(text, /veth \(on the node\):\s+veth1@if2\s+ifindex 7 .* master cni0 on c1-node-1/);
    assert.match(text, /Bridge FDB:\s+0a:00:00:00:00:02 behind port veth1/);
    assert.match(text, /Node ARP entry:\s+10\.244\.0\.3 -> 0a:00:00:00:00:02 \(REACHABLE\) on cni0/);
    assert.deepEqual(runs.map((r) => `${r.argv[0]} ${r.netns}`).sort(), ['bridge /var/run/netns/kw_c1_node-1', 'ip /var/run/netns/kw_c1_node-1', `ip ${podNs}`]);
    assert.ok(runs.every((r) => r.argv[0] !== 'ip' || r.input === 'address show\nroute show\nneigh show\n'), 'ip reads its batch from stdin');
    assert.equal(most, 3, 'the three reads run at once');
    // The tools run here again afterwards.
    assert.equal(await run(['echo', 'here']), 'here\n');
    assert.deepEqual(await readInKernel('c1', ['/x']), { [`${etc}/resolv.conf`]: 'nameserver 10.96.0.10\n', [`${etc}/hostname`]: 'p1\n' });
    await assert.rejects(readInKernel('nope', ['/x']), /the kernel of cluster nope is not running/);
  } finally {
    server.close();
    if (prev === undefined) delete process.env.KUBEWIRE_STATE_DIR;
    else process.env.KUBEWIRE_STATE_DIR = prev;
    rmSync(state, { recursive: true, force: true });
  }
});
