/*
 * test_bridge_config.c — the bridge configuration parser (bridge/bconf.c):
 * every kind of error carries file:line, unknown and duplicate keys are
 * refused, the cloud profiles enforce their limits, the shipped example
 * parses, and a parsed configuration printed back parses to the same thing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bconf.h"

#define BASE                                                                                      \
	"plant_host 127.0.0.1\n"                                                                      \
	"plant_cafile /p/ca.crt\n"                                                                    \
	"plant_certfile /p/b.crt\n"                                                                   \
	"plant_keyfile /p/b.key\n"                                                                    \
	"cloud_host cloud.example.net\n"                                                              \
	"cloud_cafile /c/ca.crt\n"                                                                    \
	"cloud_certfile /c/b.crt\n"                                                                   \
	"cloud_keyfile /c/b.key\n"                                                                    \
	"queue_path /tmp/q.db\n" /* 9 lines */

static char err[16384];

static int load(const char *text, bconf_t *cfg)
{
	return bconf_load_buffer("t.conf", text, strlen(text), cfg, err, sizeof(err));
}

/* Load BASE + extra and expect exactly one error containing `want`. */
static void expect_error(const char *extra, const char *want)
{
	char text[8192];
	snprintf(text, sizeof(text), "%s%s", BASE, extra);
	bconf_t cfg;
	int n = load(text, &cfg);
	if(n == 0 || !strstr(err, want)) {
		if(n == 0) {
			bconf_free(&cfg);
		}
		fail_msg("config:\n%s\nwanted error containing '%s', got %d errors:\n%s", extra, want, n,
		         err);
	}
}

static void test_minimal_ok_and_defaults(void **state)
{
	bconf_t cfg;
	int n = load(BASE "forward plant/+/telemetry/# qos=1\n", &cfg);
	assert_int_equal(n, 0);
	assert_string_equal(cfg.plant_host, "127.0.0.1");
	assert_int_equal(cfg.plant_port, 8883);
	assert_int_equal(cfg.cloud_port, 8883);
	assert_int_equal(cfg.cloud_tls_version, 12);
	assert_int_equal(cfg.cloud_protocol, 5);
	assert_false(cfg.cloud_use_system_trust);
	assert_int_equal(cfg.queue_when_full, BCONF_FULL_BACKPRESSURE);
	assert_int_equal(cfg.whitelist.count, 1);
	assert_int_equal(cfg.whitelist.rules[0].line, 10);
	assert_int_equal(cfg.drain_inflight, 20);
	assert_int_equal(cfg.plant_keepalive_ms, 30000);
	bconf_free(&cfg);
	bconf_free(&cfg); /* idempotent */
	bconf_free(NULL);
}

static void test_errors_have_file_line(void **state)
{
	expect_error("forward a/b\nbogus_key 1\n", "t.conf:11: unknown key 'bogus_key'");
	expect_error("forward a/b\nplant_port 1883\nplant_port 8883\n",
	             "t.conf:12: 'plant_port' is duplicate (first set at line 11)");
	expect_error("forward a/b\nplant_port 70000\n", "t.conf:11: plant_port '70000'");
	expect_error("forward a/b\nplant_port\n", "t.conf:11: 'plant_port' takes exactly one value");
	expect_error("forward a/b\nplant_keepalive soon\n", "t.conf:11: plant_keepalive 'soon'");
	expect_error("forward a/b\nqueue_max_bytes lots\n", "t.conf:11: queue_max_bytes 'lots'");
	expect_error("forward a/b\nqueue_when_full explode\n",
	             "t.conf:11: queue_when_full 'explode': expected one of backpressure, drop-oldest");
	expect_error("forward a/b\ncloud_use_system_trust maybe\n", "t.conf:11: cloud_use_system_trust");
	expect_error("forward a/b\ncloud_tls_version 1.1\n", "t.conf:11: cloud_tls_version '1.1'");
	expect_error("forward a/b\ncloud_protocol 3.1\n", "t.conf:11: cloud_protocol '3.1'");
	expect_error("forward a/b\nplant_host \"unterminated\n", "t.conf:11: unterminated quoted");
	expect_error("forward a/b\nforward a/b\n", "t.conf:11: forward rule for 'a/b' is duplicate");
	expect_error("forward a/b\nreconnect_min 10s\nreconnect_max 2s\n",
	             "t.conf:12: reconnect_max (2000ms) is below reconnect_min");
}

