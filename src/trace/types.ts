// What a trace is, as the CLI prints it, `-o json` gives it and the page draws it (types only:
// the page's bundle takes them without the engine).

/** What the sender saw: the probe's real fate. */
export type Fate = 'connected' | 'refused' | 'unreachable' | 'timeout' | 'sent' | 'answered';

export type HopKind = 'l2' | 'l3' | 'netfilter' | 'ipvs' | 'conntrack' | 'socket' | 'ingress';

/** The netfilter rule (or chain policy) a hop passed: where it sits and what it says. */
export interface HopRule {
  source: 'nft' | 'iptables';
  table: string;
  chain: string;
  hook?: string;
  /** nft: the rule's handle, where the listing read after the probes had it. */
  handle?: number;
  /** iptables: the rule's number in its chain (TRACE's). */
  number?: number;
  comment?: string;
}

/**
 * One address change on a hop: a source or destination NAT seen between hooks, a conntrack
 * entry's DNAT/SNAT, IPVS's choice, or the ingress controller's new connection to an endpoint
 * (`connection`, with the source port it leaves from). Addresses are ADDRESS[:PORT].
 */
export interface Translation {
  kind: 'source' | 'destination' | 'SNAT' | 'DNAT' | 'connection';
  from?: string;
  to: string;
  sourcePort?: number;
}

/** A conntrack entry as a hop shows it. */
export interface HopConntrack {
  protocol: string;
  state?: string;
  flags: string[];
  original: { src: string; dst: string; sport?: number; dport?: number };
  reply: { src: string; dst: string; sport?: number; dport?: number };
}

export interface Hop {
  /** Where: pod/NS/NAME, node/NAME, network, external. */
  netns: string;
  kind: HopKind;
  in?: string;
  out?: string;
  /** What happened here, in words (the text and the page print it). */
  detail: string;
  /** The rule's text, as the kernel lists it. */
  rule?: string;
  /** `nat` in words (translationText). */
  translation?: string;
  verdict?: string;
  /** The same, structured: the rule's place, the address changes, the conntrack entry. */
  netfilter?: HopRule;
  nat?: Translation[];
  conntrack?: HopConntrack;
  /** On the hop that ended the packet: why, as the verdict's reason says it. */
  cause?: string;
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
