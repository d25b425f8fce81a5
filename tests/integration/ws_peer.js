// An independent WebSocket peer for the tunnel tests, written with Node's `ws` (Debian node-ws:
// NODE_PATH=/usr/share/nodejs). Two roles:
//   node ws_peer.js server            echo server; prints "listening PORT" once ready.
//     Echoes every message with its type, fragmented in 3 pieces when it is longer than 2 bytes.
//     Sends "hello" right after the handshake (the upstream's pipelined data).
//     Text "close-me" makes it close with 4001 "bye"; it prints "closed CODE REASON" when a
//     client closes.
//   node ws_peer.js client URL        sends text and binary messages of each size, fragmented
//     ones too, checks each echo and closes with 1000; prints one JSON line with the results.
"use strict";
const WebSocket = require("ws");

const SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20];

function pattern(n, binary) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = binary ? (i * 7 + 3) & 0xff : 0x61 + (i % 26);
  return b;
}

function server() {
  const wss = new WebSocket.Server({ host: "127.0.0.1", port: 0, maxPayload: 64 << 20 });
  wss.on("listening", () => console.log(`listening ${wss.address().port}`));
  wss.on("connection", (ws) => {
    ws.send("hello");
    ws.on("message", (data, isBinary) => {
      if (!isBinary && data.toString() === "close-me") {
        ws.close(4001, "bye");
        return;
      }
      if (data.length <= 2) {
        ws.send(data, { binary: isBinary });
        return;
      }
      const a = Math.floor(data.length / 3);
      const b = Math.floor((2 * data.length) / 3);
      ws.send(data.subarray(0, a), { binary: isBinary, fin: false });
      ws.send(data.subarray(a, b), { binary: isBinary, fin: false });
      ws.send(data.subarray(b), { binary: isBinary, fin: true });
    });
    ws.on("close", (code, reason) => console.log(`closed ${code} ${reason.toString()}`));
  });
}

function client(url) {
  const ws = new WebSocket(url, { maxPayload: 64 << 20 });
  const results = { echoed: [], close: null, first: null };
  const plan = [];
  for (const n of SIZES) {
    plan.push({ n, binary: false, fragments: 1 });
    plan.push({ n, binary: true, fragments: 1 });
  }
  plan.push({ n: 100000, binary: false, fragments: 4 });
  plan.push({ n: 3, binary: true, fragments: 3 });
  let i = 0;
  let greeting = true;
  const sendNext = () => {
    if (i >= plan.length) {
      ws.close(1000, "done");
      return;
    }
    const p = plan[i];
    const data = pattern(p.n, p.binary);
    if (p.fragments === 1) {
      ws.send(data, { binary: p.binary });
    } else {
      const step = Math.ceil(data.length / p.fragments);
      for (let k = 0; k < p.fragments; k++) {
        const part = data.subarray(k * step, Math.min(data.length, (k + 1) * step));
        ws.send(part, { binary: p.binary, fin: k === p.fragments - 1 });
      }
    }
  };
  ws.on("message", (data, isBinary) => {
    // A server may greet first (wsgate's tests use one that does and one that does not).
    if (greeting && i === 0 && !isBinary && data.toString() === "hello") {
      results.first = "hello";
      greeting = false;
      return;
    }
    greeting = false;
    const p = plan[i];
    const want = pattern(p.n, p.binary);
    results.echoed.push({
      n: p.n,
      binary: p.binary,
      fragments: p.fragments,
      ok: isBinary === p.binary && Buffer.compare(Buffer.from(data), want) === 0,
    });
    i++;
    sendNext();
  });
  ws.on("open", () => sendNext());
  ws.on("close", (code) => {
    results.close = code;
    console.log(JSON.stringify(results));
    process.exit(0);
  });
  ws.on("error", (e) => {
    console.log(JSON.stringify({ error: String(e), ...results }));
    process.exit(1);
  });
}

if (process.argv[2] === "server") server();
else if (process.argv[2] === "client") client(process.argv[3]);
else {
  console.error("usage: ws_peer.js server | client URL");
  process.exit(2);
}
