"""plantgate-bridge's operator HTTP endpoints against a real world (plant
broker, cloud broker, bridge): /metrics moves with traffic, /healthz says 503
with a reason when the cloud goes away and 200 again when it is back, the
listener is on 127.0.0.1, remote listening is refused without TLS and client
certificates, HTTPS demands a client certificate, non-200s are logged once
without their query strings.
"""
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_bridge_relay import BridgeWorld, bridge_conf  # noqa: E402

RULES = ["plant/+/telemetry/# qos=1"]


def get(port, path, context=None, scheme="http"):
    """(status, body) of a GET; never raises for an HTTP error status."""
    url = "%s://127.0.0.1:%d%s" % (scheme, port, path)
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers


def parse_metrics(text):
    """{'name{labels}': value} and the set of names with HELP and TYPE lines."""
    values, helped, typed = {}, set(), {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
        elif line.startswith("# TYPE "):
            typed[line.split()[2]] = line.split()[3]
        elif line and not line.startswith("#"):
            key, val = line.rsplit(" ", 1)
            values[key] = float(val)
    return values, helped, typed


def listening_addresses(port):
    """Local addresses with a TCP socket listening on `port` (from /proc/net)."""
    found = []
    for path, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = open(path).read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            f = line.split()
            addr, p = f[1].split(":")
            if int(p, 16) != port or f[3] != "0A":
                continue
            if v6:
                found.append("v6:" + addr)
            else:
                found.append(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return found


class Http(unittest.TestCase):
    def start(self, env, extra="", cloud_persistence=False):
        w = BridgeWorld(env, cloud_persistence=cloud_persistence)
        port = h.free_port()
        b = w.start_bridge(RULES, extra="http_listen 127.0.0.1:%d\n%s" % (port, extra))
        self.assertTrue(b.wait_log(r"event=http\.listening", 10), b.log())
        self.assertTrue(w.wait_plant_ready(b), b.log())
        self.assertTrue(b.wait_log(r"event=cloud\.connected", 10), b.log())
        return w, b, port

    def test_metrics_move_with_traffic_and_listen_on_loopback(self):
        with h.Env("br-http-metrics") as env:
            w, b, port = self.start(env, cloud_persistence=True)
            self.assertEqual(listening_addresses(port), ["127.0.0.1"])

            status, text, headers = get(port, "/metrics")
            self.assertEqual(status, 200)
            self.assertIn("version=0.0.4", headers.get("Content-Type", ""))
            v0, helped, typed = parse_metrics(text)
            # Every sample has HELP and TYPE for its family.
            for key in v0:
                fam = re.sub(r"\{.*", "", key)
                base = re.sub(r"_(bucket|sum|count)$", "", fam)
                self.assertTrue(fam in helped or base in helped, key)
                self.assertTrue(fam in typed or base in typed, key)
            for name, kind in [("plantgate_bridge_messages_received_total", "counter"),
                               ("plantgate_bridge_messages_delivered_total", "counter"),
                               ("plantgate_bridge_messages_dropped_total", "counter"),
                               ("plantgate_bridge_queue_messages", "gauge"),
                               ("plantgate_bridge_queue_bytes", "gauge"),
                               ("plantgate_bridge_queue_oldest_age_seconds", "gauge"),
                               ("plantgate_bridge_link_up", "gauge"),
                               ("plantgate_bridge_connects_total", "counter"),
                               ("plantgate_bridge_connect_failures_total", "counter"),
                               ("plantgate_bridge_tls_handshake_failures_total", "counter"),
                               ("plantgate_bridge_commit_duration_seconds", "histogram"),
                               ("plantgate_bridge_build_info", "gauge")]:
                self.assertEqual(typed.get(name), kind, name)
            self.assertEqual(v0['plantgate_bridge_link_up{link="plant"}'], 1)
            self.assertEqual(v0['plantgate_bridge_link_up{link="cloud"}'], 1)
            self.assertEqual(v0["plantgate_bridge_queue_messages"], 0)
            self.assertRegex(text, r'plantgate_bridge_build_info\{version="[^"]+",'
                                   r'libmosquitto="2\.[^"]+",libwebsockets="4\.[^"]*",')
            # One version: what --version prints (project(VERSION)) is in
            # /metrics and in the startup log.
            version = subprocess.run([h.bridge_path(), "--version"], capture_output=True,
                                     text=True, check=True).stdout.split()[-1]
            self.assertIn('plantgate_bridge_build_info{version="%s",' % version, text)
            self.assertTrue(b.wait_log(r"version=%s " % re.escape(version), 1), b.log())

            # Cloud away: messages are received and queued, not delivered.
            w.cloud.stop()
            self.assertTrue(b.wait_log(r"event=cloud\.disconnected", 10), b.log())
            pub = w.publisher()
            for i in range(20):
                self.assertTrue(pub.publish("plant/l1/telemetry/t", b"m%d" % i, qos=1))
            pub.publish("plant/l1/status", b"no rule", qos=1)
            time.sleep(1.5)

            def settled():
                # What a loaded machine may take longer than 1.5 s for: all 20
                # queued, the oldest 0.5 s old, the link down 1 s, one failed attempt.
                v, _, _ = parse_metrics(get(port, "/metrics")[1])
                return v if (v["plantgate_bridge_messages_queued_total"] -
                             v0["plantgate_bridge_messages_queued_total"] >= 20 and
                             v["plantgate_bridge_queue_oldest_age_seconds"] > 0.5 and
                             v['plantgate_bridge_link_down_seconds{link="cloud"}'] >= 1 and
                             v['plantgate_bridge_connect_failures_total{link="cloud"}'] > 0) else None
            v1 = h.wait_for(settled, 15, 0.2) or parse_metrics(get(port, "/metrics")[1])[0]
            self.assertEqual(v1["plantgate_bridge_messages_received_total"] -
                             v0["plantgate_bridge_messages_received_total"], 20)
            self.assertEqual(v1["plantgate_bridge_messages_queued_total"] -
                             v0["plantgate_bridge_messages_queued_total"], 20)
            self.assertEqual(v1["plantgate_bridge_queue_messages"], 20)
            self.assertGreater(v1["plantgate_bridge_queue_bytes"], 20 * len("plant/l1/telemetry/t"))
            self.assertGreater(v1["plantgate_bridge_queue_oldest_age_seconds"], 0.5)
            self.assertEqual(v1['plantgate_bridge_link_up{link="cloud"}'], 0)
            self.assertGreaterEqual(v1['plantgate_bridge_link_down_seconds{link="cloud"}'], 1)
            self.assertGreater(v1['plantgate_bridge_connect_failures_total{link="cloud"}'], 0)
            self.assertEqual(v1["plantgate_bridge_messages_delivered_total"],
                             v0["plantgate_bridge_messages_delivered_total"])
            # Commit latency: at least one batch observed, buckets cumulative.
            count = v1["plantgate_bridge_commit_duration_seconds_count"]
            self.assertGreaterEqual(count, 1)
            self.assertEqual(v1['plantgate_bridge_commit_duration_seconds_bucket{le="+Inf"}'], count)
            buckets = [v for k, v in v1.items() if k.startswith("plantgate_bridge_commit_duration_seconds_bucket")]
            self.assertEqual(buckets, sorted(buckets))
            self.assertGreater(v1["plantgate_bridge_commit_duration_seconds_sum"], 0)

            # Cloud back: everything delivered, the queue empty, a reconnect counted.
            w.cloud.start()
            self.assertTrue(h.wait_for(lambda: parse_metrics(get(port, "/metrics")[1])[0]
                                       ["plantgate_bridge_queue_messages"] == 0, 15), b.log())
            v2, _, _ = parse_metrics(get(port, "/metrics")[1])
            self.assertEqual(v2["plantgate_bridge_messages_delivered_total"] -
                             v0["plantgate_bridge_messages_delivered_total"], 20)
            self.assertEqual(v2['plantgate_bridge_reconnects_total{link="cloud"}'], 1)
            self.assertEqual(v2['plantgate_bridge_link_up{link="cloud"}'], 1)
            self.assertEqual(v2["plantgate_bridge_healthy"], 1)
            self.assertEqual(b.stop(), 0, b.log())

    def test_healthz_flips_when_the_cloud_stops_and_back(self):
        with h.Env("br-http-health") as env:
            w, b, port = self.start(env)
            self.assertEqual(get(port, "/healthz")[:2], (200, "ok\n"))
            w.cloud.stop()
            pub = w.publisher()
            for i in range(5):
                self.assertTrue(pub.publish("plant/l1/telemetry/t", b"x", qos=1))

            def unhealthy():
                s, body, _ = get(port, "/healthz")
                return (s, body) if s == 503 and "5 messages queued" in body else None
            got = h.wait_for(unhealthy, 30, 0.2)
            self.assertTrue(got, get(port, "/healthz"))
            self.assertRegex(got[1], r"^cloud link (down|connecting) for \d+ s; 5 messages "
                                     r"queued, oldest \d+ s\n$")
            self.assertEqual(len(got[1].splitlines()), 1)
            w.cloud.start()
            self.assertTrue(h.wait_for(lambda: get(port, "/healthz")[0] == 200, 15), b.log())
            # One log line per non-200 response at most: each 503 above, none for 200.
            log = b.log()
            self.assertNotIn("status=200", log)
            self.assertRegex(log, r"event=http\.response status=503 path=/healthz peer=")
            self.assertEqual(b.stop(), 0, b.log())

    def test_queue_warning_levels_make_healthz_fail(self):
        with h.Env("br-http-warn") as env:
            w, b, port = self.start(env, extra="queue_warn_messages 3\nqueue_warn_age 2s\n")
            w.cloud.stop()
            pub = w.publisher()
            for i in range(3):
                self.assertTrue(pub.publish("plant/l1/telemetry/t", b"x", qos=1))
            body = h.wait_for(lambda: "oldest queued message older than 2 s" in get(port, "/healthz")[1]
                              and get(port, "/healthz")[1], 10, 0.2)
            self.assertTrue(body)
            self.assertIn("queue at or above its warning level of 3 messages", body)
            self.assertEqual(b.stop(), 0, b.log())

    def test_unknown_paths_and_query_strings(self):
        with h.Env("br-http-404") as env:
            w, b, port = self.start(env)
            status, body, headers = get(port, "/nope?token=SECRET123")
            self.assertEqual(status, 404)
            self.assertIn("/healthz", body)
            self.assertEqual(headers.get("Cache-Control"), "no-store")
            status, html, headers = get(port, "/")
            self.assertEqual(status, 200)
            self.assertIn("text/html", headers["Content-Type"])
            self.assertIn("default-src 'none'", headers["Content-Security-Policy"])
            # Self-contained: nothing loaded from elsewhere.
            self.assertNotRegex(html, r'(src|href)\s*=\s*"(https?:)?//')
            self.assertNotIn("@import", html)
            self.assertTrue(b.wait_log(r"event=http\.response status=404", 10), b.log())
            time.sleep(0.3)
            log = b.log()
            self.assertEqual(len(re.findall(r"event=http\.response", log)), 1, log)
            self.assertRegex(log, r"event=http\.response status=404 path=/nope peer=127\.0\.0\.1")
            self.assertNotIn("SECRET123", log)
            # A flood of 404s is summarised, not logged line by line.
            for _ in range(40):
                get(port, "/scan")
            time.sleep(0.2)
            self.assertLessEqual(len(re.findall(r"event=http\.response", b.log())), 10)
            self.assertEqual(b.stop(), 0, b.log())

    def test_off_and_config_checks(self):
        with h.Env("br-http-conf") as env:
            w = BridgeWorld(env)

            def check(extra):
                path = env.write("c.conf", bridge_conf(w, RULES, extra=extra))
                return subprocess.run([h.bridge_path(), "-n", "-c", path], capture_output=True,
                                      text=True, timeout=30)
            p = check("http_listen 0.0.0.0:9464\n")
            self.assertEqual(p.returncode, 1)
            self.assertRegex(p.stderr, r"c\.conf:\d+: http_listen 0\.0\.0\.0:9464 is reachable from "
                                       r"other hosts: .*http_tls_client_ca")
            p = check("http_listen localhost:80\n")
            self.assertEqual(p.returncode, 1)
            self.assertIn("expected off, or an IP address and a port", p.stderr)
            crt, key = w.plant_pki.server("localhost")
            p = check("http_listen 0.0.0.0:9464\nhttp_tls_cert %s\nhttp_tls_key %s\n"
                      "http_tls_client_ca %s\n" % (crt, key, w.plant_pki.ca))
            self.assertEqual(p.returncode, 0, p.stderr)
            p = check("http_tls_cert %s\n" % crt)
            self.assertEqual(p.returncode, 1)
            self.assertIn("needs both http_tls_cert and http_tls_key", p.stderr)
            # off: no listener, the bridge relays as before.
            b = w.start_bridge(RULES, extra="http_listen off\n")
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertNotIn("http.listening", b.log())
            self.assertEqual(b.stop(), 0, b.log())

    def test_port_in_use_is_a_clear_error(self):
        with h.Env("br-http-busy") as env:
            w = BridgeWorld(env)
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                s.listen(1)
                port = s.getsockname()[1]
                b = w.start_bridge(RULES, extra="http_listen 127.0.0.1:%d\n" % port)
                self.assertEqual(b.wait(15), 1, b.log())
            self.assertRegex(b.log(), r"http_listen 127\.0\.0\.1:%d: cannot serve .*http_listen off"
                             % port)

    def test_default_port_taken_still_relays(self):
        # Not asked for in the file: the bridge relays without the status page.
        with h.Env("br-http-default") as env:
            w = BridgeWorld(env)
            text = "".join(line for line in bridge_conf(w, RULES).splitlines(True)
                           if not line.startswith("http_listen"))
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

                def take_9464():
                    try:
                        s.bind(("127.0.0.1", 9464))
                        s.listen(1)
                        return True
                    except OSError:
                        return False
                # Hold the port ourselves: another holder (this test's plain or
                # ASan twin, running in parallel) may let it go before the bridge
                # binds.  Only when it stays taken is someone else's just as good.
                h.wait_for(take_9464, 60, 0.2)
                b = env.bridge(text)
                self.assertTrue(b.wait_log(r"event=http\.unavailable reason=\"http_listen "
                                           r"127\.0\.0\.1:9464: cannot serve", 10), b.log())
                self.assertTrue(w.wait_plant_ready(b), b.log())
                self.assertEqual(b.stop(), 0, b.log())

    def test_https_requires_a_client_certificate(self):
        with h.Env("br-http-tls") as env:
            w = BridgeWorld(env)
            crt, key = w.plant_pki.server("localhost")
            port = h.free_port()
            b = w.start_bridge(RULES, extra="http_listen 127.0.0.1:%d\nhttp_tls_cert %s\n"
                               "http_tls_key %s\nhttp_tls_client_ca %s\n"
                               % (port, crt, key, w.plant_pki.ca))
            self.assertTrue(b.wait_log(r"event=http\.listening.*url=https://127\.0\.0\.1:%d/ "
                                       r"client_cert=required" % port, 10), b.log())
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 10), b.log())
            anon = ssl.create_default_context(cafile=w.plant_pki.ca)
            with self.assertRaises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
                get(port, "/healthz", context=anon, scheme="https")
            ops = ssl.create_default_context(cafile=w.plant_pki.ca)
            ops.load_cert_chain(*w.plant_pki.device("ops-console"))
            self.assertEqual(get(port, "/healthz", context=ops, scheme="https")[:2], (200, "ok\n"))
            status, text, _ = get(port, "/metrics", context=ops, scheme="https")
            self.assertEqual(status, 200)
            self.assertIn("plantgate_bridge_messages_received_total", text)
            self.assertEqual(b.stop(), 0, b.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
