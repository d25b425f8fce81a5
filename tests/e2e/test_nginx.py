"""voice-service behind Debian's nginx with the seed's configs (examples/configs), rewritten to test
ports: the probe reproduces and diagnoses the seed's failure, and succeeds where the seed did."""
import json
import os
import subprocess
import tempfile
import unittest

from harness import Nginx, VoiceService, VoiceServiceCase, free_port, probe, probe_json, received, wav_stats, main

WS_PATH = "/api/v1/ws/simple-voice-chat?language=ar&voice_type=female"
STATUS_PATH = "/api/v1/ws/simple-voice-chat/status"


class NginxSeedConfigsTest(VoiceServiceCase):

    def with_nginx(self, name, **kw):
        nginx = Nginx(name, self.svc.port, **kw)
        self.addCleanup(nginx.stop)
        return nginx

    def test_websocket_works_through_configs_with_upgrade_headers(self):
        for name in ["seed-fixed.conf", "seed-broken.conf", "recommended.conf"]:
            with self.subTest(config=name):
                nginx = self.with_nginx(name)
                rc, doc = probe_json(f"ws://127.0.0.1:{nginx.port}{WS_PATH}")
                self.assertEqual(rc, 0, doc)
                self.assertEqual(doc["replies"], 1)
                self.assertIn("pong", [e["type"] for e in received(doc)])
                rc, doc = probe_json(f"ws://127.0.0.1:{nginx.port}/ws/voice-conversation?preset=qwen_optimized")
                self.assertEqual(rc, 0, doc)

    def test_no_upgrade_config_is_diagnosed(self):
        nginx = self.with_nginx("no-upgrade.conf")
        r = probe(f"ws://127.0.0.1:{nginx.port}{WS_PATH}")
        self.assertEqual(r.returncode, 4, r.stdout)
        self.assertIn("handshake refused: HTTP 404", r.stdout)
        self.assertIn("the server answered the upgrade as a plain request", r.stdout)
        self.assertIn("proxy_http_version 1.1", r.stdout)
        self.assertIn("proxy_set_header Upgrade $http_upgrade", r.stdout)
        self.assertIn("wsgate -t", r.stdout)
        rc, doc = probe_json(f"ws://127.0.0.1:{nginx.port}{WS_PATH}")
        self.assertEqual((rc, doc["outcome"], doc["http"]["status"]), (4, "refused", 404))
        self.assertEqual(json.loads(doc["http"]["body"]), {"detail": "Not Found"})
        # The plain status endpoint is fine through this config: it sends no Connection: upgrade.
        rc, doc = probe_json(f"http://127.0.0.1:{nginx.port}{STATUS_PATH}")
        self.assertEqual((rc, doc["http"]["status"]), (0, 200))

    def test_status_endpoint_400_with_seed_configs_200_with_recommended(self):
        for name in ["seed-fixed.conf", "seed-broken.conf"]:
            with self.subTest(config=name):
                nginx = self.with_nginx(name)
                r = probe(f"http://127.0.0.1:{nginx.port}{STATUS_PATH}")
                self.assertEqual(r.returncode, 4, r.stdout)
                self.assertIn("HTTP 400", r.stdout)
                self.assertIn("map $http_upgrade $connection_upgrade", r.stdout)
        nginx = self.with_nginx("recommended.conf")
        rc, doc = probe_json(f"http://127.0.0.1:{nginx.port}{STATUS_PATH}")
        self.assertEqual((rc, doc["http"]["status"]), (0, 200), doc)
        self.assertEqual(json.loads(doc["http"]["body"])["status"], "ok")
        for path in ["/api/v1/health/voice", "/api/v1/voice/endpoints", "/"]:
            rc, doc = probe_json(f"http://127.0.0.1:{nginx.port}{path}")
            self.assertEqual((rc, doc["http"]["status"]), (0, 200), path)
        # The endpoints document is built from the Host nginx forwards: `proxy_set_header Host $host`
        # drops the port (`$http_host` would keep it), so the URLs name the proxy's host only.
        rc, doc = probe_json(f"http://127.0.0.1:{nginx.port}/api/v1/voice/endpoints")
        urls = [e["url"] for e in json.loads(doc["http"]["body"])["endpoints"]]
        self.assertIn(f"ws://127.0.0.1{WS_PATH}", urls)

    def test_spoken_reply_through_recommended(self):
        nginx = self.with_nginx("recommended.conf")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "reply.wav")
            rc, doc = probe_json(f"ws://127.0.0.1:{nginx.port}{WS_PATH}", "--send",
                                 '{"type":"text","text":"مرحبا بكم في خدمة الصوت"}', "--expect-reply", "audio_end",
                                 "--save-binary", path)
            self.assertEqual(rc, 0, doc)
            with open(path, "rb") as f:
                audio = f.read()
        end = received(doc)[-1]
        self.assertEqual((end["type"], end["bytes"]), ("audio_end", len(audio)))
        _, _, rate, duration, rms = wav_stats(audio)
        self.assertGreater(duration, 1)
        self.assertGreater(rms, 500)

    def test_upstream_down_is_502(self):
        svc = VoiceService()
        nginx = Nginx("recommended.conf", svc.port)
        self.addCleanup(nginx.stop)
        svc.stop()
        r = probe(f"ws://127.0.0.1:{nginx.port}{WS_PATH}")
        self.assertEqual(r.returncode, 4, r.stdout)
        self.assertIn("HTTP 502", r.stdout)
        self.assertIn("upstream", r.stdout)


