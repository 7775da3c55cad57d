/* chain.c - canonical serialization, hashes and the hash-chain walk shared
 * with the central check; see include/espline/db.h and src/record/chain.h. */
#include "espline/db.h"
#include "record/db_int.h"
#include "record/db_owned.h"
#include "record/chain.h"
#include "util/clock.h"
#include "util/uuid.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- canonical serialization and hashes ------------------------------- */

static void h_str(EVP_MD_CTX *c, const char *name, const char *v)
{
	char head[64];
	int n = v ? snprintf(head, sizeof head, "%s:%zu:", name, strlen(v))
		  : snprintf(head, sizeof head, "%s:-\n", name);
	EVP_DigestUpdate(c, head, (size_t)n);
	if (v) {
		EVP_DigestUpdate(c, v, strlen(v));
		EVP_DigestUpdate(c, "\n", 1);
	}
}

static void h_int(EVP_MD_CTX *c, const char *name, int64_t v)
{
	char num[32];
	snprintf(num, sizeof num, "%" PRId64, v);
	h_str(c, name, num);
}

static void h_finish(EVP_MD_CTX *c, char out[ESPL_DB_HASH_SIZE])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	EVP_DigestFinal_ex(c, md, &len);
	EVP_MD_CTX_free(c);
	for (unsigned i = 0; i < len && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* A digest context with the tag hashed in; NULL when OpenSSL cannot
 * allocate one (the callers return ESPL_ENOMEM). */
static EVP_MD_CTX *h_start(const char *tag)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (!c)
		return NULL;
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	h_str(c, tag, "1");
	return c;
}

static void h_unit(EVP_MD_CTX *c, int64_t seq, const char *prev, const char *batch_hash,
		   const espl_db_unit *u)
{
	h_int(c, "seq", seq);
	h_str(c, "prev", prev);
	h_str(c, "batch", batch_hash);
	h_str(c, "uuid", u->uuid);
	h_str(c, "mac", u->mac);
	h_int(c, "chip_id", u->chip_id);
	h_int(c, "flash_id", u->flash_id);
	h_str(c, "manufacturer", u->manufacturer);
	h_int(c, "flash_size", u->flash_size);
	h_int(c, "crystal_mhz", u->crystal_mhz);
	h_str(c, "port", u->port);
	h_str(c, "adapter_serial", u->adapter_serial);
	h_str(c, "adapter_location", u->adapter_location);
	h_int(c, "started_ms", u->started_ms);
	h_int(c, "ended_ms", u->ended_ms);
	h_int(c, "duration_ms", u->duration_ms);
	h_str(c, "result", espl_db_result_name(u->result));
	h_str(c, "error_kind", u->error_kind);
	h_str(c, "error", u->error);
	if (u->slot) /* absent from records made before the columns existed */
		h_str(c, "slot", u->slot);
	if (u->barcode)
		h_str(c, "barcode", u->barcode);
	if (u->label)
		h_str(c, "label", u->label);
	if (u->serial)
		h_str(c, "serial", u->serial);
}

static void h_step(EVP_MD_CTX *c, const espl_db_step *s)
{
	h_int(c, "step", s->index);
	h_str(c, "kind", s->kind);
	h_int(c, "address", s->address);
	h_int(c, "length", s->length);
	h_str(c, "expected_md5", s->expected_md5);
	h_str(c, "actual_md5", s->actual_md5);
	h_int(c, "bytes", (int64_t)s->bytes);
	h_int(c, "duration_ms", s->duration_ms);
	h_int(c, "retries", s->retries);
	h_str(c, "result", espl_db_result_name(s->result));
	h_str(c, "error", s->error);
	if (s->detail) /* absent from records made before the column existed */
		h_str(c, "detail", s->detail);
}

int espl_db_unit_hash(int64_t seq, const char *prev_hash, const char *batch_hash,
		      const espl_db_unit *unit, const espl_db_step *steps,
		      size_t n_steps, char out[ESPL_DB_HASH_SIZE])
{
	EVP_MD_CTX *c = h_start("espline-unit");
	out[0] = '\0';
	if (!c)
		return ESPL_ENOMEM;
	h_unit(c, seq, prev_hash, batch_hash, unit);
	for (size_t i = 0; i < n_steps; i++)
		h_step(c, &steps[i]);
	h_finish(c, out);
	return ESPL_OK;
}