static void test_several_errors_reported(void **state)
{
	bconf_t cfg;
	int n = load(BASE "forward a/b\nx 1\ny 2\nplant_port 0\n", &cfg);
	assert_int_equal(n, 3);
	assert_non_null(strstr(err, "t.conf:11:"));
	assert_non_null(strstr(err, "t.conf:12:"));
	assert_non_null(strstr(err, "t.conf:13:"));
	assert_null(cfg.plant_host); /* freed on error */
}

static void test_missing_required(void **state)
{
	bconf_t cfg;
	int n = load("plant_host h\n", &cfg);
	assert_true(n >= 8);
	assert_non_null(strstr(err, "t.conf: missing 'plant_cafile'"));
	assert_non_null(strstr(err, "t.conf: missing 'forward'"));
	assert_non_null(strstr(err, "t.conf: missing 'queue_path'"));
	assert_non_null(strstr(err, "missing 'cloud_cafile'"));
}

static void test_cloud_ca_pinned_unless_system_trust(void **state)
{
	const char *text = "plant_host h\nplant_cafile a\nplant_certfile b\nplant_keyfile c\n"
	                   "cloud_host x\ncloud_certfile d\ncloud_keyfile e\nqueue_path q\n"
	                   "forward a/b\n";
	bconf_t cfg;
	assert_int_equal(load(text, &cfg), 1);
	assert_non_null(strstr(err, "cloud_use_system_trust yes"));
	char more[1024];
	snprintf(more, sizeof(more), "%scloud_use_system_trust yes\n", text);
	assert_int_equal(load(more, &cfg), 0);
	assert_true(cfg.cloud_use_system_trust);
	bconf_free(&cfg);
}

static void test_forward_rules_refused(void **state)
{
	expect_error("forward #\n", "t.conf:10: '#' would forward every topic");
	expect_error("forward +/#\n", "t.conf:10: '+/#' would forward every topic");
	expect_error("forward $SYS/#\n", "t.conf:10: '$SYS/#' would forward broker-internal");
	expect_error("forward $CONTROL/x\n", "t.conf:10: '$CONTROL/x' would forward");
	expect_error("forward a/b prefix=$aws/things/\n", "starts with '$'");
	expect_error("forward a/b qos=2\n", "t.conf:10: qos=2");
	expect_error("forward a/b qos=1 qos=0\n", "option 'qos' is duplicate");
	expect_error("forward a/b/# strip=x/\n", "strip='x/' is not a literal beginning");
	expect_error("forward a/b to=c prefix=d/\n", "to= sets the whole cloud topic");
	expect_error("forward a/b bogus=1\n", "unknown forward option 'bogus'");
	expect_error("forward a/b frobnicate\n", "unknown forward option 'frobnicate'");
	expect_error("forward a/b max-payload=big\n", "max-payload='big'");
	expect_error("forward a/b ttl=forever\n", "ttl='forever'");
	expect_error("forward a/#/b\n", "not a valid MQTT topic filter");
	expect_error("forward\n", "forward needs a plant topic filter");
	expect_error("forward a/b prefix=x/+/\n", "must be a literal topic part");
	expect_error("forward a/# qos=1\nforward a/b/c\n",
	             "t.conf:11: this rule never matches: the rule at line 10");
	bconf_t cfg;
	assert_int_equal(load(BASE "forward # force\nforward $SYS/broker/load/# force\n", &cfg), 0);
	assert_true(cfg.whitelist.rules[0].force);
	bconf_free(&cfg);
}

