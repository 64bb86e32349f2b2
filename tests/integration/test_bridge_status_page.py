"""The bridge's live status page in a real browser: Debian's chromium,
headless, driven over its DevTools protocol with Python's standard library
(no npm, no selenium).  While messages flow, two DOM snapshots a few updates
apart show the links' states and live numbers that changed between them — put
there by the page's JavaScript from the WebSocket, without reloads.  With the
cloud stopped the page says so; when the bridge goes away it says "Connection
to bridge lost" and reconnects by itself when the bridge is back.
Screenshots are taken of each state (PG_SCREENSHOT_DIR=dir keeps copies).
"""
import base64
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import struct
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_bridge_relay import BridgeWorld  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """Headless chromium driven over the DevTools protocol, in real time (a
    --dump-dom run uses virtual time, which does not wait for WebSockets).
    Python's standard library only: a minimal WebSocket client below."""

    def __init__(self, env, width=1280, height=900):
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=env.tmp)
        self.log = open(os.path.join(env.tmp, "chromium.log"), "wb")
        self.p = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
             "--window-size=%d,%d" % (width, height), "--remote-debugging-port=0",
             "--user-data-dir=" + self.profile, "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        portfile = os.path.join(self.profile, "DevToolsActivePort")
        if not h.wait_for(lambda: os.path.exists(portfile) and open(portfile).read().strip(), 30):
            self.close()
            raise RuntimeError("chromium did not start its DevTools endpoint")
        port = int(open(portfile).read().split()[0])
        targets = json.load(urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port,
                                                   timeout=10))
        page = [t for t in targets if t.get("type") == "page"][0]
        self.ws = _WsClient(page["webSocketDebuggerUrl"])
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"]))
                return m.get("result", {})

    def open(self, url):
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)
        self.call("Page.enable")
        self.call("Page.navigate", url=url)

    def js(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        return r.get("result", {}).get("value")

    def wait_js(self, expr, timeout=15):
        return h.wait_for(lambda: self.js(expr), timeout, 0.2)

    def dom(self):
        return self.js("document.documentElement.outerHTML")

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)
        self.log.close()


