// The request/response load harness shared by the broker benchmark and its NATS comparison: N
// requester/responder pairs exchange PXP-like envelopes with `sizeBytes` of data through a
// transport, closed-loop (window in flight per pair) or open-loop at a fixed rate. Transports
// serialise the messages themselves (PCP v2 JSON text, PCP v1 chunks, NATS payloads).
import { performance } from 'node:perf_hooks';

/** What the harness sends: a PXP-like request or response, as a PCP v2 envelope would carry it. */
export interface BenchMessage {
  id: string;
  message_type: string;
  target: string;
  sender: string;
  in_reply_to?: string;
  data: { transaction_id: string; t: number; [key: string]: unknown };
}

export interface MessageEndpoint {
  /** The address others send to (a PCP URI, or a NATS subject). */
  readonly address: string;
  send(msg: BenchMessage): void;
  onMessage(handler: (msg: BenchMessage) => void): void;
  close(): Promise<void>;
}

export interface MessageTransport {
  requester(i: number): Promise<MessageEndpoint>;
  responder(i: number): Promise<MessageEndpoint>;
}

/** An endpoint that carries JSON text (NATS): `jsonTransport` turns it into a message endpoint. */
export interface Endpoint {
  readonly address: string;
  send(to: string, text: string): void;
  onMessage(handler: (text: string) => void): void;
  close(): Promise<void>;
}

export interface Transport {
  requester(i: number): Promise<Endpoint>;
  responder(i: number): Promise<Endpoint>;
}

export function jsonEndpoint(e: Endpoint): MessageEndpoint {
  return {
    address: e.address,
    send: (msg) => e.send(msg.target, JSON.stringify(msg)),
    onMessage: (handler) => e.onMessage((text) => handler(JSON.parse(text) as BenchMessage)),
    close: () => e.close(),
  };
}

export function jsonTransport(t: Transport): MessageTransport {
  return {
    requester: async (i) => jsonEndpoint(await t.requester(i)),
    responder: async (i) => jsonEndpoint(await t.responder(i)),
  };
}

export interface LoadOptions {
  pairs: number;
  seconds: number;
  warmupSeconds: number;
  sizeBytes: number;
  /** Requests in flight per pair in closed-loop mode. */
  window: number;
  /** Routed messages per second over all pairs (half requests, half responses); 0 = as fast as the window allows. */
  rate: number;
}

export interface LoadResult {
  msgs_per_s: number;
  p50_ms: number;
  p99_ms: number;
  connections: number;
  round_trips: number;
  /** Round trips from the first request to the end, warm-up included (for CPU per message). */
  round_trips_total: number;
}

const REQUEST = 'http://puppetlabs.com/rpc_blocking_request';
const RESPONSE = 'http://puppetlabs.com/rpc_blocking_response';

export async function runLoad(transport: MessageTransport, opts: LoadOptions): Promise<LoadResult> {
  const requesters: MessageEndpoint[] = [];
  const responders: MessageEndpoint[] = [];
  for (let i = 0; i < opts.pairs; i++) {
    responders.push(await transport.responder(i));
    requesters.push(await transport.requester(i));
  }
  const argument = 'x'.repeat(opts.sizeBytes);
  for (const r of responders) {
    r.onMessage((req) => {
      r.send({
        id: `${req.id}r`,
        message_type: RESPONSE,
        target: req.sender,
        sender: r.address,
        in_reply_to: req.id,
        data: { transaction_id: req.data.transaction_id, t: req.data.t, results: { outcome: argument } },
      });
    });
  }

  let measuring = false;
  let stopped = false;
  let roundTrips = 0;
  let roundTripsTotal = 0;
  const latencies: number[] = [];
  let seq = 0;
  const send = (i: number) => {
    const req = requesters[i]!;
    const target = responders[i]!.address;
    const id = `m${seq++}`;
    req.send({
      id,
      message_type: REQUEST,
      target,
      sender: req.address,
      data: { transaction_id: id, module: 'echo', action: 'echo', t: performance.now(), params: { argument } },
    });
  };
  requesters.forEach((req, i) => {
    req.onMessage((res) => {
      roundTripsTotal++;
      if (measuring) {
        roundTrips++;
        latencies.push(performance.now() - res.data.t);
      }
      if (opts.rate === 0 && !stopped) send(i);
    });
  });

  let pacer: NodeJS.Timeout | undefined;
  if (opts.rate === 0) {
    for (let i = 0; i < opts.pairs; i++) for (let w = 0; w < opts.window; w++) send(i);
  } else {
    // Open loop: every millisecond, send what the rate owes so far, round robin over the pairs.
    const start = performance.now();
    let sent = 0;
    let next = 0;
    pacer = setInterval(() => {
      const owed = Math.floor(((performance.now() - start) / 1000) * (opts.rate / 2));
      for (; sent < owed; sent++) {
        send(next);
        next = (next + 1) % opts.pairs;
      }
    }, 1);
  }
  await delay(opts.warmupSeconds * 1000);
  measuring = true;
  const t0 = performance.now();
  await delay(opts.seconds * 1000);
  measuring = false;
  const elapsedS = (performance.now() - t0) / 1000;
  stopped = true;
  if (pacer) clearInterval(pacer);
  for (const e of [...requesters, ...responders]) await e.close();
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN, 3);
  return {
    // Each round trip is two routed messages: the request and the response.
    msgs_per_s: Math.round((2 * roundTrips) / elapsedS),
    p50_ms: pct(0.5),
    p99_ms: pct(0.99),
    connections: 2 * opts.pairs,
    round_trips: roundTrips,
    round_trips_total: roundTripsTotal,
  };
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
