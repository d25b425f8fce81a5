"""The main job: wsgate on the seed's configurations in front of the seed's backend
(examples/voice-service): the WebSocket ping gets its pong and the status endpoint answers 200,
also on seed-fixed.conf, where nginx answers 400 (wsgate drops the Connection: upgrade that has
no Upgrade beside it, ARCHITECTURE's deliberate difference)."""
import asyncio
import json
import os
import re
import subprocess
import unittest

from harness import WsgateCase, exchange, parse_responses

VOICE_SERVICE = os.environ.get("VOICE_SERVICE", "voice-service")
SOURCE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


class SeedConfigs(WsgateCase):
    def setUp(self):
        super().setUp()
        if not os.path.exists(VOICE_SERVICE):
            self.skipTest("voice-service is not built")
        self.svc = subprocess.Popen([VOICE_SERVICE, "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)
        m = re.match(r"listening (\S+):(\d+)", self.svc.stdout.readline())
        self.assertIsNotNone(m, "voice-service did not start")
        self.backend = int(m.group(2))

        def stop():
            self.svc.terminate()
            self.svc.wait(5)
            self.svc.stdout.close()
        self.cleanups.append(stop)

    def start_on(self, name):
        with open(os.path.join(SOURCE_DIR, "examples", "configs", name)) as f:
            text = f.read()
        text = text.replace("listen 127.0.0.1:8080;", "listen 127.0.0.1:PORT;")
        text = text.replace("localhost:8000", f"127.0.0.1:{self.backend}").replace("127.0.0.1:8000", f"127.0.0.1:{self.backend}")
        # The harness writes main/events/http itself: keep only the http block's inside.
        inner = text[text.index("http {") + len("http {"):text.rindex("}")]
        return self.wsgate(inner)

    def ping(self, port):
        import websockets

        async def run():
            url = f"ws://127.0.0.1:{port}/api/v1/ws/simple-voice-chat?language=ar&voice_type=female"
            async with websockets.connect(url) as ws:
                await ws.send('{"type":"ping"}')
                for _ in range(10):
                    msg = json.loads(await ws.recv())
                    if msg.get("type") == "pong":
                        return msg
            return None
        return asyncio.run(run())

    def status(self, port):
        r = exchange(port, b"GET /api/v1/ws/simple-voice-chat/status HTTP/1.1\r\nHost: localhost\r\n"
                           b"Connection: close\r\n\r\n", timeout=5)
        return parse_responses(r)[0][0]

    def test_seed_fixed(self):
        w = self.start_on("seed-fixed.conf")
        self.assertIsNotNone(self.ping(w.port))
        self.assertEqual(self.status(w.port), 200)

    def test_seed_broken_and_recommended(self):
        for name in ("seed-broken.conf", "recommended.conf"):
            with self.subTest(config=name):
                w = self.start_on(name)
                self.assertIsNotNone(self.ping(w.port))
                self.assertEqual(self.status(w.port), 200)

    def test_no_upgrade_config_gives_404_as_nginx(self):
        w = self.start_on("no-upgrade.conf")
        with self.assertRaises(Exception) as e:
            self.ping(w.port)
        self.assertIn("404", str(e.exception))


if __name__ == "__main__":
    unittest.main()
