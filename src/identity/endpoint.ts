// Where a cluster's API is reached from this machine: https://127.0.0.1:PORT, as kind's
// clusters are. The port is chosen at `up` (a free one) and recorded in the cluster's
// directory, so that a restarted daemon serves on the same one and kubeconfigs stay good.
// A cluster in a kernel of its own serves TLS on a unix socket in the guest; the kernel host
// listens on the host's 127.0.0.1:PORT and relays the bytes (TLS end to end).

import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { writeJsonAtomically } from '../state/files.ts';

export const API_HOST = '127.0.0.1';
const RECORD = 'apiserver.json';

export interface ApiEndpoint {
  /** The TCP port on the host's 127.0.0.1. */
  port: number;
}

export const apiServerUrl = (e: ApiEndpoint): string => `https://${API_HOST}:${e.port}`;

/** The guest daemon's TLS socket, which the kernel host relays 127.0.0.1:PORT to. */
export const guestTlsSocket = (clusterDir: string): string => join(clusterDir, 'apiserver-tls.sock');

/** The cluster's recorded endpoint, or undefined when it has none (a cluster made before kubewire served HTTPS). */
export function readEndpoint(clusterDir: string): ApiEndpoint | undefined {
  const file = join(clusterDir, RECORD);
  if (!existsSync(file)) return undefined;
  const e = JSON.parse(readFileSync(file, 'utf8')) as Partial<ApiEndpoint>;
  if (!Number.isInteger(e.port) || e.port! < 1 || e.port! > 65535) throw new Error(`${file}: port ${JSON.stringify(e.port)} is not a TCP port`);
  return { port: e.port! };
}

/** A port nobody listens on at 127.0.0.1 now (the kernel's choice, as kind lets Docker choose). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, API_HOST, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** The cluster's endpoint: the recorded one, or a free port chosen and recorded now. */
export async function ensureEndpoint(clusterDir: string): Promise<ApiEndpoint> {
  const known = readEndpoint(clusterDir);
  if (known) return known;
  const e = { port: await freePort() };
  writeJsonAtomically(join(clusterDir, RECORD), e, 0o644);
  return e;
}
