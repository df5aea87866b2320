#!/usr/bin/env node
// busbar example hook server (Node, built-in modules only).
//
//   node hooks.js [--port 9000] [--mode ok|slow|garbage|error|close] [--audit-log FILE]
//
// The same endpoints and behaviour as examples/python/hooks.py: POST /route, /redact, /audit,
// GET /count. See examples/README.md for the JSON schema.
'use strict';
const http = require('http');
const fs = require('fs');

const args = { port: 9000, mode: 'ok', auditLog: null };
for (let i = 2; i < process.argv.length; i += 2) {
  const [k, v] = [process.argv[i], process.argv[i + 1]];
  if (k === '--port') args.port = Number(v);
  else if (k === '--mode') args.mode = v;
  else if (k === '--audit-log') args.auditLog = v;
  else { console.error(`unknown argument ${k}`); process.exit(2); }
}
if (!['ok', 'slow', 'garbage', 'error', 'close'].includes(args.mode)) {
  console.error(`--mode ${args.mode}: not ok, slow, garbage, error or close`);
  process.exit(2);
}

const counts = { route: 0, redact: 0, audit: 0 };
const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+/g;
const CARD = /\b\d(?:[ -]?\d){12,18}\b/g;

function luhn(digits) {
  let total = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) { d *= 2; if (d > 9) d -= 9; }
    total += d;
  }
  return total % 10 === 0;
}

function redact(text) {
  return text.replace(EMAIL, '[email]').replace(CARD, (m) => {
    const digits = m.replace(/[ -]/g, '');
    return digits.length >= 13 && digits.length <= 19 && luhn(digits) ? '[card]' : m;
  });
}

function route(ask) {
  const headers = ask.request.headers || {};
  if (headers['x-team'] === 'blocked') {
    return { reject: { status: 403, message: 'team blocked by the routing hook' } };
  }
  const room = (c) => Math.min(c.requests_left ?? 1, c.tokens_left ?? 1);
  const order = [...ask.candidates]
    .sort((a, b) => (room(a) < 0.05) - (room(b) < 0.05)
      || a.estimated_cost - b.estimated_cost
      || (a.latency_ms ?? 0) - (b.latency_ms ?? 0))
    .map((c) => c.name);
  const prefer = headers['x-prefer'];
  const at = order.indexOf(prefer);
  if (at > 0) { order.splice(at, 1); order.unshift(prefer); }
  return { order };
}

function beforeForward(ask) {
  const texts = [];
  for (const t of ask.texts || []) {
    const text = redact(t.text);
    if (text !== t.text) texts.push({ path: t.path, text });
  }
  return texts.length ? { texts } : {};
}

function reply(res, status, body) {
  const data = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': data.length });
  res.end(data);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const name = req.url.split('?')[0].replace(/^\/+|\/+$/g, '');
    if (req.method === 'GET' && name === 'count') return reply(res, 200, counts);
    if (req.method !== 'POST' || !(name in counts)) return reply(res, 404, { error: 'no such path' });
    counts[name] += 1;
    const raw = Buffer.concat(chunks);
    if (name === 'audit') {
      if (args.auditLog) fs.appendFileSync(args.auditLog, raw.toString().trimEnd() + '\n');
      return reply(res, 200, {});
    }
    const answer = () => {
      let ask;
      try { ask = JSON.parse(raw); } catch { return reply(res, 400, { error: 'the body is not JSON' }); }
      reply(res, 200, name === 'route' ? route(ask) : beforeForward(ask));
    };
    switch (args.mode) {
      case 'slow': return setTimeout(answer, 200);
      case 'garbage': return reply(res, 200, Buffer.from('not json{'));
      case 'error': return reply(res, 500, { error: 'boom' });
      case 'close': return req.socket.destroy();
      default: return answer();
    }
  });
});
server.keepAliveTimeout = 60000;
server.listen(args.port, '127.0.0.1', () => {
  process.stdout.write(`listening on 127.0.0.1:${server.address().port}\n`);
});