static void test_aws_profile(void **state)
{
	expect_error("cloud_profile aws-iot\nforward a/b max-payload=1M\n",
	             "t.conf:11: aws-iot: max-payload=1048576 exceeds the cloud's limit of 131072");
	expect_error("cloud_profile aws-iot\nforward a/b/c/d prefix=1/2/3/4/5/\n",
	             "t.conf:11: aws-iot: cloud topics of this rule have 8 '/'");
	expect_error("cloud_profile aws-iot\ndrain_rate 500\nforward a/b\n",
	             "t.conf:11: aws-iot: drain_rate must be 1..100");
	expect_error("cloud_profile aws-iot\ndrain_byte_rate 1M\nforward a/b\n",
	             "t.conf:11: aws-iot: drain_byte_rate must be 1..524288 bytes/s");
	expect_error("cloud_profile aws-iot\ndrain_byte_rate 0\nforward a/b\n",
	             "t.conf:11: aws-iot: drain_byte_rate must be 1..524288 bytes/s");
	expect_error("cloud_profile aws-iot\ndrain_inflight 200\nforward a/b\n",
	             "t.conf:11: aws-iot: drain_inflight must be at most 100");
	expect_error("cloud_profile aws-iot\ncloud_port 443\nforward a/b\n",
	             "t.conf:11: aws-iot: MQTT over port 443 needs `cloud_alpn x-amzn-mqtt-ca`");
	char longid[300];
	memset(longid, 'x', 200);
	longid[200] = '\0';
	char text[512];
	snprintf(text, sizeof(text), "cloud_profile aws-iot\ncloud_client_id %s\nforward a/b\n", longid);
	expect_error(text, "t.conf:11: aws-iot: cloud_client_id is 200 bytes");
	bconf_t cfg;
	assert_int_equal(load(BASE "cloud_profile aws-iot\ncloud_port 443\ncloud_alpn x-amzn-mqtt-ca\n"
	                           "forward plant/+/+/+/telemetry/# strip=plant/ prefix=dt/\n",
	                      &cfg),
	                 0);
	assert_int_equal(cfg.drain_rate, 100); /* the profile's default */
	assert_int_equal(cfg.drain_byte_rate, 512 * 1024);
	assert_int_equal(cfg.whitelist.rules[0].max_payload, 128 * 1024);
	bconf_free(&cfg);
	assert_int_equal(load(BASE "cloud_profile aws-iot\ndrain_byte_rate 64K\nforward a/b\n", &cfg), 0);
	assert_int_equal(cfg.drain_byte_rate, 64 * 1024);
	bconf_free(&cfg);
	assert_int_equal(load(BASE "forward a/b\n", &cfg), 0);
	assert_int_equal(cfg.drain_byte_rate, 0); /* generic: unpaced */
	bconf_free(&cfg);
}

static void test_azure_profile(void **state)
{
	expect_error("cloud_profile azure-iot-hub\ncloud_azure_hub h\ncloud_client_id dev1\n"
	             "cloud_protocol 5\nforward a/b to=devices/dev1/messages/events/\n",
	             "azure-iot-hub: Azure IoT Hub speaks MQTT 3.1.1 only");
	expect_error("cloud_profile azure-iot-hub\ncloud_client_id dev1\n"
	             "forward a/b to=devices/dev1/messages/events/\n",
	             "missing 'cloud_azure_hub'");
	expect_error("cloud_profile azure-iot-hub\ncloud_azure_hub h\ncloud_client_id dev1\n"
	             "forward a/b prefix=x/\n",
	             "t.conf:13: azure-iot-hub: every rule must send to the device-to-cloud topic: add "
	             "`to=devices/dev1/messages/events/`");
	expect_error("cloud_azure_hub h\nforward a/b\n", "only meaningful with");
	bconf_t cfg;
	assert_int_equal(load(BASE "cloud_profile azure-iot-hub\ncloud_azure_hub myhub\n"
	                           "cloud_client_id dev1\n"
	                           "forward a/b to=devices/dev1/messages/events/\n",
	                      &cfg),
	                 0);
	assert_int_equal(cfg.cloud_protocol, 4);
	assert_string_equal(cfg.cloud_username,
	                    "myhub.azure-devices.net/dev1/?api-version=2021-04-12");
	assert_int_equal(cfg.whitelist.rules[0].max_payload, 256 * 1024);
	bconf_free(&cfg);
	/* retain is not refused: IoT Hub does not store it, it passes the message on
	 * with the property x-opt-retain (docs/bridge.md). */
	assert_int_equal(load(BASE "cloud_profile azure-iot-hub\ncloud_azure_hub myhub\n"
	                           "cloud_client_id dev1\n"
	                           "forward a/b to=devices/dev1/messages/events/ retain\n",
	                      &cfg),
	                 0);
	bconf_free(&cfg);
}

