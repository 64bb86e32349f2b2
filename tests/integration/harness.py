"""harness.py — the integration-test harness: throwaway PKIs made by our own
scripts/pki, real mosquitto brokers (the plant broker with plantgate_auth.so,
a second one standing in for the cloud with mutual TLS), the real bridge, and
real MQTT clients (paho-mqtt from Debian, an independent implementation).

Everything binds to 127.0.0.1 on ports picked free, every wait is bounded, and
an Env stops everything it started when the `with` block ends, even on failure.

    with harness.Env("name") as env:
        pki = env.pki()
        broker = env.plant_broker(pki, policy=POLICY)
        dev = env.client(pki, "sensor-1", broker)
        assert dev.connect() == 0
"""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("PG_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("PG_BUILD_DIR") or os.path.join(ROOT, "build")
ASAN = os.environ.get("PG_ASAN") == "1"
# PG_MOSQUITTO and PG_PLUGIN pick another broker and plugin build: scripts/compat
# runs the plugin tests against mosquitto 2.0.21 and 2.1.2 built from Debian's
# source packages, each with the plugin compiled against its own headers.
MOSQUITTO = os.environ.get("PG_MOSQUITTO") or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
PKI_SCRIPT = os.path.join(ROOT, "scripts", "pki")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import free_ports  # noqa: E402  (scripts/free_ports.py)
KEEP = os.environ.get("PG_KEEP_TMP") == "1"
# Deadlines for things that happen (a log line, a message, an exit) are
# stretched for the ASan+UBSan twins: ctest runs them with
# fast_unwind_on_malloc=0, so malloc-heavy work is many times slower (the
# bridge loading TLS contexts for HTTPS took 5-7 s instead of 0.1 s on a
# loaded machine).  A wait ends as soon as its condition holds, so this
# costs nothing when the test passes.
SLOW = 3 if ASAN else 1


def plugin_path():
    if os.environ.get("PG_PLUGIN"):
        return os.environ["PG_PLUGIN"]
    name = "plantgate_auth_asan.so" if ASAN else "plantgate_auth.so"
    return os.path.join(BUILD, "plugin", name)


def bridge_path():
    name = "plantgate-bridge-asan" if ASAN else "plantgate-bridge"
    return os.path.join(BUILD, "bridge", name)


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago, below the
    ephemeral range (scripts/free_ports.py says why)."""
    return free_ports.free_port()


def listening_inodes(port):
    """Socket inodes listening on TCP `port` (any local address), from /proc/net."""
    found = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(fields[9])
    return found


def pid_listens(pid, port):
    """Whether process `pid` itself holds a socket listening on `port`."""
    inodes = listening_inodes(port)
    if not inodes:
        return False
    fddir = "/proc/%d/fd" % pid
    try:
        fds = os.listdir(fddir)
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(os.path.join(fddir, fd))
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


def wait_for(pred, timeout=10.0, interval=0.05):
    """Poll pred() until it is truthy or timeout seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def log(msg):
    print(msg, flush=True)


def wait_progress(count, target, stall=15.0, cap=300.0, interval=0.1):
    """Wait until count() >= target.  Keeps waiting as long as count() keeps
    rising — a loaded machine or a sanitizer build is slow, not lossy — and
    gives up after `stall` seconds without progress or `cap` seconds in all.
    Returns the last count."""
    start = last_change = time.monotonic()
    last = count()
    while last < target:
        now = time.monotonic()
        if now - last_change >= stall or now - start >= cap:
            break
        time.sleep(interval)
        c = count()
        if c > last:
            last, last_change = c, time.monotonic()
    return last


class Pki:
    """A PKI directory made by scripts/pki (certs are issued on demand and cached)."""

    def __init__(self, env, name, rsa=False):
        self.env = env
        self.name = name
        self.dir = os.path.join(env.tmp, name)
        args = ["init", "--name", "%s test CA" % name]
        if rsa:
            args.append("--rsa")
        self.run(*args)
        self.ca = os.path.join(self.dir, "ca.crt")
        self.ca_key = os.path.join(self.dir, "private", "ca.key")
        self.crl = os.path.join(self.dir, "crl.pem")
        self._issued = {}

    def run(self, *args, check=True):
        p = subprocess.run([PKI_SCRIPT, "--dir", self.dir] + list(args), capture_output=True,
                           text=True, timeout=60)
        if check and p.returncode != 0:
            raise RuntimeError("scripts/pki %s failed (%d):\n%s%s" % (" ".join(args), p.returncode,
                                                                   p.stdout, p.stderr))
        return p

    def paths(self, ident):
        return (os.path.join(self.dir, "issued", ident + ".crt"),
                os.path.join(self.dir, "private", ident + ".key"))

    def _issue(self, kind, ident, extra):
        key = (kind, ident)
        if key not in self._issued:
            self.run(kind, ident, *extra)
            self._issued[key] = self.paths(ident)
        return self._issued[key]

    def device(self, ident, site=None, line=None, start=None, end=None, days=None):
        extra = []
        if site:
            extra += ["--site", site]
        if line:
            extra += ["--line", line]
        if start:
            extra += ["--start", start]
        if end:
            extra += ["--end", end]
        if days:
            extra += ["--days", str(days)]
        return self._issue("device", ident, extra)

    def bridge_cert(self, ident):
        return self._issue("bridge", ident, [])

    def server(self, name="localhost"):
        return self._issue("server", name, ["--dns", "localhost," + name, "--ip", "127.0.0.1,::1"])

    def revoke(self, ident):
        self.run("revoke", ident)

    def raw_cert(self, label, cn, san_uri=None, ou=None, l=None, ext=None):
        """A client certificate signed by this CA with any CN at all — for
        hostile identities that scripts/pki rightly refuses to issue."""
        d = os.path.join(self.dir, "raw")
        os.makedirs(d, exist_ok=True)
        key = os.path.join(d, label + ".key")
        csr = os.path.join(d, label + ".csr")
        crt = os.path.join(d, label + ".crt")
        cfg = os.path.join(d, label + ".cnf")
        def q(v):  # OpenSSL config value: '#' would start a comment
            return '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
        dn = ["CN = %s" % q(cn)]
        if ou:
            dn.append("OU = %s" % q(ou))
        if l:
            dn.append("L = %s" % q(l))
        ext = list(ext or ["basicConstraints = critical,CA:FALSE", "keyUsage = critical,digitalSignature",
                           "extendedKeyUsage = clientAuth"])
        if san_uri:
            ext.append("subjectAltName = URI:%s" % san_uri)
        with open(cfg, "w") as f:
            f.write("[req]\ndistinguished_name = dn\nprompt = no\nutf8 = yes\nstring_mask = utf8only\n"
                    "[dn]\n%s\n[ext]\n%s\n" % ("\n".join(dn), "\n".join(ext)))
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", key], check=True, capture_output=True)
        subprocess.run(["openssl", "req", "-new", "-key", key, "-config", cfg, "-out", csr],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                        "-CAcreateserial", "-days", "2", "-sha256", "-extfile", cfg, "-extensions",
                        "ext", "-out", crt], check=True, capture_output=True)
        return crt, key


