/*
 * test_bridge_tunnel.c — the pure parts of the cloud tunnel: proxy URLs,
 * no_proxy lists, HTTP response heads (CONNECT and WebSocket upgrade
 * answers), Basic credentials, RFC 6455
 * framing (handshake key, masking, the streaming decoder), and the
 * configuration keys cloud_transport / cloud_ws_path / cloud_proxy*.
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
#include "tunproto.h"
#include "wsframe.h"

static void test_url(void **state)
{
	(void)state;
	tunproto_url_t u;
	const char *why = NULL;
	assert_int_equal(tunproto_url_parse("http://proxy.plant.local:3128", &u, &why), 0);
	assert_false(u.tls);
	assert_string_equal(u.host, "proxy.plant.local");
	assert_int_equal(u.port, 3128);
	assert_int_equal(tunproto_url_parse("HTTPS://10.1.2.3/", &u, &why), 0);
	assert_true(u.tls);
	assert_int_equal(u.port, 443);
	assert_int_equal(tunproto_url_parse("http://[fd00::1]:8080", &u, &why), 0);
	assert_string_equal(u.host, "fd00::1");
	assert_int_equal(u.port, 8080);
	assert_int_equal(tunproto_url_parse("http://proxy", &u, &why), 0);
	assert_int_equal(u.port, 80);
	static const char *const bad[] = {"proxy:3128",           "socks5://p:1080",
	                                  "http://user:pw@p:3128", "http://p:0",
	                                  "http://p:65536",        "http://p:31x",
	                                  "http://p:3128/path",    "http://",
	                                  "http://[fd00::1",       "http://pro xy:1",
	                                  "http://[nothex]:1",     "http://p:"};
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		assert_int_equal(tunproto_url_parse(bad[i], &u, &why), -1);
		assert_non_null(why);
	}
	assert_int_equal(tunproto_url_parse("http://u:p@h:1", &u, &why), -1);
	assert_non_null(strstr(why, "cloud_proxy_auth_file"));
}

static void test_no_proxy(void **state)
{
	(void)state;
	const char *list = "localhost, .corp.example,10.0.0.0/8 fd00::/8\t192.168.1.7";
	char bad[64];
	assert_int_equal(tunproto_no_proxy_check(list, bad, sizeof(bad)), 0);
	assert_true(tunproto_no_proxy_match(list, "localhost"));
	assert_true(tunproto_no_proxy_match(list, "LOCALHOST"));
	assert_true(tunproto_no_proxy_match(list, "corp.example"));
	assert_true(tunproto_no_proxy_match(list, "iot.corp.example"));
	assert_true(tunproto_no_proxy_match(list, "iot.corp.example."));
	assert_false(tunproto_no_proxy_match(list, "evilcorp.example"));
	assert_false(tunproto_no_proxy_match(list, "corp.example.evil"));
	assert_true(tunproto_no_proxy_match(list, "10.20.30.40"));
	assert_false(tunproto_no_proxy_match(list, "11.0.0.1"));
	assert_true(tunproto_no_proxy_match(list, "fd12::1"));
	assert_true(tunproto_no_proxy_match(list, "192.168.1.7"));
	assert_false(tunproto_no_proxy_match(list, "192.168.1.8"));
	assert_false(tunproto_no_proxy_match(list, "hub.azure-devices.net"));
	assert_true(tunproto_no_proxy_match("*", "anything.example"));
	assert_false(tunproto_no_proxy_match("", "localhost"));
	assert_true(tunproto_no_proxy_match("10.1.2.3/31", "10.1.2.2"));
	assert_false(tunproto_no_proxy_match("10.1.2.3/31", "10.1.2.4"));
	assert_int_equal(tunproto_no_proxy_check("ok.example, bad/entry", bad, sizeof(bad)), -1);
	assert_string_equal(bad, "bad/entry");
	assert_int_equal(tunproto_no_proxy_check("10.0.0.0/33", bad, sizeof(bad)), -1);
	assert_int_equal(tunproto_no_proxy_check("a..b:80", bad, sizeof(bad)), -1);
	/* a bad entry never matches, even if a prefix of it would */
	assert_false(tunproto_no_proxy_match("10.0.0.0/99", "10.0.0.1"));
}

