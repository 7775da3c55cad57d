/* db_owned.c - owned copies of record strings; see db_owned.h. */
#include "record/db_owned.h"
#include <stdlib.h>
#include <string.h>

#define FREE_CONST(p) free((void *)(p))

const char *espl__strdup_oom(const char *s, int *oom)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*oom = 1;
	return d;
}

void espl__db_station_free_strings(espl_db_station *s)
{
	FREE_CONST(s->name);
	FREE_CONST(s->host);
	FREE_CONST(s->version);
}

void espl__db_recipe_free_strings(espl_db_recipe *r)
{
	FREE_CONST(r->name);
	FREE_CONST(r->sha256);
	FREE_CONST(r->yaml);
	for (size_t i = 0; r->images && i < r->n_images; i++) {
		FREE_CONST(r->images[i].name);
		FREE_CONST(r->images[i].sha256);
	}
	FREE_CONST(r->images);
}

void espl__db_batch_free_strings(espl_db_batch *b)
{
	FREE_CONST(b->name);
	FREE_CONST(b->operator_name);
}

void espl__db_unit_free_strings(espl_db_unit *u)
{
	FREE_CONST(u->mac);
	FREE_CONST(u->manufacturer);
	FREE_CONST(u->port);
	FREE_CONST(u->adapter_serial);
	FREE_CONST(u->adapter_location);
	FREE_CONST(u->error_kind);
	FREE_CONST(u->error);
	FREE_CONST(u->slot);
	FREE_CONST(u->barcode);
	FREE_CONST(u->label);
	FREE_CONST(u->serial);
}

void espl__db_event_free_strings(espl_db_event *e)
{
	FREE_CONST(e->level);
	FREE_CONST(e->kind);
	FREE_CONST(e->batch_uuid);
	FREE_CONST(e->unit_uuid);
	FREE_CONST(e->message);
}

void espl__db_steps_free(espl_db_step *steps, size_t n)
{
	for (size_t i = 0; steps && i < n; i++) {
		FREE_CONST(steps[i].kind);
		FREE_CONST(steps[i].expected_md5);
		FREE_CONST(steps[i].actual_md5);
		FREE_CONST(steps[i].detail);
		FREE_CONST(steps[i].error);
	}
	free(steps);
}