int espl_db_batch_hash(const espl_db_station *station, const espl_db_recipe *recipe,
		       const espl_db_batch *batch, char out[ESPL_DB_HASH_SIZE])
{
	EVP_MD_CTX *c = h_start("espline-batch");
	out[0] = '\0';
	if (!c)
		return ESPL_ENOMEM;
	h_str(c, "uuid", batch->uuid);
	h_str(c, "name", batch->name);
	h_str(c, "operator", batch->operator_name);
	h_int(c, "started_ms", batch->started_ms);
	h_int(c, "planned", batch->planned);
	h_str(c, "station", station->name);
	h_str(c, "host", station->host);
	h_str(c, "version", station->version);
	h_str(c, "recipe", recipe->name);
	h_str(c, "recipe_sha256", recipe->sha256);
	for (size_t i = 0; i < recipe->n_images; i++) {
		h_str(c, "image", recipe->images[i].name);
		h_str(c, "image_sha256", recipe->images[i].sha256);
	}
	h_finish(c, out);
	return ESPL_OK;
}

/* ---- the chain walk (shared with central_query.c) --------------------- */

static void vproblem(espl__chain_sink k, int64_t seq, const char *uuid, const char *fmt,
		     va_list ap)
{
	if (!*k.ok)
		return; /* keep the first */
	*k.ok = 0;
	*k.bad_seq = seq;
	snprintf(k.bad_uuid, k.uuid_size, "%s", uuid ? uuid : "");
	vsnprintf(k.problem, k.problem_size, fmt, ap);
}

void espl__chain_problem(espl__chain_sink sink, int64_t seq, const char *uuid, const char *fmt,
			 ...)
{
	va_list ap;
	va_start(ap, fmt);
	vproblem(sink, seq, uuid, fmt, ap);
	va_end(ap);
}

void espl__chain_start(espl__chain_walk *w, espl__chain_sink sink)
{
	memset(w, 0, sizeof *w);
	w->sink = sink;
	w->expect = 1;
	snprintf(w->prev_hash, sizeof w->prev_hash, "%s", ZERO_HASH);
}

int espl__chain_unit(espl__chain_walk *w, int64_t seq, const char *uuid, const char *mac,
		     const char *prev, const char *hash, espl__chain_hash_fn want_fn, void *ctx)
{
	if (seq != w->expect) {
		if (seq > w->expect + 1)
			espl__chain_problem(w->sink, w->expect, uuid,
					    "deleted: units seq %" PRId64 "-%" PRId64 " missing (between %s and %s)",
					    w->expect, seq - 1, w->prev_uuid[0] ? w->prev_uuid : "the start", uuid);
		else if (seq > w->expect)
			espl__chain_problem(w->sink, w->expect, uuid,
					    "deleted: unit seq %" PRId64 " missing (between %s and %s)", w->expect,
					    w->prev_uuid[0] ? w->prev_uuid : "the start", uuid);
		else
			espl__chain_problem(w->sink, seq, uuid,
					    "inserted: unit %s repeats seq %" PRId64, uuid, seq);
	} else if (!prev || strcmp(prev, w->prev_hash) != 0) {
		espl__chain_problem(w->sink, seq, uuid,
				    "inserted or deleted: unit seq %" PRId64 " (%s) is not chained "
				    "to the unit before it (seq %" PRId64 ", %s): a record was "
				    "inserted or removed there",
				    seq, uuid, seq - 1, w->prev_uuid[0] ? w->prev_uuid : "none");
	} else {
		char want[ESPL_DB_HASH_SIZE];
		int rc = want_fn(ctx, want);
		if (rc < 0)
			return rc;
		if (!hash || strcmp(hash, want) != 0)
			espl__chain_problem(w->sink, seq, uuid,
					    "changed: unit seq %" PRId64 " (%s, MAC %s): its fields or "
					    "steps no longer match its hash",
					    seq, uuid, mac ? mac : "?");
	}
	w->expect = seq + 1;
	snprintf(w->prev_hash, sizeof w->prev_hash, "%s", hash ? hash : "");
	snprintf(w->prev_uuid, sizeof w->prev_uuid, "%s", uuid);
	w->units++;
	return ESPL_OK;
}