class NginxTlsTest(unittest.TestCase):
    """wss:// through nginx with a self-signed certificate: verification failures are diagnosed."""

    @classmethod
    def setUpClass(cls):
        cls.svc = VoiceService()
        cls.dir = tempfile.TemporaryDirectory(prefix="e2e-tls-")
        cls.cert = os.path.join(cls.dir.name, "cert.pem")
        cls.key = os.path.join(cls.dir.name, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=voice.test", "-addext", "subjectAltName=DNS:voice.test,IP:127.0.0.1",
                        "-keyout", cls.key, "-out", cls.cert], check=True, capture_output=True, timeout=60)
        cls.tls_port = free_port()
        cls.nginx = Nginx("recommended.conf", cls.svc.port,
                          extra_server=f" listen 127.0.0.1:{cls.tls_port} ssl; ssl_certificate {cls.cert};"
                                       f" ssl_certificate_key {cls.key};")

    @classmethod
    def tearDownClass(cls):
        cls.nginx.stop()
        cls.svc.stop()
        cls.dir.cleanup()

    def url(self, scheme="wss", host="127.0.0.1", port=None):
        return f"{scheme}://{host}:{port or self.tls_port}{WS_PATH}"

    def test_self_signed_rejected_then_accepted(self):
        r = probe(self.url())
        self.assertEqual(r.returncode, 3, r.stdout)
        self.assertIn("self-signed", r.stdout)
        self.assertIn("--insecure", r.stdout)
        self.assertEqual(probe(self.url(), "--insecure").returncode, 0)
        r = probe(self.url(), "--cacert", self.cert)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("certificate verified for 127.0.0.1", r.stdout)

    def test_name_mismatch(self):
        # "localhost" resolves here but is not in the certificate.
        r = probe(self.url(host="localhost"), "--cacert", self.cert)
        self.assertEqual(r.returncode, 3, r.stdout)
        self.assertIn("not valid for 'localhost'", r.stdout)

    def test_https_status_and_plain_to_tls_port(self):
        rc, doc = probe_json(f"https://127.0.0.1:{self.tls_port}{STATUS_PATH}", "--cacert", self.cert)
        self.assertEqual((rc, doc["http"]["status"]), (0, 200))
        r = probe(self.url(scheme="ws"))
        self.assertEqual(r.returncode, 4, r.stdout)
        self.assertIn("use wss://", r.stdout)


if __name__ == "__main__":
    main()
