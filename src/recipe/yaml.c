/* yaml.c - YAML files with file:line:column diagnostics; see yaml.h.
 * Shared by recipes (recipe.c) and station files (station_file.c). */
#include "recipe/yaml.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* diagnostics                                                          */

espl_recipe_pos espl__yaml_pos(const yaml_node_t *n)
{
	espl_recipe_pos p = { (unsigned)n->start_mark.line + 1, (unsigned)n->start_mark.column + 1 };
	return p;
}

static void vreport(espl__yaml *y, bool warning, espl_recipe_pos pos, const char *fmt, va_list ap)
{
	char msg[ESPL__YAML_MSG_MAX];

	vsnprintf(msg, sizeof msg, fmt, ap);
	if (!warning) {
		/* line 0: a recipe built from arguments, whose caller says
		 * which command the message is about */
		if (y->errors == 0 && pos.line == 0)
			espl_fail(y->err, y->fail_code, "%s", msg);
		else if (y->errors == 0)
			espl_fail(y->err, y->fail_code, "%s:%u:%u: error: %s", y->file, pos.line,
			          pos.column, msg);
		if (++y->errors > ESPL__YAML_MAX_REPORTED)
			return;
	} else {
		y->warnings++;
	}
	if (y->diag_fn) {
		espl_recipe_diag d = { y->file, pos, warning, msg };
		y->diag_fn(y->diag_ctx, &d);
	}
}

void espl__yaml_error(espl__yaml *y, espl_recipe_pos pos, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(y, false, pos, fmt, ap);
	va_end(ap);
}

void espl__yaml_warn(espl__yaml *y, espl_recipe_pos pos, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(y, true, pos, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* YAML node access                                                     */

yaml_node_t *espl__yaml_node(espl__yaml *y, int index)
{
	return yaml_document_get_node(y->doc, index);
}

bool espl__yaml_is_null(const yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *v = (const char *)n->data.scalar.value;
	return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0;
}

const char *espl__yaml_scalar(const yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE || espl__yaml_is_null(n))
		return NULL;
	return (const char *)n->data.scalar.value;
}

const char *espl__yaml_describe(const yaml_node_t *n, char *buf, size_t len)
{
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (espl__yaml_is_null(n))
		return "nothing";
	const char *v = (const char *)n->data.scalar.value;
	if (strlen(v) > 40)
		snprintf(buf, len, "'%.37s...'", v);
	else
		snprintf(buf, len, "'%s'", v);
	return buf;
}

/* Edit distance with transpositions (optimal string alignment). */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 40 || lb > 40)
		return SIZE_MAX;
	size_t d[41][41];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
			size_t best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < best)
				best = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	return d[la][lb];
}

const char *espl__yaml_closest(const char *word, const char *const *names, size_t n)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX;
	for (size_t i = 0; i < n; i++) {
		size_t d = edit_distance(word, names[i]);
		if (d < best_d) {
			best_d = d;
			best = names[i];
		}
	}
	if (best && (best_d <= 2 || best_d * 3 <= strlen(word)))
		return best;
	return NULL;
}

void espl__yaml_join_names(const char *const *names, size_t n, char *buf, size_t len)
{
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t used = strlen(buf);
		snprintf(buf + used, len - used, "%s%s", i ? ", " : "", names[i]);
	}
}

yaml_node_t *espl__yaml_field(const espl__yaml_fields *f, const char *name)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->names[i], name) == 0)
			return f->values[i];
	return NULL;
}

yaml_node_t *espl__yaml_field_key(const espl__yaml_fields *f, const char *name)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->names[i], name) == 0)
			return f->keys[i];
	return NULL;
}

void espl__yaml_unknown_key(espl__yaml *y, const yaml_node_t *key, const char *in,
                           const char *const *names, size_t n)
{
	const char *k = (const char *)key->data.scalar.value;
	const char *near = espl__yaml_closest(k, names, n);
	if (near) {
		espl__yaml_error(y, espl__yaml_pos(key), "unknown key '%s' %s; did you mean '%s'?", k, in, near);
	} else {
		char list[256];
		espl__yaml_join_names(names, n, list, sizeof list);
		espl__yaml_error(y, espl__yaml_pos(key), "unknown key '%s' %s; expected one of: %s", k, in, list);
	}
}

void espl__yaml_read_fields(espl__yaml *y, yaml_node_t *map, const char *in, espl__yaml_fields *f,
                           yaml_node_t **others, size_t *n_others)
{
	memset(f->keys, 0, sizeof f->keys);
	memset(f->values, 0, sizeof f->values);
	if (n_others)
		*n_others = 0;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = espl__yaml_node(y, p->key), *v = espl__yaml_node(y, p->value);
		char buf[64];
		if (k->type != YAML_SCALAR_NODE) {
			espl__yaml_error(y, espl__yaml_pos(k), "keys must be names, got %s %s", espl__yaml_describe(k, buf, sizeof buf), in);
			continue;
		}
		const char *name = (const char *)k->data.scalar.value;
		size_t i;
		for (i = 0; i < f->n; i++)
			if (strcmp(f->names[i], name) == 0)
				break;
		if (i == f->n) {
			if (others && *n_others < 4)
				others[(*n_others)++] = k;
			else if (!others)
				espl__yaml_unknown_key(y, k, in, f->names, f->n);
			continue;
		}
		if (f->keys[i]) {
			espl__yaml_error(y, espl__yaml_pos(k), "duplicate key '%s' %s (first given at line %u)", name, in,
			         espl__yaml_pos(f->keys[i]).line);
			continue;
		}
		f->keys[i] = k;
		f->values[i] = v;
	}
}

