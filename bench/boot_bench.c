/*
 * boot_bench.c - what boot_check costs beyond the firmware's own boot.
 *
 *   boot_bench PORT XTAL_MHZ FW_BAUD MARKER ROUNDS
 *
 * Against a module that already holds a bootable image (bench/boot.sh
 * prepares a simulated one), each round does, one after the other:
 *   bare   the least a host can do: DTR/RTS reset into the firmware
 *          (espl_reset_to_app, 100 ms EN pulse) with the port at the ROM's
 *          rate, read until the ROM's "csum" line, switch to the
 *          firmware's rate at once, read until the line holding MARKER
 *          has ended.  The firmware's own boot time as a host sees it.
 *   check  espl_boot_check with expect [MARKER] (the boot_check step's
 *          work: ROM log at the crystal's rate, rate switch, firmware
 *          output, judgement, 50 ms settle).
 * Prints one line per round and a summary: "bare MEDIAN check MEDIAN
 * overhead MEDIAN MAX" in milliseconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "espline/boot.h"
#include "espline/port.h"
#include "espline/reset.h"

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int restart(void *ctx, espl_port *p, espl_error *err)
{
	(void)ctx;
	return espl_reset_to_app(p, err);
}

/* Read until buf holds a complete line containing text (after *len bytes
 * already there); ms budget.  0 when found. */
static int read_line_with(espl_port *p, char *buf, size_t cap, size_t *len, const char *text, double until)
{
	espl_error err;
	while (now_ms() < until) {
		int n = espl_port_read(p, (uint8_t *)buf + *len, cap - 1 - *len, 5, &err);
		if (n > 0) {
			*len += (size_t)n;
			buf[*len] = '\0';
			const char *m = memmem(buf, *len, text, strlen(text));
			if (m && memchr(m, '\n', (size_t)(buf + *len - m)))
				return 0;
			if (*len + 1 >= cap)
				return -1;
		}
	}
	return -1;
}

/* bare: reset with the port at the ROM rate, read until the ROM's "csum"
 * line, switch to the firmware's rate at once, read until MARKER's line
 * ends: the least a host that reads both parts can do.  ms or -1. */
static double bare(espl_port *p, unsigned rom_baud, unsigned fw_baud, const char *marker)
{
	espl_error err;
	char buf[8192];
	size_t len = 0;
	if (espl_port_set_baud(p, rom_baud, &err) < 0 || espl_port_flush_input(p, &err) < 0)
		return -1;
	double t0 = now_ms();
	if (espl_reset_to_app(p, &err) < 0 || read_line_with(p, buf, sizeof buf, &len, "csum 0x", t0 + 5000) < 0 ||
	    espl_port_set_baud(p, fw_baud, &err) < 0)
		return -1;
	len = 0;
	if (read_line_with(p, buf, sizeof buf, &len, marker, t0 + 5000) < 0)
		return -1;
	return now_ms() - t0;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: boot_bench PORT XTAL_MHZ FW_BAUD MARKER ROUNDS\n");
		return 2;
	}
	unsigned xtal = (unsigned)atoi(argv[2]), fw = (unsigned)atoi(argv[3]);
	int rounds = atoi(argv[5]);
	espl_port *p;
	espl_error err;
	espl_boot_rules *rules;
	const char *expect[] = { argv[4] };
	if (espl_port_open(argv[1], fw, &p, &err) < 0 || espl_boot_rules_new(expect, 1, NULL, 0, &rules, &err) < 0) {
		fprintf(stderr, "boot_bench: %s\n", err.msg);
		return 1;
	}
	double *b = calloc((size_t)rounds, sizeof *b), *c = calloc((size_t)rounds, sizeof *c),
	       *o = calloc((size_t)rounds, sizeof *o);
	espl_boot_config cfg = { .rules = rules, .rom_baud = espl_boot_rom_baud(xtal), .fw_baud = fw,
	                         .timeout_ms = 5000, .settle_ms = 50, .restart = restart };
	for (int i = 0; i < rounds; i++) {
		espl_boot_capture cap;
		b[i] = bare(p, cfg.rom_baud, fw, argv[4]);
		double t0 = now_ms();
		int rc = espl_boot_check(p, &cfg, &cap, &err);
		c[i] = now_ms() - t0;
		free(cap.text);
		if (b[i] < 0 || rc != 0) {
			fprintf(stderr, "boot_bench: round %d failed: %s\n", i + 1, rc ? err.msg : "bare read saw no banner");
			return 1;
		}
		o[i] = c[i] - b[i];
		printf("round %d: bare %.0f ms, check %.0f ms, overhead %.0f ms\n", i + 1, b[i], c[i], o[i]);
	}
	qsort(b, (size_t)rounds, sizeof *b, cmp);
	qsort(c, (size_t)rounds, sizeof *c, cmp);
	qsort(o, (size_t)rounds, sizeof *o, cmp);
	printf("bare %.0f check %.0f overhead %.0f %.0f\n", b[rounds / 2], c[rounds / 2], o[rounds / 2], o[rounds - 1]);
	espl_boot_rules_free(rules);
	espl_port_close(p);
	free(b);
	free(c);
	free(o);
	return 0;
}
