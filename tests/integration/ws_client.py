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


def apply_mask(payload, key):
    """`payload` XORed with the 4-byte `key` (masking and unmasking are the same)."""
    n = len(payload)
    if not n:
        return b""
    return (int.from_bytes(payload, "big") ^ int.from_bytes((key * (n // 4 + 1))[:n], "big")
            ).to_bytes(n, "big")


def accept_key(key):
    """The Sec-WebSocket-Accept that answers Sec-WebSocket-Key `key`."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def frame(opcode, payload=b"", fin=True, mask=True):
    """One WebSocket frame (RFC 6455 5.2); clients mask, servers do not."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + apply_mask(payload, key)


def ws_frame(opcode, payload=b""):
    """A client's (masked) frame, FIN set."""
    return frame(opcode, payload)


def split_frame(buf):
    """(fin, opcode, masked, payload, rest) of the whole frame at the start of `buf`, the payload
    unmasked; None while `buf` holds less than a frame."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    n, pos = b1 & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, pos = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, pos = struct.unpack("!Q", buf[2:10])[0], 10
    masked = bool(b1 & 0x80)
    key = buf[pos:pos + 4] if masked else None
    pos += 4 if masked else 0
    if len(buf) < pos + n:
        return None
    payload = buf[pos:pos + n]
    return bool(b0 & 0x80), b0 & 0x0F, masked, apply_mask(payload, key) if masked else payload, \
        buf[pos + n:]


def next_frame(recv, buf=b""):
    """split_frame() of the next frame, calling `recv()` for more bytes as needed."""
    while True:
        f = split_frame(buf)
        if f is not None:
            return f
        d = recv()
        if not d:
            raise ConnectionError(f"closed before a whole frame ({len(buf)} bytes of it)")
        buf += d


def read_frame(sock, buf=b""):
    """(opcode, payload, rest) of the next frame, unmasked if it was masked (a client's);
    reads from sock as needed."""
    _, opcode, _, payload, rest = next_frame(lambda: sock.recv(65536), buf)
    return opcode, payload, rest


class FrameReader:
    def __init__(self, sock, buf=b""):
        self.sock, self.buf = sock, buf

    def frame(self):
        """(fin, opcode, payload) of the next frame; a server's frame must not be masked."""
        fin, opcode, masked, payload, self.buf = next_frame(lambda: self.sock.recv(65536),
                                                            self.buf)
        if masked:
            raise AssertionError("the server sent a masked frame")
        return fin, opcode, payload

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
    want = accept_key(key)
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
