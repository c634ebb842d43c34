// Fair queuing of UDP queries by source address (pure data structure). One Node thread
// answers every query; served in arrival order, a pod sending more than the server answers
// fills the socket's buffer and every other pod's query waits behind its backlog (measured:
// one pod sending all 65,536 query types pushed normal queries to 1 s and lost some). Served
// in turn, source by source, as fq_codel serves flows, a flood waits behind its own queries:
// each source holds at most `perSource` queued, all together at most `total`, and what does
// not fit is dropped at once (reading and dropping a datagram costs far less than answering
// it, so the socket's buffer stays short). CoreDNS has nothing of the kind: it answers each
// datagram in a goroutine of its own, on every core.

export class FairQueue<T> {
  /** Queues by source, in turn order: the first is served next, then goes to the back. */
  private readonly queues = new Map<string, T[]>();
  size = 0;

  constructor(
    private readonly perSource: number,
    private readonly total: number,
  ) {}

  /** Queues `item` of `source`; false (dropped) when its queue or the whole is full. */
  push(source: string, item: T): boolean {
    if (this.size >= this.total) return false;
    const q = this.queues.get(source);
    if (q && q.length >= this.perSource) return false;
    if (q) q.push(item);
    else this.queues.set(source, [item]);
    this.size++;
    return true;
  }

  /** The next item in turn: the first source's oldest; that source goes to the back (or away, emptied). */
  shift(): T | undefined {
    const first = this.queues.entries().next();
    if (first.done) return undefined;
    const [source, q] = first.value;
    const item = q.shift()!;
    this.queues.delete(source);
    if (q.length) this.queues.set(source, q);
    this.size--;
    return item;
  }

  /** Sources with queries waiting (nothing is kept of one whose queue emptied). */
  get sources(): number {
    return this.queues.size;
  }
}
