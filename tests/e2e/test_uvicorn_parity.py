"""voice-service answers raw requests with the same statuses as the seed's stack (FastAPI 0.92 on
uvicorn 0.17.6): that is what makes the seed's proxy failures reproducible in front of it."""
import os
import socket
import subprocess
import sys
import unittest

from harness import VoiceService, free_port, wait_port, main

KEY = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
REQUESTS = {
    "plain GET on the WebSocket route": "GET /api/v1/ws/simple-voice-chat?language=ar HTTP/1.1\r\nHost: x\r\n\r\n",
    "HTTP/1.0 GET on the WebSocket route (nginx without proxy_http_version)":
        "GET /api/v1/ws/simple-voice-chat HTTP/1.0\r\nHost: x\r\nConnection: close\r\n\r\n",
    "plain GET on the status route": "GET /api/v1/ws/simple-voice-chat/status HTTP/1.1\r\nHost: x\r\n\r\n",
    "Connection: upgrade without Upgrade on status (the seed's fixed config)":
        "GET /api/v1/ws/simple-voice-chat/status HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\r\n",
    "Connection: upgrade with Upgrade: foo":
        "GET /api/v1/ws/simple-voice-chat/status HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: foo\r\n\r\n",
    "WebSocket handshake on the status route":
        "GET /api/v1/ws/simple-voice-chat/status HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        + KEY + "\r\n",
    "WebSocket handshake on the chat route":
        "GET /api/v1/ws/simple-voice-chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        + KEY + "\r\n",
    "WebSocket handshake on the legacy route":
        "GET /ws/voice-conversation?preset=x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        + KEY + "\r\n",
    "unknown path": "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
    "POST on the status route": "POST /api/v1/ws/simple-voice-chat/status HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
}


def status_of(port, raw):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw.encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


class UvicornParityTest(unittest.TestCase):
    def test_same_statuses_as_the_seed_stack(self):
        try:
            import fastapi  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError as e:
            self.fail(f"the seed's stack is missing ({e}): run scripts/install-deps.sh "
                      "(python3-fastapi, python3-uvicorn) and use /usr/bin/python3")
        port = free_port()
        ref = subprocess.Popen([sys.executable, "-m", "uvicorn", "seed_app:app", "--host", "127.0.0.1",
                                "--port", str(port), "--log-level", "warning"],
                               cwd=os.path.dirname(os.path.abspath(__file__)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        svc = VoiceService()
        try:
            wait_port(port)
            for name, raw in REQUESTS.items():
                with self.subTest(request=name):
                    expected = status_of(port, raw)
                    got = status_of(svc.port, raw)
                    print(f"{name}: uvicorn {expected}, voice-service {got}")
                    self.assertEqual(got, expected)
        finally:
            ref.terminate()
            ref.wait(5)
            svc.stop()


if __name__ == "__main__":
    main()
