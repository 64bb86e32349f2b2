/*
 * doctor_html.c — the one-page printable report of plantgate-doctor.
 *
 * A plant manager should be able to read it without knowing MQTT: at the top
 * the guide's five components drawn as a chain (IoT devices -> plant LAN ->
 * server -> WAN -> cloud), each box coloured by its worst finding, with the
 * summary line; below, one table per component with every finding, its
 * IEC 62443-3-3 requirement, the evidence and the fix.  Inline CSS and SVG
 * only: no script, no external resource, so the file can be mailed, archived
 * and printed as it is.  Every string is HTML-escaped.
 */
#include <stdio.h>
#include <string.h>

#include "doctor.h"

static void doctor_html_esc(FILE *out, const char *s)
{
	for(; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		switch(c) {
		case '&':
			fputs("&amp;", out);
			break;
		case '<':
			fputs("&lt;", out);
			break;
		case '>':
			fputs("&gt;", out);
			break;
		case '"':
			fputs("&quot;", out);
			break;
		case '\'':
			fputs("&#39;", out);
			break;
		default:
			fputc(c < 0x20 || c == 0x7f ? '?' : c, out);
		}
	}
}

static const char *doctor_html_colour(int sev)
{
	switch(sev) {
	case DOCTOR_CRITICAL:
		return "#c62828";
	case DOCTOR_WARNING:
		return "#f9a825";
	case DOCTOR_INFO:
		return "#1565c0";
	case DOCTOR_PASS:
		return "#2e7d32";
	default:
		return "#9e9e9e";
	}
}

static const char *doctor_html_status(int sev)
{
	switch(sev) {
	case DOCTOR_CRITICAL:
		return "critical";
	case DOCTOR_WARNING:
		return "warning";
	case DOCTOR_INFO:
		return "see notes";
	case DOCTOR_PASS:
		return "in place";
	default:
		return "not checked";
	}
}

static const char *const doctor_html_sub[DOCTOR_COMP_COUNT] = {
    "sensors, PLCs, panels", "broker listeners, TLS", "broker, plugin, policy", "bridge, queue",
    "cloud endpoint"};

static void doctor_html_map(const doctor_report_t *r, FILE *out)
{
	const int w = 150, h = 96, gap = 36, top = 10;
	fprintf(out, "<svg class=\"map\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"component map\">\n",
	        DOCTOR_COMP_COUNT * w + (DOCTOR_COMP_COUNT - 1) * gap + 20, h + 2 * top + 4);
	fputs("<defs><marker id=\"arr\" markerWidth=\"8\" markerHeight=\"8\" refX=\"7\" refY=\"4\" "
	      "orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"#555\"/></marker></defs>\n",
	      out);
	for(int c = 0; c < DOCTOR_COMP_COUNT; c++) {
		int sev = doctor_report_comp_worst(r, (doctor_comp_t)c);
		int x = 10 + c * (w + gap);
		size_t n[DOCTOR_SEV_COUNT] = {0};
		for(size_t i = 0; i < r->count; i++) {
			if((int)r->items[i].check->comp == c) {
				n[r->items[i].sev]++;
			}
		}
		fprintf(out,
		        "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" rx=\"10\" fill=\"%s\" "
		        "stroke=\"#333\" stroke-width=\"1.5\"/>\n",
		        x, top, w, h, doctor_html_colour(sev));
		fprintf(out,
		        "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"t1\">%s</text>\n"
		        "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"t2\">%s</text>\n"
		        "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"t3\">%s</text>\n"
		        "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"t2\">%zu crit · %zu warn · %zu ok</text>\n",
		        x + w / 2, top + 26, doctor_checks_comp_name((doctor_comp_t)c), x + w / 2, top + 44,
		        doctor_html_sub[c], x + w / 2, top + 66, doctor_html_status(sev), x + w / 2, top + 86,
		        n[DOCTOR_CRITICAL], n[DOCTOR_WARNING], n[DOCTOR_PASS]);
		if(c + 1 < DOCTOR_COMP_COUNT) {
			fprintf(out,
			        "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#555\" stroke-width=\"2\" "
			        "marker-end=\"url(#arr)\"/>\n",
			        x + w + 2, top + h / 2, x + w + gap - 4, top + h / 2);
		}
	}
	fputs("</svg>\n", out);
}