bool espl__yaml_want_mapping(espl__yaml *y, const yaml_node_t *n, const char *what, const char *example)
{
	char buf[64];
	if (n->type == YAML_MAPPING_NODE)
		return true;
	espl__yaml_error(y, espl__yaml_pos(n), "%s: expected a mapping such as %s, got %s", what, example,
	         espl__yaml_describe(n, buf, sizeof buf));
	return false;
}

void espl__yaml_missing_key(espl__yaml *y, const yaml_node_t *map, const char *what, const char *key,
                           const char *example)
{
	espl__yaml_error(y, espl__yaml_pos(map), "%s: missing required key '%s' (for example %s)", what, key, example);
}

bool espl__yaml_string(espl__yaml *y, const yaml_node_t *n, const char *what, const char **out)
{
	char buf[64];
	const char *v = espl__yaml_scalar(n);
	if (!v || v[0] == '\0') {
		espl__yaml_error(y, espl__yaml_pos(n), "%s: expected a string, got %s", what,
		         n->type == YAML_SCALAR_NODE && !espl__yaml_is_null(n) ? "an empty string" : espl__yaml_describe(n, buf, sizeof buf));
		return false;
	}
	*out = v;
	return true;
}

bool espl__yaml_bool(espl__yaml *y, const yaml_node_t *n, const char *what, bool *out)
{
	char buf[64];
	const char *v = espl__yaml_scalar(n);
	if (v && (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)) {
		*out = v[0] == 't';
		return true;
	}
	espl__yaml_error(y, espl__yaml_pos(n), "%s: expected true or false, got %s", what,
	                espl__yaml_describe(n, buf, sizeof buf));
	return false;
}

int espl__yaml_choice(espl__yaml *y, const yaml_node_t *n, const char *what,
                     const char *const *names, size_t count)
{
	char buf[64], list[160];
	const char *v = espl__yaml_scalar(n);
	for (size_t i = 0; v && i < count; i++)
		if (strcmp(v, names[i]) == 0)
			return (int)i;
	list[0] = '\0';
	for (size_t i = 0; i < count; i++) {
		size_t used = strlen(list);
		snprintf(list + used, sizeof list - used, "%s%s", i == 0 ? "" : i + 1 == count ? " or " : ", ",
		         names[i]);
	}
	const char *near = v ? espl__yaml_closest(v, names, count) : NULL;
	if (near)
		espl__yaml_error(y, espl__yaml_pos(n), "%s: expected %s, got %s (did you mean '%s'?)", what, list,
		         espl__yaml_describe(n, buf, sizeof buf), near);
	else
		espl__yaml_error(y, espl__yaml_pos(n), "%s: expected %s, got %s", what, list, espl__yaml_describe(n, buf, sizeof buf));
	return -1;
}


/* ------------------------------------------------------------------ */
/* documents                                                            */

/* Where byte offset off of text is, as line and column (in characters). */
static espl_recipe_pos pos_of_offset(const char *text, size_t len, size_t off)
{
	espl_recipe_pos pos = { 1, 1 };
	for (size_t i = 0; i < off && i < len; i++) {
		if (text[i] == '\n')
			pos.line++, pos.column = 1;
		else if (((unsigned char)text[i] & 0xC0) != 0x80)
			pos.column++;
	}
	return pos;
}

static void syntax_error(espl__yaml *y, const yaml_parser_t *p, const char *text, size_t len)
{
	espl_recipe_pos pos = { (unsigned)p->problem_mark.line + 1, (unsigned)p->problem_mark.column + 1 };
	/* the reader (bad UTF-8, a control character) gives a byte offset and
	 * no mark: without this every such error was reported at 1:1 */
	if (p->error == YAML_READER_ERROR)
		pos = pos_of_offset(text, len, p->problem_offset);
	const char *problem = p->problem ? p->problem : "unknown problem";
	if (p->error == YAML_MEMORY_ERROR)
		espl__yaml_error(y, pos, "out of memory while reading YAML");
	else if (p->context)
		espl__yaml_error(y, pos, "invalid YAML: %s (%s at line %u, column %u)", problem, p->context,
		                (unsigned)p->context_mark.line + 1, (unsigned)p->context_mark.column + 1);
	else
		espl__yaml_error(y, pos, "invalid YAML: %s", problem);
}

unsigned espl__yaml_parse(espl__yaml *y, const char *text, size_t len, const char *empty,
                         void (*root_fn)(espl__yaml *y, yaml_node_t *root, void *ctx), void *ctx)
{
	yaml_parser_t p;
	yaml_document_t doc, extra;

	if (!yaml_parser_initialize(&p)) {
		espl__yaml_error(y, (espl_recipe_pos){ 1, 1 }, "out of memory");
		return y->errors;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	if (!yaml_parser_load(&p, &doc)) {
		syntax_error(y, &p, text, len);
		yaml_parser_delete(&p);
		return y->errors;
	}
	y->doc = &doc;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (!root) {
		espl__yaml_error(y, (espl_recipe_pos){ 1, 1 }, "%s", empty);
	} else {
		if (!yaml_parser_load(&p, &extra)) {
			syntax_error(y, &p, text, len);
		} else {
			yaml_node_t *r2 = yaml_document_get_root_node(&extra);
			if (r2)
				espl__yaml_error(y, espl__yaml_pos(r2),
				                "a second YAML document starts here; a %s holds exactly one",
				                y->what ? y->what : "file");
			yaml_document_delete(&extra);
		}
		if (y->errors == 0)
			root_fn(y, root, ctx);
	}
	yaml_document_delete(&doc);
	y->doc = NULL;
	yaml_parser_delete(&p);
	return y->errors;
}
