// A child of the idle benchmark: opens `count` idle PCP sessions (types idle<first>…), reports
// "ready" on stdout, then holds them until its stdin closes.
import { readFileSync } from 'node:fs';
import { WebSocket } from 'ws';

const [url, certPath, keyPath, caPath, firstArg, countArg] = process.argv.slice(2);
const tls = { cert: readFileSync(certPath!), key: readFileSync(keyPath!), ca: readFileSync(caPath!) };
const first = Number(firstArg);
const count = Number(countArg);
const PARALLEL_CONNECTS = 64;
const sockets: WebSocket[] = [];
let next = 0;

async function connectOne(i: number): Promise<void> {
  const ws = new WebSocket(`${url}/pcp2/idle${first + i}`, { ...tls, perMessageDeflate: false });
  sockets.push(ws);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
}

await Promise.all(
  Array.from({ length: PARALLEL_CONNECTS }, async () => {
    while (next < count) await connectOne(next++);
  }),
);
process.stdout.write(`ready ${count}\n`);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
