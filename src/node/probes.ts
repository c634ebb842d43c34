// Container probes, as the kubelet runs them: startup, liveness and readiness, each an
// httpGet, tcpSocket or grpc check made from the node toward the pod's IP (the node's own
// network namespace, as the kubelet's host network: nc for HTTP and TCP, curl for HTTPS and
// gRPC's HTTP/2), or an exec inside the pod's namespace.
// Upstream's timing: the first probe after initialDelaySeconds, then every periodSeconds,
// each given timeoutSeconds; a result changes after successThreshold successes or
// failureThreshold failures in a row. Readiness starts failed and liveness succeeded;
// startup gates the other two until it succeeds once. A liveness (or startup) failure
// trips the container: it is killed and restarted. The decisions are pure; the manager
// below keeps one timer per probe and asks a runner to make the check.

import type { Container, Probe } from '../api/types.ts';

export type ProbeKind = 'startup' | 'liveness' | 'readiness';

export const PROBE_FIELD: Record<ProbeKind, 'startupProbe' | 'livenessProbe' | 'readinessProbe'> = { startup: 'startupProbe', liveness: 'livenessProbe', readiness: 'readinessProbe' };

/** A probe's timing with upstream's defaults. */
export function probeTiming(p: Probe): { initialDelayMs: number; periodMs: number; timeoutS: number; successThreshold: number; failureThreshold: number } {
  return {
    initialDelayMs: (p.initialDelaySeconds ?? 0) * 1000,
    periodMs: (p.periodSeconds ?? 10) * 1000,
    timeoutS: p.timeoutSeconds ?? 1,
    successThreshold: p.successThreshold ?? 1,
    failureThreshold: p.failureThreshold ?? 3,
  };
}

/** One probe's state: its current result and the run of equal outcomes behind it. */
export interface ProbeState {
  result: boolean;
  last?: boolean;
  run: number;
  /** A tripped liveness or startup probe waits for the container's next start. */
  onHold: boolean;
  /** A startup probe that succeeded is done. */
  done: boolean;
}

export function initialProbeState(kind: ProbeKind): ProbeState {
  return { result: kind === 'liveness', run: 0, onHold: false, done: false };
}

/** The state after one outcome (pure): whether the result changed, and whether the container must be killed. */
export function observeProbe(kind: ProbeKind, probe: Probe, state: ProbeState, ok: boolean): { state: ProbeState; changed: boolean; tripped: boolean } {
  const t = probeTiming(probe);
  const run = state.last === ok ? state.run + 1 : 1;
  const next: ProbeState = { ...state, last: ok, run };
  if ((ok && run < t.successThreshold) || (!ok && run < t.failureThreshold)) return { state: next, changed: false, tripped: false };
  next.result = ok;
  const changed = next.result !== state.result;
  if (kind === 'startup' && ok) next.done = true;
  const tripped = !ok && kind !== 'readiness';
  if (tripped) {
    next.onHold = true;
    next.run = 0;
  }
  return { state: next, changed, tripped };
}

export interface ProbeTarget {
  podIP: string;
  /** The pod's network namespace (a path), where exec probes run. */
  podNetns: string;
  /** The node's network namespace (a path), where network probes come from. */
  nodeNetns: string;
  /** The container's user, for exec probes. */
  user?: { uid: number; gid: number };
}

/** A check to run: a command in a namespace, with its input; how to read its output. */
export interface ProbeCommand {
  netns: string;
  argv: string[];
  input?: string;
  /** Reads the command's output (when it exited 0): success, and what to say on failure. */
  judge: (stdout: string) => { ok: boolean; message: string };
}

