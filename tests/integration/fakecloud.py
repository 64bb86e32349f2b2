"""A small MQTT 5 cloud endpoint over mutual TLS (the cloud PKI), for tests
that need a cloud mosquitto will not play: one that swallows publishes
(test_bridge_stall.py) or closes the connection on one message
(test_bridge_deadletter.py).  It answers CONNECT and PINGREQ; what happens to
a PUBLISH is the subclass's decision (on_publish)."""
import socket
import ssl
import threading


def read_packet(conn):
    """One MQTT packet: (first byte, body), or None at EOF."""
    head = conn.recv(1)
    if not head:
        return None
    length, mult = 0, 1
    while True:
        b = conn.recv(1)
        if not b:
            return None
        length += (b[0] & 0x7F) * mult
        mult *= 128
        if not b[0] & 0x80:
            break
    body = b""
    while len(body) < length:
        chunk = conn.recv(length - len(body))
        if not chunk:
            return None
        body += chunk
    return head[0], body


def parse_publish(body):
    """(topic, packet id bytes, payload) of an MQTT 5 QoS 1 PUBLISH body."""
    tlen = int.from_bytes(body[0:2], "big")
    topic = body[2:2 + tlen].decode()
    pos = 2 + tlen
    mid = body[pos:pos + 2]
    pos += 2
    plen, mult = 0, 1  # properties length (variable byte integer)
    while True:
        b = body[pos]
        pos += 1
        plen += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    return topic, mid, body[pos + plen:]


class FakeCloud(threading.Thread):
    """Accepts mutual-TLS connections on a free 127.0.0.1 port (self.port).
    For each PUBLISH calls on_publish(index of the connection, topic,
    payload), which returns "ack" (PUBACK), "swallow" (nothing) or "close"."""

    def __init__(self, pki):
        super().__init__(daemon=True)
        cert, key = pki.server("localhost")
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.load_verify_locations(pki.ca)
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.n_connections = 0
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.start()

    def on_publish(self, index, topic, payload):
        return "ack"

    def run(self):
        while not self.stop_ev.is_set():
            try:
                raw, _ = self.sock.accept()
            except OSError:
                continue
            try:
                conn = self.ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                raw.close()
                continue
            with self.lock:
                index = self.n_connections
                self.n_connections += 1
            threading.Thread(target=self.serve, args=(conn, index), daemon=True).start()

    def serve(self, conn, index):
        conn.settimeout(60)
        try:
            while not self.stop_ev.is_set():
                p = read_packet(conn)
                if p is None:
                    return
                kind, body = p[0] >> 4, p[1]
                if kind == 1:  # CONNECT -> CONNACK, success, no properties
                    conn.sendall(b"\x20\x03\x00\x00\x00")
                elif kind == 12:  # PINGREQ -> PINGRESP
                    conn.sendall(b"\xd0\x00")
                elif kind == 3:  # PUBLISH
                    topic, mid, payload = parse_publish(body)
                    what = self.on_publish(index, topic, payload)
                    if what == "close":
                        return
                    if what == "ack":  # PUBACK, reason success
                        conn.sendall(b"\x40\x02" + mid)
                elif kind == 14:  # DISCONNECT
                    return
        except (OSError, ssl.SSLError, IndexError):
            return
        finally:
            conn.close()

    def close(self):
        self.stop_ev.set()
        self.sock.close()