/* Azure IoT Hub's published limits (issue 12 item 10). */
static void test_azure_limits(void **state)
{
	/* Keep-alive at most 1177 s. */
	expect_error("cloud_profile azure-iot-hub\ncloud_azure_hub h\ncloud_client_id dev1\n"
	             "cloud_keepalive 1178s\nforward a/b to=devices/dev1/messages/events/\n",
	             "t.conf:13: azure-iot-hub: cloud_keepalive must be at most 1177s");
	bconf_t cfg;
	assert_int_equal(load(BASE "cloud_profile azure-iot-hub\ncloud_azure_hub h\ncloud_client_id dev1\n"
	                           "cloud_keepalive 1177s\nforward a/b to=devices/dev1/messages/events/\n",
	                      &cfg),
	                 0);
	bconf_free(&cfg);
	/* Device id at most 128 characters (not bytes). */
	char id[600], text[2048];
	memset(id, 'd', 129);
	id[129] = '\0';
	snprintf(text, sizeof(text),
	         "cloud_profile azure-iot-hub\ncloud_azure_hub h\ncloud_client_id %s\n"
	         "forward a/b to=devices/%s/messages/events/\n",
	         id, id);
	expect_error(text, "azure-iot-hub: cloud_client_id is 129 characters long, Azure IoT Hub "
	                   "allows 128");
	id[0] = '\0';
	for(int i = 0; i < 128; i++) {
		strcat(id, "\xc3\xa9"); /* é: 2 bytes, 1 character */
	}
	snprintf(text, sizeof(text),
	         BASE "cloud_profile azure-iot-hub\ncloud_azure_hub h\ncloud_client_id %s\n"
	         "forward a/b to=devices/%s/messages/events/\n",
	         id, id);
	assert_int_equal(load(text, &cfg), 0);
	bconf_free(&cfg);
	/* The hub's full host name, sovereign clouds included, becomes the username. */
	static const char *const hosts[] = {"hub1.azure-devices.net", "hub1.azure-devices.cn",
	                                    "hub1.azure-devices.us", "hub1.azure-devices.de"};
	for(size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		snprintf(text, sizeof(text),
		         BASE "cloud_profile azure-iot-hub\ncloud_azure_hub %s\ncloud_client_id dev1\n"
		         "forward a/b to=devices/dev1/messages/events/\n",
		         hosts[i]);
		assert_int_equal(load(text, &cfg), 0);
		char want[256];
		snprintf(want, sizeof(want), "%s/dev1/?api-version=2021-04-12", hosts[i]);
		assert_string_equal(cfg.cloud_username, want);
		bconf_free(&cfg);
	}
	expect_error("cloud_profile azure-iot-hub\ncloud_azure_hub hub1.example.com\n"
	             "cloud_client_id dev1\nforward a/b to=devices/dev1/messages/events/\n",
	             "t.conf:11: cloud_azure_hub 'hub1.example.com': expected the hub name or its full "
	             "host name ending in .azure-devices.net");
}

/* AWS IoT Core's published limits (issue 12 item 10). */
static void test_aws_limits(void **state)
{
	expect_error("cloud_profile aws-iot\ncloud_client_id $bridge\nforward a/b\n",
	             "t.conf:11: aws-iot: cloud_client_id must not start with '$'");
	/* Basic Ingest: $aws/rules/<rule>/ does not count toward the 7 '/'. */
	bconf_t cfg;
	assert_int_equal(load(BASE "cloud_profile aws-iot\n"
	                           "forward a/b to=$aws/rules/r1/1/2/3/4/5/6/7/8 force\n",
	                      &cfg),
	                 0);
	const char *why = NULL;
	assert_true(bconf_cloud_topic_ok(&cfg, "$aws/rules/r1/1/2/3/4/5/6/7/8", &why));
	assert_false(bconf_cloud_topic_ok(&cfg, "$aws/rules/r1/1/2/3/4/5/6/7/8/9", &why));
	assert_string_equal(why, "cloud-topic-too-deep");
	assert_false(bconf_cloud_topic_ok(&cfg, "1/2/3/4/5/6/7/8/9", &why));
	/* Topic at most 256 bytes, the Basic Ingest prefix not counted. */
	char topic[600];
	memset(topic, 't', 256);
	topic[256] = '\0';
	assert_true(bconf_cloud_topic_ok(&cfg, topic, &why));
	topic[256] = 'u';
	topic[257] = '\0';
	assert_false(bconf_cloud_topic_ok(&cfg, topic, &why));
	assert_string_equal(why, "cloud-topic-too-long");
	snprintf(topic, sizeof(topic), "$aws/rules/r1/%0256d", 0);
	assert_true(bconf_cloud_topic_ok(&cfg, topic, &why));
	bconf_free(&cfg);
	expect_error("cloud_profile aws-iot\nforward a/b to=$aws/rules/r1/1/2/3/4/5/6/7/8/9 force\n",
	             "t.conf:11: aws-iot: cloud topics of this rule have 8 '/'");
	/* The generic profile has none of these limits. */
	assert_int_equal(load(BASE "forward a/b\n", &cfg), 0);
	memset(topic, 't', 500);
	topic[500] = '\0';
	assert_true(bconf_cloud_topic_ok(&cfg, topic, &why));
	assert_true(bconf_cloud_topic_ok(&cfg, "1/2/3/4/5/6/7/8/9/10", &why));
	bconf_free(&cfg);
}

