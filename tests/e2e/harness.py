"""Shared helpers for the end-to-end tests: start the real binaries on loopback ephemeral ports,
poll for readiness, stop them at the end, and run wsgate-probe."""
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest

VOICE_SERVICE = os.environ.get("VOICE_SERVICE", "voice-service")
PROBE = os.environ.get("WSGATE_PROBE", "wsgate-probe")
SOURCE_DIR = os.environ.get("WSGATE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
WSGATE = os.environ.get("WSGATE", "wsgate")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0, exited=None):
    """Waits until 127.0.0.1:port accepts; `exited` (a Popen) stops the wait early when it dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if exited is not None and exited.poll() is not None:
            raise RuntimeError(f"it exited with status {exited.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class VoiceService:
    """voice-service on an ephemeral port; the port comes from its `listening ADDR:PORT` line."""

    def __init__(self, *extra):
        self.proc = subprocess.Popen([VOICE_SERVICE, "--listen", "127.0.0.1:0", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"listening (\S+):(\d+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"voice-service did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(m.group(2))
        self.base = f"127.0.0.1:{self.port}"

    def ws_url(self, query="language=en&voice_type=female", path="/api/v1/ws/simple-voice-chat"):
        return f"ws://{self.base}{path}" + (f"?{query}" if query else "")

    def stop(self, sig=signal.SIGTERM, timeout=5):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode



class VoiceServiceCase(unittest.TestCase):
    """Tests sharing one voice-service (cls.svc), started once for the class."""

    @classmethod
    def setUpClass(cls):
        cls.svc = VoiceService()

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop()

def proxy_config(config_name, port, backend_port, extra_server="", extra_http=""):
    """One of examples/configs/*.conf with its listen port and backend address rewritten for a test."""
    with open(os.path.join(SOURCE_DIR, "examples", "configs", config_name)) as f:
        text = f.read()
    if "listen 127.0.0.1:8080;" not in text:
        raise RuntimeError(f"{config_name}: no 'listen 127.0.0.1:8080;' to rewrite to a test port")
    text = text.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{port};" + extra_server)
    text = text.replace("localhost:8000", f"127.0.0.1:{backend_port}")
    text = text.replace("127.0.0.1:8000", f"127.0.0.1:{backend_port}")
    return text.replace("http {", "http {\n    access_log off;" + extra_http, 1)


class Proxy:
    """A reverse proxy (nginx or wsgate, the same flags) running one of examples/configs/*.conf
    rewritten to a test port in front of the backend at backend_port."""

    name = "proxy"
    binary = None

    def __init__(self, config_name, backend_port, extra_server="", extra_http=""):
        self.dir = tempfile.TemporaryDirectory(prefix=f"e2e-{self.name}-")
        self.port = free_port()
        self.config_name = config_name
        self.conf = os.path.join(self.dir.name, f"{self.name}.conf")
        with open(self.conf, "w") as f:
            f.write(self.prepare(proxy_config(config_name, self.port, backend_port, extra_server, extra_http)))
        self.error_log = os.path.join(self.dir.name, "error.log")
        # Its output goes to a file: a pipe nobody reads could fill and stall it.
        self.output_path = os.path.join(self.dir.name, "output.log")
        with open(self.output_path, "w") as out:
            self.proc = subprocess.Popen(
                [self.binary, "-p", self.dir.name, "-c", self.conf, "-g",
                 f"daemon off; pid {self.dir.name}/{self.name}.pid; error_log {self.error_log} info;"],
                stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_port(self.port, exited=self.proc)
        except RuntimeError as e:
            logs = self.logs()
            self.stop()
            raise RuntimeError(f"{self.name} ({self.binary}) did not serve {config_name}: {e}\n{logs}") from None

    def prepare(self, text):
        return text

    def logs(self):
        """Its output and error log, for failure messages."""
        parts = []
        for label, path in [("output", self.output_path), ("error log", self.error_log)]:
            try:
                with open(path, errors="replace") as f:
                    parts.append(f"--- {self.name} {label}:\n{f.read()[-4000:]}")
            except OSError:
                parts.append(f"--- {self.name} {label}: (none)")
        return "\n".join(parts)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.dir.cleanup()


class Nginx(Proxy):
    """Debian's nginx, the behavioural reference."""

    name = "nginx"
    binary = NGINX

    def prepare(self, text):
        # nginx started as root runs workers as nobody, who cannot read the temporary directory.
        return "user root;\n" + text


class Wsgate(Proxy):
    """wsgate, started exactly as nginx is (-p, -c, -g)."""

    name = "wsgate"
    binary = WSGATE


PROXIES = {"nginx": Nginx, "wsgate": Wsgate}


def probe(*args, stdin=None, timeout=30):
    return subprocess.run([PROBE, *args], input=stdin, capture_output=True, text=True, timeout=timeout)


def probe_json(*args, stdin=None, timeout=30):
    r = probe(*args, "--json", stdin=stdin, timeout=timeout)
    try:
        doc = json.loads(r.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"probe printed no JSON ({e}): {r.stdout!r} {r.stderr!r}")
    if doc["exit_code"] != r.returncode:
        raise AssertionError(f"JSON exit_code {doc['exit_code']} != process exit {r.returncode}")
    return r.returncode, doc


def received(doc):
    """Received text messages of a probe JSON result, parsed."""
    out = []
    for m in doc.get("messages", []):
        if m["direction"] == "received" and not m["binary"]:
            out.append(json.loads(m["data"]))
    return out


def wav_stats(data):
    """(channels, sample width, rate, duration in s, RMS of int16 samples) of a WAV given as bytes."""
    import array
    import io
    import math
    import wave
    with wave.open(io.BytesIO(data)) as w:
        channels, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
        pcm = w.readframes(frames)
    samples = array.array("h", pcm)
    rms = math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0
    return channels, width, rate, frames / rate, rms


def main():
    unittest.main(verbosity=2)
