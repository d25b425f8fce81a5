"""Throwaway TLS material for the TLS suites, made with the `openssl` CLI: one CA and leaf
certificates signed by it (RSA 2048, subjectAltName DNS names and optionally IPs), plus a client
context that trusts only that CA."""
import os
import shutil
import ssl
import subprocess
import tempfile

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def _run(*args, cwd):
    r = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {r.stderr.strip()}")


class TestPki:
    """A CA (ca.pem) and leaf certificates in a temporary directory, readable by nginx's and
    wsgate's workers whatever user they run as."""

    def __init__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="wsgate-it-tls-")
        self.dir = self._dir.name
        os.chmod(self.dir, 0o755)
        self.ca = os.path.join(self.dir, "ca.pem")
        self.ca_key = os.path.join(self.dir, "ca.key")
        _run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.ca_key, "-out",
             self.ca, "-days", "2", "-subj", "/CN=wsgate test CA", "-addext",
             "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
             cwd=self.dir)
        self._serial = 1

    def leaf(self, name, dns=(), ips=(), usage="serverAuth"):
        """Issues a certificate for CN=`name` with `name`, `dns` and `ips` as subjectAltNames
        (`usage`: its extendedKeyUsage, "clientAuth" for a client's); returns (certificate path,
        key path)."""
        cert = os.path.join(self.dir, f"{name}.pem")
        key = os.path.join(self.dir, f"{name}.key")
        csr = os.path.join(self.dir, f"{name}.csr")
        ext = os.path.join(self.dir, f"{name}.ext")
        sans = [f"DNS:{n}" for n in (name, *dns)] + [f"IP:{a}" for a in ips]
        with open(ext, "w") as f:
            f.write(f"subjectAltName={','.join(sans)}\nbasicConstraints=CA:FALSE\n"
                    f"keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n")
        _run("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj",
             f"/CN={name}", cwd=self.dir)
        self._serial += 1
        _run("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-set_serial",
             str(self._serial), "-days", "2", "-extfile", ext, "-out", cert, cwd=self.dir)
        for p in (cert, key):
            os.chmod(p, 0o644)
        return cert, key

    def client_context(self, check_hostname=True, minimum=None, maximum=None):
        """A client context trusting only this CA; `minimum`/`maximum` are ssl.TLSVersion."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.ca)
        ctx.check_hostname = check_hostname
        ctx.verify_mode = ssl.CERT_REQUIRED
        if minimum is not None:
            ctx.minimum_version = minimum
        if maximum is not None:
            ctx.maximum_version = maximum
        return ctx

    def cleanup(self):
        self._dir.cleanup()
