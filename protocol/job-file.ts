// A Chef push job's `file`: `raw:<text>` or `base64:<data>`. One rule for the orchestrator, which
// refuses a bad file with 400, and the agent, which checks it again before it writes it. Pure.

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** A job's `file`: `raw:<text>` (UTF-8) or `base64:<data>` (line breaks ignored). */
export function decodeJobFile(file: string): { content: Buffer } | { problem: string } {
  if (file.startsWith('raw:')) return { content: Buffer.from(file.slice(4), 'utf8') };
  if (file.startsWith('base64:')) {
    const data = file.slice(7).replace(/\r?\n/g, '');
    if (data.length % 4 !== 0 || !BASE64.test(data)) return { problem: 'the file is not valid base64 after its base64: prefix' };
    return { content: Buffer.from(data, 'base64') };
  }
  return { problem: `the file must start with raw: or base64:, not '${file.slice(0, 16)}'` };
}
