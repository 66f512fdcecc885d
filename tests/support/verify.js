// Verifies signatures exactly as the product documents' Node receivers do: over
// JSON.stringify(req.body), that is, the body after JSON.parse and re-serialisation.
// Reads one JSON object per line: {format, secret, headers: {lower-cased}, body: "<raw text>"}
// and writes one line per input: {"ok": true|false, "reason": "..."}.
const crypto = require('crypto');
const readline = require('readline');

function agentbot(secret, headers, reqBody) {          // seed 002
  const sig = headers['x-agentbot-signature'];
  const parts = sig.split(',');
  const t = parts[0].slice(2);
  const expected = crypto.createHmac('sha256', secret)
    .update(`${t}.${JSON.stringify(reqBody)}`).digest('hex');
  // A rotation adds more v1 entries; the documents' receiver reads the first, a careful one any.
  return parts.slice(1).some((v) => {
    const v1 = v.slice(3);
    return v1.length === expected.length && crypto.timingSafeEqual(Buffer.from(v1), Buffer.from(expected));
  });
}

function leads(secret, headers, reqBody) {              // seed 004
  const header = headers['x-webhook-signature'];
  const found = header.split(',').reduce((acc, current) => {
    const [key, value] = current.split('=');
    if (key === 't') acc.t = value;
    if (key === 'v1') acc.signatures.push(value);
    return acc;
  }, { t: '', signatures: [] });
  if (!found.t || !found.signatures.length) return false;
  const data = found.t + '.' + JSON.stringify(reqBody);
  const expected = crypto.createHmac('sha256', secret).update(data, 'utf8').digest('hex');
  return found.signatures.includes(expected);
}

function chatzuri(secret, headers, reqBody) {           // seed 001
  const rawBody = Buffer.from(JSON.stringify(reqBody));
  return crypto.createHmac('sha1', secret).update(rawBody).digest('hex') === headers['x-chatzuri-signature'];
}

const verifiers = { agentbot, leads, chatzuri };
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let out;
  try {
    const { format, secret, headers, body } = JSON.parse(line);
    const reqBody = JSON.parse(body);  // what express.json() hands the receiver
    out = { ok: verifiers[format](secret, headers, reqBody), reserialised_equal: JSON.stringify(reqBody) === body };
  } catch (e) {
    out = { ok: false, reason: String(e) };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
});