void espl__chain_end(espl__chain_walk *w, int64_t head_seq, const char *head_hash,
		     const char *head_name)
{
	int64_t last = w->expect - 1;
	if (head_seq > last)
		espl__chain_problem(w->sink, last + 1, "",
				    "deleted: %s counts %" PRId64 " sealed units but the last one "
				    "present is seq %" PRId64 " (units %" PRId64 "-%" PRId64
				    " are missing)",
				    head_name, head_seq, last, last + 1, head_seq);
	else if (head_seq < last || (last > 0 && strcmp(head_hash, w->prev_hash) != 0))
		espl__chain_problem(w->sink, last, w->prev_uuid,
				    "inserted or changed: the last unit (seq %" PRId64 ", %s) does "
				    "not match %s (seq %" PRId64 ")",
				    last, w->prev_uuid, head_name, head_seq);
}

/* ---- the local check ---------------------------------------------------- */

static int verify_batches(espl_db *db, espl_db_verify_result *r, espl_error *err)
{
	sqlite3_stmt *b = NULL, *im = NULL;
	int rc = espl__db_prepare_once(db,
			      "SELECT b.uuid, b.name, b.operator, b.started_ms, b.planned, b.hash,"
			      " s.name, s.host, s.version, r.name, r.sha256, r.id"
			      " FROM batches AS b JOIN stations AS s ON s.id = b.station_id"
			      " JOIN recipes AS r ON r.id = b.recipe_id ORDER BY b.id",
			      &b, err);
	if (rc == 0)
		rc = espl__db_prepare_once(db,
				  "SELECT name, sha256 FROM recipe_images WHERE recipe_id = ?1"
				  " ORDER BY position",
				  &im, err);
	espl_db_image *images = NULL;
	size_t cap = 0;
	int step = SQLITE_DONE;
	while (rc == 0 && (step = sqlite3_step(b)) == SQLITE_ROW) {
		espl_db_batch batch = { .name = espl__db_col_text(b, 1), .operator_name = espl__db_col_text(b, 2),
					.started_ms = sqlite3_column_int64(b, 3),
					.planned = sqlite3_column_int(b, 4) };
		snprintf(batch.uuid, sizeof batch.uuid, "%s", espl__db_col_text(b, 0));
		espl_db_station st = { espl__db_col_text(b, 6), espl__db_col_text(b, 7), espl__db_col_text(b, 8) };
		espl_db_recipe rec = { .name = espl__db_col_text(b, 9), .sha256 = espl__db_col_text(b, 10) };
		sqlite3_bind_int64(im, 1, sqlite3_column_int64(b, 11));
		/* Image rows are copied because their text dies with the next step. */
		size_t n = 0;
		while (sqlite3_step(im) == SQLITE_ROW) {
			if (n == cap) {
				cap = cap ? 2 * cap : 8;
				void *g = realloc(images, cap * sizeof *images);
				if (!g) {
					rc = espl_fail(err, ESPL_ENOMEM, "out of memory");
					break;
				}
				images = g;
			}
			images[n].name = strdup(espl__db_col_text(im, 0) ? espl__db_col_text(im, 0) : "");
			images[n].sha256 = strdup(espl__db_col_text(im, 1) ? espl__db_col_text(im, 1) : "");
			n++;
		}
		sqlite3_reset(im);
		rec.images = images;
		rec.n_images = n;
		char want[ESPL_DB_HASH_SIZE];
		if (rc == 0 && espl_db_batch_hash(&st, &rec, &batch, want) < 0)
			rc = espl_fail(err, ESPL_ENOMEM, "out of memory hashing batch %s", batch.uuid);
		const char *have = espl__db_col_text(b, 5);
		if (rc == 0 && (!have || strcmp(have, want) != 0))
			espl__chain_problem(ESPL__CHAIN_SINK(r), 0, batch.uuid,
					    "changed: batch '%s' (%s): its name, operator, station, "
					    "recipe or image hashes no longer match the batch hash",
					    batch.name ? batch.name : "", batch.uuid);
		for (size_t i = 0; i < n; i++) {
			free((void *)images[i].name);
			free((void *)images[i].sha256);
		}
		r->batches_checked++;
	}
	if (rc == 0 && step != SQLITE_DONE)
		rc = espl__db_sql_fail(db, err, step, "reading batches");
	free(images);
	sqlite3_finalize(b);
	sqlite3_finalize(im);
	return rc;
}

