"""A small MQTT 5 cloud endpoint over mutual TLS (the cloud PKI), for tests
that need a cloud mosquitto will not play: one that swallows publishes
(test_bridge_stall.py), closes the connection on one message
(test_bridge_deadletter.py), or speaks scripted bytes to the bridge's own
MQTT code (test_bridge_cloud_wire.py).  It answers CONNECT and PINGREQ; what
happens to a PUBLISH is the subclass's decision (on_publish).

For scripted tests it also records the CONNECT body and every packet of every
connection (with its size and arrival time), takes CONNACK properties
(connack_props, or connack() per connection), can stop answering PINGREQ
(answer_pingreq), and sends arbitrary bytes on a live connection (send) from
the connection's own thread, so the TLS object is never used by two threads
at once.  It counts the reads of each connection (reads; a packet's `read`
is the read that completed it: an SSLSocket.recv returns at most one TLS
record, so packets with different reads came in different records) and can
close a live connection from its side (close_connection).  A scripted plant
broker (test_bridge_plant_wire.py) is a subclass."""
import select
import socket
import ssl
import threading
import time


def varint(n):
    """MQTT variable byte integer."""
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def get_varint(buf, pos):
    """(value, position after it) of the variable byte integer at buf[pos]."""
    v, mult = 0, 1
    for _ in range(4):
        b = buf[pos]
        pos += 1
        v += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            return v, pos
    raise ValueError("variable byte integer longer than 4 bytes")


def frame(buf):
    """(first byte, body, total length) of the packet at the start of buf,
    None when it is not complete yet.  ValueError when the length is broken."""
    if len(buf) < 2:
        return None
    length, mult, i = 0, 1, 1
    while True:
        if i > 4:
            raise ValueError("remaining length longer than 4 bytes")
        if i >= len(buf):
            return None
        b = buf[i]
        length += (b & 0x7F) * mult
        mult *= 128
        i += 1
        if not b & 0x80:
            break
    if len(buf) < i + length:
        return None
    return buf[0], bytes(buf[i:i + length]), i + length


def packet(first, body):
    """A whole packet: first byte, remaining length, body."""
    return bytes([first]) + varint(len(body)) + body


def mqtt_str(s):
    b = s.encode() if isinstance(s, str) else s
    return len(b).to_bytes(2, "big") + b


# MQTT 5 property identifiers by value type (those a test may meet).
_BYTE = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}
_U16 = {0x13, 0x21, 0x22, 0x23}
_U32 = {0x02, 0x11, 0x18, 0x27}
_STR = {0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F}


def parse_props(buf, pos):
    """The MQTT 5 properties at buf[pos] (their length first): (list of
    (id, value), position after them).  User properties are (0x26, (k, v))."""
    plen, pos = get_varint(buf, pos)
    end = pos + plen
    out = []
    while pos < end:
        pid, pos = get_varint(buf, pos)
        if pid in _BYTE:
            out.append((pid, buf[pos]))
            pos += 1
        elif pid in _U16:
            out.append((pid, int.from_bytes(buf[pos:pos + 2], "big")))
            pos += 2
        elif pid in _U32:
            out.append((pid, int.from_bytes(buf[pos:pos + 4], "big")))
            pos += 4
        elif pid == 0x0B:
            v, pos = get_varint(buf, pos)
            out.append((pid, v))
        elif pid in _STR:
            n = int.from_bytes(buf[pos:pos + 2], "big")
            out.append((pid, bytes(buf[pos + 2:pos + 2 + n])))
            pos += 2 + n
        elif pid == 0x26:
            n = int.from_bytes(buf[pos:pos + 2], "big")
            k = bytes(buf[pos + 2:pos + 2 + n]).decode()
            pos += 2 + n
            n = int.from_bytes(buf[pos:pos + 2], "big")
            v = bytes(buf[pos + 2:pos + 2 + n]).decode()
            pos += 2 + n
            out.append((pid, (k, v)))
        else:
            raise ValueError("unknown property 0x%02x" % pid)
    if pos != end:
        raise ValueError("properties overrun their length")
    return out, end


def parse_publish(body, qos=1):
    """(topic, packet id bytes, payload) of an MQTT 5 PUBLISH body (packet id
    b"" for QoS 0)."""
    tlen = int.from_bytes(body[0:2], "big")
    topic = body[2:2 + tlen].decode()
    pos = 2 + tlen
    mid = b""
    if qos:
        mid = body[pos:pos + 2]
        pos += 2
    _, pos = parse_props(body, pos)
    return topic, mid, body[pos:]


def parse_publish_packet(first, body):
    """Everything of an MQTT 5 PUBLISH: a dict with topic, qos, retain, dup,
    mid (int, 0 for QoS 0), props (list of (id, value)), user (dict of the
    user properties) and payload."""
    qos = (first >> 1) & 3
    tlen = int.from_bytes(body[0:2], "big")
    pos = 2 + tlen
    mid = 0
    if qos:
        mid = int.from_bytes(body[pos:pos + 2], "big")
        pos += 2
    props, pos = parse_props(body, pos)
    return {"topic": body[2:2 + tlen].decode(), "qos": qos, "retain": bool(first & 1),
            "dup": bool(first & 8), "mid": mid, "props": props,
            "user": dict(v for k, v in props if k == 0x26), "payload": body[pos:]}


