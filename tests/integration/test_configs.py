"""Every shipped example configuration loads in the real program it is for:
config/mosquitto.conf in mosquitto with the plugin and config/policy.example,
config/cloud-standin.conf in mosquitto, config/policy.example in
plantgate-policy, config/bridge.example in plantgate-bridge -n."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

CONFIG = os.path.join(h.ROOT, "config")


class ShippedConfigs(unittest.TestCase):
    def test_plant_mosquitto_conf_loads_with_plugin_and_example_policy(self):
        with h.Env("cfg-plant") as env:
            pki = env.pki()
            pki.server("broker")
            port = h.free_port()
            text = h.shipped_plant_conf(env, pki, port)
            broker = h.Broker(env, "plant", text, port)
            self.assertTrue(broker.wait_log(r"plantgate: version .*, policy .* loaded", 5), broker.log())
            # A certificate-less client is turned away by the shipped config.
            anon = env.anonymous_client(pki, broker)
            self.assertNotEqual(anon.connect(), 0)

    def test_cloud_standin_conf_loads(self):
        with h.Env("cfg-cloud") as env:
            pki = env.pki("cloud-pki")
            pki.server("cloud")
            port = h.free_port()
            text = h.render(os.path.join(CONFIG, "cloud-standin.conf"), [
                ("/etc/plantgate/cloud-pki/", pki.dir + "/"),
                ("listener 18883 127.0.0.1", "listener %d 127.0.0.1" % port),
            ])
            broker = h.Broker(env, "cloud", text, port)
            c = env.client(pki, "bridge-1", broker, cert=pki.bridge_cert("bridge-1"))
            self.assertEqual(c.connect(), 0)

    def test_policy_example_checks(self):
        tool = os.path.join(h.BUILD, "plugin", "plantgate-policy")
        p = subprocess.run([tool, "check", os.path.join(CONFIG, "policy.example")],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_bridge_example_checks(self):
        p = subprocess.run([h.bridge_path(), "-n", "--no-file-checks", "-c", os.path.join(CONFIG, "bridge.example")],
                           capture_output=True, text=True, timeout=30)
        self.assertIn("configuration OK", p.stdout + p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