static void test_head(void **state)
{
	(void)state;
	tunproto_head_t h;
	const char *why = NULL;
	const char *ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n"
	                 "Connection: keep-alive, Upgrade\r\n"
	                 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
	                 "Sec-WebSocket-Protocol: mqtt\r\n\r\n\x82\x02\x20\x00";
	size_t hl = (size_t)(strstr(ok, "\r\n\r\n") - ok) + 4;
	size_t len = hl + 4; /* and the first frame */
	/* every prefix short of the blank line asks for more */
	for(size_t i = 0; i < hl; i++) {
		assert_int_equal(tunproto_head_parse(ok, i, &h, &why), TUNPROTO_HEAD_MORE);
	}
	assert_int_equal(tunproto_head_parse(ok, len, &h, &why), TUNPROTO_HEAD_OK);
	assert_int_equal(h.status, 101);
	assert_string_equal(h.reason, "Switching Protocols");
	assert_int_equal(h.len, hl);
	assert_string_equal(h.upgrade, "WebSocket");
	assert_true(h.conn_upgrade);
	assert_string_equal(h.ws_accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	assert_string_equal(h.ws_protocol, "mqtt");

	const char *p407 = "HTTP/1.0 407 Proxy \"Auth\" Required\r\n"
	                   "Proxy-Authenticate: Basic realm=\"plant\"\r\n\r\n";
	assert_int_equal(tunproto_head_parse(p407, strlen(p407), &h, &why), TUNPROTO_HEAD_OK);
	assert_int_equal(h.status, 407);
	assert_string_equal(h.reason, "Proxy ?Auth? Required"); /* safe inside a quoted log value */
	assert_string_equal(h.proxy_auth, "Basic realm=?plant?");
	assert_false(h.conn_upgrade);

	static const char *const bad[] = {
	    "SSH-2.0-OpenSSH\r\n\r\n", "HTTP/2 200\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n",
	    "HTTP/1.1 200OK\r\n\r\n",  "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", "HTTP/1.1 099 x\r\n\r\n"};
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(tunproto_head_parse(bad[i], strlen(bad[i]), &h, &why), TUNPROTO_HEAD_BAD);
	}
	assert_int_equal(tunproto_head_parse("SSH", 3, &h, &why), TUNPROTO_HEAD_BAD);
	char *big = malloc(TUNPROTO_HEAD_MAX + 32);
	assert_non_null(big);
	memcpy(big, "HTTP/1.1 200 OK\r\n", 17);
	memset(big + 17, 'a', TUNPROTO_HEAD_MAX);
	assert_int_equal(tunproto_head_parse(big, TUNPROTO_HEAD_MAX + 16, &h, &why), TUNPROTO_HEAD_BAD);
	free(big);
}

static void test_connect_and_auth(void **state)
{
	(void)state;
	char req[512], b64[128];
	const char *why = NULL;
	assert_int_equal(tunproto_basic_auth("plant:s3cret\r\nignored", 22, b64, sizeof(b64), &why), 0);
	assert_string_equal(b64, "cGxhbnQ6czNjcmV0");
	assert_int_equal(tunproto_basic_auth("nocolon\n", 8, b64, sizeof(b64), &why), -1);
	assert_int_equal(tunproto_basic_auth(":pw\n", 4, b64, sizeof(b64), &why), -1);
	assert_int_equal(tunproto_basic_auth("u:p", 3, b64, 4, &why), -1);
	int n = tunproto_connect_request(req, sizeof(req), "hub.azure-devices.net", 443, b64);
	assert_true(n > 0);
	assert_non_null(strstr(req, "CONNECT hub.azure-devices.net:443 HTTP/1.1\r\n"));
	assert_non_null(strstr(req, "Proxy-Authorization: Basic "));
	assert_true(tunproto_connect_request(req, sizeof(req), "fd00::5", 8883, NULL) > 0);
	assert_non_null(strstr(req, "CONNECT [fd00::5]:8883 "));
	assert_null(strstr(req, "Proxy-Authorization"));
	assert_int_equal(tunproto_connect_request(req, 20, "h", 1, NULL), -1);
}