class _WsClient:
    """Just enough RFC 6455 for the DevTools protocol: text frames, masked
    from the client, fragmented or not from the server."""

    def __init__(self, url):
        m = re.match(r"ws://([^/:]+):(\d+)(/.*)", url)
        self.s = socket.create_connection((m.group(1), int(m.group(2))), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n"
                        % (m.group(3), m.group(1), m.group(2), key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.s.recv(4096)
            if not chunk:
                raise RuntimeError("DevTools closed the connection")
            head += chunk
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError("DevTools refused the WebSocket: %r" % head[:200])
        self.buf = head.split(b"\r\n\r\n", 1)[1]

    def send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        hdr = bytes([0x81])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(1 << 16)
            if not chunk:
                raise RuntimeError("DevTools closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            if b0 & 0x0F == 0x8:
                raise RuntimeError("DevTools closed the WebSocket")
            if b0 & 0x0F in (0x9, 0xA):
                continue  # ping/pong
            message += payload
            if b0 & 0x80:
                return message.decode()

    def close(self):
        self.s.close()


def element(dom, ident):
    """Text of the element with id=ident (no nested markup in these)."""
    m = re.search(r'id="%s"[^>]*>([^<]*)<' % re.escape(ident), dom)
    return m.group(1) if m else None


def number(text):
    return float(text.replace(",", ""))


class Traffic:
    """A plant publisher sending QoS 1 telemetry on its own thread."""

    def __init__(self, pub, rate=40):
        self.pub, self.rate, self.stop = pub, rate, threading.Event()
        self.sent = 0
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            self.pub.publish("plant/l1/telemetry/t", b'{"v":%d}' % self.sent, qos=0)
            self.sent += 1
            time.sleep(1.0 / self.rate)

    def end(self):
        self.stop.set()
        self.t.join(5)


class StatusPage(unittest.TestCase):
    def setUp(self):
        # A missing browser is a failure, never a silent skip.
        self.assertTrue(CHROMIUM, "chromium is not installed: run scripts/deps (Debian package "
                                  "'chromium', the status page test's dependency)")

    def test_live_numbers_link_states_and_lost_connection(self):
        with h.Env("br-page") as env:
            w = BridgeWorld(env)
            port = h.free_port()
            rules = ["plant/+/telemetry/# qos=1"]
            extra = "http_listen 127.0.0.1:%d\n" % port
            b = w.start_bridge(rules, extra=extra)
            self.assertTrue(b.wait_log(r"event=http\.listening", 10), b.log())
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 10), b.log())
            traffic = Traffic(w.publisher())
            browser = Browser(env)
            try:
                time.sleep(3)  # some history for the chart
                browser.open("http://127.0.0.1:%d/" % port)
                updates = "Number(document.getElementById('updates').textContent)"
                self.assertTrue(browser.wait_js(updates + " >= 2"), browser.dom()[:3000])
                dom1 = browser.dom()
                n1 = browser.js(updates)
                self.assertTrue(browser.wait_js(updates + " >= %d" % (n1 + 3)), browser.dom()[:3000])
                dom2 = browser.dom()
                shot = env.path("status-up.png")
                browser.screenshot(shot)
                traffic.end()
                for dom in (dom1, dom2):
                    self.assertIn('data-ws="open"', dom)
                    self.assertEqual(element(dom, "plant-state"), "CONNECTED", dom)
                    self.assertEqual(element(dom, "cloud-state"), "CONNECTED", dom)
                    self.assertRegex(element(dom, "plant-for"), r"^connected for \d+")
                    self.assertRegex(element(dom, "health"), r"^All good")
                    for ident in ("in-rate", "out-rate", "queue-depth", "total-received",
                                  "total-delivered", "redelivered"):
                        self.assertRegex(element(dom, ident), r"^[\d,.]+$", ident)
                    self.assertEqual(element(dom, "dead-letters"), "0", dom)
                r1 = number(element(dom1, "total-received"))
                r2 = number(element(dom2, "total-received"))
                self.assertGreater(r1, 0)
                self.assertGreater(r2, r1, "the received count did not move")
                self.assertGreater(number(element(dom2, "in-rate")), 0)
                self.assertNotEqual(element(dom1, "updated"), element(dom2, "updated"))
                # The chart has the history: the page drew more than the last samples.
                self.assertGreaterEqual(browser.js("hist.length"), 5)
                self.check_png(shot)

                # Cloud down: the page says so, in words, and why, without a reload.
                w.cloud.stop()
                pub = w.publisher("press-02")
                for i in range(3):
                    self.assertTrue(pub.publish("plant/l1/telemetry/t", b"held", qos=1))
                self.assertTrue(browser.wait_js(
                    "document.getElementById('cloud-state').textContent == 'DOWN' && "
                    "Number(document.getElementById('queue-depth').textContent) >= 3"),
                    browser.dom()[:3000])
                time.sleep(2)
                dom3 = browser.dom()
                self.assertEqual(element(dom3, "plant-state"), "CONNECTED", dom3)
                # "connecting" while a reconnect attempt is under way (as /healthz says).
                self.assertRegex(element(dom3, "health"),
                                 r"^Attention: cloud link (down|connecting) for \d+ s")
                shot_down = env.path("status-cloud-down.png")
                browser.screenshot(shot_down)
                self.check_png(shot_down)

                # The bridge goes away: the page says the connection is lost...
                b.kill()
                self.assertTrue(browser.wait_js("document.body.dataset.ws == 'lost'", 10))
                dom4 = browser.dom()
                self.assertIn('<body class="lost"', dom4)
                self.assertEqual(element(dom4, "lost"), "Connection to bridge lost — reconnecting…")
                self.assertEqual(element(dom4, "cloud-state"), "UNKNOWN")
                self.assertEqual(element(dom4, "plant-state"), "UNKNOWN")
                shot_lost = env.path("status-lost.png")
                browser.screenshot(shot_lost)
                self.check_png(shot_lost)
                # ... and reconnects by itself when the bridge is back.
                n4 = browser.js(updates)
                # A dead letter in the queue file (as the cloud link sets one
                # aside): the page counts it and names the command to list it.
                with sqlite3.connect(w.queue_path, timeout=5) as db:
                    db.execute("INSERT INTO dead_letter VALUES(999999, 0, 0, 1, 0, 'plant/l1/x',"
                               " 'plant/l1/x', x'00', 1, '', 'test', 5, 0, 0)")
                w.cloud.start()
                b2 = w.start_bridge(rules, extra=extra, name="bridge2")
                self.assertTrue(b2.wait_log(r"event=http\.listening", 10), b2.log())
                self.assertTrue(browser.wait_js("document.body.dataset.ws == 'open' && " + updates +
                                                " > %d" % n4, 20), browser.dom()[:3000])
                self.assertTrue(browser.wait_js(
                    "document.getElementById('cloud-state').textContent == 'CONNECTED'", 20))
                self.assertTrue(browser.wait_js(
                    "document.getElementById('dead-letters').textContent == '1'", 10),
                    browser.dom()[:3000])
                dom5 = browser.dom()
                self.assertRegex(element(dom5, "health"),
                                 r"^Attention: .*1 message set aside as dead letters .*inspect "
                                 r"with plantgate-bridge deadletter list -c \S*bridge2\.conf")
                self.assertEqual(b2.stop(), 0, b2.log())
                self.keep(shot, shot_down, shot_lost)
            finally:
                traffic.end()
                browser.close()

    def check_png(self, path):
        self.assertTrue(os.path.exists(path), path)
        with open(path, "rb") as f:
            head = f.read(24)
        self.assertEqual(head[:8], b"\x89PNG\r\n\x1a\n")
        width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        self.assertEqual((width, height), (1280, 900))
        self.assertGreater(os.path.getsize(path), 20000)  # not a blank page

    @staticmethod
    def keep(*paths):
        d = os.environ.get("PG_SCREENSHOT_DIR")
        if d:
            os.makedirs(d, exist_ok=True)
            for p in paths:
                shutil.copy(p, d)


if __name__ == "__main__":
    unittest.main(verbosity=2)
