/*
 * dbwriter_int.h - what the database writer's files share (internal to
 * src/record, not installed; private names start with espl__dbw_).
 *
 *   dbwriter.c   record copies, applying a record, state, the writer loop,
 *                start and stop
 *   producers.c  the calls producers make from any thread (queue, wait)
 *   spool.c      the JSON form of a record, the spool and rejected files,
 *                replaying a spool into the database
 *
 * Locks: w->mu guards the queue (head, tail), the held records, stopping,
 * state, reason and stats; the writer thread alone owns db and the spool
 * file descriptors.  See docs/ARCHITECTURE.md.
 */
#ifndef ESPLINE_RECORD_DBWRITER_INT_H
#define ESPLINE_RECORD_DBWRITER_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

#include "espline/dbwriter.h"
#include "espline/serials.h"

/* R_UNIT_STEP and R_ADAPTER_RATE come after R_EVENT: progressive step rows
 * and adapter rates are never spooled, so reading a spool back does not
 * know them. */
enum rec_type { R_BATCH_BEGIN, R_BATCH_END, R_UNIT_BEGIN, R_UNIT_END, R_EVENT, R_SYNC,
		R_UNIT_STEP, R_RESERVE, R_CSV_REGISTER, R_ADAPTER_RATE, R_LEASE_ADD };
/* R_RESERVE and R_CSV_REGISTER are questions to the database, not records:
 * never spooled, never held, never rejected to a file (a producer waits
 * for the answer). */
#define REC_IS_QUESTION(t) ((t) == R_RESERVE || (t) == R_CSV_REGISTER || (t) == R_LEASE_ADD || (t) == R_SYNC)

/* One queued record: owned deep copies of what the producer gave. */
typedef struct rec {
	struct rec *next;
	enum rec_type type;
	espl_db_station station;
	espl_db_recipe recipe;
	espl_db_image *images;
	espl_db_batch batch;
	espl_db_unit unit;
	espl_db_step *steps;
	size_t n_steps;
	espl_db_event event;
	char batch_uuid[ESPL_DB_UUID_SIZE]; /* batch_end */
	int64_t ended_ms;                    /* batch_end */
	espl_db_reserve_req reserve;         /* R_RESERVE (strings borrowed: the
	                                        producer waits) */
	espl_db_reserved reserved;
	const char *const *keys;             /* R_CSV_REGISTER (borrowed) */
	size_t n_keys;
	int64_t unused;                      /* R_CSV_REGISTER; R_LEASE_ADD: left */
	uint64_t lease_first, lease_last;    /* R_LEASE_ADD */
	espl_db_adapter_rate rate;           /* adapter_rate */
	/* outcome */
	int waited;   /* a producer waits for it and frees it */
	int done;
	espl_dbw_ack ack;
} rec;

struct espl_dbw {
	espl_dbw_options o;
	char *path, *spool_path, *rejected_path;
	char *fallback_path;        /* a spool elsewhere (NULL: none) */
	int fallback_fd;
	/* The spools are used in order and never go back: 0 none yet, 1 the one
	 * beside the database, 2 the fallback.  So a replay (the first spool,
	 * then the fallback) applies records in the order they were made. */
	int spool_stage;
	char *st_name, *st_host, *st_version;
	espl_db *db;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	rec *head, *tail;
	rec *held_head, *held_tail; /* neither written nor spooled */
	int stopping;
	enum espl_dbw_state state;
	char reason[ESPL_ERROR_MAX];
	espl_dbw_stats stats;
	int spool_fd;
	int lock_fd;
	/* The adapters' remembered baud rates: read at start, kept up to date
	 * by espl_dbw_adapter_rate (guarded by mu). */
	espl_db_adapter_rate *rates;
	size_t n_rates;
};

/* dbwriter.c */
/* Free a record and the copies it owns. */
void espl__dbw_rec_free(rec *r);
/* Deep copies into r of what a producer gave; *oom set on a failed copy. */
void espl__dbw_copy_station(rec *r, const espl_db_station *s, int *oom);
void espl__dbw_copy_recipe(rec *r, const espl_db_recipe *src, int *oom);
void espl__dbw_copy_batch(rec *r, const espl_db_batch *b, int *oom);
void espl__dbw_copy_unit(rec *r, const espl_db_unit *u, int *oom);
void espl__dbw_copy_steps(rec *r, const espl_db_step *steps, size_t n, int *oom);
void espl__dbw_copy_event(rec *r, const espl_db_event *e, int *oom);
/* Write one record to the database (the writer thread). */
int espl__dbw_apply(espl_dbw *w, rec *r, espl_error *err);
/* Whether a failure is the environment's (disk, lock): spool and retry. */
int espl__dbw_is_environmental(int rc);

/* spool.c */
/* A record as one JSON object (a spool line) and back. */
json_t *espl__dbw_rec_json(const rec *r);
int espl__dbw_rec_from_json(const char *line, rec **out, espl_error *err);
/* A diagnostic through options.on_log. */
void espl__dbw_log_msg(espl_dbw *w, const char *level, const char *fmt, ...) ESPL_PRINTF(3, 4);
/* Append r as a line to the spool at path (opened on first use into *fd). */
int espl__dbw_append_line(const char *path, int *fd, const rec *r, espl_error *err);
/* Keep a record the database refused in the rejected file, with why. */
void espl__dbw_reject(espl_dbw *w, const rec *r, const espl_error *why);
void espl__dbw_sha256_hex(const char *data, size_t len, char out[ESPL_DB_HASH_SIZE]);
/* At start: apply the spools' records not yet in the database, in order. */
int espl__dbw_replay_spool(espl_dbw *w, espl_dbw_startup *info, espl_error *err);

#endif /* ESPLINE_RECORD_DBWRITER_INT_H */
