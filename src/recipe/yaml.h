/*
 * yaml.h - YAML files with file:line:column diagnostics (internal to
 * libespline, not installed).
 *
 * What a recipe and a station file have in common: a bounded read of the
 * file, libyaml's document tree, one diagnostic per problem at the line and
 * column of the node it is about ("FILE:LINE:COL: error: MESSAGE"), typed
 * access to scalars, and mappings read against a list of known keys, with
 * "did you mean" for an unknown one and duplicate keys refused.  What a key
 * means belongs to the caller (recipe.c, station_file.c).
 *
 * Errors: every espl__yaml_error() goes to the diagnostic callback (up to
 * ESPL__YAML_MAX_REPORTED), and the first one also lands in *err with the
 * code fail_code, so a caller without a callback still has a message.
 * Getters report their own error and return false or -1.
 * NULL: diag_fn and err may be NULL; everything else must not be.
 * Threads: a context belongs to one thread; no global state.
 */
#ifndef ESPLINE_RECIPE_YAML_H
#define ESPLINE_RECIPE_YAML_H

#include <stdbool.h>
#include <stddef.h>

#include <yaml.h>

#include "espline/error.h"
#include "espline/recipe.h"

#define ESPL__YAML_MSG_MAX 400
#define ESPL__YAML_MAX_REPORTED 50
#define ESPL__YAML_MAX_FIELDS 16

typedef struct espl__yaml {
	const char *file;             /* as printed in messages */
	const char *what;             /* "recipe file": "a second document ... a recipe file holds exactly one" */
	yaml_document_t *doc;         /* set while espl__yaml_parse runs */
	espl_recipe_diag_fn diag_fn;
	void *diag_ctx;
	espl_error *err;
	int fail_code;                /* the code *err gets: ESPL_ERECIPE */
	unsigned errors, warnings;
} espl__yaml;

/* The 1-based place of a node. */
espl_recipe_pos espl__yaml_pos(const yaml_node_t *n);

void espl__yaml_error(espl__yaml *y, espl_recipe_pos pos, const char *fmt, ...) ESPL_PRINTF(3, 4);
void espl__yaml_warn(espl__yaml *y, espl_recipe_pos pos, const char *fmt, ...) ESPL_PRINTF(3, 4);

yaml_node_t *espl__yaml_node(espl__yaml *y, int index);
/* A plain empty scalar, ~ or null. */
bool espl__yaml_is_null(const yaml_node_t *n);
/* The value of a scalar node, or NULL for lists, mappings and nulls. */
const char *espl__yaml_scalar(const yaml_node_t *n);
/* "a list", "a mapping", "nothing", or the quoted scalar (shortened). */
const char *espl__yaml_describe(const yaml_node_t *n, char *buf, size_t len);
/* The name in names[] nearest to word, if it is near enough to suggest. */
const char *espl__yaml_closest(const char *word, const char *const *names, size_t n);
/* "a, b, c" into buf. */
void espl__yaml_join_names(const char *const *names, size_t n, char *buf, size_t len);

/* A mapping's keys, looked up by name.  keys[i] and values[i] are NULL when
 * key i is absent.  Set names and n, then espl__yaml_read_fields. */
typedef struct espl__yaml_fields {
	const char *const *names;
	size_t n;                     /* at most ESPL__YAML_MAX_FIELDS */
	yaml_node_t *keys[ESPL__YAML_MAX_FIELDS];
	yaml_node_t *values[ESPL__YAML_MAX_FIELDS];
} espl__yaml_fields;

yaml_node_t *espl__yaml_field(const espl__yaml_fields *f, const char *name);
yaml_node_t *espl__yaml_field_key(const espl__yaml_fields *f, const char *name);

/* Report an unknown key; `in` is e.g. "in write" or "at the top level". */
void espl__yaml_unknown_key(espl__yaml *y, const yaml_node_t *key, const char *in,
                           const char *const *names, size_t n);
/* Collect the keys of mapping `map` into f.  Duplicates are errors.
 * Unknown keys are reported unless `others` is non-NULL, in which case they
 * are stored there (up to 4) for the caller to explain. */
void espl__yaml_read_fields(espl__yaml *y, yaml_node_t *map, const char *in, espl__yaml_fields *f,
                           yaml_node_t **others, size_t *n_others);

/* Checks that report their own error. */
bool espl__yaml_want_mapping(espl__yaml *y, const yaml_node_t *n, const char *what, const char *example);
void espl__yaml_missing_key(espl__yaml *y, const yaml_node_t *map, const char *what, const char *key,
                           const char *example);
/* A non-empty string scalar. */
bool espl__yaml_string(espl__yaml *y, const yaml_node_t *n, const char *what, const char **out);
/* true or false. */
bool espl__yaml_bool(espl__yaml *y, const yaml_node_t *n, const char *what, bool *out);
/* One of names[]; returns its index, or -1 (reported). */
int espl__yaml_choice(espl__yaml *y, const yaml_node_t *n, const char *what, const char *const *names,
                     size_t count);

/* Parse text as exactly one YAML document and call root_fn with its root
 * node (never NULL); `empty` is the message for a file with no document.
 * Syntax errors are reported at their place.  y->doc is valid only during
 * root_fn.  Returns the number of errors so far. */
unsigned espl__yaml_parse(espl__yaml *y, const char *text, size_t len, const char *empty,
                         void (*root_fn)(espl__yaml *y, yaml_node_t *root, void *ctx), void *ctx);

#endif /* ESPLINE_RECIPE_YAML_H */
