/* test_central.c - replication's station side: the outbox is filled in the
 * transaction that records a unit (and rolls back with it), read back in
 * order with everything the server needs, acknowledged; migration from v2
 * queues old records; a writer whose central server is unreachable never
 * waits for it and stores the error with the password removed; passwords
 * are redacted from connection strings and scrubbed from messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "espline/central.h"
#include "espline/db.h"
#include "espline/dbwriter.h"
#include "db_fixture.h"

static int setup(void **state)
{
	return fx_setup(state, "central", "espline.sqlite");
}

static void new_batch(espl_db *db, espl_db_batch *b)
{
	espl_error err;
	memset(b, 0, sizeof *b);
	assert_int_equal(espl_db_uuid(b->uuid, &err), 0);
	b->name = "B1";
	b->operator_name = "alice";
	b->started_ms = 1700000000000;
	b->planned = 4;
	assert_int_equal(espl_db_begin_batch(db, &station, &recipe, b, &err), 0);
}

static espl_db_unit make_unit(const char *batch_uuid, int i)
{
	espl_db_unit u = { 0 };
	espl_error err;
	static char macs[8][18];
	assert_int_equal(espl_db_uuid(u.uuid, &err), 0);
	snprintf(u.batch_uuid, sizeof u.batch_uuid, "%s", batch_uuid);
	snprintf(macs[i % 8], sizeof macs[0], "5c:cf:7f:00:00:%02x", i);
	u.mac = macs[i % 8];
	u.chip_id = 0xabc000u + (uint32_t)i;
	u.flash_id = 0x1640ef;
	u.manufacturer = "Winbond";
	u.flash_size = 4u << 20;
	u.crystal_mhz = 26;
	u.port = "/dev/ttyUSB0";
	u.started_ms = 1700000000000 + i * 1000;
	u.ended_ms = u.started_ms + 500;
	u.duration_ms = 500;
	u.result = i % 3 == 2 ? ESPL_DB_FAIL : ESPL_DB_PASS;
	if (u.result == ESPL_DB_FAIL) {
		u.error_kind = "mismatch";
		u.error = "verify: MD5 mismatch";
	}
	return u;
}

static const espl_db_step steps[2] = {
	{ .index = 0, .kind = "erase", .length = 4194304, .duration_ms = 10, .result = ESPL_DB_PASS },
	{ .index = 1, .kind = "write", .length = 4096, .expected_md5 = "0123456789abcdef0123456789abcdef",
	  .actual_md5 = "0123456789abcdef0123456789abcdef", .bytes = 4096, .duration_ms = 20,
	  .retries = 1, .result = ESPL_DB_PASS },
};

/* ---- outbox ------------------------------------------------------------ */