class Proc:
    """A process we started, with its output in a log file."""

    def __init__(self, env, name, argv, extra_env=None):
        self.env = env
        self.name = name
        self.argv = argv
        self.logpath = os.path.join(env.tmp, name + ".log")
        self.extra_env = extra_env or {}
        self.p = None
        self.start()

    def start(self):
        e = dict(os.environ)
        e.update(self.extra_env)
        self.logf = open(self.logpath, "ab")
        self.p = subprocess.Popen(self.argv, stdout=self.logf, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=e, start_new_session=True)
        self.env._procs.append(self)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def stop(self, timeout=20):
        """SIGTERM, wait, then SIGKILL. Returns the exit code."""
        if self.p is None:
            return None
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.logf.close()
        return self.p.returncode

    def kill(self):
        if self.alive():
            self.p.kill()
            self.p.wait(5)
        self.logf.close()
        return self.p.returncode

    def wait(self, timeout=10):
        try:
            return self.p.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            return None

    def log(self):
        try:
            with open(self.logpath, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, regex, timeout=10.0):
        r = re.compile(regex)
        return wait_for(lambda: r.search(self.log()), timeout * SLOW)


# mosquitto started as root drops to the `mosquitto` user before it loads
# plugins, which then cannot read files in our private temp dirs.  In tests
# (root in CI) it keeps running as root; deployments keep the privilege drop
# (see README: the policy must be readable by the mosquitto user).
RUN_AS = "user root\n" if os.geteuid() == 0 else ""