static int sha256_text(const char *text, char out[ESPL_DB_HASH_SIZE])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (!c)
		return ESPL_ENOMEM;
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	EVP_DigestUpdate(c, text, strlen(text));
	h_finish(c, out);
	return ESPL_OK;
}

/* A recipe's stored text must still have the SHA-256 stored beside it,
 * which every batch hash that used it covers: so an edit of the text (or of
 * the hash) breaks the chain. */
static int verify_recipes(espl_db *db, espl_db_verify_result *r, espl_error *err)
{
	sqlite3_stmt *s = NULL;
	ESPL_TRY(espl__db_prepare_once(db, "SELECT name, sha256, yaml FROM recipes ORDER BY id", &s, err));
	int step;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		const char *name = espl__db_col_text(s, 0), *have = espl__db_col_text(s, 1);
		const char *yaml = espl__db_col_text(s, 2);
		char want[ESPL_DB_HASH_SIZE];
		if (sha256_text(yaml ? yaml : "", want) < 0) {
			sqlite3_finalize(s);
			return espl_fail(err, ESPL_ENOMEM, "out of memory hashing recipe '%s'",
					 name ? name : "");
		}
		if (!have || strcmp(have, want) != 0)
			espl__chain_problem(ESPL__CHAIN_SINK(r), 0, "",
					    "changed: recipe '%s' (sha256 %.16s...): its stored text no longer "
					    "has that SHA-256 (the text was edited)",
					    name ? name : "", have ? have : "?");
		r->recipes_checked++;
	}
	sqlite3_finalize(s);
	return step == SQLITE_DONE ? ESPL_OK : espl__db_sql_fail(db, err, step, "reading recipes");
}

/* The hash a unit row should have: its fields and its step rows. */
typedef struct unit_row {
	sqlite3_stmt *st;
	int64_t seq, id;
	const char *prev, *batch_hash;
	espl_db_unit unit;
} unit_row;

static int unit_row_hash(void *ctx, char want[ESPL_DB_HASH_SIZE])
{
	unit_row *row = ctx;
	EVP_MD_CTX *c = h_start("espline-unit");
	espl_db_step step;
	if (!c)
		return ESPL_ENOMEM;
	h_unit(c, row->seq, row->prev, row->batch_hash, &row->unit);
	sqlite3_bind_int64(row->st, 1, row->id);
	while (sqlite3_step(row->st) == SQLITE_ROW) {
		espl__db_row_to_step(row->st, &step);
		h_step(c, &step);
	}
	sqlite3_reset(row->st);
	h_finish(c, want);
	return ESPL_OK;
}

