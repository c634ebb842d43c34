// Ingress throughput and tail latency (issue 5's goal): wrk from the cluster's `external`
// namespace through kubewire's ingress controller to one backend pod, and in the same run
// through nginx configured as a plain reverse proxy that does what ingress-nginx's nginx
// does per request (upstream keep-alive, its forwarding headers and access log line, as
// many worker processes as ours) in the same node namespace to the same pod; also straight
// to the pod, the ceiling both share. Runs alternate nginx, ours, ours, nginx (best of
// each), so drift weighs on both alike. Everything runs on this machine's 2 cores: wrk,
// proxy and backend compete, as they would on a small node.
//   npm run bench:ingress    DURATION=10 (s per run)  CONNECTIONS=50
//                            WORKERS=<ours: the controller's default>  NGINX_WORKERS=<CPUs, ingress-nginx's worker_processes auto>

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { resourceNamed } from '../src/api/resources.ts';
import type { Pod } from '../src/api/types.ts';
import { ApiClient } from '../src/client/rest.ts';
import { loadCluster } from '../src/cluster/cluster.ts';
import { down, up } from '../src/lifecycle/cluster.ts';
import { run } from '../src/dataplane/linux/exec.ts';
import { defaultIngressWorkers } from '../src/ingress/main.ts';
import { ingressPid } from '../src/ingress/supervisor.ts';
import { netnsPath } from '../src/dataplane/port.ts';
import { cleanupOnInterrupt } from '../src/lab/lab.ts';
import { daemonPaths } from '../src/state/paths.ts';

const DURATION = Number(process.env.DURATION) || 10;
/** Worker processes: each proxy's default unless told (ingress-nginx runs nginx with worker_processes auto). */
const WORKERS = Number(process.env.WORKERS) || defaultIngressWorkers();
const NGINX_WORKERS = Number(process.env.NGINX_WORKERS) || availableParallelism();
const CONNECTIONS = Number(process.env.CONNECTIONS) || 50;
const stateDir = mkdtempSync(join(tmpdir(), 'kwb-state-'));
process.env.KUBEWIRE_STATE_DIR = stateDir;
process.env.KUBECONFIG = join(stateDir, 'kubeconfig'); // the context up merges goes to the scratch state, never ~/.kube/config
const name = `kwbi${process.pid % 10000}`;
const HOST = 'bench.example.com';
const NGINX_PORT = 8081;

interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

const ms = (v: string, unit: string) => Number(v) * ({ us: 0.001, ms: 1, s: 1000 } as Record<string, number>)[unit]!;

