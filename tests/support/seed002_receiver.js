// A receiver written from seed 002 (Agentbot webhooks): express.json() parses the body, and the
// signature is checked with the document's own verify() over JSON.stringify(req.body).
// Reads one JSON object per line: {secret, headers: {lower-cased}, body: "<raw text received>",
// sent: "<raw text of the POST /api/v1/events request>"} and writes one line per input:
// {ok, same_data, received_data, sent_data}: same_data compares the event's data as JavaScript
// reads the publisher's request and the delivery (JSON.stringify of each JSON.parse).
const crypto = require('crypto');
const readline = require('readline');

function verify(req, secret) {                         // seed 002, as printed
  const sig = req.headers['x-agentbot-signature'];   // "t=123,v1=hash"
  const [tPart, vPart] = sig.split(',');
  const t = tPart.slice(2);
  const v1 = vPart.slice(3);
  const expected = crypto
    .createHmac('sha256', secret)
    .update(`${t}.${JSON.stringify(req.body)}`)
    .digest('hex');
  return v1.length === expected.length && crypto.timingSafeEqual(Buffer.from(v1), Buffer.from(expected));
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (line) => {
  let out;
  try {
    const { secret, headers, body, sent } = JSON.parse(line);
    const req = { headers, body: JSON.parse(body) };
    const receivedData = JSON.stringify(req.body.data);
    const sentData = JSON.stringify(JSON.parse(sent).data);
    out = { ok: verify(req, secret), same_data: receivedData === sentData, received_data: receivedData, sent_data: sentData };
  } catch (e) {
    out = { ok: false, reason: String(e) };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
});
