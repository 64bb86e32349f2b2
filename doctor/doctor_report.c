/*
 * doctor_report.c — the findings of plantgate-doctor and their text and JSON
 * forms.
 *
 * Checks append findings (doctor_report_add); nothing is printed while they
 * run.  The text report groups findings by the guide's component, then by
 * lifecycle step, worst first, and ends with one summary line such as
 * "3 critical, 2 warnings, 1 info, 24 checks passed".  Every string taken
 * from a file is printed with control characters replaced, so a hostile
 * configuration cannot forge lines of the report; JSON strings go through
 * common/json.c's escaper (JSON_ESC_STRICT: invalid UTF-8 becomes \ufffd).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doctor.h"
#include "json.h"
#include "util.h"

/* strdup that passes NULL through. */
static char *doctor_report_dup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int doctor_report_add(doctor_report_t *r, const char *id, doctor_sev_t sev, const char *evidence,
                      const char *fix, const char *fmt, ...)
{
	int rc = -1;
	char title[2048];
	const doctor_check_t *c = doctor_checks_find(id);
	doctor_finding_t f = {0};
	va_list ap;

	if(!c) {
		fprintf(stderr, "plantgate-doctor: internal error: unknown check id %s\n", id ? id : "(null)");
		goto out;
	}
	va_start(ap, fmt);
	vsnprintf(title, sizeof(title), fmt, ap);
	va_end(ap);
	doctor_finding_t *grown = util_grow(r->items, r->count, &r->cap, sizeof(*grown));
	if(!grown) {
		goto out;
	}
	r->items = grown;
	f.check = c;
	f.sev = sev;
	f.title = doctor_report_dup(title);
	f.evidence = doctor_report_dup(evidence);
	f.fix = doctor_report_dup(fix);
	if(!f.title || (evidence && !f.evidence) || (fix && !f.fix)) {
		goto out;
	}
	r->items[r->count++] = f;
	f.title = f.evidence = f.fix = NULL;
	rc = 0;
out:
	free(f.title);
	free(f.evidence);
	free(f.fix);
	if(rc) {
		r->failed = true;
	}
	return rc;
}

void doctor_report_free(doctor_report_t *r)
{
	if(!r) {
		return;
	}
	for(size_t i = 0; i < r->count; i++) {
		free(r->items[i].title);
		free(r->items[i].evidence);
		free(r->items[i].fix);
	}
	free(r->items);
	memset(r, 0, sizeof(*r));
}

doctor_sev_t doctor_report_worst(const doctor_report_t *r)
{
	doctor_sev_t w = DOCTOR_PASS;
	for(size_t i = 0; i < r->count; i++) {
		if(r->items[i].sev > w) {
			w = r->items[i].sev;
		}
	}
	return w;
}

void doctor_report_counts(const doctor_report_t *r, size_t counts[DOCTOR_SEV_COUNT])
{
	for(int i = 0; i < DOCTOR_SEV_COUNT; i++) {
		counts[i] = 0;
	}
	for(size_t i = 0; i < r->count; i++) {
		counts[r->items[i].sev]++;
	}
}

size_t doctor_report_count(const doctor_report_t *r, const char *id, doctor_sev_t sev)
{
	size_t n = 0;
	for(size_t i = 0; i < r->count; i++) {
		if(r->items[i].sev == sev && strcmp(r->items[i].check->id, id) == 0) {
			n++;
		}
	}
	return n;
}

const doctor_finding_t *doctor_report_get(const doctor_report_t *r, const char *id)
{
	const doctor_finding_t *best = NULL;
	for(size_t i = 0; i < r->count; i++) {
		if(strcmp(r->items[i].check->id, id) == 0 && (!best || r->items[i].sev > best->sev)) {
			best = &r->items[i];
		}
	}
	return best;
}

int doctor_report_comp_worst(const doctor_report_t *r, doctor_comp_t c)
{
	int w = -1;
	for(size_t i = 0; i < r->count; i++) {
		if(r->items[i].check->comp == c && (int)r->items[i].sev > w) {
			w = (int)r->items[i].sev;
		}
	}
	return w;
}

