"""The seed's whole system through wsgate: voice-service behind `wsgate -c` with the seed's two configs
and the recommended one (examples/configs, rewritten to test ports), driven by wsgate-probe, Python
websockets and Node's ws; Debian's nginx runs beside it where the two must differ on purpose; and the
seed's real failure (no upgrade headers) reproduced through wsgate, diagnosed by the probe and warned
about by `wsgate -t`."""
import asyncio
import json
import os
import subprocess
import tempfile
import unittest
import zlib

import websockets

import test_clients
from harness import WSGATE, Nginx, VoiceService, VoiceServiceCase, Wsgate, probe, probe_json, received, wav_stats, main

CONFIGS = ["seed-broken.conf", "seed-fixed.conf", "recommended.conf"]
SEED_CONFIGS = ["seed-broken.conf", "seed-fixed.conf"]
WS_PATH = "/api/v1/ws/simple-voice-chat?language=ar&voice_type=female"
LEGACY_PATH = "/ws/voice-conversation?preset=qwen_optimized"
STATUS_PATH = "/api/v1/ws/simple-voice-chat/status"
HEALTH_PATH = "/api/v1/health/voice"
ENDPOINTS_PATH = "/api/v1/voice/endpoints"
TEXT = "مرحبا بكم في خدمة الصوت"


def config_path(name):
    return os.path.join(os.environ.get("WSGATE_SOURCE_DIR", "../.."), "examples", "configs", name)


