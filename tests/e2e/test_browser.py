"""A real browser through a proxy: Debian's Chromium, headless, driven by Playwright (browser/drive.js),
loads voice-service's test page through nginx or wsgate with the seed's "fixed" config and the
recommended one, sees the pong, sends a text and plays the spoken reply; a screenshot of each run is
kept in tests/artifacts/.
    test_browser.py --proxy nginx|wsgate   (default: $E2E_PROXY, else nginx)"""
import json
import os
import subprocess
import sys
import unittest

from harness import PROXIES, SOURCE_DIR, VoiceService, main

BROWSER_DIR = os.path.join(SOURCE_DIR, "tests", "e2e", "browser")
ARTIFACTS = os.environ.get("E2E_ARTIFACTS", os.path.join(SOURCE_DIR, "tests", "artifacts"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TEXT = "مرحبا من المتصفح"  # the seed's session is Arabic (language=ar, voice_type=female)


def take_proxy_arg():
    proxy = os.environ.get("E2E_PROXY", "nginx")
    if "--proxy" in sys.argv:
        i = sys.argv.index("--proxy")
        proxy = sys.argv[i + 1]
        del sys.argv[i:i + 2]
    if proxy not in PROXIES:
        sys.exit(f"test_browser: unknown proxy {proxy!r}; use one of {', '.join(PROXIES)}")
    return proxy


PROXY = take_proxy_arg()


def drive(url, screenshot):
    r = subprocess.run(["node", os.path.join(BROWSER_DIR, "drive.js"), url, screenshot, TEXT],
                       capture_output=True, text=True, timeout=25, cwd=BROWSER_DIR,
                       env=dict(os.environ, CHROMIUM=CHROMIUM))
    try:
        report = json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise AssertionError(f"drive.js printed no report (exit {r.returncode}): {r.stdout!r} {r.stderr[-3000:]}")
    return r.returncode, report


class BrowserThroughProxyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for need, what in [(CHROMIUM, "Debian's chromium (scripts/install-deps.sh installs it)"),
                           (os.path.join(BROWSER_DIR, "node_modules", "playwright-core", "package.json"),
                            "playwright-core: run `npm ci --no-audit --no-fund` in tests/e2e/browser "
                            "(ctest's e2e_browser_deps does)")]:
            if not os.path.exists(need):
                raise RuntimeError(f"missing {need}: {what}")
        os.makedirs(ARTIFACTS, exist_ok=True)
        cls.svc = VoiceService()

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop()

    def check_page(self, config):
        proxy = PROXIES[PROXY](config, self.svc.port)
        self.addCleanup(proxy.stop)
        screenshot = os.path.join(ARTIFACTS, f"browser-{PROXY}-{config.removesuffix('.conf')}.png")
        if os.path.exists(screenshot):
            os.remove(screenshot)
        rc, report = drive(f"http://127.0.0.1:{proxy.port}/", screenshot)
        context = json.dumps(report, ensure_ascii=False)[:6000] + "\n" + proxy.logs()
        self.assertEqual(rc, 0, context)
        self.assertNotIn("wait_error", report, context)
        self.assertEqual(report["page_status"], 200, context)
        self.assertEqual(report["title"], "voice-service test page", context)

        # The page's WebSocket went through the proxy that served the page, not to the backend.
        ws_urls = [w["url"] for w in report["websockets"]]
        self.assertEqual(len(ws_urls), 1, context)
        self.assertTrue(ws_urls[0].startswith(f"ws://127.0.0.1:{proxy.port}/api/v1/ws/simple-voice-chat?"), ws_urls)

        events = report["events"]
        types = [e["type"] for e in events]
        self.assertEqual(types[:4], ["ws_open", "session", "pong", "reply"], context)
        session = events[1]
        self.assertEqual((session["language"], session["voice_type"]), ("ar", "female"))
        self.assertIn('"type":"pong"', report["log_text"])
        reply = events[3]
        self.assertIn(TEXT, reply["text"])

        # The spoken reply: every binary message arrived, and the page built and played a WAV of it.
        end = next(e for e in events if e["type"] == "audio_end")
        binary = [e["bytes"] for e in events if e["type"] == "binary"]
        self.assertEqual(sum(binary), end["bytes"], context)
        self.assertEqual(len(binary), end["messages"], context)
        self.assertGreater(end["duration_ms"], 800)
        self.assertEqual(report["audio"]["bytes"], end["bytes"], context)
        self.assertNotIn("play_error", types, context)
        self.assertNotIn("media_error", types, context)
        self.assertIn("media_playing", types, context)
        meta = next(e for e in events if e["type"] == "media_loadedmetadata")
        # The browser decoded the WAV to the duration the server announced.
        self.assertAlmostEqual(meta["duration"], end["duration_ms"] / 1000, delta=0.05)
        self.assertEqual(report["page_errors"], [], context)

        with open(screenshot, "rb") as f:
            png = f.read()
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        self.assertGreater(len(png), 10_000)
        print(f"\n  screenshot ({PROXY}, {config}): {screenshot}", file=sys.stderr)

    def test_seed_fixed_config(self):
        self.check_page("seed-fixed.conf")

    def test_recommended_config(self):
        self.check_page("recommended.conf")


if __name__ == "__main__":
    main()