static int verify_chain(espl_db *db, espl_db_verify_result *r, espl__chain_walk *w,
			espl_error *err)
{
	sqlite3_stmt *u = NULL, *st = NULL;
	char sql[1024];
	snprintf(sql, sizeof sql, "SELECT u.seq, u.prev_hash, u.hash, b.hash, u.id, " UNIT_COLS
		 "%s FROM units AS u JOIN batches AS b ON b.id = u.batch_id WHERE u.seq IS NOT NULL ORDER BY u.seq",
		 espl__db_unit_ident_cols(db));
	int rc = espl__db_prepare_once(db, sql, &u, err);
	if (rc == 0)
		rc = espl__db_prepare_once(db,
					   /* detail: schema v4 on; verify reads older
					    * databases as they are (no migration) */
					   espl_db_schema_version(db) >= 4
						   ? "SELECT idx, kind, address, length, expected_md5,"
						     " actual_md5, bytes, duration_ms, retries, result, error, detail"
						     " FROM steps WHERE unit_id = ?1 ORDER BY idx"
						   : "SELECT idx, kind, address, length, expected_md5,"
						     " actual_md5, bytes, duration_ms, retries, result, error"
						     " FROM steps WHERE unit_id = ?1 ORDER BY idx",
					   &st, err);
	int step = SQLITE_DONE;
	while (rc == 0 && (step = sqlite3_step(u)) == SQLITE_ROW) {
		unit_row row = { .st = st, .seq = sqlite3_column_int64(u, 0),
				 .prev = espl__db_col_text(u, 1),
				 .batch_hash = espl__db_col_text(u, 3),
				 .id = sqlite3_column_int64(u, 4) };
		espl__db_row_to_unit(u, 5, &row.unit);
		if (espl__chain_unit(w, row.seq, row.unit.uuid, row.unit.mac, row.prev,
				     espl__db_col_text(u, 2), unit_row_hash, &row) < 0) {
			rc = espl_fail(err, ESPL_ENOMEM, "out of memory hashing unit %s",
				       row.unit.uuid);
			break;
		}
		r->units_checked++;
	}
	if (rc == 0 && step != SQLITE_DONE)
		rc = espl__db_sql_fail(db, err, step, "reading units");
	sqlite3_finalize(u);
	sqlite3_finalize(st);
	return rc;
}

/* Completed units outside the chain, and the recorded head. */
static int verify_edges(espl_db *db, espl_db_verify_result *r, espl__chain_walk *w,
			espl_error *err)
{
	sqlite3_stmt *s = NULL;
	int rc = espl__db_prepare_once(db, "SELECT uuid, result FROM units WHERE seq IS NULL"
				       " ORDER BY id", &s, err);
	while (rc == 0 && sqlite3_step(s) == SQLITE_ROW) {
		if (strcmp(espl__db_col_text(s, 1), "RUNNING") == 0)
			r->running++;
		else
			espl__chain_problem(w->sink, 0, espl__db_col_text(s, 0),
					    "inserted: unit %s is %s but is not in the chain",
					    espl__db_col_text(s, 0), espl__db_col_text(s, 1));
	}
	sqlite3_finalize(s);
	ESPL_TRY(rc);
	ESPL_TRY(espl__db_prepare_once(db, "SELECT seq, hash FROM chain WHERE id = 1", &s, err));
	if (sqlite3_step(s) == SQLITE_ROW) {
		r->head_seq = sqlite3_column_int64(s, 0);
		snprintf(r->head_hash, sizeof r->head_hash, "%s", espl__db_col_text(s, 1));
	}
	sqlite3_finalize(s);
	espl__chain_end(w, r->head_seq, r->head_hash, "the chain head");
	return ESPL_OK;
}

int espl_db_verify(espl_db *db, espl_db_verify_result *r, espl_error *err)
{
	NEED_ERR(err);
	espl__chain_walk w;
	memset(r, 0, sizeof *r);
	r->ok = 1;
	espl__chain_start(&w, ESPL__CHAIN_SINK(r));
	/* One read transaction: a consistent snapshot while a station writes. */
	ESPL_TRY(espl__db_exec(db, "BEGIN", err));
	int rc = verify_chain(db, r, &w, err);
	if (rc == 0)
		rc = verify_batches(db, r, err);
	if (rc == 0)
		rc = verify_recipes(db, r, err);
	if (rc == 0)
		rc = verify_edges(db, r, &w, err);
	sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL);
	return rc;
}

/* ---- anchors ------------------------------------------------------------ */

#define ANCHOR_MAGIC "espline-anchor 1"

int espl_db_anchor_take(espl_db *db, espl_db_anchor *a, espl_error *err)
{
	NEED_ERR(err);
	sqlite3_stmt *s = NULL;
	memset(a, 0, sizeof *a);
	ESPL_TRY(espl_db_origin(db, a->origin, err));
	ESPL_TRY(espl__db_prepare_once(db, "SELECT seq, hash FROM chain WHERE id = 1", &s, err));
	if (sqlite3_step(s) == SQLITE_ROW) {
		a->seq = sqlite3_column_int64(s, 0);
		snprintf(a->hash, sizeof a->hash, "%s", espl__db_col_text(s, 1) ? espl__db_col_text(s, 1) : "");
	}
	sqlite3_finalize(s);
	if (!a->hash[0])
		snprintf(a->hash, sizeof a->hash, "%s", ZERO_HASH);
	a->time_ms = espl__wall_ms();
	return ESPL_OK;
}

