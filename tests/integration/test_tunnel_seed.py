"""The seed's system itself: FastAPI + uvicorn (Debian python3-fastapi 0.92, python3-uvicorn
0.17.6) with the seed's router layout (tests/e2e/seed_app.py) behind wsgate on seed-broken.conf
and seed-fixed.conf: the WebSocket ping gets its pong and the status endpoint answers 200. The
same run through Debian's nginx answers 400 on status (uvicorn rejects the plain GET that carries
"Connection: upgrade"); both are asserted, so the difference stays deliberate."""
import asyncio
import json
import os
import subprocess
import sys
import unittest

from harness import (NGINX, WsgateCase, exchange, free_port, parse_responses, start_nginx,
                     wait_port)

SOURCE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
try:
    import fastapi  # noqa: F401
    import uvicorn  # noqa: F401
    import websockets
    HAVE_STACK = True
except ImportError:
    HAVE_STACK = False


def inner_http(name, port, backend):
    """examples/configs/NAME's http{} content, on `port` in front of `backend`."""
    with open(os.path.join(SOURCE_DIR, "examples", "configs", name)) as f:
        text = f.read()
    text = text.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{port};")
    text = text.replace("localhost:8000", f"127.0.0.1:{backend}")
    return text[text.index("http {") + len("http {"):text.rindex("}")]


@unittest.skipUnless(HAVE_STACK, "needs /usr/bin/python3 with python3-fastapi, python3-uvicorn, "
                                 "python3-websockets")
class SeedSystem(WsgateCase):
    def setUp(self):
        super().setUp()
        self.backend = free_port()
        self.app = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "seed_app:app", "--host", "127.0.0.1",
             "--port", str(self.backend), "--log-level", "warning"],
            cwd=os.path.join(SOURCE_DIR, "tests", "e2e"), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

        def stop():
            self.app.terminate()
            self.app.wait(5)
        self.cleanups.append(stop)
        self.assertTrue(wait_port(self.backend, 20), "uvicorn did not start")

    def ping(self, port):
        async def go():
            url = f"ws://127.0.0.1:{port}/api/v1/ws/simple-voice-chat?language=ar&voice_type=female"
            async with websockets.connect(url, ping_interval=None) as ws:
                await ws.send(json.dumps({"type": "ping"}))
                for _ in range(5):
                    if json.loads(await ws.recv()).get("type") == "pong":
                        return True
            return False
        return asyncio.run(asyncio.wait_for(go(), 15))

    def status(self, port):
        r = exchange(port, b"GET /api/v1/ws/simple-voice-chat/status HTTP/1.1\r\nHost: localhost\r\n"
                           b"Connection: close\r\n\r\n", timeout=5)
        return parse_responses(r)[0][0]

    def run_nginx(self, name):
        if not os.path.exists(NGINX):
            self.skipTest("Debian's nginx is not installed")
        return start_nginx(self, inner_http(name, "PORT", self.backend))

    def test_seed_configs_through_wsgate_and_nginx(self):
        for name in ("seed-broken.conf", "seed-fixed.conf"):
            with self.subTest(config=name, proxy="wsgate"):
                w = self.wsgate(inner_http(name, "PORT", self.backend))
                self.assertTrue(self.ping(w.port), "no pong through wsgate")
                self.assertEqual(self.status(w.port), 200)
            with self.subTest(config=name, proxy="nginx"):
                port = self.run_nginx(name)
                self.assertTrue(self.ping(port), "no pong through nginx")
                # nginx sends "Connection: upgrade" without Upgrade; uvicorn answers 400.
                self.assertEqual(self.status(port), 400)


if __name__ == "__main__":
    unittest.main()
