// Writes that retry on conflict, as client-go's retry.RetryOnConflict: a component reads
// (from its informer's cache, which may be a step behind), changes and writes with the
// resourceVersion it read; a 409 Conflict means someone wrote in between, so it reads the
// object again from the server and tries again, a few times, a few milliseconds apart.

import type { ResourceType } from '../api/resources.ts';
import type { KubeObject } from '../api/types.ts';
import type { ObjectClient } from './objects.ts';
import { isConflict } from './status.ts';

/** client-go's retry.DefaultRetry: 5 tries, 10 ms apart, ±10 %. */
export const DEFAULT_RETRY = { steps: 5, delayMs: 10, jitter: 0.1 };

/** Runs `fn` until it does not fail with a Conflict, at most `steps` times; the last failure is thrown. */
export async function retryOnConflict<T>(fn: (attempt: number) => Promise<T>, backoff = DEFAULT_RETRY): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      if (!isConflict(e) || attempt + 1 >= backoff.steps) throw e;
      await new Promise((r) => setTimeout(r, backoff.delayMs * (1 + backoff.jitter * (2 * Math.random() - 1))));
    }
  }
}

const copyOf = <T>(o: T): T => structuredClone(o);

/**
 * Get (first `cached`, then from the server), change, Update, retried on conflict. `change`
 * gets a copy to change; undefined from it: nothing to write (the answer is the object read).
 */
export async function updateWithRetry<T extends KubeObject>(client: ObjectClient, rt: ResourceType, cached: T, change: (obj: T) => T | undefined): Promise<T> {
  return retryOnConflict(async (attempt) => {
    const current = attempt === 0 ? cached : await client.get<T>(rt, cached.metadata.namespace, cached.metadata.name);
    const next = change(copyOf(current));
    return next ? client.update<T>(rt, next) : current;
  });
}

/** Writes `status` on the object's status subresource, from `cached`, retried on conflict. */
export async function updateStatusWithRetry<T extends KubeObject>(client: ObjectClient, rt: ResourceType, cached: T, status: unknown): Promise<T> {
  return retryOnConflict(async (attempt) => {
    const current = attempt === 0 ? cached : await client.get<T>(rt, cached.metadata.namespace, cached.metadata.name);
    return client.updateStatus<T>(rt, { ...current, status });
  });
}