void doctor_report_summary(const doctor_report_t *r, char *buf, size_t len)
{
	size_t n[DOCTOR_SEV_COUNT];
	doctor_report_counts(r, n);
	util_snprintf(buf, len, "%zu critical, %zu warning%s, %zu info, %zu check%s passed",
	              n[DOCTOR_CRITICAL], n[DOCTOR_WARNING], n[DOCTOR_WARNING] == 1 ? "" : "s",
	              n[DOCTOR_INFO], n[DOCTOR_PASS], n[DOCTOR_PASS] == 1 ? "" : "s");
}

/* Print s with control characters (and DEL) replaced by '?'. */
static void doctor_report_puts_safe(FILE *out, const char *s)
{
	for(; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		fputc(c < 0x20 || c == 0x7f ? '?' : c, out);
	}
}

static void doctor_report_date(time_t t, char *buf, size_t len)
{
	struct tm tm;
	if(!gmtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%d %H:%M UTC", &tm) == 0) {
		util_strlcpy(buf, "?", len);
	}
}

static void doctor_report_input(FILE *out, const char *label, const char *v)
{
	if(v) {
		fprintf(out, "  %-15s ", label);
		doctor_report_puts_safe(out, v);
		fputc('\n', out);
	}
}

static const char *doctor_report_sev_label(doctor_sev_t s)
{
	switch(s) {
	case DOCTOR_PASS:
		return "pass";
	case DOCTOR_INFO:
		return "info";
	case DOCTOR_WARNING:
		return "WARNING";
	case DOCTOR_CRITICAL:
		return "CRITICAL";
	}
	return "?";
}

void doctor_report_text(const doctor_report_t *r, const doctor_inputs_t *in, bool verbose, FILE *out)
{
	char date[64];
	char summary[256];

	doctor_report_date(in->now, date, sizeof(date));
	fprintf(out, "plantgate-doctor: security self-assessment of the plant hub, %s\n", date);
	fputs("  by the components of the JPCERT/CC guide \"Cyber Security First Step for\n"
	      "  Introducing IIoT to the Factory\", each finding mapped to IEC 62443-3-3 (FR1-FR7)\n",
	      out);
	doctor_report_input(out, "mosquitto.conf", in->mosq_conf);
	doctor_report_input(out, "policy", in->policy);
	doctor_report_input(out, "revocation", in->revocation);
	doctor_report_input(out, "CRL", in->crl);
	doctor_report_input(out, "audit trail", in->audit);
	doctor_report_input(out, "PKI directory", in->pki_dir);
	doctor_report_input(out, "bridge config", in->bridge_conf);
	doctor_report_input(out, "broker", in->broker);
	doctor_report_input(out, "bridge", in->bridge_url);

	for(int c = 0; c < DOCTOR_COMP_COUNT; c++) {
		int worst = doctor_report_comp_worst(r, (doctor_comp_t)c);
		fprintf(out, "\n== %s ==%s\n", doctor_checks_comp_name((doctor_comp_t)c),
		        worst < 0 ? " (nothing checked)" : "");
		for(int s = 0; s < DOCTOR_STEP_COUNT; s++) {
			bool header = false;
			for(int sev = DOCTOR_CRITICAL; sev >= DOCTOR_PASS; sev--) {
				for(size_t i = 0; i < r->count; i++) {
					const doctor_finding_t *f = &r->items[i];
					if((int)f->check->comp != c || (int)f->check->step != s || (int)f->sev != sev) {
						continue;
					}
					if(!header) {
						fprintf(out, "  -- %s --\n", doctor_checks_step_name((doctor_step_t)s));
						header = true;
					}
					fprintf(out, "  %-8s %-20s ", doctor_report_sev_label(f->sev), f->check->id);
					doctor_report_puts_safe(out, f->title);
					fprintf(out, "  [FR%d %s]\n", f->check->fr, f->check->sr);
					if(f->evidence && (verbose || f->sev != DOCTOR_PASS)) {
						fputs("           evidence: ", out);
						doctor_report_puts_safe(out, f->evidence);
						fputc('\n', out);
					}
					if(f->fix && f->sev != DOCTOR_PASS) {
						fputs("           fix:      ", out);
						doctor_report_puts_safe(out, f->fix);
						fputc('\n', out);
					}
				}
			}
		}
	}
	doctor_report_summary(r, summary, sizeof(summary));
	fprintf(out, "\nSummary: %s\n", summary);
}