int espl_db_anchor_format(const espl_db_anchor *a, char *out, size_t cap)
{
	time_t t = (time_t)(a->time_ms / 1000);
	struct tm tm;
	char when[32];
	gmtime_r(&t, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return snprintf(out, cap, ANCHOR_MAGIC " origin=%s seq=%" PRId64 " hash=%s time=%s\n", a->origin,
	                a->seq, a->hash, when);
}

static int is_hex64(const char *h)
{
	if (strlen(h) != 64)
		return 0;
	for (; *h; h++)
		if (!isxdigit((unsigned char)*h) || isupper((unsigned char)*h))
			return 0;
	return 1;
}

int espl_db_anchor_parse(const char *text, espl_db_anchor *a, espl_error *err)
{
	NEED_ERR(err);
	char origin[64] = "", hash[80] = "";
	long long seq = -1;
	memset(a, 0, sizeof *a);
	/* the anchor line may be wrapped in a signature (gpg --clearsign) */
	const char *line = strstr(text, ANCHOR_MAGIC " ");
	if (!line || sscanf(line, ANCHOR_MAGIC " origin=%63s seq=%lld hash=%79s", origin, &seq, hash) != 3 ||
	    seq < 0 || strlen(origin) != ESPL_DB_UUID_SIZE - 1 || !is_hex64(hash))
		return espl_fail(err, ESPL_EARG, "not an espline anchor (expected a line \"" ANCHOR_MAGIC
		                 " origin=UUID seq=N hash=64 hex digits time=...\", as `espline db anchor` prints)");
	/* lengths checked above: a uuid and 64 hex digits, each with its NUL */
	memcpy(a->origin, origin, ESPL_DB_UUID_SIZE);
	memcpy(a->hash, hash, ESPL_DB_HASH_SIZE);
	a->seq = seq;
	return ESPL_OK;
}

int espl_db_verify_anchor(espl_db *db, const espl_db_anchor *a, espl_db_verify_result *r, espl_error *err)
{
	NEED_ERR(err);
	char origin[ESPL_DB_UUID_SIZE];
	sqlite3_stmt *s = NULL;
	ESPL_TRY(espl_db_origin(db, origin, err));
	espl__chain_sink k = ESPL__CHAIN_SINK(r);
	if (strcmp(origin, a->origin) != 0) {
		espl__chain_problem(k, 0, "", "the anchor is for another database (origin %s; this one is %s)",
		                    a->origin, origin);
		return ESPL_OK;
	}
	if (a->seq == 0)
		return ESPL_OK;
	if (r->head_seq < a->seq) {
		espl__chain_problem(k, r->head_seq + 1, "",
		                    "rewound: the chain ends at seq %" PRId64 " but the anchor was taken at seq %"
		                    PRId64 " (units %" PRId64 "-%" PRId64 " were removed and the head rewritten)",
		                    r->head_seq, a->seq, r->head_seq + 1, a->seq);
		return ESPL_OK;
	}
	ESPL_TRY(espl__db_prepare_once(db, "SELECT uuid, hash FROM units WHERE seq = ?1", &s, err));
	sqlite3_bind_int64(s, 1, a->seq);
	if (sqlite3_step(s) != SQLITE_ROW)
		espl__chain_problem(k, a->seq, "", "rewound: unit seq %" PRId64 ", the anchor's head, is gone",
		                    a->seq);
	else if (!espl__db_col_text(s, 1) || strcmp(espl__db_col_text(s, 1), a->hash) != 0)
		espl__chain_problem(k, a->seq, espl__db_col_text(s, 0),
		                    "rewritten: unit seq %" PRId64 " no longer has the anchor's hash %.16s...: the "
		                    "chain up to it was rebuilt after the anchor was taken",
		                    a->seq, a->hash);
	sqlite3_finalize(s);
	return ESPL_OK;
}
