// A webchat visitor written as a third party would write it: the official socket.io-client (npm)
// in Node, with its default options unless told otherwise. Argument: a JSON object
// {url, integration, origin, page_url?, transports?, text?}. Connects as a page on `origin`
// (Node sends no Origin of its own), waits for the `session` event and, with a `text`, sends it and
// waits for the agent's answer; prints one JSON object: {session, ack, answer, transport,
// upgraded, refused?}.
const { io } = require('socket.io-client');

const options = JSON.parse(process.argv[2]);
const out = { upgraded: false };
const socket = io(options.url, {
  auth: { integration: options.integration, ...(options.page_url ? { page_url: options.page_url } : {}) },
  extraHeaders: { Origin: options.origin },
  reconnection: false,
  ...(options.transports ? { transports: options.transports } : {}),
});
const done = (code) => {
  out.transport = socket.io.engine ? socket.io.engine.transport.name : null;
  socket.close();
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(code);
};
setTimeout(() => { out.timeout = true; done(1); }, 20000);

socket.io.on('open', () => socket.io.engine.on('upgrade', () => { out.upgraded = true; }));
socket.on('connect_error', (err) => { out.refused = { message: err.message, data: err.data }; done(0); });
socket.on('message', (message) => {
  if (message.sender_type !== 'ai') return;
  out.answer = message;
  // With the defaults the client upgrades once the probe succeeds: wait for it a little.
  const waitForUpgrade = (left) => (out.upgraded || left <= 0 || options.transports ? done(0) : setTimeout(() => waitForUpgrade(left - 1), 100));
  waitForUpgrade(50);
});
socket.on('session', async (session) => {
  out.session = session;
  if (!options.text) return done(0);
  out.ack = await socket.timeout(10000).emitWithAck('message', { text: options.text });
});
