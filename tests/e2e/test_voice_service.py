"""voice-service driven directly by wsgate-probe, Python websockets and raw HTTP."""
import asyncio
import http.client
import json
import os
import socket
import tempfile
import time
import unittest

import websockets

from harness import VoiceService, VoiceServiceCase, probe, probe_json, received, wav_stats, main


def http_get(port, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, dict(r.getheaders()), body


class VoiceServiceTest(VoiceServiceCase):

    def speak(self, query, text):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "reply.wav")
            rc, doc = probe_json(self.svc.ws_url(query), "--send", json.dumps({"type": "text", "text": text}),
                                 "--expect-reply", "audio_end", "--save-binary", path)
            with open(path, "rb") as f:
                audio = f.read()
        self.assertEqual(rc, 0, doc)
        events = received(doc)
        return events, audio, doc

    def test_ping_pong_with_probe(self):
        rc, doc = probe_json(self.svc.ws_url("language=ar&voice_type=female"))
        self.assertEqual(rc, 0, doc)
        self.assertEqual((doc["sent"], doc["replies"]), (1, 1))
        events = received(doc)
        session = next(e for e in events if e["type"] == "session")
        pong = next(e for e in events if e["type"] == "pong")
        self.assertEqual((session["language"], session["voice_type"], session["voice"]), ("ar", "female", "ar+f3"))
        self.assertEqual(pong["session_id"], session["session_id"])
        reply = next(m for m in doc["messages"] if m.get("reply_to") == 0)
        self.assertEqual(json.loads(reply["data"])["type"], "pong")
        self.assertLess(reply["ms"], 1000)

    def test_probe_human_output(self):
        r = probe(self.svc.ws_url())
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn('"type":"pong"', r.stdout)
        self.assertRegex(r.stdout, r"\(reply, [0-9.]+ ms\)")
        self.assertIn("OK: 1/1", r.stdout)

    def test_text_gets_spoken_reply_english(self):
        text = "hello world, this is a test of the voice service"
        events, audio, _ = self.speak("language=en&voice_type=female", text)
        reply = next(e for e in events if e["type"] == "reply")
        end = events[-1]
        self.assertEqual(reply["text"], "You said: " + text)
        self.assertEqual(reply["voice"], "en+f3")
        self.assertEqual(end["type"], "audio_end")
        self.assertEqual(end["bytes"], len(audio))
        channels, width, rate, duration, rms = wav_stats(audio)
        self.assertEqual((channels, width, rate), (1, 2, end["sample_rate"]))
        # ~10 words: a real voice speaks them in seconds, not milliseconds or minutes.
        self.assertGreater(duration, 1.5)
        self.assertLess(duration, 10)
        self.assertGreater(rms, 500, "the reply audio is (nearly) silent")
        print(f"en reply: {duration:.2f} s at {rate} Hz, RMS {rms:.0f}, {len(audio)} bytes")

    def test_text_gets_spoken_reply_arabic_male(self):
        events, audio, _ = self.speak("language=ar&voice_type=male", "مرحبا")
        reply = next(e for e in events if e["type"] == "reply")
        self.assertTrue(reply["text"].startswith("لقد قلت"), reply)
        self.assertEqual(reply["voice"], "ar")
        _, _, rate, duration, rms = wav_stats(audio)
        self.assertGreater(duration, 0.5)
        self.assertLess(duration, 6)
        self.assertGreater(rms, 500)
        print(f"ar reply: {duration:.2f} s at {rate} Hz, RMS {rms:.0f}")

    def test_female_and_male_voices_differ(self):
        _, female, _ = self.speak("language=en&voice_type=female", "good morning")
        _, male, _ = self.speak("language=en&voice_type=male", "good morning")
        self.assertNotEqual(female, male)

    def test_binary_ack_and_errors_keep_session(self):
        async def run():
            async with websockets.connect(self.svc.ws_url("language=fr&voice_type=robot")) as ws:
                session = json.loads(await ws.recv())
                self.assertEqual(session["type"], "session")
                self.assertEqual(session["language"], "ar")  # the default, since fr is unsupported
                errors = [json.loads(await ws.recv()) for _ in range(2)]
                self.assertIn("unsupported language 'fr'", errors[0]["message"])
                self.assertIn("unsupported voice_type 'robot'", errors[1]["message"])
                await ws.send(bytes(range(256)) * 40)
                ack = json.loads(await ws.recv())
                self.assertEqual((ack["type"], ack["bytes"]), ("audio_ack", 10240))
                for bad, fragment in [("{not json", "invalid JSON"), ('{"type":"dance"}', "unknown message type"),
                                      ('[1,2]', "JSON object"), ('{"type":"text"}', '"text"'),
                                      ('{"type":"text","text":"hi","language":"xx"}', "unsupported language"),
                                      ('{"type":"config","language":"de"}', "unsupported language")]:
                    await ws.send(bad)
                    event = json.loads(await ws.recv())
                    self.assertEqual(event["type"], "error", bad)
                    self.assertIn(fragment, event["message"])
                await ws.send('{"type":"config","language":"en","voice_type":"male"}')
                self.assertEqual(json.loads(await ws.recv())["voice"], "en")
                await ws.send('{"type":"ping","id":42}')
                pong = json.loads(await ws.recv())
                self.assertEqual((pong["type"], pong["id"]), ("pong", 42))
        asyncio.run(run())

    def test_synthesis_does_not_block_other_sessions(self):
        long_text = ("This sentence is long enough to keep the speech synthesiser busy for a while. " * 24)[:1990]

        async def run():
            order = []
            async with websockets.connect(self.svc.ws_url()) as speaker, \
                    websockets.connect(self.svc.ws_url()) as pinger:
                await speaker.recv()
                await pinger.recv()
                await speaker.send(json.dumps({"type": "text", "text": long_text}))
                self.assertEqual(json.loads(await speaker.recv())["type"], "reply")
                # The speaker's audio is being synthesised now; the other session must still answer.
                start = time.monotonic()
                await pinger.send('{"type":"ping"}')
                self.assertEqual(json.loads(await pinger.recv())["type"], "pong")
                order.append(("pong", time.monotonic() - start))
                while True:
                    m = await speaker.recv()
                    if isinstance(m, str):
                        order.append((json.loads(m)["type"], time.monotonic() - start))
                        break
                return order
        order = asyncio.run(run())
        print(f"while synthesising: {order}")
        self.assertEqual([name for name, _ in order], ["pong", "audio_end"])
        self.assertLess(order[0][1], order[1][1] / 2)

    def test_oversize_message_closes_1009(self):
        rc, doc = probe_json(self.svc.ws_url(), "--stdin", stdin="x" * (2 << 20) + "\n")
        self.assertEqual(rc, 6, doc)
        self.assertEqual(doc["close"]["code"], 1009)
        self.assertIn("too big", doc["diagnosis"] + doc["error"])
        # The service goes on serving others.
        self.assertEqual(probe(self.svc.ws_url()).returncode, 0)

    def test_legacy_endpoint(self):
        rc, doc = probe_json(self.svc.ws_url("preset=qwen_optimized", path="/ws/voice-conversation"))
        self.assertEqual(rc, 0, doc)
        session = received(doc)[0]
        self.assertEqual((session["endpoint"], session["preset"]), ("voice-conversation", "qwen_optimized"))

    def test_http_endpoints(self):
        status, headers, body = http_get(self.svc.port, "/api/v1/ws/simple-voice-chat/status")
        self.assertEqual(status, 200)
        doc = json.loads(body)
        self.assertEqual(doc["status"], "ok")
        self.assertIsInstance(doc["active_sessions"], int)

        status, _, body = http_get(self.svc.port, "/api/v1/health/voice")
        self.assertEqual(status, 200)
        doc = json.loads(body)
        self.assertEqual(doc["status"], "healthy")
        self.assertTrue(doc["espeak"]["available"])
        self.assertGreater(doc["espeak"]["sample_rate"], 8000)

        async def with_open_session():
            async with websockets.connect(self.svc.ws_url()) as ws:
                await ws.recv()
                return http_get(self.svc.port, "/api/v1/voice/endpoints",
                                {"Host": "voice.example.test:8443", "X-Forwarded-Proto": "https"})
        status, _, body = asyncio.run(with_open_session())
        self.assertEqual(status, 200)
        doc = json.loads(body)
        by_name = {e["name"]: e for e in doc["endpoints"]}
        chat = by_name["simple-voice-chat"]
        self.assertEqual(chat["url"], "wss://voice.example.test:8443/api/v1/ws/simple-voice-chat"
                                      "?language=ar&voice_type=female")
        self.assertGreaterEqual(chat["active_sessions"], 1)
        self.assertEqual(by_name["voice-health"]["url"], "https://voice.example.test:8443/api/v1/health/voice")
        self.assertIn("voice-conversation", by_name)
        self.assertGreater(doc["uptime_seconds"], 0)
        # The session is gone once its client is.
        for _ in range(50):
            doc = json.loads(http_get(self.svc.port, "/api/v1/voice/endpoints")[2])
            if doc["active_sessions"] == 0:
                break
            time.sleep(0.05)
        self.assertEqual(doc["active_sessions"], 0)

    def test_uvicorn_like_answers(self):
        # A plain GET on a WebSocket route: 404, as FastAPI answers.
        for path in ["/api/v1/ws/simple-voice-chat?language=ar", "/ws/voice-conversation"]:
            status, _, body = http_get(self.svc.port, path)
            self.assertEqual(status, 404, path)
            self.assertEqual(json.loads(body), {"detail": "Not Found"})
        # Connection: upgrade without Upgrade: websocket on a plain route: 400, as uvicorn answers.
        status, _, body = http_get(self.svc.port, "/api/v1/ws/simple-voice-chat/status", {"Connection": "upgrade"})
        self.assertEqual(status, 400)
        self.assertEqual(body, b"Unsupported upgrade request.")
        # A WebSocket handshake on a plain route: 403.
        r = probe(f"ws://{self.svc.base}/api/v1/health/voice")
        self.assertEqual(r.returncode, 4, r.stdout)
        self.assertIn("403", r.stdout)

    def test_page(self):
        status, headers, body = http_get(self.svc.port, "/")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/html"))
        page = body.decode()
        for needle in ["location.host", "new WebSocket", "'wss://'", "{type: 'ping'}", "new Audio", "new Blob"]:
            self.assertIn(needle, page)

    def test_probe_http_mode(self):
        r = probe(f"http://{self.svc.base}/api/v1/health/voice")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("HTTP 200", r.stdout)
        self.assertIn('"available":true', r.stdout)
        rc, doc = probe_json(f"http://{self.svc.base}/nope")
        self.assertEqual(rc, 4)
        self.assertEqual(doc["http"]["status"], 404)

    def test_probe_failures(self):
        r = probe(f"ws://127.0.0.1:{self.closed_port()}/x")
        self.assertEqual(r.returncode, 2, r.stdout)
        self.assertIn("nothing listens", r.stdout)
        # A server that accepts but never answers: a handshake timeout.
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            start = time.monotonic()
            r = probe(f"ws://127.0.0.1:{silent.getsockname()[1]}/x", "--timeout", "0.5")
            self.assertEqual(r.returncode, 5, r.stdout)
            self.assertLess(time.monotonic() - start, 5)
        # A reply that never comes.
        r = probe(self.svc.ws_url(), "--expect-reply", "no-such-type", "--timeout", "0.5")
        self.assertEqual(r.returncode, 7, r.stdout)
        self.assertIn("no reply of type 'no-such-type'", r.stdout)
        # TLS spoken to a plain port.
        r = probe(f"wss://{self.svc.base}/api/v1/ws/simple-voice-chat", "--timeout", "3")
        self.assertEqual(r.returncode, 3, r.stdout)
        self.assertIn("does not speak TLS", r.stdout.replace("probably does not", "does not"))
        # Usage errors.
        for args in [["ftp://x/"], ["ws://127.0.0.1:99999/"], [self.svc.ws_url(), "-H", "bad header"],
                     [f"http://{self.svc.base}/", "--send", "x"]]:
            self.assertEqual(probe(*args).returncode, 1, args)

    @staticmethod
    def closed_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


class ShutdownTest(unittest.TestCase):
    def test_sigterm_closes_sessions_with_1001(self):
        svc = VoiceService()
        try:
            async def run():
                async with websockets.connect(svc.ws_url()) as ws:
                    await ws.recv()
                    start = time.monotonic()
                    svc.proc.send_signal(15)
                    with self.assertRaises(websockets.ConnectionClosed) as closed:
                        await ws.recv()
                    self.assertEqual(closed.exception.code, 1001)
                    return time.monotonic() - start
            elapsed = asyncio.run(run())
            self.assertLess(elapsed, 3)
            self.assertEqual(svc.proc.wait(5), 0)
        finally:
            svc.stop()


if __name__ == "__main__":
    main()