static char *print_to_string(const bconf_t *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	bconf_print(cfg, f);
	fclose(f);
	return buf;
}

static void test_print_round_trip(void **state)
{
	bconf_t a, b;
	assert_int_equal(load(BASE "forward \"plant/x y/#\" qos=0 strip=plant/ \"prefix=s \\\"q\\\"/\" "
	                           "ttl=2h max-payload=1k retain\n"
	                           "forward a/b to=c/d force\n"
	                           "cloud_alpn x-amzn-mqtt-ca\nqueue_when_full drop-oldest\n",
	                      &a),
	                 0);
	char *p1 = print_to_string(&a);
	assert_int_equal(bconf_load_buffer("printed", p1, strlen(p1), &b, err, sizeof(err)), 0);
	char *p2 = print_to_string(&b);
	assert_string_equal(p1, p2);
	assert_string_equal(b.whitelist.rules[0].prefix, "s \"q\"/");
	assert_int_equal(b.whitelist.rules[0].ttl_ms, 7200000);
	free(p1);
	free(p2);
	bconf_free(&a);
	bconf_free(&b);
}

/* queue_commit_interval: auto by default, a duration, or 0; printed back
 * the same; anything else named in the error with what it may be. */
static void test_commit_interval(void **state)
{
	bconf_t cfg;
	assert_int_equal(load(BASE "forward a/b\n", &cfg), 0);
	assert_int_equal(cfg.queue_commit_interval_ms, BCONF_COMMIT_AUTO);
	char *p = print_to_string(&cfg);
	assert_non_null(strstr(p, "queue_commit_interval auto\n"));
	free(p);
	bconf_free(&cfg);
	assert_int_equal(load(BASE "forward a/b\nqueue_commit_interval 2ms\n", &cfg), 0);
	assert_int_equal(cfg.queue_commit_interval_ms, 2);
	p = print_to_string(&cfg);
	assert_non_null(strstr(p, "queue_commit_interval 2ms\n"));
	free(p);
	bconf_free(&cfg);
	assert_int_equal(load(BASE "forward a/b\nqueue_commit_interval 0\n", &cfg), 0);
	assert_int_equal(cfg.queue_commit_interval_ms, 0);
	bconf_free(&cfg);
	expect_error("forward a/b\nqueue_commit_interval sometimes\n",
	             "t.conf:11: queue_commit_interval 'sometimes': expected auto or a duration");
	expect_error("forward a/b\nqueue_commit_interval 2s\n",
	             "t.conf:11: queue_commit_interval '2s': expected auto or a duration");
	expect_error("forward a/b\nqueue_commit_interval -1\n", "t.conf:11: queue_commit_interval '-1'");
}

static void test_shipped_example_parses(void **state)
{
	const char *src = getenv("PG_SOURCE_DIR");
	char path[4096];
	snprintf(path, sizeof(path), "%s/config/bridge.example", src ? src : "../..");
	bconf_t cfg;
	int n = bconf_load(path, &cfg, err, sizeof(err));
	if(n) {
		fail_msg("%s", err);
	}
	assert_true(cfg.whitelist.count >= 1);
	/* The example's paths do not exist here: the file check names each. */
	err[0] = '\0';
	int missing = bconf_check_files(&cfg, err, sizeof(err));
	assert_true(missing >= 1);
	assert_non_null(strstr(err, "bridge.example:"));
	assert_non_null(strstr(err, "plant_cafile '/etc/plantgate/pki/ca.crt': cannot read"));
	bconf_free(&cfg);
}

static void test_missing_file(void **state)
{
	bconf_t cfg;
	assert_int_not_equal(bconf_load("/nonexistent/bridge.conf", &cfg, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "/nonexistent/bridge.conf: cannot open"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_minimal_ok_and_defaults),
	    cmocka_unit_test(test_errors_have_file_line),
	    cmocka_unit_test(test_several_errors_reported),
	    cmocka_unit_test(test_missing_required),
	    cmocka_unit_test(test_cloud_ca_pinned_unless_system_trust),
	    cmocka_unit_test(test_forward_rules_refused),
	    cmocka_unit_test(test_aws_profile),
	    cmocka_unit_test(test_azure_profile),
	    cmocka_unit_test(test_azure_limits),
	    cmocka_unit_test(test_aws_limits),
	    cmocka_unit_test(test_print_round_trip),
	    cmocka_unit_test(test_commit_interval),
	    cmocka_unit_test(test_shipped_example_parses),
	    cmocka_unit_test(test_missing_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
