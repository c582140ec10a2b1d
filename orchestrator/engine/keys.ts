// Every Redis key the orchestrator uses, built in one place.
import { createHash } from 'node:crypto';

export class Keys {
  constructor(readonly prefix: string) {}

  /** A random id made once per Redis dataset: it keeps transaction ids unique even if Redis is wiped. */
  epoch(): string {
    return `${this.prefix}:epoch`;
  }
  jobSequence(): string {
    return `${this.prefix}:job:sequence`;
  }
  /** ZSET of job ids scored by creation time. */
  jobIndex(): string {
    return `${this.prefix}:jobs`;
  }
  job(id: string): string {
    return `${this.prefix}:job:${id}`;
  }
  /** HASH node name → node record (JSON). */
  nodes(id: string): string {
    return `${this.prefix}:job:${id}:nodes`;
  }
  /** HASH node state → count. */
  counts(id: string): string {
    return `${this.prefix}:job:${id}:counts`;
  }
  /** LIST of nodes not yet handed to the queue (per-job concurrency). */
  pending(id: string): string {
    return `${this.prefix}:job:${id}:pending`;
  }
  /** SET of nodes waiting for the runs of other nodes (ordered jobs: applications). */
  blocked(id: string): string {
    return `${this.prefix}:job:${id}:blocked`;
  }
  /** HASH node → JSON array of the nodes whose runs must finish first. */
  deps(id: string): string {
    return `${this.prefix}:job:${id}:deps`;
  }
  /** HASH certname → JSON {facts, fetched_ms}: the facts agents last reported. */
  facts(): string {
    return `${this.prefix}:facts`;
  }
  /** STRING: a node's captured output of a command job (Chef face), `channel` stdout or stderr. */
  output(id: string, node: string, channel: string): string {
    return `${this.prefix}:job:${id}:output:${channel}:${node}`;
  }
  /**
   * STRING: the id of the Chef command job a node acked and has not ended (availability busy),
   * set with an expiry so that an orchestrator that died never leaves the node busy.
   */
  chefBusy(node: string): string {
    return `${this.prefix}:chef:busy:${node}`;
  }
  /** STRING: who holds a Chef job's vote (a lease: a vote whose orchestrator died is taken up when it lapses). */
  chefVote(jobId: string): string {
    return `${this.prefix}:chef:vote:${jobId}`;
  }
  /** The BullMQ queue of Chef vote checks (each, when due, takes up a vote left unfinished). */
  chefVoteQueueName(): string {
    return `${this.prefix}-chef-votes`;
  }
  /** STREAM of an organisation's job starts and completions (Chef face), trimmed by age. */
  orgEvents(org: string): string {
    return `${this.prefix}:org:${org}:events`;
  }
  /**
   * STREAM of every job's creation and state changes, across faces (fields job, state; entry ids
   * Redis's own), appended by the scripts that change them and trimmed to about JOB_FEED_MAX_ENTRIES.
   */
  jobFeed(): string {
    return `${this.prefix}:jobs:feed`;
  }
  /** STREAM of events; entry ids are 0-N so that N is the API's event id. */
  events(id: string): string {
    return `${this.prefix}:job:${id}:events`;
  }
  /** LIST of job state changes (JSON). */
  history(id: string): string {
    return `${this.prefix}:job:${id}:history`;
  }
  /**
   * STRING (JSON): an Idempotency-Key's reservation or the first answer given for it, per API
   * face and caller. The caller's key is hashed: any printable text of up to 255 characters.
   */
  idempotency(face: string, caller: string, key: string): string {
    return `${this.prefix}:idempotency:${face}:${createHash('sha256').update(caller).update('\n').update(key).digest('hex')}`;
  }
  /** STRING: a deployment's version, raised by every change (compare-and-set of reconciles). */
  nomadDeploymentVersion(id: string): string {
    return `${this.prefix}:nomad:deployment:${id}:version`;
  }
  /** STRING: the deployment an engine job (an allocation's run) belongs to. */
  nomadRun(engineJob: string): string {
    return `${this.prefix}:nomad:run:${engineJob}`;
  }
  /** STRING: the reservation, then the engine job, of an allocation's run (created at most once). */
  nomadAllocRun(alloc: string): string {
    return `${this.prefix}:nomad:alloc:${alloc}:run`;
  }
  /** The BullMQ queue of deployment deadlines and wake-ups (each re-runs reconcile). */
  nomadDeadlineQueueName(): string {
    return `${this.prefix}-nomad-deadlines`;
  }
  /** The BullMQ queue of node runs. */
  queueName(): string {
    return `${this.prefix}-node-runs`;
  }
}