class WsgateSeedConfigsTest(VoiceServiceCase):

    def start(self, cls, config):
        proxy = cls(config, self.svc.port)
        self.addCleanup(proxy.stop)
        return proxy

    def http(self, port, path):
        """(status, parsed JSON body or raw text) of a GET through the probe's HTTP mode."""
        rc, doc = probe_json(f"http://127.0.0.1:{port}{path}")
        http = doc.get("http") or {}
        body = http.get("body")
        try:
            body = json.loads(body)
        except (TypeError, json.JSONDecodeError):
            pass
        return http.get("status"), body, doc

    def speak(self, url):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "reply.wav")
            rc, doc = probe_json(url, "--send", json.dumps({"type": "text", "text": TEXT}),
                                 "--expect-reply", "audio_end", "--save-binary", path)
            audio = b""
            if os.path.exists(path):
                with open(path, "rb") as f:
                    audio = f.read()
        return rc, doc, audio

    def test_ping_pong_on_both_websocket_endpoints(self):
        for config in CONFIGS:
            with self.subTest(config=config):
                gate = self.start(Wsgate, config)
                for path, endpoint in [(WS_PATH, "simple-voice-chat"), (LEGACY_PATH, "voice-conversation")]:
                    rc, doc = probe_json(f"ws://127.0.0.1:{gate.port}{path}")
                    self.assertEqual(rc, 0, f"{path}: {doc}\n{gate.logs()}")
                    events = received(doc)
                    self.assertEqual([e["type"] for e in events], ["session", "pong"], doc)
                    self.assertEqual(events[0]["endpoint"], endpoint)
                    self.assertEqual(events[1]["session_id"], events[0]["session_id"])

    def test_http_endpoints_200_through_wsgate_where_nginx_answers_400(self):
        # The deliberate difference: the seed's configs set `Connection "upgrade"` on every request of
        # the WebSocket location. nginx sends it on the plain status GET too and the app (as uvicorn)
        # answers 400; wsgate drops a Connection: upgrade that has no Upgrade beside it, so it is 200.
        for config in CONFIGS:
            with self.subTest(config=config):
                gate = self.start(Wsgate, config)
                nginx = self.start(Nginx, config)

                status, body, doc = self.http(gate.port, STATUS_PATH)
                self.assertEqual(status, 200, f"{doc}\n{gate.logs()}")
                self.assertEqual((body["status"], body["service"]), ("ok", "simple-voice-chat"))
                self.assertEqual(body["websocket_path"], "/api/v1/ws/simple-voice-chat")
                self.assertIn("ar", body["supported_languages"])
                self.assertEqual(sorted(body["supported_voice_types"]), ["female", "male"])
                self.assertIsInstance(body["active_sessions"], int)

                nginx_status, nginx_body, _ = self.http(nginx.port, STATUS_PATH)
                if config in SEED_CONFIGS:
                    self.assertEqual((nginx_status, nginx_body), (400, "Unsupported upgrade request."))
                else:
                    self.assertEqual(nginx_status, 200)

                status, body, doc = self.http(gate.port, HEALTH_PATH)
                self.assertEqual(status, 200, doc)
                self.assertEqual((body["status"], body["service"]), ("healthy", "voice"))
                self.assertTrue(body["espeak"]["available"])
                self.assertEqual(body["espeak"]["sample_rate"], 22050)

                status, body, doc = self.http(gate.port, ENDPOINTS_PATH)
                self.assertEqual(status, 200, doc)
                self.assertEqual(body["service"], "voice-service")
                by_name = {e["name"]: e for e in body["endpoints"]}
                self.assertEqual(by_name["simple-voice-chat"]["path"], "/api/v1/ws/simple-voice-chat")
                self.assertEqual(by_name["voice-conversation"]["path"], "/ws/voice-conversation")
                # `proxy_set_header Host $host` forwards the host without the port, as nginx does.
                self.assertEqual(by_name["simple-voice-chat"]["url"], f"ws://127.0.0.1{WS_PATH}")
                self.assertGreater(body["uptime_seconds"], 0)
                # The same two answers from nginx: these paths are outside the WebSocket locations.
                for path in [HEALTH_PATH, ENDPOINTS_PATH]:
                    self.assertEqual(self.http(nginx.port, path)[0], 200, path)

    def test_text_gets_a_spoken_reply(self):
        # The same text straight to voice-service, for the length to expect (espeak-ng's output varies
        # by a few samples from one run to the next, so the bytes are checked by their CRC instead).
        rc, doc, direct = self.speak(self.svc.ws_url("language=ar&voice_type=female"))
        self.assertEqual(rc, 0, doc)
        direct_duration = wav_stats(direct)[3]
        for config in CONFIGS:
            with self.subTest(config=config):
                gate = self.start(Wsgate, config)
                rc, doc, audio = self.speak(f"ws://127.0.0.1:{gate.port}{WS_PATH}")
                self.assertEqual(rc, 0, f"{doc}\n{gate.logs()}")
                events = received(doc)
                reply = next(e for e in events if e["type"] == "reply")
                self.assertEqual(reply["text"], "لقد قلت: " + TEXT)
                end = events[-1]
                self.assertEqual((end["type"], end["bytes"]), ("audio_end", len(audio)))
                channels, width, rate, duration, rms = wav_stats(audio)
                self.assertEqual((channels, width, rate), (1, 2, 22050))
                # Five Arabic words plus "you said": a couple of seconds of speech, not a click.
                self.assertGreater(duration, 1.5)
                self.assertLess(duration, 8)
                self.assertAlmostEqual(duration * 1000, end["duration_ms"], delta=1)
                self.assertGreater(rms, 500, "the reply audio is (nearly) silent")
                self.assertAlmostEqual(duration, direct_duration, delta=0.1 * direct_duration)
                # Every byte relayed unchanged, in order: the CRC the service computed before sending.
                self.assertEqual(zlib.crc32(audio), end["crc32"])
                print(f"\n  {config}: reply {duration:.2f} s, RMS {rms:.0f}, {len(audio)} bytes in "
                      f"{end['messages']} binary messages", flush=True)

    def test_python_websockets_client(self):
        async def run(url):
            async with websockets.connect(url, open_timeout=10) as ws:
                session = json.loads(await ws.recv())
                await ws.send(json.dumps({"type": "ping", "id": 7}))
                pong = json.loads(await asyncio.wait_for(ws.recv(), 10))
                await ws.send(json.dumps({"type": "text", "text": "hello"}))
                parts, end = [], None
                while end is None:
                    msg = await asyncio.wait_for(ws.recv(), 15)
                    if isinstance(msg, bytes):
                        parts.append(msg)
                    elif json.loads(msg)["type"] == "audio_end":
                        end = json.loads(msg)
                await ws.send(b"\0" * 3000)  # client audio: acknowledged with its byte count
                while (ack := json.loads(await asyncio.wait_for(ws.recv(), 10)))["type"] != "audio_ack":
                    pass
                return session, pong, b"".join(parts), end, ack

        for config in CONFIGS:
            with self.subTest(config=config):
                gate = self.start(Wsgate, config)
                session, pong, audio, end, ack = asyncio.run(run(f"ws://127.0.0.1:{gate.port}{WS_PATH}"))
                self.assertEqual(session["type"], "session")
                self.assertEqual((pong["type"], pong["id"], pong["session_id"]), ("pong", 7, session["session_id"]))
                self.assertEqual(len(audio), end["bytes"])
                self.assertEqual(audio[:4], b"RIFF")
                self.assertEqual(ack["bytes"], 3000)

    def test_node_ws_client(self):
        env = dict(os.environ, NODE_PATH="/usr/share/nodejs")
        for config in CONFIGS:
            with self.subTest(config=config):
                gate = self.start(Wsgate, config)
                r = subprocess.run(["node", "-e", test_clients.NODE_CLIENT, f"ws://127.0.0.1:{gate.port}{WS_PATH}"],
                                   capture_output=True, text=True, timeout=30, env=env)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr + gate.logs())
                seen = json.loads(r.stdout)["seen"]
                self.assertEqual([m["type"] for m in seen], ["session", "pong"])