class Packet:
    """One packet the fake cloud received."""

    def __init__(self, index, first, body, size, read=None):
        self.index = index  # the connection's index
        self.first = first
        self.kind = first >> 4
        self.body = body
        self.size = size    # the whole packet's bytes on the wire
        self.at = time.monotonic()
        self.read = read    # the connection's read (1, 2, ...) that completed it


class FakeCloud(threading.Thread):
    """Accepts mutual-TLS connections on a free 127.0.0.1 port (self.port).
    For each PUBLISH calls on_publish(index of the connection, topic,
    payload), which returns "ack" (PUBACK), a reason code (int: PUBACK with it),
    ("disconnect", reason code) (DISCONNECT with it, then close), "swallow"
    (nothing) or "close".

    Records, under self.lock: connects (CONNECT bodies, by connection
    index), packets (every packet received, a Packet), closed_at (index ->
    when the connection ended), reads (index -> recv calls that returned
    data)."""

    def __init__(self, pki, connack_props=b"", answer_pingreq=True):
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
        self.connack_props = connack_props  # encoded MQTT 5 properties of every CONNACK
        self.answer_pingreq = answer_pingreq
        self.connects = {}
        self.packets = []
        self.closed_at = {}
        self.reads = {}
        self._outbox = {}  # index of a live connection -> bytes waiting to be sent
        self._closing = set()  # indexes of connections to close
        self.start()

    def on_publish(self, index, topic, payload):
        return "ack"

    def on_packet(self, index, pkt):
        """Called for every packet before the default handling (after it was
        recorded); True means handled, skip the default."""
        return False

    def connack(self, index):
        """The CONNACK for connection `index`: success, connack_props."""
        return packet(0x20, b"\x00\x00" + varint(len(self.connack_props)) + self.connack_props)

    def send(self, index, data):
        """Queue bytes for connection `index`; its thread sends them within
        ~50 ms.  False when that connection is not live."""
        with self.lock:
            if index not in self._outbox:
                return False
            self._outbox[index] += data
            return True

    def close_connection(self, index):
        """Close connection `index` from this side (no DISCONNECT, no TLS
        close_notify: as a broker that crashed) within ~50 ms, after what
        send() queued for it has gone."""
        with self.lock:
            self._closing.add(index)

    def of_kind(self, kind, index=None):
        """The packets of one type received (on one connection)."""
        with self.lock:
            return [p for p in self.packets
                    if p.kind == kind and (index is None or p.index == index)]

    def run(self):
        while not self.stop_ev.is_set():
            try:
                raw, _ = self.sock.accept()
            except OSError:
                continue
            try:
                raw.settimeout(10)
                conn = self.ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                raw.close()
                continue
            with self.lock:
                index = self.n_connections
                self.n_connections += 1
                self._outbox[index] = b""
            threading.Thread(target=self.serve, args=(conn, index), daemon=True).start()

    def _flush(self, conn, index):
        with self.lock:
            data, self._outbox[index] = self._outbox[index], b""
        self._write(conn, data)

    @staticmethod
    def _write(conn, data):
        """All of data on the (non-blocking) connection."""
        while data:
            try:
                n = conn.send(data)
                data = data[n:]
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                select.select([], [conn], [], 0.05)

    def serve(self, conn, index):
        conn.setblocking(False)
        buf = bytearray()
        try:
            while not self.stop_ev.is_set():
                self._flush(conn, index)
                with self.lock:
                    if index in self._closing:
                        return
                try:
                    data = conn.recv(65536)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    select.select([conn], [], [], 0.05)
                    continue
                if not data:
                    return
                with self.lock:
                    self.reads[index] = read = self.reads.get(index, 0) + 1
                buf += data
                while True:
                    f = frame(buf)
                    if f is None:
                        break
                    first, body, total = f
                    del buf[:total]
                    if not self._handle(conn, index, Packet(index, first, body, total, read)):
                        return
        except (OSError, ssl.SSLError, IndexError, ValueError):
            return
        finally:
            with self.lock:
                self._outbox.pop(index, None)
                self.closed_at[index] = time.monotonic()
            conn.close()

    def _handle(self, conn, index, pkt):
        """Default handling of one packet; False ends the connection."""
        with self.lock:
            self.packets.append(pkt)
            if pkt.kind == 1:
                self.connects[index] = pkt.body
        if self.on_packet(index, pkt):
            return True
        kind, body = pkt.kind, pkt.body
        if kind == 1:  # CONNECT -> CONNACK
            self._write(conn, self.connack(index))
        elif kind == 12:  # PINGREQ -> PINGRESP
            if self.answer_pingreq:
                self._write(conn, b"\xd0\x00")
        elif kind == 3:  # PUBLISH
            qos = (pkt.first >> 1) & 3
            topic, mid, payload = parse_publish(body, qos)
            what = self.on_publish(index, topic, payload)
            if what == "close":
                return False
            if isinstance(what, tuple) and what[0] == "disconnect":  # MQTT 5 DISCONNECT, reason
                self._write(conn, b"\xe0\x02" + bytes([what[1]]) + b"\x00")
                return False
            if what == "ack" and qos:  # PUBACK, reason success
                self._write(conn, b"\x40\x02" + mid)
            elif isinstance(what, int) and qos:  # PUBACK with this reason code
                self._write(conn, b"\x40\x03" + mid + bytes([what]))
        elif kind == 14:  # DISCONNECT
            return False
        return True

    def close(self):
        self.stop_ev.set()
        self.sock.close()