static void test_outbox_filled_with_the_unit(void **state)
{
	fx *f = *state;
	espl_db *db = open_db(f->path, 0);
	espl_db_batch b;
	espl_error err;
	new_batch(db, &b);
	espl_db_unit u[3];
	for (int i = 0; i < 3; i++) {
		u[i] = make_unit(b.uuid, i);
		assert_int_equal(espl_db_begin_unit(db, &u[i], &err), 0);
	}
	/* Started units are not replicated; only the batch is queued. */
	assert_int_equal(query_int(db, "SELECT count(*) FROM outbox"), 1);
	espl_db_sealed sealed[3];
	for (int i = 0; i < 3; i++)
		assert_int_equal(espl_db_end_unit(db, &u[i], steps, 2, &sealed[i], &err), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM outbox WHERE kind = 'unit'"), 3);
	/* Ending a unit again (a replayed record) queues nothing more. */
	assert_int_equal(espl_db_end_unit(db, &u[1], steps, 2, NULL, &err), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM outbox"), 4);

	espl_db_replica *x;
	size_t n;
	assert_int_equal(espl_db_outbox_read(db, 10, &x, &n, &err), 0);
	assert_int_equal(n, 4);
	assert_int_equal(x[0].kind, ESPL_DB_OUTBOX_BATCH);
	assert_string_equal(x[0].batch.uuid, b.uuid);
	assert_string_equal(x[0].station.name, "line1-st1");
	assert_string_equal(x[0].recipe.yaml, recipe.yaml);
	assert_int_equal(x[0].recipe.n_images, 2);
	assert_string_equal(x[0].recipe.images[1].name, "esp_init_data_default.bin");
	for (int i = 0; i < 3; i++) {
		const espl_db_replica *r = &x[i + 1];
		assert_true(r->id > x[i].id);
		assert_int_equal(r->kind, ESPL_DB_OUTBOX_UNIT);
		assert_string_equal(r->unit.uuid, u[i].uuid);
		assert_string_equal(r->unit.mac, u[i].mac);
		assert_int_equal(r->unit.result, u[i].result);
		assert_int_equal(r->seq, sealed[i].seq);
		assert_string_equal(r->hash, sealed[i].hash);
		assert_int_equal(r->n_steps, 2);
		assert_string_equal(r->steps[1].actual_md5, steps[1].actual_md5);
		assert_int_equal(r->steps[1].retries, 1);
		/* The replica carries what is needed to recompute its hash. */
		char want[ESPL_DB_HASH_SIZE];
		espl_db_unit_hash(r->seq, r->prev_hash, r->batch_hash, &r->unit, r->steps,
				  r->n_steps, want);
		assert_string_equal(want, r->hash);
	}
	/* Acknowledge the first two: the rest waits, counted by sync status. */
	assert_int_equal(espl_db_outbox_ack(db, x[1].id, 2, &err), 0);
	espl_db_sync_status st;
	assert_int_equal(espl_db_sync_read(db, &st, &err), 0);
	assert_int_equal(st.waiting, 2);
	assert_int_equal(st.waiting_units, 2);
	assert_int_equal(st.sent, 2);
	assert_true(st.oldest_ms > 0);
	assert_int_equal(strlen(st.origin), 36);
	espl_db_replicas_free(x, n);
	assert_int_equal(espl_db_outbox_read(db, 10, &x, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(x[0].unit.uuid, u[1].uuid);
	espl_db_replicas_free(x, n);
	espl_db_close(db);
}

static void test_outbox_rolls_back_with_the_unit(void **state)
{
	fx *f = *state;
	espl_db *db = open_db(f->path, 0);
	espl_db_batch b;
	espl_error err;
	new_batch(db, &b);
	/* A group transaction that is rolled back leaves neither. */
	espl_db_unit u = make_unit(b.uuid, 0);
	assert_int_equal(espl_db_begin(db, &err), 0);
	assert_int_equal(espl_db_end_unit(db, &u, steps, 2, NULL, &err), 0);
	espl_db_rollback(db);
	assert_int_equal(query_int(db, "SELECT count(*) FROM units"), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM outbox WHERE kind = 'unit'"), 0);
	/* An outbox that refuses the row makes the whole unit fail: a sealed
	 * unit is never left out of the outbox. */
	exec_sql(db, "CREATE TRIGGER no_outbox BEFORE INSERT ON outbox"
		     " BEGIN SELECT RAISE(ABORT, 'outbox refused'); END");
	assert_true(espl_db_end_unit(db, &u, steps, 2, NULL, &err) < 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM units"), 0);
	assert_int_equal(query_int(db, "SELECT seq FROM chain"), 0);
	exec_sql(db, "DROP TRIGGER no_outbox");
	assert_int_equal(espl_db_end_unit(db, &u, steps, 2, NULL, &err), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM outbox WHERE kind = 'unit'"), 1);
	/* Ending the batch queues it again (with its end time). */
	assert_int_equal(espl_db_end_batch(db, b.uuid, 1700000099000, &err), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM outbox WHERE kind = 'batch'"), 2);
	espl_db_close(db);
}

static void test_migration_queues_old_records(void **state)
{
	fx *f = *state;
	espl_db *db = open_db(f->path, 2);
	espl_db_batch b;
	espl_error err;
	char uuids[3][ESPL_DB_UUID_SIZE];
	new_batch(db, &b);
	for (int i = 0; i < 3; i++) {
		espl_db_unit u = make_unit(b.uuid, i);
		assert_int_equal(espl_db_end_unit(db, &u, steps, 2, NULL, &err), 0);
		snprintf(uuids[i], sizeof uuids[i], "%s", u.uuid);
	}
	char origin[ESPL_DB_UUID_SIZE];
	assert_true(espl_db_origin(db, origin, &err) < 0); /* v2 has none */
	espl_db_close(db);
	db = open_db(f->path, 0);
	assert_int_equal(espl_db_schema_version(db), ESPL_DB_SCHEMA_VERSION);
	assert_int_equal(espl_db_origin(db, origin, &err), 0);
	assert_int_equal(strlen(origin), 36);
	assert_int_equal(origin[14], '4');
	espl_db_replica *x;
	size_t n;
	assert_int_equal(espl_db_outbox_read(db, 10, &x, &n, &err), 0);
	assert_int_equal(n, 4);
	assert_int_equal(x[0].kind, ESPL_DB_OUTBOX_BATCH);
	for (int i = 0; i < 3; i++) {
		assert_string_equal(x[i + 1].unit.uuid, uuids[i]);
		assert_int_equal(x[i + 1].seq, i + 1);
	}
	espl_db_replicas_free(x, n);
	/* Another database gets another origin. */
	char other_path[160], other[ESPL_DB_UUID_SIZE];
	snprintf(other_path, sizeof other_path, "%s/other.sqlite", f->dir);
	espl_db *db2 = open_db(other_path, 0);
	assert_int_equal(espl_db_origin(db2, other, &err), 0);
	assert_string_not_equal(origin, other);
	espl_db_close(db2);
	espl_db_close(db);
}

/* ---- the writer with an unreachable server ------------------------------ */

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

typedef struct logs {
	char all[8192];
	espl_central *_Atomic central;
} logs;

static void kick(void *user)
{
	logs *l = user;
	espl_central_kick(atomic_load(&l->central));
}

static void on_log(const char *level, const char *message, void *user)
{
	logs *l = user;
	size_t n = strlen(l->all);
	snprintf(l->all + n, sizeof l->all - n, "%s: %s\n", level, message);
}

static void test_writer_never_waits_for_central(void **state)
{
	fx *f = *state;
	char conninfo[256];
	logs l = { "", NULL };
	espl_error err;
	/* A socket folder that does not exist: every attempt fails. */
	snprintf(conninfo, sizeof conninfo,
		 "postgresql://espline:TopSecret9@/espline?host=%s/no-server", f->dir);
	/* The sender beside the writer, woken after each commit, as the
	 * station composes them. */
	espl_central *c = NULL;
	espl_dbw_options o = { .path = f->path, .station = station, .on_log = on_log,
			       .on_commit = kick, .user = &l };
	espl_central_options co = { .conninfo = conninfo, .db_path = f->path, .on_log = on_log,
				    .user = &l };
	espl_dbw *w;
	assert_int_equal(espl_dbw_start(&w, &o, NULL, &err), 0);
	assert_int_equal(espl_central_start(&c, &co, &err), 0);
	atomic_store(&l.central, c);
	espl_db_batch b;
	memset(&b, 0, sizeof b);
	assert_int_equal(espl_db_uuid(b.uuid, &err), 0);
	b.name = "B1";
	b.started_ms = 1700000000000;
	assert_int_equal(espl_dbw_begin_batch(w, &recipe, &b, &err), 0);
	int64_t t0 = mono_ms();
	for (int i = 0; i < 20; i++) {
		espl_db_unit u = make_unit(b.uuid, i);
		espl_dbw_ack ack;
		assert_int_equal(espl_dbw_end_unit(w, &u, steps, 2, &ack, &err), 0);
		assert_int_equal(ack.spooled, 0);
	}
	int64_t spent = mono_ms() - t0;
	/* 20 units committed locally while the server is unreachable, well
	 * under one connection attempt's backoff. */
	assert_true(spent < 2000);
	/* Wait until the sender has recorded its failure. */
	espl_db *db = open_db(f->path, 0);
	espl_db_sync_status st;
	for (int i = 0; i < 100; i++) {
		assert_int_equal(espl_db_sync_read(db, &st, &err), 0);
		if (st.last_error_ms)
			break;
		usleep(50000);
	}
	assert_int_equal(st.waiting_units, 20);
	assert_true(st.last_error_ms > 0);
	assert_non_null(strstr(st.last_error, "no-server"));
	assert_null(strstr(st.last_error, "TopSecret9"));
	assert_null(strstr(st.central, "TopSecret9"));
	assert_non_null(strstr(st.central, "espline:***@"));
	/* Stopping does not wait for a server that is not there. */
	t0 = mono_ms();
	assert_int_equal(espl_dbw_stop(w, &err), 0);
	espl_central_stop(c, 2000);
	assert_true(mono_ms() - t0 < 1500);
	assert_null(strstr(l.all, "TopSecret9"));
	assert_non_null(strstr(l.all, "central sync"));
	espl_db_close(db);
}

/* ---- redaction --------------------------------------------------------- */

static void redacts(const char *in, const char *want)
{
	char out[256];
	espl_central_redact(in, out, sizeof out);
	if (strcmp(out, want) != 0)
		print_error("redact(%s) = %s, want %s\n", in, out, want);
	assert_string_equal(out, want);
}

static void test_redact_uri(void **state)
{
	(void)state;
	redacts("postgresql://espline:s3cret@db.factory:5432/trace",
		"postgresql://espline:***@db.factory:5432/trace");
	redacts("postgres://u:p%40ss@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require");
	redacts("postgresql://espline@db/trace", "postgresql://espline@db/trace");
	redacts("postgresql:///trace?host=/run/pg&password=hunter2&user=x",
		"postgresql:///trace?host=/run/pg&password=***&user=x");
	redacts("postgresql://u:a@b@h/db", "postgresql://u:***@h/db");
	redacts("postgresql://db.factory/trace", "postgresql://db.factory/trace");
}

static void test_redact_keywords(void **state)
{
	(void)state;
	redacts("host=db user=espline password=s3cret dbname=trace",
		"host=db user=espline password=*** dbname=trace");
	redacts("password = 'it\\'s secret' host=db", "password = *** host=db");
	redacts("host=db passwordless=1", "host=db passwordless=1");
	redacts("host=db", "host=db");
}

static void test_scrub_message(void **state)
{
	(void)state;
	char msg[256] = "connection to server failed: password s3cret! rejected; s3cret! again";
	espl_central_scrub("postgresql://u:s3cret!@h/db", msg);
	assert_null(strstr(msg, "s3cret"));
	assert_string_equal(msg, "connection to server failed: password *** rejected; *** again");
	char kw[64] = "auth failed for hunter2";
	espl_central_scrub("host=x password=hunter2", kw);
	assert_string_equal(kw, "auth failed for ***");
	char tiny[64] = "a*b*c";
	espl_central_scrub("host=x password=*", tiny);
	assert_string_equal(tiny, "a*b*c");
	char two[64] = "xyz pw=ab!";
	espl_central_scrub("host=x password=ab", two);
	assert_string_equal(two, "xyz pw=**!");
	char none[64] = "nothing to hide";
	espl_central_scrub("host=x", none);
	assert_string_equal(none, "nothing to hide");
}

static void test_conninfo_from_env(void **state)
{
	(void)state;
	/* The library reads no environment ($ESPLINE_CENTRAL is the CLI's,
	 * checked by integration/central, whose stations get it that way). */
	unsetenv(ESPL_CENTRAL_ENV);
	assert_null(espl_central_conninfo(NULL));
	assert_null(espl_central_conninfo(""));
	setenv(ESPL_CENTRAL_ENV, "postgresql://h/db", 1);
	assert_null(espl_central_conninfo(NULL));
	assert_string_equal(espl_central_conninfo("host=x"), "host=x");
	unsetenv(ESPL_CENTRAL_ENV);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_outbox_filled_with_the_unit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_rolls_back_with_the_unit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migration_queues_old_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_never_waits_for_central, setup, teardown),
		cmocka_unit_test(test_redact_uri),
		cmocka_unit_test(test_redact_keywords),
		cmocka_unit_test(test_scrub_message),
		cmocka_unit_test(test_conninfo_from_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
