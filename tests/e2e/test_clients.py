"""Independent WebSocket clients against voice-service: Python websockets and Node's ws."""
import asyncio
import json
import os
import subprocess
import unittest

import websockets

from harness import VoiceServiceCase, main

NODE_CLIENT = r"""
const WebSocket = require('ws');
const ws = new WebSocket(process.argv[process.argv.length - 1]);
const seen = [];
const timer = setTimeout(() => { console.log(JSON.stringify({error: 'timeout', seen})); process.exit(2); }, 10000);
ws.on('open', () => ws.send(JSON.stringify({type: 'ping'})));
ws.on('message', (data, isBinary) => {
  const msg = JSON.parse(data.toString());
  seen.push(msg);
  if (msg.type === 'pong') {
    clearTimeout(timer);
    console.log(JSON.stringify({seen}));
    ws.close(1000);
  }
});
ws.on('error', (e) => { console.log(JSON.stringify({error: String(e), seen})); process.exit(1); });
"""


class ClientsTest(VoiceServiceCase):

    def test_python_websockets_ping_pong(self):
        async def run():
            async with websockets.connect(self.svc.ws_url("language=ar&voice_type=female")) as ws:
                session = json.loads(await ws.recv())
                await ws.send(json.dumps({"type": "ping"}))
                pong = json.loads(await asyncio.wait_for(ws.recv(), 10))
                return session, pong
        session, pong = asyncio.run(run())
        self.assertEqual(session["type"], "session")
        self.assertEqual(pong["type"], "pong")
        self.assertEqual(pong["session_id"], session["session_id"])

    def test_node_ws_ping_pong(self):
        env = dict(os.environ, NODE_PATH="/usr/share/nodejs")
        r = subprocess.run(["node", "-e", NODE_CLIENT, self.svc.ws_url()], capture_output=True, text=True,
                           timeout=30, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        seen = json.loads(r.stdout)["seen"]
        self.assertEqual([m["type"] for m in seen], ["session", "pong"])


if __name__ == "__main__":
    main()