static void doctor_report_json_put(void *ctx, const char *s, size_t n)
{
	fwrite(s, 1, n, ctx);
}

void doctor_report_json_string(FILE *out, const char *s)
{
	if(!s) {
		fputs("null", out);
		return;
	}
	fputc('"', out);
	json_escape(s, strlen(s), JSON_ESC_STRICT, doctor_report_json_put, out);
	fputc('"', out);
}

static void doctor_report_json_kv(FILE *out, const char *k, const char *v, bool *first)
{
	fputs(*first ? "" : ",", out);
	*first = false;
	doctor_report_json_string(out, k);
	fputc(':', out);
	doctor_report_json_string(out, v);
}

void doctor_report_json(const doctor_report_t *r, const doctor_inputs_t *in, FILE *out)
{
	size_t n[DOCTOR_SEV_COUNT];
	char date[64];
	char summary[256];
	bool first = true;

	doctor_report_counts(r, n);
	doctor_report_date(in->now, date, sizeof(date));
	doctor_report_summary(r, summary, sizeof(summary));
	fputs("{\"tool\":\"plantgate-doctor\",\"date\":", out);
	doctor_report_json_string(out, date);
	fputs(",\"worst\":", out);
	doctor_report_json_string(out, doctor_checks_sev_name(doctor_report_worst(r)));
	fprintf(out,
	        ",\"summary\":{\"critical\":%zu,\"warning\":%zu,\"info\":%zu,\"pass\":%zu,\"text\":",
	        n[DOCTOR_CRITICAL], n[DOCTOR_WARNING], n[DOCTOR_INFO], n[DOCTOR_PASS]);
	doctor_report_json_string(out, summary);
	fputs("},\"inputs\":{", out);
	doctor_report_json_kv(out, "mosquitto_conf", in->mosq_conf, &first);
	doctor_report_json_kv(out, "policy", in->policy, &first);
	doctor_report_json_kv(out, "revocation", in->revocation, &first);
	doctor_report_json_kv(out, "crl", in->crl, &first);
	doctor_report_json_kv(out, "audit", in->audit, &first);
	doctor_report_json_kv(out, "pki_dir", in->pki_dir, &first);
	doctor_report_json_kv(out, "bridge_conf", in->bridge_conf, &first);
	doctor_report_json_kv(out, "broker", in->broker, &first);
	doctor_report_json_kv(out, "bridge_url", in->bridge_url, &first);
	fputs("},\"components\":{", out);
	for(int c = 0; c < DOCTOR_COMP_COUNT; c++) {
		int w = doctor_report_comp_worst(r, (doctor_comp_t)c);
		fputs(c ? "," : "", out);
		doctor_report_json_string(out, doctor_checks_comp_key((doctor_comp_t)c));
		fputc(':', out);
		doctor_report_json_string(out, w < 0 ? "not-checked" : doctor_checks_sev_name((doctor_sev_t)w));
	}
	fputs("},\"findings\":[", out);
	for(size_t i = 0; i < r->count; i++) {
		const doctor_finding_t *f = &r->items[i];
		first = true;
		fputs(i ? ",\n{" : "\n{", out);
		doctor_report_json_kv(out, "id", f->check->id, &first);
		doctor_report_json_kv(out, "severity", doctor_checks_sev_name(f->sev), &first);
		doctor_report_json_kv(out, "component", doctor_checks_comp_key(f->check->comp), &first);
		doctor_report_json_kv(out, "step", doctor_checks_step_name(f->check->step), &first);
		fprintf(out, ",\"fr\":%d", f->check->fr);
		doctor_report_json_kv(out, "sr", f->check->sr, &first);
		doctor_report_json_kv(out, "title", f->title, &first);
		doctor_report_json_kv(out, "evidence", f->evidence, &first);
		doctor_report_json_kv(out, "fix", f->fix, &first);
		doctor_report_json_kv(out, "guide", f->check->guide, &first);
		fputc('}', out);
	}
	fputs("\n]}\n", out);
}