static void test_ws_handshake(void **state)
{
	(void)state;
	/* RFC 6455 section 1.3's example */
	assert_true(wsframe_accept_ok("dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
	assert_false(wsframe_accept_ok("dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOp="));
	assert_false(wsframe_accept_ok("short", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
	unsigned char rnd[16] = "the sample nonce";
	char key[WSFRAME_KEY_LEN + 1];
	wsframe_key(rnd, key);
	assert_string_equal(key, "dGhlIHNhbXBsZSBub25jZQ==");
}

/* Encode with wsframe_header/mask, unmask as a server would, compare. */
static void test_ws_encode(void **state)
{
	(void)state;
	static const size_t lens[] = {0, 1, 125, 126, 65535, 65536, 100000};
	for(size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		size_t n = lens[k];
		unsigned char *f = malloc(WSFRAME_HEADER_MAX + n + 1);
		assert_non_null(f);
		uint32_t mask = 0x37FA213Du;
		size_t h = wsframe_header(f, WSFRAME_BINARY, n, mask);
		assert_int_equal(f[0], 0x82);
		assert_true(f[1] & 0x80);
		assert_int_equal(h, n < 126 ? 6 : n <= 65535 ? 8 : 14);
		for(size_t i = 0; i < n; i++) {
			f[h + i] = (unsigned char)(i * 7);
		}
		/* mask in two uneven pieces: offsets must carry */
		size_t cut = n / 3;
		wsframe_mask(f + h, cut, mask, 0);
		wsframe_mask(f + h + cut, n - cut, mask, cut);
		const unsigned char *m = f + h - 4;
		for(size_t i = 0; i < n; i++) {
			assert_int_equal(f[h + i] ^ m[i % 4], (unsigned char)(i * 7));
		}
		free(f);
	}
}

/* Feed `in` to a decoder `step` bytes at a time; collect data, count events. */
static int decode_all(const unsigned char *in, size_t n, size_t step, unsigned char *data,
                      size_t *dlen, int *pings, unsigned *close_code)
{
	wsframe_dec_t d;
	wsframe_dec_init(&d);
	*dlen = 0;
	*pings = 0;
	for(size_t off = 0; off < n;) {
		size_t chunk = n - off < step ? n - off : step;
		size_t pos = 0;
		for(;;) {
			wsframe_event_t ev;
			size_t used = 0;
			wsframe_decode(&d, in + off + pos, chunk - pos, &used, &ev);
			pos += used;
			if(ev.ev == WSFRAME_EV_MORE) {
				break;
			}
			if(ev.ev == WSFRAME_EV_ERROR) {
				return -1;
			}
			if(ev.ev == WSFRAME_EV_DATA) {
				memcpy(data + *dlen, ev.data, ev.len);
				*dlen += ev.len;
			} else if(ev.ev == WSFRAME_EV_PING) {
				(*pings)++;
			} else if(ev.ev == WSFRAME_EV_CLOSE) {
				*close_code = ev.code;
			}
		}
		off += chunk;
	}
	return 0;
}

static void test_ws_decode(void **state)
{
	(void)state;
	/* binary "ab" (not final), ping "x", continuation of 126 bytes (16-bit
	 * length), empty final continuation, close 1000 "bye" */
	unsigned char in[512];
	size_t n = 0;
	in[n++] = 0x02, in[n++] = 2, in[n++] = 'a', in[n++] = 'b';
	in[n++] = 0x89, in[n++] = 1, in[n++] = 'x';
	in[n++] = 0x00, in[n++] = 126, in[n++] = 0, in[n++] = 126;
	for(int i = 0; i < 126; i++) {
		in[n++] = (unsigned char)('0' + i % 10);
	}
	in[n++] = 0x80, in[n++] = 0;
	in[n++] = 0x88, in[n++] = 5, in[n++] = 0x03, in[n++] = 0xE8;
	memcpy(in + n, "bye", 3);
	n += 3;
	for(size_t step = 1; step <= n; step++) {
		unsigned char data[512];
		size_t dlen;
		int pings;
		unsigned code = 0;
		assert_int_equal(decode_all(in, n, step, data, &dlen, &pings, &code), 0);
		assert_int_equal(dlen, 128);
		assert_memory_equal(data, "ab0123456789", 12);
		assert_int_equal(pings, 1);
		assert_int_equal(code, 1000);
	}
	/* refused: masked, reserved bit, text, continuation first, fragmented
	 * ping, oversized ping, unknown opcode, data after close, 1-byte close,
	 * 64-bit length with the top bit, a new message inside a fragmented one */
	static const unsigned char bad[][12] = {
	    {0x82, 0x81, 1, 2, 3, 4, 5}, {0xC2, 0},    {0x81, 1, 'a'},     {0x80, 1, 'a'},
	    {0x09, 0},                   {0x89, 126, 0, 126}, {0x83, 0}, {0x88, 0, 0x82, 0},
	    {0x88, 1, 3},                {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0},
	    {0x02, 1, 'a', 0x82, 0}};
	static const size_t blen[] = {7, 2, 3, 3, 2, 4, 2, 4, 3, 10, 5};
	for(size_t i = 0; i < sizeof(blen) / sizeof(blen[0]); i++) {
		unsigned char data[64];
		size_t dlen;
		int pings;
		unsigned code;
		assert_int_equal(decode_all(bad[i], blen[i], blen[i], data, &dlen, &pings, &code), -1);
	}
}

static char err[16384];

#define BASE                                                                                      \
	"plant_host 127.0.0.1\nplant_cafile /p/ca.crt\nplant_certfile /p/b.crt\n"                     \
	"plant_keyfile /p/b.key\ncloud_host cloud.example.net\ncloud_cafile /c/ca.crt\n"             \
	"cloud_certfile /c/b.crt\ncloud_keyfile /c/b.key\nqueue_path /tmp/q.db\n"                   \
	"forward plant/# qos=1\n"

static int load(const char *extra, bconf_t *cfg)
{
	char text[4096];
	snprintf(text, sizeof(text), "%s%s", BASE, extra);
	return bconf_load_buffer("t.conf", text, strlen(text), cfg, err, sizeof(err));
}

static void expect_error(const char *extra, const char *want)
{
	bconf_t cfg;
	int n = load(extra, &cfg);
	if(n == 0 || !strstr(err, want)) {
		fail_msg("config:\n%s\nwanted an error with \"%s\", got %d:\n%s", extra, want, n, err);
	}
}

static void test_config(void **state)
{
	(void)state;
	bconf_t cfg;
	assert_int_equal(load("", &cfg), 0);
	assert_int_equal(cfg.cloud_transport, BCONF_TRANSPORT_TLS);
	assert_int_equal(cfg.cloud_port, 8883);
	assert_null(cfg.cloud_ws_path);
	bconf_free(&cfg);
	assert_int_equal(load("cloud_transport wss\ncloud_proxy http://proxy:3128\n"
	                      "cloud_no_proxy \"localhost, .plant.local\"\n",
	                      &cfg),
	                 0);
	assert_int_equal(cfg.cloud_port, 443); /* wss: where HTTPS goes out */
	assert_string_equal(cfg.cloud_ws_path, "/mqtt");
	/* printed back, it parses to the same */
	char *buf = NULL;
	size_t blen = 0;
	FILE *f = open_memstream(&buf, &blen);
	bconf_print(&cfg, f);
	fclose(f);
	bconf_t again;
	assert_int_equal(bconf_load_buffer("p.conf", buf, blen, &again, err, sizeof(err)), 0);
	assert_int_equal(again.cloud_port, 443);
	assert_string_equal(again.cloud_ws_path, "/mqtt");
	assert_string_equal(again.cloud_proxy, "http://proxy:3128");
	assert_string_equal(again.cloud_no_proxy, "localhost, .plant.local");
	bconf_free(&again);
	free(buf);
	bconf_free(&cfg);
	expect_error("cloud_ws_path /mqtt\n", "cloud_ws_path is only used with `cloud_transport wss`");
	expect_error("cloud_transport wss\ncloud_ws_path mqtt\n", "expected an HTTP path");
	expect_error("cloud_transport wss\ncloud_ws_path \"/a b\"\n", "expected an HTTP path");
	expect_error("cloud_transport ws\n", "cloud_transport");
	expect_error("cloud_proxy proxy:3128\n", "cloud_proxy 'proxy:3128': expected http://");
	expect_error("cloud_proxy http://u:pw@proxy:3128\n", "cloud_proxy_auth_file");
	expect_error("cloud_proxy_auth_file /etc/p\n", "cloud_proxy_auth_file without cloud_proxy");
	expect_error("cloud_no_proxy localhost\n", "cloud_no_proxy without cloud_proxy");
	expect_error("cloud_proxy http://p:1\ncloud_proxy_cafile /ca\n",
	             "cloud_proxy_cafile is only used with an https:// proxy");
	expect_error("cloud_proxy http://p:1\ncloud_no_proxy a/b\n", "cloud_no_proxy: 'a/b'");
	expect_error("cloud_profile aws-iot\ncloud_transport wss\n",
	             "aws-iot: AWS IoT Core takes MQTT over WebSockets only with SigV4");
	/* AWS through a proxy: tls on 443 with ALPN */
	assert_int_equal(load("cloud_profile aws-iot\ncloud_port 443\ncloud_alpn x-amzn-mqtt-ca\n"
	                      "cloud_proxy https://proxy.corp:8443\ncloud_proxy_cafile /corp-ca.crt\n",
	                      &cfg),
	                 0);
	bconf_free(&cfg);
}

static void test_config_azure_wss(void **state)
{
	(void)state;
	bconf_t cfg;
	const char *text =
	    "plant_host 127.0.0.1\nplant_cafile /p/ca.crt\nplant_certfile /p/b.crt\n"
	    "plant_keyfile /p/b.key\ncloud_host plant.azure-devices.net\ncloud_cafile /c/ca.crt\n"
	    "cloud_certfile /c/b.crt\ncloud_keyfile /c/b.key\nqueue_path /tmp/q.db\n"
	    "cloud_profile azure-iot-hub\ncloud_azure_hub plant\ncloud_client_id press-01\n"
	    "cloud_transport wss\n"
	    "forward plant/# qos=1 to=devices/press-01/messages/events/\n";
	assert_int_equal(bconf_load_buffer("a.conf", text, strlen(text), &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.cloud_ws_path, "/$iothub/websocket");
	assert_int_equal(cfg.cloud_port, 443);
	bconf_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_url),          cmocka_unit_test(test_no_proxy),
	    cmocka_unit_test(test_head),         cmocka_unit_test(test_connect_and_auth),
	    cmocka_unit_test(test_ws_handshake),
	    cmocka_unit_test(test_ws_encode),    cmocka_unit_test(test_ws_decode),
	    cmocka_unit_test(test_config),       cmocka_unit_test(test_config_azure_wss),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