void doctor_html_write(const doctor_report_t *r, const doctor_inputs_t *in, FILE *out)
{
	char summary[256], date[64];
	struct tm tm;
	if(!gmtime_r(&in->now, &tm) || strftime(date, sizeof(date), "%Y-%m-%d", &tm) == 0) {
		date[0] = '\0';
	}
	doctor_report_summary(r, summary, sizeof(summary));
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	      "<title>plantgate-doctor: security self-assessment</title>\n<style>\n"
	      "@page { size: A4 landscape; margin: 12mm; }\n"
	      "body { font-family: sans-serif; font-size: 10pt; color: #111; margin: 1em; }\n"
	      "h1 { font-size: 16pt; margin: 0 0 .2em 0; } h2 { font-size: 12pt; margin: 1em 0 .3em 0; "
	      "border-bottom: 2px solid #333; }\n"
	      ".sub { color: #444; margin: 0 0 .6em 0; }\n"
	      ".summary { font-size: 12pt; font-weight: bold; margin: .5em 0; }\n"
	      ".map { width: 100%; max-width: 1000px; }\n"
	      ".map .t1 { font-size: 15px; font-weight: bold; fill: #fff; }\n"
	      ".map .t2 { font-size: 11px; fill: #fff; } .map .t3 { font-size: 13px; fill: #fff; "
	      "font-weight: bold; text-transform: uppercase; }\n"
	      "table { border-collapse: collapse; width: 100%; page-break-inside: auto; }\n"
	      "tr { page-break-inside: avoid; }\n"
	      "th, td { border: 1px solid #bbb; padding: 3px 5px; vertical-align: top; text-align: left; }\n"
	      "th { background: #eee; }\n"
	      "td.sev { font-weight: bold; color: #fff; white-space: nowrap; }\n"
	      "td code, td.ev { font-family: monospace; font-size: 8.5pt; word-break: break-all; }\n"
	      ".legend span { display: inline-block; padding: 1px 8px; margin-right: 6px; color: #fff; "
	      "border-radius: 4px; }\n"
	      "</style></head><body>\n",
	      out);
	fputs("<h1>Plant MQTT hub: security self-assessment</h1>\n<p class=\"sub\">", out);
	fprintf(out, "plantgate-doctor, %s. Organised by the components of the JPCERT/CC guide "
	             "<i>Cyber Security First Step for Introducing IIoT to the Factory</i>; each finding names "
	             "the IEC 62443-3-3 foundational requirement (FR1&ndash;FR7) it relates to.</p>\n",
	        date);
	doctor_html_map(r, out);
	fputs("<p class=\"legend\">", out);
	for(int s = DOCTOR_CRITICAL; s >= -1; s--) {
		fprintf(out, "<span style=\"background:%s\">%s</span>", doctor_html_colour(s), doctor_html_status(s));
	}
	fputs("</p>\n<p class=\"summary\">", out);
	doctor_html_esc(out, summary);
	fputs("</p>\n", out);

	for(int c = 0; c < DOCTOR_COMP_COUNT; c++) {
		fprintf(out, "<h2>%s</h2>\n", doctor_checks_comp_name((doctor_comp_t)c));
		if(doctor_report_comp_worst(r, (doctor_comp_t)c) < 0) {
			fputs("<p>Nothing was checked for this component.</p>\n", out);
			continue;
		}
		fputs("<table><tr><th>status</th><th>step</th><th>check</th><th>finding</th>"
		      "<th>evidence</th><th>what to do</th><th>IEC 62443-3-3</th></tr>\n",
		      out);
		for(int sev = DOCTOR_CRITICAL; sev >= DOCTOR_PASS; sev--) {
			for(size_t i = 0; i < r->count; i++) {
				const doctor_finding_t *f = &r->items[i];
				if((int)f->check->comp != c || (int)f->sev != sev) {
					continue;
				}
				fprintf(out, "<tr><td class=\"sev\" style=\"background:%s\">%s</td><td>%s</td><td>",
				        doctor_html_colour(sev), doctor_checks_sev_name(f->sev),
				        doctor_checks_step_name(f->check->step));
				doctor_html_esc(out, f->check->id);
				fputs("</td><td>", out);
				doctor_html_esc(out, f->title);
				fputs("</td><td class=\"ev\">", out);
				doctor_html_esc(out, f->evidence);
				fputs("</td><td><code>", out);
				doctor_html_esc(out, f->sev == DOCTOR_PASS ? "" : f->fix);
				fprintf(out, "</code></td><td>%s (%s)</td></tr>\n", doctor_checks_fr_name(f->check->fr),
				        f->check->sr);
			}
		}
		fputs("</table>\n", out);
	}
	fputs("</body></html>\n", out);
}
