// Fair queuing of queries by source address (pure data structure). One Node thread answers
// every query; served in arrival order, a pod sending more than the server answers fills the
// socket's buffer and every other pod's query waits behind its backlog (measured: one pod
// sending all 65,536 query types pushed normal queries to 1 s and lost some). Served in turn,
// source by source, as fq_codel serves flows, a flood waits behind its own queries: each
// source holds at most `perSource` queued, all together at most `total`, and what does not
// fit is dropped at once (reading and dropping a datagram costs far less than answering it,
// so the socket's buffer stays short). As in fq_codel (RFC 8290 §4.2), a source with nothing
// queued when its query comes is sparse and goes first, ahead of the backlogged ones; a
// source just served stays among the backlogged until its turn comes round, even if it
// emptied, so that a client pipelining one query at a time (TCP) cannot pass for sparse.
// CoreDNS has nothing of the kind: it answers each datagram in a goroutine of its own, on
// every core.

export class FairQueue<T> {
  /** Every listed source's queue (an emptied one stays until its turn, then leaves). */
  private readonly queues = new Map<string, T[]>();
  /** Sources whose query came when they had nothing queued: served first, in arrival order. */
  private readonly sparse = new Set<string>();
  /** Sources served before, in turn order: the first is served next, then goes to the back. */
  private readonly backlogged = new Set<string>();
  size = 0;

  constructor(
    private readonly perSource: number,
    private readonly total: number,
  ) {}

  /**
   * Queues `item` of `source`; false (dropped) when its queue or the whole is full. `bounded`
   * false: queued whatever the bounds (what its caller bounds itself: a TCP connection's few).
   */
  push(source: string, item: T, bounded = true): boolean {
    const q = this.queues.get(source);
    if (bounded && (this.size >= this.total || (q && q.length >= this.perSource))) return false;
    if (q) q.push(item);
    else {
      this.queues.set(source, [item]);
      this.sparse.add(source);
    }
    this.size++;
    return true;
  }

  /** The next item in turn: a sparse source's, else the first backlogged source's oldest; that source goes to the back. */
  shift(): T | undefined {
    for (;;) {
      const list = this.sparse.size ? this.sparse : this.backlogged;
      const first = list.values().next();
      if (first.done) return undefined;
      const source = first.value;
      list.delete(source);
      const q = this.queues.get(source)!;
      if (!q.length) {
        this.queues.delete(source); // emptied since its last turn: it leaves
        continue;
      }
      this.backlogged.add(source);
      this.size--;
      return q.shift();
    }
  }

  /** Sources with queries waiting or a turn to come (nothing is kept of one that emptied, once its turn is past). */
  get sources(): number {
    return this.queues.size;
  }
}
