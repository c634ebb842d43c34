// What a trace is, as the CLI prints it, `-o json` gives it and the page draws it (types only:
// the page's bundle takes them without the engine).

/** What the sender saw: the probe's real fate. */
export type Fate = 'connected' | 'refused' | 'unreachable' | 'timeout' | 'sent' | 'answered';

export type HopKind = 'l2' | 'l3' | 'netfilter' | 'ipvs' | 'conntrack' | 'socket' | 'ingress';

export interface Hop {
  /** Where: pod/NS/NAME, node/NAME, network, external. */
  netns: string;
  kind: HopKind;
  in?: string;
  out?: string;
  detail: string;
  rule?: string;
  translation?: string;
  verdict?: string;
}

/** answered: the ingress controller answered the request itself without refusing it (a redirect, app-root, a CORS preflight). */
export type Verdict = 'delivered' | 'answered' | 'rejected' | 'dropped';

export interface Leg {
  verdict: Verdict;
  /** One line, in the seed's words. */
  reason: string;
  hops: Hop[];
}

export interface Trace extends Leg {
  probe: { from: string; protocol: string; dst: string; dport?: number; sport: number; http?: { host: string; path: string; tls?: boolean } };
  /** What the sender saw. */
  fate: Fate;
  destination?: { pod?: string; node?: string; ip: string; port?: number; process?: string };
  reply?: Leg;
}
