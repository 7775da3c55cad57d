/* central_bench.c - helpers for bench/central.sh.
 *
 *   central_bench fill PATH UNITS            a station database with UNITS sealed
 *                                            units (5 steps each) waiting in its outbox
 *   central_bench latency PATH CONNINFO N    N units written one at a time through the
 *                                            database writer with replication on; for
 *                                            each, the time from its local commit to
 *                                            its row being visible on the server
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "espline/db.h"
#include "espline/dbwriter.h"

static const espl_db_station station = { "bench-st", "bench-host", "0.1.0" };
static const espl_db_image images[] = {
	{ "nodemcu.bin", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
	{ "init.bin", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" },
};
static const espl_db_recipe recipe = {
	"bench", "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
	"recipe: bench\n", images, 2,
};

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what, const espl_error *err)
{
	fprintf(stderr, "central_bench: %s: %s\n", what, err ? err->msg : "");
	exit(1);
}

static void make_unit(espl_db_unit *u, const char *batch, long i, char mac[18])
{
	espl_error err;
	memset(u, 0, sizeof *u);
	if (espl_db_uuid(u->uuid, &err) < 0)
		die("uuid", &err);
	snprintf(u->batch_uuid, sizeof u->batch_uuid, "%s", batch);
	snprintf(mac, 18, "5c:cf:7f:%02lx:%02lx:%02lx", (i >> 16) & 255, (i >> 8) & 255, i & 255);
	u->mac = mac;
	u->chip_id = (uint32_t)i;
	u->flash_id = 0x1640ef;
	u->manufacturer = "Winbond";
	u->flash_size = 4u << 20;
	u->crystal_mhz = 26;
	u->port = "rfc2217://127.0.0.1:4000";
	u->started_ms = espl_db_now_ms();
	u->ended_ms = u->started_ms + 15000;
	u->duration_ms = 15000;
	u->result = i % 50 == 0 ? ESPL_DB_FAIL : ESPL_DB_PASS;
	if (u->result == ESPL_DB_FAIL) {
		u->error_kind = "mismatch";
		u->error = "verify 0x00000: MD5 mismatch";
	}
}

static espl_db_step steps[5];

static void make_steps(void)
{
	static const char *kinds[] = { "erase", "write", "write_init_data", "verify", "reset" };
	for (int i = 0; i < 5; i++)
		steps[i] = (espl_db_step){ .index = i, .kind = kinds[i], .length = 262144,
					   .expected_md5 = "43b44bb257291b500e5496be984030bb",
					   .actual_md5 = "43b44bb257291b500e5496be984030bb",
					   .bytes = 262144, .duration_ms = 3000, .result = ESPL_DB_PASS };
}

static int fill(const char *path, long units)
{
	espl_db *db;
	espl_error err;
	espl_db_options o = { .path = path, .create = 1 };
	espl_db_batch b = { .name = "bench", .started_ms = espl_db_now_ms() };
	if (espl_db_open(&db, &o, &err) < 0)
		die("open", &err);
	if (espl_db_uuid(b.uuid, &err) < 0 || espl_db_begin_batch(db, &station, &recipe, &b, &err) < 0)
		die("batch", &err);
	double t0 = now_s();
	for (long i = 0; i < units; i++) {
		espl_db_unit u;
		char mac[18];
		if (i % 1000 == 0 && espl_db_begin(db, &err) < 0)
			die("begin", &err);
		make_unit(&u, b.uuid, i, mac);
		if (espl_db_end_unit(db, &u, steps, 5, NULL, &err) < 0)
			die("end_unit", &err);
		if ((i % 1000 == 999 || i == units - 1) && espl_db_commit(db, &err) < 0)
			die("commit", &err);
	}
	printf("filled %s: %ld units in %.2f s\n", path, units, now_s() - t0);
	espl_db_close(db);
	return 0;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int latency(const char *path, const char *conninfo, int n)
{
	espl_dbw *w;
	espl_error err;
	espl_dbw_options o = { .path = path, .station = station, .central = conninfo };
	espl_db_batch b = { .name = "latency", .started_ms = espl_db_now_ms() };
	PGconn *pg = PQconnectdb(conninfo);
	if (PQstatus(pg) != CONNECTION_OK) {
		fprintf(stderr, "central_bench: %s", PQerrorMessage(pg));
		return 1;
	}
	if (espl_dbw_start(&w, &o, NULL, &err) < 0)
		die("start", &err);
	if (espl_db_uuid(b.uuid, &err) < 0 || espl_dbw_begin_batch(w, &recipe, &b, &err) < 0)
		die("batch", &err);
	double *lat = calloc((size_t)n, sizeof *lat);
	for (int i = 0; i < n; i++) {
		espl_db_unit u;
		espl_dbw_ack ack;
		char mac[18];
		make_unit(&u, b.uuid, i, mac);
		if (espl_dbw_end_unit(w, &u, steps, 5, &ack, &err) < 0)
			die("end_unit", &err);
		double t0 = now_s();
		const char *v[] = { u.uuid };
		for (;;) {
			PGresult *r = PQexecParams(pg, "SELECT 1 FROM units WHERE uuid = $1", 1, NULL, v,
						   NULL, NULL, 0);
			int found = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
			PQclear(r);
			if (found)
				break;
			if (now_s() - t0 > 30) {
				fprintf(stderr, "central_bench: unit %d never arrived\n", i);
				return 1;
			}
			usleep(200);
		}
		lat[i] = (now_s() - t0) * 1000.0;
		usleep(20000); /* one unit at a time, as a line produces them */
	}
	qsort(lat, (size_t)n, sizeof *lat, cmp_d);
	printf("sync latency over %d units (local commit -> visible on the server): "
	       "p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms\n",
	       n, lat[n / 2], lat[n * 9 / 10], lat[n * 99 / 100], lat[n - 1]);
	free(lat);
	PQfinish(pg);
	if (espl_dbw_stop(w, &err) < 0)
		die("stop", &err);
	return 0;
}

int main(int argc, char **argv)
{
	make_steps();
	if (argc == 4 && strcmp(argv[1], "fill") == 0)
		return fill(argv[2], atol(argv[3]));
	if (argc == 5 && strcmp(argv[1], "latency") == 0)
		return latency(argv[2], argv[3], atoi(argv[4]));
	fprintf(stderr, "usage: central_bench fill PATH UNITS | latency PATH CONNINFO N\n");
	return 2;
}
