"""The cloud link refuses what it cannot authenticate, keeps the messages
meanwhile, and delivers them once the problem is fixed: a cloud certificate
from another CA, a certificate for another host name, an expired one, a TLS
version below the configured minimum.  Each refusal names its X.509 reason,
not only OpenSSL's "certificate verify failed".  A cloud that does not ask
for the bridge's certificate is accepted with a warning."""
import datetime
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_bridge_relay import BridgeWorld  # noqa: E402

RULES = ["plant/+/telemetry/# qos=1"]


def expired_server_cert(pki, name):
    """A server certificate for localhost and 127.0.0.1 signed by pki's CA
    that expired yesterday (scripts/pki rightly will not issue one)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress
    with open(pki.ca, "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(pki.ca_key, "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(now - datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    d = os.path.join(pki.dir, "expired")
    os.makedirs(d, exist_ok=True)
    crt, kpath = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    with open(crt, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(kpath, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(kpath, 0o600)
    return crt, kpath


def impostor_cloud(env, w, server_pki, server_name, dns, ip="127.0.0.1", tls_version="tlsv1.2",
                   name="impostor", cert=None, require_certificate=True):
    """A cloud stand-in that accepts the bridge's client cert (from the cloud
    PKI) but presents a server certificate of server_pki for `dns` and `ip`
    (or `cert`, a (crt, key) pair)."""
    if cert is None:
        server_pki.run("server", server_name, "--dns", dns, "--ip", ip)
        crt, key = server_pki.paths(server_name)
    else:
        crt, key = cert
    port = h.free_port()
    body = "\n".join([
        "per_listener_settings false", "allow_anonymous true",
        "persistence false", "log_dest stderr", "log_type all",
        "listener %d 127.0.0.1" % port, "cafile %s" % w.cloud_pki.ca,
        "certfile %s" % crt, "keyfile %s" % key,
        "require_certificate %s" % ("true" if require_certificate else "false"),
        "use_identity_as_username %s" % ("true" if require_certificate else "false"),
        "tls_version %s" % tls_version]) + "\n"
    return h.Broker(env, name, body, port)


def port_open(port):
    try:
        h.socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


class CloudTls(unittest.TestCase):
    def check_refused_then_fixed(self, env, w, bad, pattern, **kw):
        b = w.start_bridge(RULES, cloud_port=bad.port, **kw)
        self.assertTrue(w.wait_plant_ready(b), b.log())
        pub = w.publisher()
        for i in range(5):
            self.assertTrue(pub.publish("plant/l1/telemetry/t", b"v%d" % i, qos=1))
        self.assertTrue(b.wait_log(r"event=cloud\.connect_failed.*" + pattern, 10), b.log())
        time.sleep(1.5)  # several attempts: still one line, nothing connected
        log = b.log()
        self.assertNotIn("event=cloud.connected", log)
        self.assertEqual(len([l for l in log.splitlines() if "cloud.connect_failed" in l]), 1, log)
        self.assertNotIn("Received PUBLISH", bad.log())
        # The plant broker acknowledged all 5; all 5 and no more get queued.
        h.wait_for(lambda: w.queue_count() >= 5, 10)
        self.assertEqual(w.queue_count(), 5)
        # Fixed: point the bridge at the real cloud; the messages arrive.
        self.assertEqual(b.stop(), 0)
        sub = w.cloud_subscriber("#")
        b2 = w.start_bridge(RULES, name="bridge-fixed")
        got = sub.wait_messages(5, 30)
        self.assertEqual(sorted(m["payload"] for m in got), [b"v%d" % i for i in range(5)],
                         b2.log())
        self.assertNotIn("no_client_certificate", b2.log())  # the cloud asked for it
        self.assertEqual(b2.stop(), 0)

    def test_cloud_cert_from_another_ca(self):
        with h.Env("br-tls-ca") as env:
            w = BridgeWorld(env)
            other = env.pki("other-ca")
            bad = impostor_cloud(env, w, other, "cloud-impostor", "localhost")
            self.check_refused_then_fixed(
                env, w, bad, r"certificate verify failed: unable to get local issuer certificate "
                r"\(X\.509 error 20 at depth 0, the server's own certificate, subject "
                r"/CN=cloud-impostor\).*hint=\"the cloud's certificate was not issued by a CA in "
                r"cloud_cafile")

    def test_cloud_cert_for_another_host(self):
        with h.Env("br-tls-host") as env:
            w = BridgeWorld(env)
            # Right CA, wrong name: the certificate is for elsewhere.example.
            bad = impostor_cloud(env, w, w.cloud_pki, "elsewhere", "elsewhere.example",
                                 ip="192.0.2.10")
            self.check_refused_then_fixed(
                env, w, bad, r"certificate verify failed: hostname mismatch \(X\.509 error 62 "
                r"at depth 0.*hint=\"the cloud's certificate is not for cloud_host 'localhost'",
                cloud_host="localhost")

    def test_cloud_cert_for_another_ip(self):
        with h.Env("br-tls-ip") as env:
            w = BridgeWorld(env)
            bad = impostor_cloud(env, w, w.cloud_pki, "elsewhere", "elsewhere.example",
                                 ip="192.0.2.10")
            self.check_refused_then_fixed(
                env, w, bad, r"certificate verify failed: IP address mismatch \(X\.509 error 64")

    def test_cloud_cert_expired(self):
        with h.Env("br-tls-expired") as env:
            w = BridgeWorld(env)
            cert = expired_server_cert(w.cloud_pki, "cloud-expired")
            bad = impostor_cloud(env, w, w.cloud_pki, None, None, cert=cert)
            self.check_refused_then_fixed(
                env, w, bad, r"certificate verify failed: certificate has expired \(X\.509 "
                r"error 10 at depth 0, the server's own certificate, subject /CN=cloud-expired\)"
                r".*hint=\"the cloud's certificate is outside its validity period")

    def test_cloud_that_asks_no_client_certificate_is_a_warning(self):
        with h.Env("br-tls-nocert") as env:
            w = BridgeWorld(env)
            crt, key = w.cloud_pki.server("localhost")
            lax = impostor_cloud(env, w, w.cloud_pki, None, None, cert=(crt, key),
                                 require_certificate=False)
            b = w.start_bridge(RULES, cloud_port=lax.port)
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 10), b.log())
            self.assertTrue(b.wait_log(r"level=warn event=cloud\.no_client_certificate .*"
                                       r"require_certificate true", 5), b.log())
            # Said once, not at every reconnect.
            lax.restart()
            self.assertTrue(h.wait_for(lambda: b.log().count("event=cloud.connected") >= 2, 15),
                            b.log())
            self.assertEqual(b.log().count("event=cloud.no_client_certificate"), 1, b.log())
            self.assertEqual(b.stop(), 0)

    def test_tls_below_minimum(self):
        with h.Env("br-tls-ver") as env:
            w = BridgeWorld(env)
            crt, key = w.cloud_pki.server("localhost")
            port = h.free_port()
            # mosquitto's tls_version is a minimum, so the cloud that offers
            # TLS 1.2 at most is OpenSSL's own test server.
            old = h.Proc(env, "tls12", ["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
                                        "-tls1_2", "-cert", crt, "-key", key, "-CAfile",
                                        w.cloud_pki.ca, "-Verify", "1", "-quiet"])
            old.port = port
            self.assertTrue(h.wait_for(lambda: port_open(port), 15), old.log())
            b = w.start_bridge(RULES, cloud_port=old.port, extra="cloud_tls_version 1.3\n")
            self.assertTrue(w.wait_plant_ready(b), b.log())
            pub = w.publisher()
            self.assertTrue(pub.publish("plant/l1/telemetry/t", b"x", qos=1))
            self.assertTrue(b.wait_log(r"event=cloud\.connect_failed.*reason=", 10), b.log())
            time.sleep(1.0)
            self.assertNotIn("event=cloud.connected", b.log())
            h.wait_for(lambda: w.queue_count() >= 1, 10)
            self.assertEqual(w.queue_count(), 1)
            self.assertEqual(b.stop(), 0)
            # With 1.3 on offer (the real cloud stand-in) it connects and delivers.
            sub = w.cloud_subscriber("#")
            b2 = w.start_bridge(RULES, name="bridge13", extra="cloud_tls_version 1.3\n")
            self.assertEqual([m["payload"] for m in sub.wait_messages(1, 30)], [b"x"], b2.log())
            self.assertEqual(b2.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
