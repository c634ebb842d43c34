// Running the kubewire CLI as a user would, for the end-to-end tests: each call bounded in
// time, against a cluster in a scratch state directory.
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BIN = join(import.meta.dirname, '..', 'bin', 'kubewire.js');

let kubeconfig: string | undefined;
/**
 * The kubeconfig `up` merges its context into: a file of this test process, never the
 * machine's ~/.kube/config, and not in the state directory (tests check that `down` leaves it
 * empty). Removed when the process ends.
 */
function testKubeconfig(): string {
  if (!kubeconfig) {
    const file = join(tmpdir(), `kwt-kubeconfig-${process.pid}`);
    process.once('exit', () => rmSync(file, { force: true }));
    kubeconfig = file;
  }
  return kubeconfig;
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export class Kube {
  constructor(readonly cluster: string, readonly stateDir: string) {}

  run(args: string[], opts: { input?: string; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<Result> {
    return new Promise((resolve) => {
      const env: NodeJS.ProcessEnv = { ...process.env, KUBEWIRE_STATE_DIR: this.stateDir, KUBEWIRE_CLUSTER: this.cluster, KUBECONFIG: testKubeconfig(), ...opts.env };
      delete env.NODE_EXTRA_CA_CERTS;
      const child = execFile(process.execPath, [BIN, ...args], { env, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      });
      if (opts.input !== undefined) child.stdin!.end(opts.input);
    });
  }

  /** Runs and insists on success; returns stdout. */
  async ok(...args: string[]): Promise<string> {
    const r = await this.run(args);
    if (r.code !== 0) throw new Error(`kubewire ${args.join(' ')} failed (${r.code}): ${r.stderr || r.stdout}`);
    return r.stdout;
  }

  async json<T = any>(...args: string[]): Promise<T> {
    return JSON.parse(await this.ok(...args, '-o', 'json')) as T;
  }

  async apply(yaml: string): Promise<string> {
    const r = await this.run(['apply', '-f', '-'], { input: yaml });
    if (r.code !== 0) throw new Error(`apply failed: ${r.stderr}`);
    return r.stdout;
  }
}

/** Polls `fn` until it returns something (not undefined or false); fails after `timeoutMs` naming `what`. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A "name: value" line of the built-in workload's answer. */
export function field(text: string, name: string): string | undefined {
  return text.match(new RegExp(`^${name}: (.*)$`, 'm'))?.[1];
}

/**
 * The e2e tests' (and benchmarks') usual app: a Deployment `web` of the built-in echo workload
 * (port `http`, 8080) and, unless `service: false`, its Service on port 80.
 */
export function webApp(o: { replicas?: number; serviceType?: 'ClusterIP' | 'NodePort'; namespace?: string; service?: boolean } = {}): string {
  const meta = `{name: web${o.namespace ? `, namespace: ${o.namespace}` : ''}}`;
  const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: ${meta}
spec:
  replicas: ${o.replicas ?? 2}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: kubewire/echo, ports: [{name: http, containerPort: 8080}]}]
`;
  if (o.service === false) return deployment;
  return `${deployment}---
apiVersion: v1
kind: Service
metadata: ${meta}
spec:
  type: ${o.serviceType ?? 'ClusterIP'}
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
`;
}

/** A pod of the built-in echo workload (port 8080), on `node` when given (spec.nodeName: the scheduler is bypassed). */
export function echoPod(name: string, o: { node?: string; labels?: Record<string, string> } = {}): string {
  const labels = o.labels ? `, labels: {${Object.entries(o.labels).map(([k, v]) => `${k}: ${v}`).join(', ')}}` : '';
  return `apiVersion: v1
kind: Pod
metadata: {name: ${name}${labels}}
spec:
${o.node ? `  nodeName: ${o.node}\n` : ''}  containers: [{name: c, image: kubewire/echo, ports: [{containerPort: 8080}]}]
`;
}