/** wrk's summary: Requests/sec, the --latency percentiles, and non-2xx/socket errors. */
function parseWrk(out: string): WrkResult {
  const pct = (p: string) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)$`, 'm').exec(out);
    if (!m) throw new Error(`no ${p}% line in wrk output:\n${out}`);
    return ms(m[1]!, m[2]!);
  };
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)![1]), p50: pct('50'), p99: pct('99'), errors: non2xx + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0) };
}

/** CPU seconds (user + system) a process and its children have used so far. */
function cpuSeconds(pid: number): number {
  const ticks = (p: number) => {
    const fields = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime, stime (in clock ticks)
  };
  const children = (p: number): number[] => readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  const all = [pid, ...children(pid)];
  return all.reduce((sum, p) => sum + ticks(p), 0) / 100; // USER_HZ is 100 on Linux
}

/** A wrk run, and the CPU time the proxy (pid) spent per request during it. */
async function wrk(externalNetns: string, url: string, proxyPid?: number): Promise<WrkResult & { cpuPerRequest?: number }> {
  const cpu0 = proxyPid ? cpuSeconds(proxyPid) : 0;
  const out = await run(['wrk', '-t1', `-c${CONNECTIONS}`, `-d${DURATION}s`, '--latency', '-H', `Host: ${HOST}`, url], { netns: netnsPath(externalNetns) });
  const r = parseWrk(out);
  return proxyPid ? { ...r, cpuPerRequest: (cpuSeconds(proxyPid) - cpu0) / (r.rps * DURATION) } : r;
}

function startNginx(dir: string, nodeNetns: string, backend: string): ChildProcess {
  mkdirSync(join(dir, 'logs'), { recursive: true });
  // A plain reverse proxy doing for each request what ingress-nginx's nginx does by default
  // (rootfs/etc/nginx/template/nginx.tmpl), and so what ours does: HTTP/1.1 keep-alive
  // upstream, the same forwarding headers, the same access log line, buffered.
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes ${NGINX_WORKERS};
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log;
events { worker_connections 4096; }
http {
  log_format upstreaminfo '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_length $request_time [default-backend-80] [] $upstream_addr $upstream_response_length $upstream_response_time $upstream_status $request_id';
  access_log ${dir}/logs/access.log upstreaminfo buffer=64k flush=1s;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  upstream backend { server ${backend}; keepalive 320; }
  server {
    listen ${NGINX_PORT};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Request-ID $request_id;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Scheme $scheme;
      proxy_set_header X-Scheme $scheme;
      proxy_set_header X-Original-Forwarded-For $http_x_forwarded_for;
      proxy_set_header Proxy "";
    }
  }
}
`,
  );
  return spawn('nsenter', [`--net=${netnsPath(nodeNetns)}`, '--', 'nginx', '-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: 'ignore' });
}

const rss = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

let nginx: ChildProcess | undefined;
const cleanup = async () => {
  nginx?.kill('SIGTERM');
  await down(name).catch((e: unknown) => console.error(`down: ${e instanceof Error ? e.message : String(e)}`));
  rmSync(stateDir, { recursive: true, force: true });
};
cleanupOnInterrupt(cleanup);
try {
  await up({ name, nodes: 1, mode: 'routed', podCIDR: '10.244.0.0/16', nodeCIDRMask: 24, serviceCIDR: '10.96.0.0/12', ingressWorkers: WORKERS });
  const plan = loadCluster(name);
  const node = plan.nodes[0]!;
  const client = new ApiClient(daemonPaths(name).socket);
  await client.create(resourceNamed('deployments')!, {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'backend', namespace: 'default' },
    spec: { replicas: 1, selector: { matchLabels: { app: 'backend' } }, template: { metadata: { labels: { app: 'backend' } }, spec: { containers: [{ name: 'hello', image: 'hello', ports: [{ containerPort: 8080 }] }] } } },
  } as never);
  await client.create(resourceNamed('services')!, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'backend', namespace: 'default' }, spec: { selector: { app: 'backend' }, ports: [{ port: 80, targetPort: 8080 }] } } as never);
  await client.create(resourceNamed('ingresses')!, {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: 'backend', namespace: 'default' },
    spec: { rules: [{ host: HOST, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'backend', port: { number: 80 } } } }] } }] },
  } as never);
  let podIP = '';
  for (let i = 0; i < 200 && !podIP; i++) {
    const pods = (await client.list<Pod>(resourceNamed('pods')!, 'default')).items;
    podIP = pods.find((p) => p.status?.phase === 'Running')?.status?.podIP ?? '';
    if (!podIP) await new Promise((r) => setTimeout(r, 100));
  }
  if (!podIP) throw new Error('the backend pod did not start');
  const ours = `http://${node.ip}/`;
  const viaNginx = `http://${node.ip}:${NGINX_PORT}/`;
  for (let i = 0; i < 100; i++) {
    const r = await run(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', `Host: ${HOST}`, ours], { netns: netnsPath(plan.externalNetns) }).catch(() => '');
    if (r === '200') break;
    await new Promise((res) => setTimeout(res, 100));
  }
  nginx = startNginx(join(stateDir, 'nginx'), node.netns, `${podIP}:8080`);
  await new Promise((r) => setTimeout(r, 500));

  console.log(`Ingress vs nginx, ${WORKERS === NGINX_WORKERS ? `${WORKERS} worker process(es) each` : `${WORKERS} worker process(es) vs ${NGINX_WORKERS}`}: wrk -t1 -c${CONNECTIONS} -d${DURATION}s from the external namespace to node ${node.ip}, one backend pod (${podIP}, built-in hello workload); best of two runs each, alternating\n`);
  const oursPid = ingressPid(name, node.name)!;
  // Warm both (JIT, pools), then measure.
  await wrk(plan.externalNetns, ours);
  await wrk(plan.externalNetns, viaNginx);
  const n1 = await wrk(plan.externalNetns, viaNginx, nginx.pid);
  const o1 = await wrk(plan.externalNetns, ours, oursPid);
  const o2 = await wrk(plan.externalNetns, ours, oursPid);
  const n2 = await wrk(plan.externalNetns, viaNginx, nginx.pid);
  const direct = await wrk(plan.externalNetns, `http://${podIP}:8080/`);
  type Run = Awaited<ReturnType<typeof wrk>>;
  const best = (a: Run, b: Run): Run => ({ rps: Math.max(a.rps, b.rps), p50: Math.min(a.p50, b.p50), p99: Math.min(a.p99, b.p99), errors: a.errors + b.errors, cpuPerRequest: Math.min(a.cpuPerRequest!, b.cpuPerRequest!) });
  const o = best(o1, o2);
  const n = best(n1, n2);
  const row = (cells: string[]) => console.log(cells.map((c, i) => c.padEnd([26, 14, 12, 12, 10, 16][i] ?? 12)).join(''));
  row(['path', 'requests/s', 'p50', 'p99', 'errors', 'proxy CPU/req']);
  for (const [label, r] of [['direct to the pod', direct], ['nginx (reverse proxy)', n], ['kubewire ingress', o]] as const) {
    row([label, r.rps.toFixed(0), `${r.p50.toFixed(2)} ms`, `${r.p99.toFixed(2)} ms`, String(r.errors), r.cpuPerRequest ? `${(r.cpuPerRequest * 1e6).toFixed(0)} us` : '-']);
  }
  console.log(`\nkubewire / nginx: requests/s ${(o.rps / n.rps).toFixed(2)}x (goal >= 0.6x), p99 ${(o.p99 / n.p99).toFixed(2)}x (goal <= 1.5x)`);
  console.log(`ingress controller RSS after the runs: ${rss(oursPid).toFixed(0)} MB`);
} finally {
  await cleanup();
}