class Broker(Proc):
    """A mosquitto broker on 127.0.0.1 with the given config body."""

    def __init__(self, env, name, conf_body, port, extra_env=None):
        conf_body = RUN_AS + conf_body
        self.host = "127.0.0.1"
        self.port = port
        self.confpath = os.path.join(env.tmp, name + ".conf")
        with open(self.confpath, "w") as f:
            f.write(conf_body)
        extra = {}
        if ASAN:
            libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                                     text=True).stdout.strip()
            extra = {"LD_PRELOAD": libasan, "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1"}
        for k, v in (extra_env or {}).items():
            extra[k] = extra[k] + ":" + v if k in extra else v
        super().__init__(env, name, [MOSQUITTO, "-c", self.confpath], extra)
        self._wait_ready()

    def _wait_ready(self):
        # Ready when this mosquitto listens on the port: a connection alone could
        # reach whoever else took the port in the moment since it was picked.
        def ready():
            return not self.alive() or pid_listens(self.pid, self.port)
        up = wait_for(ready, 30)
        if not self.alive():
            raise RuntimeError("mosquitto %s did not start:\n%s" % (self.name, self.log()))
        if not up:
            raise RuntimeError("mosquitto %s does not accept connections on port %d after 30 s:\n%s"
                               % (self.name, self.port, self.log()))

    def start(self):
        super().start()
        if hasattr(self, "port"):
            self._wait_ready()

    def restart(self):
        self.stop()
        self.start()

    def reload(self):
        self.signal(signal.SIGHUP)


