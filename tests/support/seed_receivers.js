// The product documents' own receivers, as a reader copies them: seed 002's verify(req) (reads the
// first v1), seed 004's reduce over X-Webhook-Signature (keeps the last v1), seed 001's
// webhookHandler (one SHA-1 signature). Each runs on `req` as express.json() hands it over: the
// body after JSON.parse. Unlike verify.js (a careful receiver that accepts any v1), these read the
// header exactly as the documents do. Reads one JSON object per line: {format, secret, headers:
// {lower-cased}, body: "<raw text>"}; writes {"ok": true|false, "reason"?: "..."} per line.
const crypto = require('crypto');
const readline = require('readline');

// --- seed 002 (agentbot), verbatim but for the secret's source -----------------------------------
function verify(req) {
  const sig = req.headers['x-agentbot-signature'];   // "t=123,v1=hash"
  const [tPart, vPart] = sig.split(',');
  const t = tPart.slice(2);
  const v1 = vPart.slice(3);

  const expected = crypto
    .createHmac('sha256', process.env.AGENTBOT_SECRET)
    .update(`${t}.${JSON.stringify(req.body)}`)
    .digest('hex');

  return crypto.timingSafeEqual(Buffer.from(v1), Buffer.from(expected));
}

// --- seed 004 (leads) ----------------------------------------------------------------------------
function leads(req, webhookSigningKey) {
  const newoaksSignature = req.get('X-Webhook-Signature');
  const { t, signature } = newoaksSignature.split(',').reduce((acc, currentValue) => {
    const [key, value] = currentValue.split('=');
    if (key === 't') {
      acc.t = value;
    }
    if (key === 'v1') {
      acc.signature = value
    }
    return acc;
  }, {
    t: '',
    signature: ''
  });
  if (!t || !signature) throw new Error('Invalid Signature');
  const data = t + '.' + JSON.stringify(req.body);
  const expectedSignature = crypto.createHmac('sha256', webhookSigningKey).update(data, 'utf8').digest('hex');
  if (expectedSignature !== signature) {
    throw new Error('Invalid Signature');
  }
  return true;
}

// --- seed 001 (chatzuri) -------------------------------------------------------------------------
function sha1(data, secret) {
  return crypto.createHmac('sha1', secret).update(data).digest('hex')
}

function chatzuri(req, SECRET_KEY) {
  const receivedJson = req.body
  const rawBody = Buffer.from(JSON.stringify(receivedJson))
  const bodySignature = sha1(rawBody, SECRET_KEY)
  return bodySignature === req.headers['x-chatzuri-signature']
}

const receivers = {
  agentbot: (req, secret) => { process.env.AGENTBOT_SECRET = secret; return verify(req); },
  leads,
  chatzuri,
};

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let out;
  try {
    const { format, secret, headers, body } = JSON.parse(line);
    const req = { body: JSON.parse(body), headers, get: (name) => headers[name.toLowerCase()] };
    out = { ok: receivers[format](req, secret) === true };
  } catch (e) {
    out = { ok: false, reason: String(e) };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
});
