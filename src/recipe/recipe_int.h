/*
 * recipe_int.h - what the recipe module's files share (internal to
 * src/recipe, not installed; private names start with espl__recipe_).
 *
 *   recipe.c   small helpers, value parsing, files, the document (load/free)
 *   yaml.c     YAML access with file:line:col diagnostics
 *   parse.c    the top-level sections and the steps
 *   parse_unit.c  the serial section and the write_unit_data step
 *   csvtable.c, unitdata.c  per-unit data (their own public headers)
 *   check.c    default timeouts and the layout rules (bounds, overlaps,
 *              erase-after-write, verify coverage)
 *   prepare.c  the shared read-only plan: images read, hashed, compressed
 *   build.c    a recipe from a device command's arguments (no file, no
 *              positions), checked by check.c's layout rules
 *
 * Thread-safety: as recipe.h; a recipe being parsed belongs to one thread.
 */
#ifndef ESPLINE_RECIPE_INT_H
#define ESPLINE_RECIPE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <yaml.h>

#include "espline/recipe.h"
#include "recipe/yaml.h"

#define RECIPE_TEXT_MAX (1u << 20)   /* a recipe is a page of YAML, not a firmware */
#define ESP8266_MAX_FLASH (16u << 20) /* the image header cannot declare more */
#define BYTES_PER_MB_RATE 1000000ull  /* esptool's per-MB timeouts use 10^6 */
#define MAX_RETRIES 10
#define MAX_TIMEOUT_MS 3600000u

/* Step kinds ESPL_STEP_ERASE .. ESPL_STEP_READ, in the order of the names;
 * the first N_YAML_STEP_KINDS are the steps a recipe file may name (read
 * is a built recipe's only). */
#define N_STEP_KINDS 8
#define N_YAML_STEP_KINDS 7

/* A recipe being parsed, with its diagnostics. */
typedef struct parse_ctx {
	espl__yaml y;
	espl_recipe *r;
} parse_ctx;

/* recipe.c */
uint32_t espl__recipe_round_up(uint32_t v, uint32_t to);
/* The defaults of a recipe's sections (connect, flash, serial, csv). */
void espl__recipe_set_defaults(espl_recipe *r);
int espl__recipe_sha256_hex(const void *data, size_t len, char out[ESPL_SHA256_HEX_LEN + 1]);
bool espl__recipe_is_header_flash_size(uint32_t bytes);
uint32_t espl__recipe_header_code_to_size(uint8_t code);
parse_ctx espl__recipe_ctx(const char *file, espl_recipe *r, espl_recipe_diag_fn diag_fn, void *diag_ctx,
                            espl_error *err);
bool espl__recipe_get_u32(parse_ctx *c, const yaml_node_t *n, const char *what, uint32_t *out);
/* A baud rate, or (with rest non-NULL) a ladder: a list of up to
 * ESPL_BAUD_LADDER_MAX rates, highest first, the first in *first and the
 * others in rest[0..*n_rest).  A single number leaves *n_rest alone. */
bool espl__recipe_get_bauds(parse_ctx *c, yaml_node_t *n, const char *what, unsigned *first,
                            unsigned *rest, size_t *n_rest);
bool espl__recipe_get_file(parse_ctx *c, const yaml_node_t *n, const char *what, espl_recipe_file *f);
bool espl__recipe_get_sha256(parse_ctx *c, const yaml_node_t *n, const char *what, espl_recipe_file *f);

/* parse.c */
void espl__recipe_parse_connect(parse_ctx *c, yaml_node_t *n);
void espl__recipe_parse_flash(parse_ctx *c, yaml_node_t *n);
void espl__recipe_parse_expect(parse_ctx *c, yaml_node_t *key, yaml_node_t *n);
void espl__recipe_parse_step(parse_ctx *c, yaml_node_t *item, unsigned number, espl_step *s);
/* retries/timeout may sit beside the step key or inside its mapping. */
typedef struct step_opts {
	yaml_node_t *retries, *timeout;
} step_opts;
/* Take a step's retries and timeout from its mapping's fields f. */
void espl__recipe_take_opts(parse_ctx *c, const espl__yaml_fields *f, step_opts *o);
/* A step's defaults for its kind (retries, compress, ...). */
void espl__recipe_step_defaults(espl_step *s);
bool espl__recipe_string_list(parse_ctx *c, yaml_node_t *n, const char *what, size_t max, char **out,
                              size_t *count);

/* parse_unit.c */
void espl__recipe_parse_serial(parse_ctx *c, yaml_node_t *key, yaml_node_t *n);
void espl__recipe_parse_unit_data(parse_ctx *c, yaml_node_t *v, espl_step *s, step_opts *o);
/* prepare: the CSV file read and checked, every template checked and
 * rendered for each CSV row against its size. */
void espl__recipe_prepare_unit_data(parse_ctx *c, espl_recipe *r);
void espl__recipe_free_unit_data(espl_recipe *r);

/* check.c */
void espl__recipe_fill_default_timeouts(espl_recipe *r);
const char *espl__recipe_base_name(const char *path);
void espl__recipe_check_layout(parse_ctx *c, const espl_recipe *r, uint32_t system_size, uint32_t limit,
                         const char *limit_why);
void espl__recipe_check_steps(parse_ctx *c, espl_recipe *r, yaml_node_t *steps_key);

#endif /* ESPLINE_RECIPE_INT_H */
