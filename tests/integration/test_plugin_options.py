"""plugin_opt_* in mosquitto.conf, through real mosquitto: every option's
wrong value stops the broker at start with the option, the value and what to
write instead; an unknown option names itself; a full set of good values
starts.  The options are one table in plugin/plugin.c (issue 15, item 5):
this pins each row's bounds and message."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import policies  # noqa: E402

BAD = [
    ("identity_source", "bogus", "use cn, san-uri or san-dns"),
    ("identity_max_len", "0", "give a number from 1 to 256"),
    ("identity_max_len", "257", "give a number from 1 to 256"),
    ("clientid", "maybe", "use equal or prefix"),
    ("rate_messages", "-1", "give messages per second per device, 0 = unlimited"),
    ("rate_bytes", "2T", "give bytes per second per device, e.g. 256k; 0 = unlimited"),
    ("rate_burst", "0", "give the burst in seconds of rate, 1 to 3600"),
    ("flood_disconnect", "many", "give refused publishes per 10 s that disconnect, 0 = never"),
    ("connect_failures", "1000001", "give failed connects per minute before throttling, 0 = never"),
    ("max_packet_size", "1G", "give the smallest Maximum Packet Size of your MQTT 5 subscribers"),
    ("offline_sessions", "0", "give the number of offline sessions remembered, 1 to 10000000"),
    ("stamp_received", "yes", "use true or false"),
    ("sys_interval", "2d", "give an interval such as 10s; 0 = off"),
]

GOOD = {
    "identity_source": "cn", "identity_max_len": "64", "clientid": "equal",
    "rate_messages": "100", "rate_bytes": "64k", "rate_burst": "2",
    "flood_disconnect": "10", "connect_failures": "5", "max_packet_size": "1k",
    "offline_sessions": "100", "stamp_received": "true", "sys_interval": "10s",
}


class Options(unittest.TestCase):
    def test_bad_values_stop_the_broker_with_what_to_write(self):
        with h.Env("plugin-options") as env:
            pki = env.pki()
            for i, (key, value, usage) in enumerate(BAD):
                with self.subTest(option=key, value=value):
                    with self.assertRaises(RuntimeError) as cm:
                        env.plant_broker(pki, policy=policies.BASIC, plugin_opts={key: value},
                                         name="bad%d" % i)
                    self.assertIn('plugin_opt_%s "%s": %s' % (key, value, usage), str(cm.exception))
            with self.assertRaises(RuntimeError) as cm:
                env.plant_broker(pki, policy=policies.BASIC, plugin_opts={"frobnicate": "1"},
                                 name="unknown")
            self.assertIn("unknown option plugin_opt_frobnicate: check the spelling",
                          str(cm.exception))
            with self.assertRaises(RuntimeError) as cm:
                env.plant_broker(pki, policy=policies.BASIC,
                                 plugin_opts={"issuer_cafile": env.path("no-such-ca.crt")},
                                 name="nopins")
            self.assertIn("cannot open plugin_opt_issuer_cafile", str(cm.exception))

    def test_good_values_start(self):
        with h.Env("plugin-options-good") as env:
            pki = env.pki()
            b = env.plant_broker(pki, policy=policies.BASIC, plugin_opts=GOOD)
            c = env.client(pki, "sensor-1", b)
            c.disconnect()


if __name__ == "__main__":
    unittest.main()
