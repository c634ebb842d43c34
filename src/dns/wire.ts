// What the server checks in a query's bytes before it answers (pure): the question as the
// client wrote it (its labels byte for byte, so that the answer echoes it and never a
// re-encoding of it), and the EDNS OPT record as RFC 6891 orders it — one at most (§6.1.1:
// more is FORMERR), version 0 only (§6.1.3: a higher one is BADVERS). dns-packet decodes a
// label holding a dot as two labels and bytes that are not UTF-8 as U+FFFD; both would change
// the question if we answered from its decoding.

export interface Question {
  /** The labels as sent, without the root. */
  labels: Buffer[];
  qtype: number;
  qclass: number;
  /** The question's bytes run from 12 to here (name, QTYPE, QCLASS). */
  end: number;
}

export interface Edns {
  udpSize: number;
  version: number;
}

export type Inspection =
  | { ok: false; rcode: 'FORMERR' | 'NOTIMP' }
  | { ok: true; question: Question; edns?: Edns };

const HEADER = 12;
const TYPE_OPT = 41;
/** RFC 1035 §2.3.4: 63 bytes a label, 255 a name (the length bytes and the root included). */
const MAX_LABEL = 63;
const MAX_NAME = 255;

/**
 * A query's question and EDNS, or the code its answer carries: NOTIMP for an opcode other
 * than QUERY, FORMERR for anything that does not parse, not one question, a compression
 * pointer in the question (it can only point back into the header), an OPT not at the root
 * or more than one OPT.
 */
export function inspectQuery(query: Buffer): Inspection {
  if (query.length < HEADER) return { ok: false, rcode: 'FORMERR' };
  if (((query[2]! >> 3) & 0x0f) !== 0) return { ok: false, rcode: 'NOTIMP' };
  if (query.readUInt16BE(4) !== 1) return { ok: false, rcode: 'FORMERR' };
  const question = readQuestion(query);
  if (!question) return { ok: false, rcode: 'FORMERR' };
  let offset = question.end;
  const records = query.readUInt16BE(6) + query.readUInt16BE(8) + query.readUInt16BE(10);
  const additionalFrom = query.readUInt16BE(6) + query.readUInt16BE(8);
  let edns: Edns | undefined;
  for (let i = 0; i < records; i++) {
    const nameStart = offset;
    offset = skipName(query, offset);
    if (offset < 0 || offset + 10 > query.length) return { ok: false, rcode: 'FORMERR' };
    const type = query.readUInt16BE(offset);
    const rdEnd = offset + 10 + query.readUInt16BE(offset + 8);
    if (rdEnd > query.length) return { ok: false, rcode: 'FORMERR' };
    if (type === TYPE_OPT) {
      // §6.1.1: only in the additional section, owned by the root, and once.
      if (i < additionalFrom || edns || offset !== nameStart + 1 || query[nameStart] !== 0) return { ok: false, rcode: 'FORMERR' };
      edns = { udpSize: query.readUInt16BE(offset + 2), version: query[offset + 5]! };
    }
    offset = rdEnd;
  }
  return edns ? { ok: true, question, edns } : { ok: true, question };
}

/** The question at offset 12: labels without compression, within RFC 1035's lengths. */
export function readQuestion(query: Buffer): Question | undefined {
  const labels: Buffer[] = [];
  let i = HEADER;
  while (true) {
    if (i >= query.length) return undefined;
    const len = query[i]!;
    if (len === 0) break;
    if (len > MAX_LABEL) return undefined; // a pointer (0xc0) or a reserved label type
    if (i + 1 + len > query.length || i + 1 + len - HEADER + 1 > MAX_NAME) return undefined;
    labels.push(query.subarray(i + 1, i + 1 + len));
    i += 1 + len;
  }
  const end = i + 5;
  if (end > query.length) return undefined;
  return { labels, qtype: query.readUInt16BE(i + 1), qclass: query.readUInt16BE(i + 3), end };
}

/** The offset after a record's owner name (labels, ending at the root or a pointer), or -1. */
function skipName(b: Buffer, i: number): number {
  while (i < b.length) {
    const len = b[i]!;
    if (len === 0) return i + 1;
    if ((len & 0xc0) === 0xc0) return i + 2 <= b.length ? i + 2 : -1;
    if (len > MAX_LABEL) return -1;
    i += 1 + len;
  }
  return -1;
}

/** Letters, digits, '-' and '_': every label of a Kubernetes name (DNS-1123 labels, _port._proto). */
const PLAIN_LABEL = /^[A-Za-z0-9_-]+$/;

/**
 * The name in presentation form when every label is plain (what records.ts answers), or
 * undefined: a label holding a dot, a space, a backslash or any other byte is never one of
 * the cluster's names, and its presentation form would need escapes (`\.`, `\DDD`).
 */
export function plainName(labels: Buffer[]): string | undefined {
  const text = labels.map((l) => l.toString('latin1'));
  return text.every((l) => PLAIN_LABEL.test(l)) ? text.join('.') : undefined;
}

/** Whether a name's labels end with the zone's (case-insensitively; pure). */
export function inZone(labels: Buffer[], zone: string): boolean {
  const zoneLabels = zone.toLowerCase().split('.').filter(Boolean);
  if (labels.length < zoneLabels.length) return false;
  const tail = labels.slice(labels.length - zoneLabels.length);
  return tail.every((l, i) => l.toString('latin1').toLowerCase() === zoneLabels[i]);
}

/** A response encoded without a question, with the query's question bytes put back in (QDCOUNT 1). dns-packet compresses no names, so no offset moves. */
export function withQuestion(response: Buffer, query: Buffer, question: Question): Buffer {
  const out = Buffer.concat([response.subarray(0, HEADER), query.subarray(HEADER, question.end), response.subarray(HEADER)]);
  out.writeUInt16BE(1, 4);
  return out;
}

/** The question bytes of a message (12 to the end of its first question), or undefined: what the fuzz test compares. */
export function questionBytes(message: Buffer): Buffer | undefined {
  if (message.length < HEADER || message.readUInt16BE(4) === 0) return undefined;
  const q = readQuestion(message);
  return q ? message.subarray(HEADER, q.end) : undefined;
}

/** OUR_UDP: the payload size we advertise. */
export const OUR_UDP = 1232;
const RCODE_BADVERS = 16;

/**
 * BADVERS (RFC 6891 §6.1.3, §7): the question echoed, header RCODE 0 and the upper eight bits
 * of the extended RCODE (16 >> 4 = 1) in our OPT, which carries the version we speak (0).
 */
export function badVersion(query: Buffer, question: Question): Buffer {
  const q = query.subarray(HEADER, question.end);
  const out = Buffer.alloc(HEADER + q.length + 11);
  query.copy(out, 0, 0, 3); // ID, flags as asked
  out[2] = (out[2]! | 0x80) & ~0x06; // QR set, AA and TC clear
  out[3] = 0x80 | (RCODE_BADVERS & 0x0f); // RA, the code's low four bits
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(1, 10);
  q.copy(out, HEADER);
  const opt = HEADER + q.length;
  out[opt] = 0; // the root
  out.writeUInt16BE(TYPE_OPT, opt + 1);
  out.writeUInt16BE(OUR_UDP, opt + 3);
  out[opt + 5] = RCODE_BADVERS >> 4;
  out[opt + 6] = 0; // version 0
  return out;
}