class Client:
    """A paho MQTT client with a device certificate, run on its own thread."""

    def __init__(self, env, broker, clientid, ca, cert=None, key=None, protocol=5,
                 clean=True, username=None, password=None, session_expiry=None):
        self.env = env
        # MQTT 5 Session Expiry Interval sent at CONNECT: None = 3600 s for a
        # persistent session (clean=False), none at all for a clean one.
        self.session_expiry = session_expiry
        self.broker = broker
        self.clientid = clientid
        self.protocol = mqtt.MQTTv5 if protocol == 5 else mqtt.MQTTv311
        self.clean = clean
        # No reconnecting behind the test's back: after a broker restart paho's
        # network thread would reconnect by itself and race the test's own
        # connect() (two CONNECTs on one connection: mosquitto calls that a
        # protocol error, and a persistent session was gone when the client
        # came back), and a refused client would keep trying for the rest of
        # the test (refusals in the broker's log and failure budget that the
        # test never made).  Tests reconnect by calling connect().
        kw = {"client_id": clientid, "protocol": self.protocol, "reconnect_on_failure": False}
        if self.protocol != mqtt.MQTTv5:
            kw["clean_session"] = clean
        self.c = mqtt.Client(**kw)
        self.c.tls_set(ca_certs=ca, certfile=cert, keyfile=key,
                       cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if username is not None:
            self.c.username_pw_set(username, password)
        self.messages = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connect_rc = None
        self.sub_results = {}
        self.sub_events = {}
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.loop_started = False
        env._clients.append(self)

    def _on_connect(self, c, u, flags, rc, props=None):
        self.connect_rc = rc.value if hasattr(rc, "value") else int(rc)
        self.connected.set()

    def _on_disconnect(self, c, u, rc, props=None):
        self.disconnected.set()

    def _on_message(self, c, u, msg):
        pairs = []
        if getattr(msg, "properties", None) is not None and hasattr(msg.properties, "UserProperty"):
            pairs = list(msg.properties.UserProperty)
        with self.lock:
            # props: the user properties as a dict (the last of a repeated
            # key wins); props_list: all of them, in order, repeats included.
            self.messages.append({"topic": msg.topic, "payload": msg.payload, "qos": msg.qos,
                                  "retain": bool(msg.retain), "props": dict(pairs),
                                  "props_list": pairs})

    def _on_subscribe(self, c, u, mid, granted, props=None):
        self.sub_results[mid] = [g.value if hasattr(g, "value") else int(g) for g in granted]
        ev = self.sub_events.get(mid)
        if ev:
            ev.set()

    def connect(self, timeout=20, keepalive=30):
        """Connect and wait for CONNACK. Returns the CONNACK code (0 = accepted), or -1
        when the TLS handshake or the connection itself failed (or no CONNACK came in
        time: then the attempt is abandoned, not left running)."""
        rc = self._connect(timeout, keepalive)
        if rc != 0:
            self.disconnect()
        return rc

    def _connect(self, timeout, keepalive):
        if self.loop_started:
            # The network thread of the previous connection (ended when that
            # connection did; see reconnect_on_failure above).
            self.c.loop_stop()
            self.loop_started = False
        self.connected.clear()
        self.disconnected.clear()
        self.connect_rc = None
        try:
            if self.protocol == mqtt.MQTTv5:
                props = Properties(PacketTypes.CONNECT)
                if self.session_expiry is not None:
                    props.SessionExpiryInterval = self.session_expiry
                elif not self.clean:
                    props.SessionExpiryInterval = 3600
                self.c.connect(self.broker.host, self.broker.port, keepalive,
                               clean_start=self.clean, properties=props)
            else:
                self.c.connect(self.broker.host, self.broker.port, keepalive)
        except (ssl.SSLError, OSError) as e:
            self.error = str(e)
            return -1
        if not self.loop_started:
            self.c.loop_start()
            self.loop_started = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected.wait(0.05):
                return self.connect_rc
            if self.disconnected.is_set():
                return -1
            thread = getattr(self.c, "_thread", None)
            if thread is not None and not thread.is_alive():
                return -1  # the network thread died: TLS refused the connection
        return -1

    def publish(self, topic, payload, qos=0, retain=False, props=None, timeout=15):
        """Publish; for qos > 0 wait for the acknowledgement. Returns True when sent (and acked)."""
        properties = None
        if props and self.protocol == mqtt.MQTTv5:
            properties = Properties(PacketTypes.PUBLISH)
            properties.UserProperty = list(props.items())
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        if qos == 0:
            return True
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def subscribe(self, filt, qos=1, timeout=15):
        """Subscribe and wait for SUBACK; returns the list of granted codes (>= 0x80 = refused)."""
        ev = threading.Event()
        rc, mid = self.c.subscribe(filt, qos)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            return None
        self.sub_events[mid] = ev
        if mid not in self.sub_results:
            ev.wait(timeout)
        return self.sub_results.get(mid)

    def wait_unique(self, key, n, stall=15.0, cap=300.0):
        """Wait until n *distinct* messages (by key(message)) arrived, as long as
        they keep arriving (see wait_progress); duplicates do not count.
        Returns all messages received."""
        def distinct():
            with self.lock:
                return len({key(m) for m in self.messages})
        wait_progress(distinct, n, stall, cap)
        with self.lock:
            return list(self.messages)

    def wait_messages(self, n, timeout=10):
        wait_for(lambda: len(self.messages) >= n, timeout * SLOW)
        with self.lock:
            return list(self.messages)

    def take(self):
        with self.lock:
            m = list(self.messages)
            self.messages.clear()
            return m

    def wait_disconnect(self, timeout=10):
        return self.disconnected.wait(timeout * SLOW)

    def disconnect(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        if self.loop_started:
            self.c.loop_stop()
            self.loop_started = False


PLANT_TLS = """listener {port} 127.0.0.1
cafile {ca}
certfile {cert}
keyfile {key}
require_certificate true
use_identity_as_username false
use_subject_as_username false
tls_version tlsv1.2
crlfile {crl}
"""


def poisoned_free_env():
    """Environment for a broker whose freed memory is overwritten at once, so a
    use after free in mosquitto crashes it deterministically instead of
    reading stale but plausible bytes: glibc without its per-thread cache
    (which would keep small freed blocks intact) and with MALLOC_PERTURB_, or
    under ASan (which replaces malloc) its own fill of freed memory."""
    if ASAN:
        return {"ASAN_OPTIONS": "max_free_fill_size=65536:free_fill_byte=197"}
    return {"MALLOC_PERTURB_": "197", "GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"}


class Env:
    """One test's world: a temp dir, and everything started in it."""

    def __init__(self, name):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="pg-%s-" % name)
        self._procs = []
        self._clients = []

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(failed=exc_type is not None)
        return False

    def close(self, failed=False):
        for c in self._clients:
            c.disconnect()
        for p in reversed(self._procs):
            try:
                p.stop(timeout=5)
            except Exception:
                pass
        # A sanitizer report in any log fails the test, even if the behaviour
        # the test looked at was right.
        sanitizer = [p for p in self._procs
                     if re.search(r"ERROR: (Address|Leak)Sanitizer|runtime error:", p.log())]
        if sanitizer and not failed:
            failed = True
            for p in sanitizer:
                sys.stderr.write("---- sanitizer report in %s ----\n%s\n" % (p.name, p.log()[-8000:]))
            self._close_files(failed)
            raise AssertionError("sanitizer report in the log of " + ", ".join(p.name for p in sanitizer))
        self._close_files(failed)

    def _close_files(self, failed):
        if failed:
            for p in self._procs:
                sys.stderr.write("---- log of %s (%s) ----\n%s\n" % (p.name, p.logpath, p.log()[-6000:]))
        if not KEEP and not failed:
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif failed:
            sys.stderr.write("kept %s for inspection\n" % self.tmp)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def write(self, name, text):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def pki(self, name="plant", rsa=False):
        return Pki(self, name, rsa=rsa)

    def _broker(self, name, body_for, port, extra_env=None):
        """Start a Broker with the config body_for(port).  A port picked here
        (port=None) is only free until mosquitto binds it, and tests run side by
        side: when someone took it in between, pick another."""
        for _ in range(4):
            p = port or free_port()
            try:
                return Broker(self, name, body_for(p), p, extra_env)
            except RuntimeError as e:
                if port or "Address already in use" not in str(e):
                    raise
                log("port %d was taken before mosquitto %s bound it; picking another" % (p, name))
        raise RuntimeError("mosquitto %s: every port picked was taken before it could bind" % name)

    def plant_broker(self, pki, policy=None, plugin=True, persistence=False, extra="",
                     plugin_opts=None, name="plant", port=None, extra_env=None):
        cert, key = pki.server("localhost")
        body = ["per_listener_settings false", "allow_anonymous false", "log_dest stderr",
                "log_type all", "connection_messages true"]
        if persistence:
            body += ["persistence true", "persistence_location %s/" % self.path(),
                     "persistence_file %s.db" % name, "autosave_interval 1"]
        else:
            body.append("persistence false")
        if plugin:
            policy_path = self.write(name + "-policy.conf", policy or "")
            body += ["plugin %s" % plugin_path(), "plugin_opt_policy %s" % policy_path]
            for k, v in (plugin_opts or {}).items():
                body.append("plugin_opt_%s %s" % (k, v))
        body.append(extra)
        return self._broker(name, lambda p: "\n".join(body) + "\n" + PLANT_TLS.format(
            port=p, ca=pki.ca, cert=cert, key=key, crl=pki.crl), port, extra_env)

    def cloud_broker(self, pki, extra="", name="cloud", port=None):
        """The cloud stand-in: plain mosquitto, mutual TLS with any cert of `pki`.
        It queues without limit for its subscribers: by default mosquitto drops
        QoS 1 messages beyond 1000 queued for a slow client ("Outgoing messages
        are being dropped"), and a Python subscriber on a loaded machine is slow
        while the bridge drains a backlog; tests count every message."""
        cert, key = pki.server("localhost")
        return self._broker(name, lambda p: "\n".join([
            "per_listener_settings false", "allow_anonymous true", "persistence false",
            "log_dest stderr", "log_type all", "max_queued_messages 0", extra,
            "listener %d 127.0.0.1" % p, "cafile %s" % pki.ca, "certfile %s" % cert,
            "keyfile %s" % key, "require_certificate true", "use_identity_as_username true",
            "tls_version tlsv1.2"]) + "\n", port)

    def bridge(self, config_text, name="bridge", args=None, extra_env=None):
        cfg = self.write(name + ".conf", config_text)
        return Proc(self, name, [bridge_path(), "-c", cfg] + list(args or []), extra_env)

    def client(self, pki, ident, broker, protocol=5, clientid=None, cert=None, site=None,
               line=None, **kw):
        """A device client: its own certificate for `ident` (issued on demand unless
        cert=(crt, key) is given), client id = ident unless told otherwise."""
        if cert is None:
            cert = pki.device(ident, site=site, line=line)
        return Client(self, broker, clientid if clientid is not None else ident, pki.ca,
                      cert[0], cert[1], protocol=protocol, **kw)

    def anonymous_client(self, pki, broker, clientid="anon", protocol=5, **kw):
        """A client that trusts the broker but presents no certificate."""
        return Client(self, broker, clientid, pki.ca, None, None, protocol=protocol, **kw)


def render(path, replacements):
    """The text of a shipped config with each (old, new) replaced; fails loudly
    when the file no longer contains `old`, so tests follow config changes."""
    with open(path) as f:
        text = f.read()
    for old, new in replacements:
        if old not in text:
            raise AssertionError("%s no longer contains %r: update this test" % (path, old))
        text = text.replace(old, new)
    return text


def shipped_plant_conf(env, pki, port, extra=()):
    """config/mosquitto.conf with its /etc and /var paths moved into env and
    pki, listening on 127.0.0.1:port, logging to stderr."""
    return render(os.path.join(ROOT, "config", "mosquitto.conf"), [
        ("/etc/plantgate/pki/", pki.dir + "/"),
        ("/usr/lib/plantgate/plantgate_auth.so", plugin_path()),
        ("/etc/plantgate/policy.conf", os.path.join(ROOT, "config", "policy.example")),
        ("listener 8883 127.0.0.1", "listener %d 127.0.0.1" % port),
        ("/var/lib/mosquitto/", env.tmp + "/"),
        ("log_dest syslog", "log_dest stderr"),
        ("/var/log/plantgate/", env.tmp + "/"),
    ] + list(extra))
