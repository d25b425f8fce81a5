"""A WebSocket client over any socket (plain or TLS), for the integration suites: the RFC 6455
handshake with its Sec-WebSocket-Accept checked, masked client frames, and a reader that
refuses masked server frames."""
import base64
import hashlib
import os
import re
import ssl
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def mask(payload, key):
    """`payload` XORed with the 4-byte `key` (masking and unmasking are the same)."""
    n = len(payload)
    if not n:
        return b""
    return (int.from_bytes(payload, "big") ^ int.from_bytes((key * (n // 4 + 1))[:n], "big")
            ).to_bytes(n, "big")


def ws_frame(opcode, payload=b""):
    """A client's (masked) frame, FIN set."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    key = os.urandom(4)
    return head + key + mask(payload, key)


class FrameReader:
    def __init__(self, sock, buf=b""):
        self.sock, self.buf = sock, buf

    def _need(self, n):
        while len(self.buf) < n:
            d = self.sock.recv(65536)
            if not d:
                raise ConnectionError(f"closed before a whole frame ({len(self.buf)} of {n} bytes)")
            self.buf += d

    def frame(self):
        """(fin, opcode, payload) of the next frame; a server's frame must not be masked."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            raise AssertionError("the server sent a masked frame")
        n, pos = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, pos = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, pos = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(pos + n)
        payload, self.buf = self.buf[pos:pos + n], self.buf[pos + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def message(self):
        """(opcode, payload) of the next whole message, continuation frames joined."""
        fin, opcode, payload = self.frame()
        while not fin and opcode not in (8, 9, 10):
            fin, cont, more = self.frame()
            if cont != 0:
                raise AssertionError(f"frame opcode {cont} inside a fragmented message")
            payload += more
        return opcode, payload


def ws_handshake(sock, host="a.test", target="/ws"):
    """The RFC 6455 handshake on `sock`, Sec-WebSocket-Accept checked; returns a FrameReader
    holding what followed the 101 head."""
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        d = sock.recv(65536)
        if not d:
            raise AssertionError(f"closed during the handshake: {data!r}")
        data += d
    head, _, rest = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise AssertionError(f"no 101: {head!r}")
    accept = re.search(rb"(?im)^sec-websocket-accept:\s*(\S+)", head).group(1).decode()
    want = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
    if accept != want:
        raise AssertionError(f"Sec-WebSocket-Accept {accept}, want {want}")
    return FrameReader(sock, rest)


def recv_to_close(sock):
    """Everything until the peer closes (a TLS peer may close without close_notify)."""
    data = b""
    while True:
        try:
            d = sock.recv(65536)
        except (ssl.SSLEOFError, ConnectionResetError):
            return data
        if not d:
            return data
        data += d
