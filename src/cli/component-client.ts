// What every node component program (`kubewire proxy`, `dns`, `ingress`) does before its own
// work: read the kubeconfig (client-go's rules, or the Pod's service account), make one
// RestClient and make sure the server there is the one it trusts. A bad kubeconfig, a wrong
// certificate or a server that refuses the credentials ends the program with one line; a
// server not (yet) there is waited for briefly, then that too is one line.

import { loadRestConfig } from '../client/kubeconfig.ts';
import { ApiError, RestClient, TransportError } from '../client/rest.ts';
import { kubewireVersion } from '../state/paths.ts';

/** A configuration the program cannot start with: main prints its message as one line, exit 1. */
export class ComponentConfigError extends Error {}

export const componentLog = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);

/** The first answer: wrong certificate or credentials end the program at once; a server not (yet) there is waited for, `waitMs` at most. */
export async function firstContact(client: RestClient, source: string, path = '/api/v1/services?limit=1', waitMs = 5000): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      await client.call('GET', path);
      return;
    } catch (e) {
      if (e instanceof ApiError) throw new ComponentConfigError(`the API server at ${client.config.server} refused ${source}: ${e.code} ${e.reason}: ${e.message}`);
      if (!(e instanceof TransportError) || e.permanent || Date.now() > deadline) throw new ComponentConfigError(`${(e as Error).message} (${source})`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** The client of `--kubeconfig`/`--context`, after a first answer from its server. */
export async function connect(o: { kubeconfig?: string; context?: string; component: string }): Promise<RestClient> {
  const rest = loadRestConfig({ kubeconfig: o.kubeconfig, context: o.context });
  const client = new RestClient(rest, { userAgent: `kubewire-${o.component}/v${kubewireVersion()}` });
  try {
    await firstContact(client, rest.source);
  } catch (e) {
    client.close();
    throw e;
  }
  return client;
}

/** What /health-style endpoints add while the API server is away (undefined while it answers). */
export function apiAway(client: RestClient): string | undefined {
  const r = client.reachability;
  return r.since ? `the API server is unreachable since ${new Date(r.since).toISOString()} (${r.why}); serving the state it had then` : undefined;
}

/** Logs each change of reachability in the words every component uses. */
export function logReachability(client: RestClient, what: string, log: (l: string) => void): void {
  client.onReachability = (r) => {
    if (r.since) log(`the API server is away (${r.why}): keeping ${what} as they were; watching again with backoff`);
    else log('the API server answers again: catching up');
  };
}

/** Resolves on SIGTERM or SIGINT (after logging which). */
export function untilSignal(log: (l: string) => void, note: string): Promise<string> {
  return new Promise((resolve) => {
    const stop = (sig: string) => {
      log(`${sig}: ${note}`);
      resolve(sig);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
