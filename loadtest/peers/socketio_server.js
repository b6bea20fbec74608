// The Node socket.io 4 peer of the gifting fan-out benchmark (loadtest/peers/socketio_node.py).
//
// socket.io with @socket.io/redis-adapter (the `redis` client) on the Redis
// named by REDIS_URL; WebSocket transport only; every client joins one room
// on connect. Driven over stdin/stdout, one JSON object a line:
//   out {"ready": port}                 listening on 127.0.0.1 and the adapter is connected
//   in  {"cmd": "start", "rate": null}  emit the room event as fast as possible (with
//                                        backpressure) or `rate` events/s; out {"start": clients}
//   in  {"cmd": "stop"}                 out {"stop": events emitted}
//   in  {"cmd": "exit"}                 close everything and exit
// The events are the same room events (~300 bytes of JSON) the Python servers send.
"use strict";

const http = require("http");
const readline = require("readline");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const ROOM = "s-bench";
const QUEUE_HIGH = 512;            // packets waiting in engine.io's write buffer
const BYTES_HIGH = 256 * 1024;     // bytes waiting in the WebSocket's socket

function body(seq) {
  const ts = 1764000000000 + seq;
  return {
    op: "event",
    kind: "gift",
    stream: ROOM,
    seq: seq,
    cursor: `${ts}-0.${seq}`,
    event: `e${ts.toString(16).padStart(11, "0")}5f3a9c0d2e1b`,
    ts: ts,
    sender: { id: "viewer-00042", name: "Viewer Forty-Two" },
    coins: 1,
    gift: { id: "rose", name: "Rose", coins: 1, tier: 1, streakable: true },
    count: 1,
    combo: (seq % 50) + 1,
  };
}

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

async function main() {
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);

  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    transports: ["websocket"],
    serveClient: false,
    adapter: createAdapter(pub, sub),
  });
  io.on("connection", (socket) => socket.join(ROOM));

  let running = false;
  let sent = 0;

  function backlogged() {
    for (const socket of io.of("/").sockets.values()) {
      const conn = socket.conn;
      if (conn.writeBuffer.length > QUEUE_HIGH) return true;
      const ws = conn.transport && conn.transport.socket;
      if (ws && ws.bufferedAmount > BYTES_HIGH) return true;
    }
    return false;
  }

  function emitOne() {
    io.to(ROOM).emit("gift", body(sent));
    sent += 1;
  }

  function pump() {
    if (!running) return;
    for (let i = 0; i < 8; i++) emitOne();
    if (backlogged()) setTimeout(pump, 1);
    else setImmediate(pump);
  }

  function paced(rate) {
    const began = performance.now();
    const first = sent;
    function tick() {
      if (!running) return;
      let due = Math.min(Math.floor(((performance.now() - began) / 1000) * rate) - (sent - first), 1000);
      while (due-- > 0) emitOne();
      setTimeout(tick, 1);
    }
    tick();
  }

  httpServer.listen(0, "127.0.0.1", () => say({ ready: httpServer.address().port }));

  const lines = readline.createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    const msg = JSON.parse(line);
    if (msg.cmd === "start") {
      running = true;
      if (msg.rate === null || msg.rate === undefined) setImmediate(pump);
      else paced(msg.rate);
      say({ start: io.of("/").sockets.size });
    } else if (msg.cmd === "stop") {
      running = false;
      say({ stop: sent });
    } else if (msg.cmd === "exit") {
      running = false;
      io.close();
      Promise.allSettled([pub.quit(), sub.quit()]).then(() => process.exit(0));
      setTimeout(() => process.exit(0), 2000).unref();
    }
  });
  lines.on("close", () => process.exit(0));
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});
