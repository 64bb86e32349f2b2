/*
 * doctor_checks.c — the table of everything plantgate-doctor checks.
 *
 * One row per check: its id (what findings, tests, JSON and docs refer to),
 * the component of the JPCERT/CC guide "Cyber Security First Step for
 * Introducing IIoT to the Factory" it belongs to (IoT devices, intra-factory
 * network, server, WAN, cloud), the lifecycle step (introduction, operation,
 * maintenance), the IEC 62443-3-3 foundational requirement and system
 * requirement, what is checked and the guide's measure in plain words.
 * `plantgate-doctor --list-checks` prints this table; docs/doctor.md follows it.
 */
#include <stddef.h>
#include <string.h>

#include "doctor.h"

#define I DOCTOR_INTRODUCTION
#define O DOCTOR_OPERATION
#define M DOCTOR_MAINTENANCE

static const doctor_check_t doctor_checks_table[] = {
    /* ---- the broker's configuration (mosquitto.conf) ---- */
    {"MQ-CONFIG", DOCTOR_SERVER, I, 7, "SR 7.6", "mosquitto.conf can be read",
     "Know and keep the configuration of the hub that every device talks to."},
    {"MQ-LISTENER-TLS", DOCTOR_LAN, I, 4, "SR 4.1",
     "every listener encrypts with TLS",
     "Encrypt communication on the plant network so data cannot be read or altered on the way."},
    {"MQ-LISTENER-BIND", DOCTOR_LAN, I, 5, "SR 5.1",
     "listeners are bound to the plant-LAN address, not to every interface",
     "Separate the plant network from the office network and the internet; expose the hub only where devices are."},
    {"MQ-TLS-VERSION", DOCTOR_LAN, I, 4, "SR 4.3", "TLS 1.2 or newer is required",
     "Use current, sound cryptography; retire old protocol versions."},
    {"MQ-ANONYMOUS", DOCTOR_SERVER, I, 1, "SR 1.1", "anonymous clients are refused",
     "Let nothing connect to the server without authentication."},
    {"MQ-REQUIRE-CERT", DOCTOR_DEVICE, I, 1, "SR 1.2",
     "every device must present its own certificate",
     "Authenticate each IoT device individually; no shared or default passwords."},
    {"MQ-CERT-DATES", DOCTOR_DEVICE, I, 1, "SR 1.2",
     "client certificates are refused outside their validity dates",
     "A certificate that expired must no longer let its device in."},
    {"MQ-IDENTITY-USERNAME", DOCTOR_SERVER, I, 1, "SR 1.2",
     "use_identity_as_username / use_subject_as_username are off",
     "Make sure the identity checks that authenticate devices really run."},
    {"MQ-PER-LISTENER", DOCTOR_SERVER, I, 2, "SR 2.1",
     "per_listener_settings is false, so the plugin guards every listener",
     "Apply the same access control to every way into the server."},
    {"MQ-PLUGIN", DOCTOR_SERVER, I, 2, "SR 2.1", "the plantgate plugin is loaded",
     "Control which device may read and write which data on the server."},
    {"MQ-ISSUER-PIN", DOCTOR_DEVICE, I, 1, "SR 1.9",
     "only certificates of the plant CA are accepted (plugin_opt_issuer_cafile)",
     "Accept device certificates only from the plant's own certificate authority."},
    {"MQ-USER", DOCTOR_SERVER, I, 2, "SR 2.1", "the broker drops root privileges",
     "Run services with the least privilege they need."},
    {"MQ-PERSIST", DOCTOR_SERVER, I, 7, "SR 7.4",
     "a broker crash keeps the bridge's session and what was saved (persistence, autosave_interval)",
     "Recover after a failure without losing the data in transit."},
    {"REV-CONFIG", DOCTOR_DEVICE, O, 1, "SR 1.9",
     "revocation is configured (revocation list and CRL)",
     "Be able to cut off a stolen or compromised device at once."},
    /* ---- the device policy ---- */
    {"POL-LOAD", DOCTOR_SERVER, I, 2, "SR 2.1",
     "the policy loads, with `default deny`",
     "Deny by default; grant each device only what its job needs."},
    {"POL-UNKNOWN", DOCTOR_DEVICE, I, 1, "SR 1.2",
     "devices not listed in the policy are refused",
     "Admit only devices the plant has registered."},
    {"POL-WILDCARD", DOCTOR_DEVICE, I, 2, "SR 2.1",
     "no device role may publish or subscribe to everything (#)",
     "Limit each device to its own data (least privilege)."},
    {"POL-CROSS-DEVICE", DOCTOR_DEVICE, I, 2, "SR 2.1",
     "no device role may write or read another device's topics",
     "A compromised device must not be able to forge another machine's data."},
    {"POL-CONTROL", DOCTOR_DEVICE, I, 2, "SR 2.1",
     "devices that take no commands cannot send commands; $CONTROL is never writable",
     "Nobody but the intended operator may stop or steer a machine remotely."},
    /* ---- certificates and keys ---- */
    {"PKI-DIR", DOCTOR_DEVICE, M, 1, "SR 1.9", "the plant PKI directory can be examined",
     "Keep track of every device certificate issued."},
    {"PKI-SHARED", DOCTOR_DEVICE, I, 1, "SR 1.2",
     "no two devices share a certificate or an identity",
     "Give every device its own key and certificate, never a copied one."},
    {"PKI-EXPIRY", DOCTOR_DEVICE, M, 1, "SR 1.9",
     "device and bridge certificates are valid for at least 30 more days",
     "Renew device credentials before they lapse."},
    {"PKI-RENEWAL", DOCTOR_DEVICE, M, 1, "SR 1.9",
     "no device certificate will lapse without a renewal path",
     "Let certificates renew themselves (EST) so none lapses unnoticed."},
    {"PKI-SERVER-CERT", DOCTOR_SERVER, M, 1, "SR 1.9",
     "the CA and broker certificates are valid for at least 30 more days",
     "Renew the server's credentials before devices are locked out."},
    {"PKI-CA-KEY", DOCTOR_SERVER, M, 1, "SR 1.9",
     "the CA key and private keys are readable by their owner only",
     "Guard the key that makes device identities; whoever holds it can mint devices."},
    {"PKI-CRL", DOCTOR_DEVICE, O, 1, "SR 1.9",
     "the CRL is signed by the CA and not due within 7 days",
     "Keep revocation information current so cut-off devices stay cut off."},
    /* ---- the audit trail ---- */
    {"AUDIT-LOG", DOCTOR_SERVER, O, 2, "SR 2.8",
     "the audit trail is enabled and writable by the broker",
     "Record who connected, what was refused and what changed."},
    {"AUDIT-CHAIN", DOCTOR_SERVER, O, 3, "SR 3.9", "the audit trail's hash chain is intact",
     "Notice when records were altered or deleted."},
    /* ---- the bridge (WAN and cloud) ---- */
    {"BR-CONFIG", DOCTOR_WAN, I, 7, "SR 7.6", "the bridge configuration loads",
     "Know and keep the configuration of the plant's only way out."},
    {"BR-WHITELIST", DOCTOR_WAN, I, 5, "SR 5.2",
     "only chosen telemetry leaves the plant: no #, $SYS or command topics",
     "Send outside only the data the plant decided to share."},
    {"BR-PLANT-WRITE", DOCTOR_WAN, I, 5, "SR 5.2",
     "the bridge's identity cannot publish into the plant",
     "Nothing from outside may flow into the plant through the gateway."},
    {"BR-CLOUD-TRUST", DOCTOR_CLOUD, I, 3, "SR 3.1",
     "the cloud's CA is pinned (not the whole system trust store)",
     "Make sure the plant talks to its own cloud, not an impostor."},
    {"BR-HOSTNAME", DOCTOR_CLOUD, I, 3, "SR 3.1",
     "the cloud's host name is verified against its certificate",
     "Make sure the plant talks to its own cloud, not an impostor."},
    {"BR-CLOUD-TLS", DOCTOR_CLOUD, I, 4, "SR 4.3",
     "the cloud link uses TLS 1.2+ with a client certificate",
     "Encrypt and authenticate the link to the cloud."},
    {"BR-PROXY", DOCTOR_WAN, I, 3, "SR 3.1",
     "the way out through the plant's proxy works and keeps its credentials private",
     "Reach the cloud the way the plant's network allows, without leaking the proxy account."},
    {"BR-QUEUE", DOCTOR_WAN, O, 7, "SR 7.2",
     "the bridge's queue is bounded and guards the disk",
     "A WAN or cloud outage must not fill the gateway's disk or stop the plant."},
    {"BR-CLOUD-LIMITS", DOCTOR_CLOUD, I, 7, "SR 7.1",
     "the bridge stays within the cloud profile's published limits (e.g. 512 KiB/s per AWS "
     "connection)",
     "Do not let the cloud throttle or cut off the plant's link."},
    {"BR-USER", DOCTOR_WAN, I, 2, "SR 2.1", "the bridge does not run as root",
     "Run services with the least privilege they need."},
    /* ---- the running hub ---- */
    {"LIVE-BROKER", DOCTOR_SERVER, O, 6, "SR 6.2",
     "the running broker answers and its counters show no trouble",
     "Watch the hub continuously: refusals, reload failures, audit errors."},
    {"LIVE-NOCERT", DOCTOR_LAN, O, 1, "SR 1.2",
     "the running broker turns away a client without a certificate",
     "Check that what is configured is what runs."},
    {"LIVE-BRIDGE", DOCTOR_WAN, O, 6, "SR 6.2", "the running bridge reports healthy",
     "Watch the link to the cloud; notice an outage before data is lost."},
};