class WsgateSeedFailureTest(unittest.TestCase):
    """The failure the seed really hit: no Upgrade/Connection forwarded (examples/configs/no-upgrade.conf)."""

    def test_probe_diagnoses_missing_upgrade_headers_through_wsgate(self):
        svc = VoiceService()
        self.addCleanup(svc.stop)
        gate = Wsgate("no-upgrade.conf", svc.port)
        self.addCleanup(gate.stop)
        url = f"ws://127.0.0.1:{gate.port}{WS_PATH}"
        r = probe(url)
        self.assertEqual(r.returncode, 4, r.stdout + gate.logs())
        self.assertIn("handshake refused: HTTP 404", r.stdout)
        self.assertIn("the server answered the upgrade as a plain request", r.stdout)
        self.assertIn("does not forward Upgrade/Connection", r.stdout)
        self.assertIn("proxy_set_header Upgrade $http_upgrade", r.stdout)
        self.assertIn("wsgate -t", r.stdout)
        rc, doc = probe_json(url)
        self.assertEqual((rc, doc["outcome"], doc["http"]["status"]), (4, "refused", 404))
        # The 404 is the app's own (FastAPI's body), passed through: the request did reach it.
        self.assertEqual(json.loads(doc["http"]["body"]), {"detail": "Not Found"})

    def test_wsgate_t_warns_on_the_config(self):
        conf = config_path("no-upgrade.conf")
        r = subprocess.run([WSGATE, "-t", "-c", conf], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)  # a warning, not an error: nginx loads it too
        self.assertIn("test is successful", r.stderr)
        warning = next((line for line in r.stderr.splitlines() if "does not forward Upgrade/Connection" in line), None)
        self.assertIsNotNone(warning, r.stderr)
        self.assertIn("[warn] location /api/v1/ws/", warning)
        self.assertIn("no-upgrade.conf:10", warning)
        self.assertIn("fix: proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade;", r.stderr)
        # The rule's stable id, as `wsgate explain` prints it for the WebSocket request.
        r = subprocess.run([WSGATE, "explain", "-c", conf, "http://127.0.0.1:8080" + WS_PATH, "--ws"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("[ws-upgrade-not-forwarded]", r.stdout)
        # The recommended config forwards them: no such warning.
        r = subprocess.run([WSGATE, "-t", "-c", config_path("recommended.conf")], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("does not forward Upgrade/Connection", r.stderr)


if __name__ == "__main__":
    main()
