/*
 * chain.h - walking a station's hash chain, once for the local database
 * (espl_db_verify) and the central one (espl_central_verify).  Internal to
 * libespline (src/record and src/central), not installed; private names
 * start with espl__.
 *
 * A walk is fed the sealed units of one chain in seq order.  It checks that
 * the seqs run 1, 2, 3 without a gap or a repeat, that each unit's prev_hash
 * is the hash of the unit before it, and (only when the link holds, so the
 * first break is what is reported) that the unit's stored hash is the hash
 * of its fields and steps, which the caller computes on request.  At the end
 * it checks the last unit against the head the chain's owner recorded.
 *
 * Problems: ok drops to 0 at the first one, which is kept with its chain
 * position, uuid and message; later problems are ignored, because the first
 * break is the one the operator must look at.  Both verify results have the
 * fields ok, bad_seq, bad_uuid and problem; ESPL__CHAIN_SINK points a walk
 * at them.
 *
 * Thread-safety: a walk touches only itself and its sink.
 */
#ifndef ESPLINE_RECORD_CHAIN_H
#define ESPLINE_RECORD_CHAIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "espline/db.h"

/* Where a walk records its first problem. */
typedef struct espl__chain_sink {
	int *ok;
	int64_t *bad_seq;
	char *bad_uuid;
	size_t uuid_size;
	char *problem;
	size_t problem_size;
} espl__chain_sink;

/* A sink for a result r with the fields ok, bad_seq, bad_uuid, problem. */
#define ESPL__CHAIN_SINK(r)                                                         \
	((espl__chain_sink){ &(r)->ok, &(r)->bad_seq, (r)->bad_uuid,                \
			     sizeof (r)->bad_uuid, (r)->problem, sizeof (r)->problem })

typedef struct espl__chain_walk {
	espl__chain_sink sink;
	int64_t expect;                       /* next seq expected */
	char prev_hash[ESPL_DB_HASH_SIZE];    /* stored hash of the previous unit */
	char prev_uuid[ESPL_DB_UUID_SIZE];
	int64_t units;                        /* units fed so far */
} espl__chain_walk;

/* Computes the hash a unit should have (its fields and steps); called only
 * when the unit is in its place and linked to the one before it. */
typedef int (*espl__chain_hash_fn)(void *ctx, char want[ESPL_DB_HASH_SIZE]);

/* Start a walk at seq 1 after the all-zero hash. */
void espl__chain_start(espl__chain_walk *w, espl__chain_sink sink);

/* Feed the next sealed unit: its seq, uuid, MAC (NULL: unknown), stored
 * prev_hash and hash (NULL: missing); want computes its expected hash and
 * returns 0 or a negative code (ESPL_ENOMEM), which this returns: the walk
 * cannot go on.  Otherwise 0, problems go to the sink. */
int espl__chain_unit(espl__chain_walk *w, int64_t seq, const char *uuid, const char *mac,
		     const char *prev_hash, const char *hash, espl__chain_hash_fn want,
		     void *ctx);

/* After the last unit: check it against the head its owner recorded
 * (head_seq units, the last one's hash head_hash), named by head_name in
 * the message ("the chain head", "the head the station reported"). */
void espl__chain_end(espl__chain_walk *w, int64_t head_seq, const char *head_hash,
		     const char *head_name);

/* Record a problem found outside the walk (a changed batch, a unit outside
 * the chain): the first one is kept. */
void espl__chain_problem(espl__chain_sink sink, int64_t seq, const char *uuid, const char *fmt,
			 ...) ESPL_PRINTF(4, 5);

#endif /* ESPLINE_RECORD_CHAIN_H */