#undef I
#undef O
#undef M

const doctor_check_t *doctor_checks_at(size_t i)
{
	if(i >= sizeof(doctor_checks_table) / sizeof(doctor_checks_table[0])) {
		return NULL;
	}
	return &doctor_checks_table[i];
}

const doctor_check_t *doctor_checks_find(const char *id)
{
	const doctor_check_t *c;
	for(size_t i = 0; id && (c = doctor_checks_at(i)) != NULL; i++) {
		if(strcmp(c->id, id) == 0) {
			return c;
		}
	}
	return NULL;
}

const char *doctor_checks_sev_name(doctor_sev_t s)
{
	switch(s) {
	case DOCTOR_PASS:
		return "pass";
	case DOCTOR_INFO:
		return "info";
	case DOCTOR_WARNING:
		return "warning";
	case DOCTOR_CRITICAL:
		return "critical";
	}
	return "?";
}

const char *doctor_checks_comp_name(doctor_comp_t c)
{
	switch(c) {
	case DOCTOR_DEVICE:
		return "IoT devices";
	case DOCTOR_LAN:
		return "Plant LAN";
	case DOCTOR_SERVER:
		return "Server";
	case DOCTOR_WAN:
		return "WAN";
	case DOCTOR_CLOUD:
		return "Cloud";
	}
	return "?";
}

const char *doctor_checks_comp_key(doctor_comp_t c)
{
	switch(c) {
	case DOCTOR_DEVICE:
		return "device";
	case DOCTOR_LAN:
		return "lan";
	case DOCTOR_SERVER:
		return "server";
	case DOCTOR_WAN:
		return "wan";
	case DOCTOR_CLOUD:
		return "cloud";
	}
	return "?";
}

const char *doctor_checks_step_name(doctor_step_t s)
{
	switch(s) {
	case DOCTOR_INTRODUCTION:
		return "introduction";
	case DOCTOR_OPERATION:
		return "operation";
	case DOCTOR_MAINTENANCE:
		return "maintenance";
	}
	return "?";
}

const char *doctor_checks_fr_name(int fr)
{
	static const char *const names[] = {
	    "?",
	    "FR1 Identification and authentication control",
	    "FR2 Use control",
	    "FR3 System integrity",
	    "FR4 Data confidentiality",
	    "FR5 Restricted data flow",
	    "FR6 Timely response to events",
	    "FR7 Resource availability",
	};
	return fr >= 1 && fr <= 7 ? names[fr] : names[0];
}
