// Issues certificates for a share of a fleet's names (see fleet-certs.ts), in parallel batches.
// argv[2]: PKI directory; argv[3]: a file holding a JSON array of names. Exits 0 when all are written.
import { readFileSync } from 'node:fs';
import { issueCertsHere } from './fleet-certs.ts';

const names = JSON.parse(readFileSync(process.argv[3]!, 'utf8')) as string[];
await issueCertsHere(process.argv[2]!, names);
