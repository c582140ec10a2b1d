// The NATS side of `bench:broker --vs-nats`: a local nats-server with TLS and verified client
// certificates, and the harness's transport over the `nats` client.
import { spawn, spawnSync } from 'node:child_process';
import { freePort } from '../lib/net.ts';
import { connect, type NatsConnection } from 'nats';
import type { Endpoint, Transport } from './harness.ts';
import { AGENT_CN, type BenchPki } from './fixtures.ts';

export interface NatsServer {
  pid: number;
  port: number;
  stop(): Promise<void>;
}

export async function startNatsServer(pki: BenchPki): Promise<NatsServer | null> {
  if (spawnSync('nats-server', ['--version']).error) return null;
  const port = await freePort();
  const proc = spawn(
    'nats-server',
    ['-a', '127.0.0.1', '-p', String(port), '--tls', '--tlscert', pki.paths.cert('broker'), '--tlskey', pki.paths.key('broker'),
      '--tlsverify', '--tlscacert', pki.paths.caCert],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  await new Promise<void>((resolve, reject) => {
    proc.stderr!.on('data', (d: Buffer) => d.toString().includes('Server is ready') && resolve());
    proc.once('exit', (code) => reject(new Error(`nats-server exited with ${String(code)}`)));
  });
  proc.stderr!.resume();
  return {
    pid: proc.pid!,
    port,
    stop: () =>
      new Promise((resolve) => {
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

export function natsTransport(pki: BenchPki, port: number): Transport {
  const open = async (name: string, subject: string): Promise<Endpoint> => {
    const nc: NatsConnection = await connect({
      servers: `tls://127.0.0.1:${port}`,
      tls: { certFile: pki.paths.cert(name), keyFile: pki.paths.key(name), caFile: pki.paths.caCert },
    });
    return {
      address: subject,
      send: (to, text) => nc.publish(to, Buffer.from(text)),
      onMessage: (handler) => {
        nc.subscribe(subject, { callback: (_err, msg) => handler(Buffer.from(msg.data).toString()) });
      },
      close: () => nc.close(),
    };
  };
  return {
    requester: (i) => open(`bench-ctl-${i}`, `bench.c${i}`),
    responder: (i) => open(AGENT_CN, `bench.r${i}`),
  };
}
