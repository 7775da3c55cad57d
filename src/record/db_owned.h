/* db_owned.h - owned copies of the strings inside the espl_db_* record
 * structs (internal to libespline, not installed).
 *
 * The record structs of include/espline/db.h point at strings they do not
 * own.  Where a module keeps records of its own (the database's outbox
 * replicas, the writer thread's queue) it copies every string with
 * espl__strdup_oom and releases them with the *_free_strings functions here,
 * so that the list of string fields is written down once.  Nothing here
 * touches the database.
 *
 * Thread-safety: no shared state; a record may be used by one thread at a time.
 */
#ifndef ESPLINE_DB_OWNED_H
#define ESPLINE_DB_OWNED_H

#include "espline/db.h"

/* strdup that records a failure in *oom (set to 1) instead of returning it,
 * so a run of copies checks once at the end.  NULL stays NULL. */
const char *espl__strdup_oom(const char *s, int *oom);

/* Free the strings a record owns (not the struct itself). */
void espl__db_station_free_strings(espl_db_station *s);
/* ... including the images array and its strings. */
void espl__db_recipe_free_strings(espl_db_recipe *r);
void espl__db_batch_free_strings(espl_db_batch *b);
void espl__db_unit_free_strings(espl_db_unit *u);
void espl__db_event_free_strings(espl_db_event *e);
/* The n steps' strings and the array itself. */
void espl__db_steps_free(espl_db_step *steps, size_t n);

#endif /* ESPLINE_DB_OWNED_H */
