// ipset and IPVS as the kernel keeps them, in memory: sets created, filled, swapped and
// destroyed by `ipset restore -exist`; virtual servers and their real servers changed by
// ipvsadm-restore lines and refused as ipvsadm refuses them (a real server of a virtual
// server that does not exist, a virtual server added twice, one deleted that is not there).

import { DataplaneError } from '../port.ts';

export class FakeIpsets {
  private readonly sets = new Map<string, { type: string; members: Set<string> }>();

  /** All of the script, or nothing (as one restore). */
  restore(script: string): void {
    const sets = new Map([...this.sets].map(([k, v]) => [k, { type: v.type, members: new Set(v.members) }]));
    const need = (name: string) => sets.get(name) ?? fail(`ipset: The set with the given name does not exist: ${name}`);
    for (const line of script.split('\n').map((l) => l.trim()).filter(Boolean)) {
      const [verb, name, ...rest] = line.split(/\s+/);
      switch (verb) {
        case 'create':
          if (!sets.has(name!)) sets.set(name!, { type: rest[0] ?? '', members: new Set() });
          break;
        case 'add':
          need(name!).members.add(rest.join(' '));
          break;
        case 'del':
          need(name!).members.delete(rest.join(' '));
          break;
        case 'flush':
          need(name!).members.clear();
          break;
        case 'swap': {
          const a = need(name!);
          const b = need(rest[0]!);
          sets.set(name!, b);
          sets.set(rest[0]!, a);
          break;
        }
        case 'destroy':
          need(name!);
          sets.delete(name!);
          break;
        default:
          fail(`ipset: unknown command ${JSON.stringify(verb)}`);
      }
    }
    this.sets.clear();
    for (const [k, v] of sets) this.sets.set(k, v);
  }

  names(): string[] {
    return [...this.sets.keys()];
  }
}

function fail(message: string): never {
  throw new DataplaneError(/does not exist|No such/.test(message) ? 'not-found' : /exists/.test(message) ? 'exists' : 'invalid', message);
}

export class FakeIpvs {
  /** "-t VIP:PORT" -> its flags, and its real servers ("RIP:PORT" -> flags). */
  private readonly services = new Map<string, { flags: string; reals: Map<string, string> }>();

  restore(lines: string[]): void {
    for (const raw of lines) {
      const line = raw.trim();
      if (!line) continue;
      const m = /^-([AEDaed]) (-[tu]|--sctp-service) (\S+)(?: -r (\S+))? ?(.*)$/.exec(line) ?? fail(`ipvsadm: bad line ${JSON.stringify(line)}`);
      const [, verb, proto, addr, real, flags] = m;
      const key = `${proto} ${addr}`;
      const svc = this.services.get(key);
      switch (verb) {
        case 'A':
          if (svc) fail('ipvsadm: Service already exists');
          this.services.set(key, { flags: flags!.trim(), reals: new Map() });
          break;
        case 'E':
          (svc ?? fail('ipvsadm: No such service')).flags = flags!.trim();
          break;
        case 'D':
          if (!svc) fail('ipvsadm: No such service');
          this.services.delete(key);
          break;
        default: {
          const s = svc ?? fail('ipvsadm: Service not defined (No such service)');
          if (!real) fail(`ipvsadm: a real server needs -r: ${JSON.stringify(line)}`);
          if (verb === 'a') {
            if (s.reals.has(real!)) fail('ipvsadm: Destination already exists');
            s.reals.set(real!, flags!.trim());
          } else if (!s.reals.has(real!)) fail('ipvsadm: No such destination');
          else if (verb === 'e') s.reals.set(real!, flags!.trim());
          else s.reals.delete(real!);
        }
      }
    }
  }

  /** Connections the test says a real server has ("-t VIP:PORT -r RIP:PORT"); 0 for the rest. */
  readonly open = new Map<string, number>();

  connections(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [key, s] of this.services) for (const real of s.reals.keys()) out.set(`${key} -r ${real}`, this.open.get(`${key} -r ${real}`) ?? 0);
    return out;
  }

  save(): string {
    const out: string[] = [];
    for (const [key, s] of this.services) {
      out.push(`-A ${key} ${s.flags}`.trim());
      for (const [real, flags] of s.reals) out.push(`-a ${key} -r ${real} ${flags}`.trim());
    }
    return out.length ? `${out.join('\n')}\n` : '';
  }
}
