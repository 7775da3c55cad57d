/* db_bench.c - traceability database at factory scale.
 *
 *   db_bench PATH [UNITS] [STEPS_PER_UNIT]
 *
 * Fills a fresh database at PATH with UNITS completed units (default
 * 1,000,000, 5 steps each, 100 batches of 10,000) through the writer thread,
 * then measures the queries the issue sets targets for.  Prints one
 * "name: value" line per number.  Built and run by bench/db.sh.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "espline/db.h"
#include "espline/dbwriter.h"
#include "espline/report.h"

#define UNITS_PER_BATCH 10000
#define T0 1748736000000LL /* 2025-06-01: half a year of production */

static const espl_db_station station = { "bench-st1", "bench-host", "0.1.0" };
static const espl_db_image images[] = {
	{ "nodemcu-combined.bin", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
	{ "esp_init_data_default.bin", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" },
};
static const espl_db_recipe recipe = {
	"nodemcu-golden", "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
	"recipe: nodemcu-golden\n", images, 2,
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const espl_error *err)
{
	fprintf(stderr, "db_bench: %s: %s\n", what, err->msg);
	exit(1);
}

typedef struct gen {
	espl_dbw *w;
	char (*batches)[ESPL_DB_UUID_SIZE];
	long first, count;
	int steps;
	int with_begin;   /* begin_unit (waits) before end_unit, as a station does */
	int wait_end;     /* end_unit waits for its ack */
} gen;

/* Unit i: MAC from i (every 20th unit re-programs an earlier MAC), 16 ports. */
static void fill_unit(long i, const char *batch_uuid, espl_db_unit *u, char mac[18],
		      char port[24], char serial[16])
{
	long m = i % 20 == 19 ? i - 7 : i;
	espl_error err;
	memset(u, 0, sizeof *u);
	espl_db_uuid(u->uuid, &err);
	snprintf(u->batch_uuid, sizeof u->batch_uuid, "%s", batch_uuid);
	snprintf(mac, 18, "5c:cf:7f:%02lx:%02lx:%02lx", (m >> 16) & 0xff, (m >> 8) & 0xff, m & 0xff);
	snprintf(port, 24, "/dev/ttyUSB%ld", i % 16);
	snprintf(serial, 16, "A%05ld", i % 16);
	u->mac = mac;
	u->chip_id = (uint32_t)(0x00100000 + i);
	u->flash_id = 0x1640ef;
	u->manufacturer = "Winbond";
	u->flash_size = 4u << 20;
	u->crystal_mhz = 26;
	u->port = port;
	u->adapter_serial = serial;
	u->adapter_location = "1-1.4";
	u->started_ms = T0 + i * 15000; /* a unit every 15 s across the line */
	u->duration_ms = 15000 + (i * 7919) % 25000;
	u->ended_ms = u->started_ms + u->duration_ms;
	u->result = i % 37 == 0 ? ESPL_DB_FAIL : ESPL_DB_PASS;
	if (u->result == ESPL_DB_FAIL) {
		u->error_kind = i % 2 ? "timeout" : "mismatch";
		u->error = i % 2 ? "write 0x00000 seq 12: no response in 3 s"
				 : "verify 0x00000: MD5 mismatch";
	}
}

static void fill_steps(const espl_db_unit *u, espl_db_step *st, int n)
{
	static const char *kinds[] = { "erase", "write", "write_init_data", "verify", "reset" };
	for (int k = 0; k < n; k++) {
		st[k] = (espl_db_step){ .index = k, .kind = kinds[k % 5], .address = 0x1000u * k,
					.length = 1048576, .bytes = k == 1 ? 1048576 : 0,
					.duration_ms = 1000 + k, .retries = 0, .result = ESPL_DB_PASS };
		if (k % 5 == 3) {
			st[k].expected_md5 = "0123456789abcdef0123456789abcdef";
			st[k].actual_md5 = u->result == ESPL_DB_PASS ? st[k].expected_md5
								  : "fedcba9876543210fedcba9876543210";
			st[k].result = u->result == ESPL_DB_PASS ? ESPL_DB_PASS : ESPL_DB_FAIL;
		}
	}
}

static void *generate(void *arg)
{
	gen *g = arg;
	espl_db_step st[16];
	espl_error err;
	for (long i = g->first; i < g->first + g->count; i++) {
		espl_db_unit u;
		char mac[18], port[24], serial[16];
		fill_unit(i, g->batches[i / UNITS_PER_BATCH], &u, mac, port, serial);
		fill_steps(&u, st, g->steps);
		if (g->with_begin) {
			espl_db_unit start = u;
			start.result = ESPL_DB_RUNNING;
			if (espl_dbw_begin_unit(g->w, &start, &err) < 0)
				die("begin_unit", &err);
		}
		espl_dbw_ack ack;
		if (espl_dbw_end_unit(g->w, &u, st, (size_t)g->steps, g->wait_end ? &ack : NULL,
				      &err) < 0)
			die("end_unit", &err);
	}
	return NULL;
}

/* Run `threads` producers over units [first, first + count); returns units/s. */
static double run_phase(espl_dbw *w, char (*batches)[ESPL_DB_UUID_SIZE], long first, long count,
			int threads, int steps, int with_begin, int wait_end)
{
	pthread_t t[64];
	gen g[64];
	espl_error err;
	double t0 = now_s();
	long per = count / threads;
	for (int k = 0; k < threads; k++) {
		g[k] = (gen){ w, batches, first + k * per, k == threads - 1 ? count - k * per : per,
			      steps, with_begin, wait_end };
		pthread_create(&t[k], NULL, generate, &g[k]);
	}
	for (int k = 0; k < threads; k++)
		pthread_join(t[k], NULL);
	if (espl_dbw_sync(w, &err) < 0)
		die("sync", &err);
	return (double)count / (now_s() - t0);
}

static int count_cb(const espl_report_unit *u, void *user)
{
	(void)u;
	(*(int *)user)++;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void bench_history(espl_db *db, long units)
{
	enum { Q = 1000 };
	double lat[Q];
	espl_error err;
	unsigned seed = 42;
	long found = 0;
	for (int q = 0; q < Q; q++) {
		long i = rand_r(&seed) % units;
		char mac[18];
		snprintf(mac, sizeof mac, "5c:cf:7f:%02lx:%02lx:%02lx", (i >> 16) & 0xff,
			 (i >> 8) & 0xff, i & 0xff);
		int n = 0;
		double t0 = now_s();
		if (espl_report_history(db, mac, count_cb, &n, &err) < 0)
			die("history", &err);
		lat[q] = (now_s() - t0) * 1000.0;
		found += n;
	}
	qsort(lat, Q, sizeof lat[0], cmp_double);
	printf("history_mac_ms: p50 %.3f  p99 %.3f  max %.3f  (%d queries, %.2f units each)\n",
	       lat[Q / 2], lat[Q * 99 / 100], lat[Q - 1], Q, (double)found / Q);
}

static void bench_reports(espl_db *db, long units)
{
	espl_error err;
	espl_report r;
	char name[32];
	long batches = (units + UNITS_PER_BATCH - 1) / UNITS_PER_BATCH;
	snprintf(name, sizeof name, "batch-%04ld", batches / 2);
	espl_report_filter f = { .batch = name };
	double t0 = now_s();
	if (espl_report_build(db, &f, &r, &err) < 0)
		die("report", &err);
	printf("batch_report_s: %.3f  (%s: %" PRId64 " units, yield %.2f%%, p50 %.1f s, %zu ports)\n",
	       now_s() - t0, name, r.units, 100 * r.yield, r.p50_ms / 1000.0, r.n_ports);
	espl_report_free(&r);

	espl_report_filter week = { .since_ms = T0 + (units - 40320) * 15000LL };
	t0 = now_s();
	if (espl_report_build(db, &week, &r, &err) < 0)
		die("report", &err);
	printf("since_report_s: %.3f  (last week: %" PRId64 " units)\n", now_s() - t0, r.units);
	espl_report_free(&r);

	t0 = now_s();
	if (espl_report_build(db, NULL, &r, &err) < 0)
		die("report", &err);
	printf("full_report_s: %.3f  (all %" PRId64 " units)\n", now_s() - t0, r.units);
	espl_report_free(&r);

	FILE *null = fopen("/dev/null", "w");
	t0 = now_s();
	int n = espl_report_export(db, &f, ESPL_EXPORT_CSV, null, &err);
	printf("export_batch_csv_s: %.3f  (%d units)\n", now_s() - t0, n);
	t0 = now_s();
	n = espl_report_export(db, &f, ESPL_EXPORT_JSON, null, &err);
	printf("export_batch_json_s: %.3f  (%d units with steps)\n", now_s() - t0, n);
	fclose(null);

	espl_db_verify_result v;
	t0 = now_s();
	if (espl_db_verify(db, &v, &err) < 0)
		die("verify", &err);
	printf("verify_chain_s: %.3f  (%" PRId64 " units, %s)\n", now_s() - t0, v.units_checked,
	       v.ok ? "intact" : v.problem);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: db_bench PATH [UNITS] [STEPS_PER_UNIT]\n");
		return 2;
	}
	const char *path = argv[1];
	long units = argc > 2 ? atol(argv[2]) : 1000000;
	int steps = argc > 3 ? atoi(argv[3]) : 5;
	if (steps < 1 || steps > 16 || units < 100000) {
		fprintf(stderr, "db_bench: UNITS >= 100000, STEPS 1..16\n");
		return 2;
	}
	char extra[4096];
	const char *suffixes[] = { "", "-wal", "-shm", ".spool", ".rejected" };
	for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
		snprintf(extra, sizeof extra, "%s%s", path, suffixes[i]);
		unlink(extra);
	}

	espl_dbw *w;
	espl_error err;
	espl_dbw_options o = { .path = path, .station = station };
	if (espl_dbw_start(&w, &o, NULL, &err) < 0)
		die("start", &err);
	long n_batches = (units + UNITS_PER_BATCH - 1) / UNITS_PER_BATCH;
	char (*batches)[ESPL_DB_UUID_SIZE] = calloc((size_t)n_batches, ESPL_DB_UUID_SIZE);
	for (long b = 0; b < n_batches; b++) {
		char name[32];
		espl_db_batch batch = { .name = name, .operator_name = "bench",
					.started_ms = T0 + b * UNITS_PER_BATCH * 15000LL,
					.planned = UNITS_PER_BATCH };
		snprintf(name, sizeof name, "batch-%04ld", b);
		espl_db_uuid(batch.uuid, &err);
		memcpy(batches[b], batch.uuid, ESPL_DB_UUID_SIZE);
		if (espl_dbw_begin_batch(w, &recipe, &batch, &err) < 0)
			die("begin_batch", &err);
	}
	printf("units: %ld  steps_per_unit: %d  batches: %ld\n", units, steps, n_batches);
	long done = 0, n;
	/* 1. One worker, one unit at a time, waiting for every commit: the
	 *    latency-bound rate of a single fsync'd transaction per record. */
	n = 2000;
	printf("insert_serial_units_per_s: %.0f  (1 thread, begin+end, each waits for its commit)\n",
	       run_phase(w, batches, done, n, 1, steps, 1, 1));
	done += n;
	/* 2. A 16-port station, exactly as the station drives it. */
	n = 50000;
	printf("insert_station16_units_per_s: %.0f  (16 threads, begin waits, end waits for its ack)\n",
	       run_phase(w, batches, done, n, 16, steps, 1, 1));
	done += n;
	/* 3. Bulk: everything else, end records only, not waiting (group commit). */
	n = units - done;
	printf("insert_bulk_units_per_s: %.0f  (4 threads, end_unit without waiting, %ld units)\n",
	       run_phase(w, batches, done, n, 4, steps, 0, 0), n);
	espl_dbw_stats st;
	espl_dbw_get_stats(w, &st);
	printf("records: %" PRIu64 " in %" PRIu64 " transactions, %" PRIu64 " spooled\n", st.written,
	       st.transactions, st.spooled);
	if (espl_dbw_stop(w, &err) < 0)
		die("stop", &err);
	free(batches);

	struct stat sb;
	if (stat(path, &sb) == 0)
		printf("db_size_mb: %.0f\n", (double)sb.st_size / 1048576.0);

	espl_db *db;
	espl_db_options ro = { .path = path };
	if (espl_db_open(&db, &ro, &err) < 0)
		die("open", &err);
	bench_history(db, units);
	bench_reports(db, units);
	espl_db_close(db);
	return 0;
}