/** A named port looked up in the container's ports. */
function portOf(c: Container, port: number | string): number | undefined {
  if (typeof port === 'number') return port;
  return c.ports?.find((p) => p.name === port)?.containerPort;
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** grpc.health.v1.HealthCheckRequest{service} in a gRPC frame (uncompressed, 4-byte length). */
export function grpcHealthRequest(service = ''): string {
  const body = service ? `\x0a${String.fromCharCode(service.length)}${service}` : '';
  const n = body.length;
  return `\x00${String.fromCharCode((n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255)}${body}`;
}

/** Whether a HealthCheckResponse frame says SERVING (status field 1 = 1). */
export function grpcServing(frame: string): boolean {
  return frame.length >= 7 && frame.slice(5).includes('\x08\x01');
}

/** The check a probe makes (pure): curl, nc or the probe's own command, with the probe's timeout. */
export function probeCommand(probe: Probe, c: Container, t: ProbeTarget): ProbeCommand | string {
  const { timeoutS } = probeTiming(probe);
  if (probe.httpGet) {
    const port = portOf(c, probe.httpGet.port);
    if (port === undefined) return `port ${JSON.stringify(probe.httpGet.port)} is not a port of container ${c.name}`;
    const https = probe.httpGet.scheme === 'HTTPS';
    const host = probe.httpGet.host || t.podIP;
    const path = probe.httpGet.path || '/';
    const target = path.startsWith('/') ? path : `/${path}`;
    const given = probe.httpGet.httpHeaders ?? [];
    const has = (name: string) => given.some((h) => h.name.toLowerCase() === name);
    // As the kubelet: 200-399 is success (a redirect is not followed).
    const judgeCode = (code: number) => (code >= 200 && code < 400 ? { ok: true, message: '' } : { ok: false, message: `HTTP probe failed with statuscode: ${code}` });
    if (!https) {
      // HTTP/1.1 over nc (curl costs 50 ms of CPU a start here, nc a few): the status line is all a probe reads.
      const headers = [...(has('host') ? [] : [`Host: ${hostPort(host, port)}`]), ...(has('user-agent') ? [] : ['User-Agent: kube-probe/1.31']), ...(has('accept') ? [] : ['Accept: */*']), ...given.map((h) => `${h.name}: ${h.value}`), 'Connection: close'];
      return {
        netns: t.nodeNetns,
        argv: ['nc', '-N', '-w', String(timeoutS), host, String(port)],
        input: `GET ${target} HTTP/1.1\r\n${headers.map((h) => `${h.replace(/[\r\n]/g, '')}\r\n`).join('')}\r\n`,
        judge: (out) => {
          const status = /^HTTP\/\d(?:\.\d)? (\d{3})/.exec(out);
          return status ? judgeCode(Number(status[1])) : { ok: false, message: `Get "http://${hostPort(host, port)}${target}": ${out ? 'malformed HTTP response' : 'EOF (no answer within the timeout)'}` };
        },
      };
    }
    const url = `https://${hostPort(host, port)}${target}`;
    const headers = given.flatMap((h) => ['-H', `${h.name}: ${h.value}`]);
    return {
      netns: t.nodeNetns,
      argv: ['curl', '-sS', '-g', '-k', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', String(timeoutS), ...(has('user-agent') ? [] : ['-H', 'User-Agent: kube-probe/1.31']), '-H', 'Accept: */*', ...headers, url],
      judge: (out) => judgeCode(Number(out.trim())),
    };
  }
  if (probe.tcpSocket) {
    const port = portOf(c, probe.tcpSocket.port);
    if (port === undefined) return `port ${JSON.stringify(probe.tcpSocket.port)} is not a port of container ${c.name}`;
    return { netns: t.nodeNetns, argv: ['nc', '-z', '-w', String(timeoutS), probe.tcpSocket.host || t.podIP, String(port)], judge: () => ({ ok: true, message: '' }) };
  }
  if (probe.grpc) {
    const url = `http://${hostPort(t.podIP, probe.grpc.port)}/grpc.health.v1.Health/Check`;
    return {
      netns: t.nodeNetns,
      argv: ['curl', '-sS', '--http2-prior-knowledge', '--max-time', String(timeoutS), '-X', 'POST', '-H', 'content-type: application/grpc', '-H', 'te: trailers', '-H', 'User-Agent: kube-probe/1.31', '--data-binary', '@-', '-o', '-', url],
      input: grpcHealthRequest(probe.grpc.service),
      judge: (out) => (grpcServing(out) ? { ok: true, message: '' } : { ok: false, message: `service unhealthy (responded with "NOT_SERVING")` }),
    };
  }
  if (probe.exec?.command?.length) {
    const user = t.user ? ['setpriv', `--reuid=${t.user.uid}`, `--regid=${t.user.gid}`, '--clear-groups', '--'] : [];
    return { netns: t.podNetns, argv: ['timeout', '-s', 'KILL', `${timeoutS}s`, ...user, ...probe.exec.command], judge: () => ({ ok: true, message: '' }) };
  }
  return 'the probe has no handler';
}

/** Runs a command to its end in a namespace: its stdout, or a rejection saying why it failed. */
export type ProbeRunner = (netns: string, argv: string[], input?: string) => Promise<string>;

interface Worker {
  kind: ProbeKind;
  probe: Probe;
  state: ProbeState;
  timer?: NodeJS.Timeout;
  running: boolean;
}

interface ContainerProbes {
  instance: string;
  container: Container;
  target: ProbeTarget;
  workers: Partial<Record<ProbeKind, Worker>>;
}

export interface ProbeEvents {
  /** A probe's result changed: the pod's status is due. */
  changed(podKey: string): void;
  /** A probe failed (an Unhealthy event). */
  failed(podKey: string, container: string, kind: ProbeKind, message: string): void;
  /** A liveness or startup probe tripped: the container is to be killed and restarted. */
  tripped(podKey: string, container: string, kind: ProbeKind, message: string): void;
}

/** The probes of every running container of a node's pods: one timer each. */
export class ProbeManager {
  private readonly pods = new Map<string, Map<string, ContainerProbes>>();

  constructor(private readonly run: ProbeRunner, private readonly on: ProbeEvents) {}

  /** Probes for a running container instance (its start time and pid); a new instance starts them afresh. */
  ensure(podKey: string, uid: string, c: Container, instance: string, target: ProbeTarget): void {
    const kinds = (Object.keys(PROBE_FIELD) as ProbeKind[]).filter((k) => c[PROBE_FIELD[k]]);
    if (!kinds.length) return this.forgetContainer(uid, c.name);
    const containers = this.pods.get(uid) ?? new Map<string, ContainerProbes>();
    this.pods.set(uid, containers);
    const known = containers.get(c.name);
    if (known?.instance === instance) return;
    if (known) this.stopWorkers(known);
    const cp: ContainerProbes = { instance, container: c, target, workers: {} };
    containers.set(c.name, cp);
    for (const kind of kinds) {
      const probe = c[PROBE_FIELD[kind]]!;
      const w: Worker = { kind, probe, state: initialProbeState(kind), running: false };
      cp.workers[kind] = w;
      const t = probeTiming(probe);
      const tick = () => {
        w.timer = setTimeout(tick, t.periodMs);
        w.timer.unref();
        void this.probeOnce(podKey, cp, w);
      };
      w.timer = setTimeout(tick, t.initialDelayMs);
      w.timer.unref();
    }
  }

  private async probeOnce(podKey: string, cp: ContainerProbes, w: Worker): Promise<void> {
    if (w.running || w.state.onHold || w.state.done) return;
    // Liveness and readiness wait for the startup probe's first success.
    const startup = cp.workers.startup;
    if (w.kind !== 'startup' && startup && !startup.state.done) return;
    w.running = true;
    let ok: boolean;
    let message = '';
    try {
      const cmd = probeCommand(w.probe, cp.container, cp.target);
      if (typeof cmd === 'string') {
        ok = false;
        message = cmd;
      } else {
        const out = await this.run(cmd.netns, cmd.argv, cmd.input);
        ({ ok, message } = cmd.judge(out));
      }
    } catch (e) {
      ok = false;
      message = probeFailure(w.probe, e, cp.target.podIP);
    } finally {
      w.running = false;
    }
    if (cp.workers[w.kind] !== w || w.state.onHold) return; // forgotten or held meanwhile
    const { state, changed, tripped } = observeProbe(w.kind, w.probe, w.state, ok);
    w.state = state;
    const label = w.kind[0]!.toUpperCase() + w.kind.slice(1);
    if (!ok) this.on.failed(podKey, cp.container.name, w.kind, `${label} probe failed: ${message}`);
    if (tripped) this.on.tripped(podKey, cp.container.name, w.kind, message);
    if (changed) this.on.changed(podKey);
  }

  /** Whether the container has started (its startup probe succeeded, or it has none). */
  started(uid: string, container: string): boolean {
    const s = this.pods.get(uid)?.get(container)?.workers.startup;
    return !s || s.state.done;
  }

  /** Whether the container is ready (its readiness probe's result, once started; ready when it has none). */
  ready(uid: string, container: string): boolean {
    if (!this.started(uid, container)) return false;
    const r = this.pods.get(uid)?.get(container)?.workers.readiness;
    return !r || r.state.result;
  }

  /** Stops probing a container instance that is being killed; its results stay, and ensure() leaves the instance alone until another starts. */
  hold(uid: string, container: string): void {
    for (const w of Object.values(this.pods.get(uid)?.get(container)?.workers ?? {})) {
      clearTimeout(w.timer);
      w.state = { ...w.state, onHold: true };
    }
  }

  forgetContainer(uid: string, container: string): void {
    const cp = this.pods.get(uid)?.get(container);
    if (!cp) return;
    this.stopWorkers(cp);
    this.pods.get(uid)!.delete(container);
  }

  forget(uid: string): void {
    for (const cp of this.pods.get(uid)?.values() ?? []) this.stopWorkers(cp);
    this.pods.delete(uid);
  }

  stop(): void {
    for (const uid of [...this.pods.keys()]) this.forget(uid);
  }

  private stopWorkers(cp: ContainerProbes): void {
    for (const w of Object.values(cp.workers)) clearTimeout(w.timer);
    cp.workers = {};
  }
}

/** What a failed check says, as the kubelet words it. */
function probeFailure(probe: Probe, e: unknown, podIP: string): string {
  const text = (e instanceof Error ? e.message : String(e)).trim().split('\n').filter(Boolean).pop() ?? 'failed';
  if (probe.exec) {
    const code = /exit code (\d+)/.exec(text)?.[1];
    // timeout(1) killed it: the probe's timeout.
    if (code === '137') return `command ${JSON.stringify(probe.exec.command?.join(' '))} timed out`;
    return code ? `command ${JSON.stringify(probe.exec.command?.join(' '))} exited with code ${code}` : `command ${JSON.stringify(probe.exec.command?.join(' '))} failed: ${text}`;
  }
  const curl = /curl: \((\d+)\) (.*)$/.exec(text);
  if (probe.httpGet && curl) {
    const scheme = probe.httpGet.scheme === 'HTTPS' ? 'https' : 'http';
    const what = `Get "${scheme}://${probe.httpGet.host || podIP}:${String(probe.httpGet.port)}${probe.httpGet.path ?? '/'}"`;
    return curl[1] === '28' ? `${what}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)` : `${what}: ${curl[2]}`;
  }
  if (probe.httpGet) {
    const where = `${probe.httpGet.host || podIP}:${String(probe.httpGet.port)}`;
    return `Get "http://${where}${probe.httpGet.path ?? '/'}": dial tcp ${where}: connect: connection refused`;
  }
  if (probe.grpc && curl) return curl[1] === '28' ? 'timeout: health rpc did not complete within the probe timeout' : `failed to connect service ":${probe.grpc.port}": ${curl[2]}`;
  if (probe.tcpSocket) return `dial tcp ${probe.tcpSocket.host || podIP}:${String(probe.tcpSocket.port)}: connect: ${/refused/i.test(text) ? 'connection refused' : text}`;
  return text;
}
