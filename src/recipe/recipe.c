/* recipe.c - YAML recipes: parse, validate, prepare; see include/espline/recipe.h. */
#include "espline/recipe.h"
#include "espline/flashmap.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <yaml.h>

#include "recipe/yaml.h"

#define RECIPE_TEXT_MAX (1u << 20)   /* a recipe is a page of YAML, not a firmware */
#define ESP8266_MAX_FLASH (16u << 20) /* the image header cannot declare more */
#define BYTES_PER_MB_RATE 1000000ull  /* esptool's per-MB timeouts use 10^6 */
#define MAX_RETRIES 10
#define MAX_TIMEOUT_MS 3600000u

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

static char *dup_string(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

static uint32_t round_up(uint32_t v, uint32_t to)
{
	return (uint32_t)(((uint64_t)v + to - 1) / to * to);
}

static int sha256_hex(const void *data, size_t len, char out[ESPL_SHA256_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) || n != 32)
		return -1;
	for (unsigned i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

const char *espl_recipe_format_size(uint32_t bytes, char *buf, size_t len)
{
	if (bytes != 0 && bytes % (1u << 20) == 0)
		snprintf(buf, len, "%uMB", bytes >> 20);
	else if (bytes != 0 && bytes % 1024 == 0)
		snprintf(buf, len, "%uKB", bytes >> 10);
	else
		snprintf(buf, len, "0x%x", bytes);
	return buf;
}

/* ------------------------------------------------------------------ */
/* value parsing                                                        */

static int parse_u64_digits(const char **sp, uint64_t *out)
{
	const char *s = *sp;
	uint64_t v = 0;
	int base = 10, digits = 0;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	for (;; s++, digits++) {
		int d;
		if (isdigit((unsigned char)*s))
			d = *s - '0';
		else if (base == 16 && isxdigit((unsigned char)*s))
			d = tolower((unsigned char)*s) - 'a' + 10;
		else
			break;
		v = v * (uint64_t)base + (uint64_t)d;
		if (v > UINT32_MAX)
			return -1;
	}
	if (digits == 0)
		return -1;
	*sp = s;
	*out = v;
	return 0;
}

int espl_recipe_parse_u32(const char *s, uint32_t *out)
{
	uint64_t v, mult = 1;

	if (!s || parse_u64_digits(&s, &v) < 0)
		return -1;
	while (*s == ' ')
		s++;
	if (strcasecmp(s, "KB") == 0 || strcasecmp(s, "K") == 0 || strcasecmp(s, "KiB") == 0)
		mult = 1024;
	else if (strcasecmp(s, "MB") == 0 || strcasecmp(s, "M") == 0 || strcasecmp(s, "MiB") == 0)
		mult = 1024 * 1024;
	else if (*s != '\0')
		return -1;
	if (v * mult > UINT32_MAX)
		return -1;
	*out = (uint32_t)(v * mult);
	return 0;
}

int espl_recipe_parse_duration_ms(const char *s, unsigned *out)
{
	uint64_t v, mult = 1000;

	if (!s || !isdigit((unsigned char)s[0]) || parse_u64_digits(&s, &v) < 0)
		return -1;
	if (strcmp(s, "ms") == 0)
		mult = 1;
	else if (strcmp(s, "s") == 0 || *s == '\0')
		mult = 1000;
	else if (strcmp(s, "m") == 0 || strcmp(s, "min") == 0)
		mult = 60000;
	else
		return -1;
	if (v * mult > UINT_MAX)
		return -1;
	*out = (unsigned)(v * mult);
	return 0;
}

int espl_recipe_parse_oui(const char *s, uint8_t oui[3])
{
	for (int i = 0; i < 3; i++) {
		if (!isxdigit((unsigned char)s[0]) || !isxdigit((unsigned char)s[1]))
			return -1;
		char pair[3] = { s[0], s[1], '\0' };
		oui[i] = (uint8_t)strtoul(pair, NULL, 16);
		s += 2;
		if (i < 2) {
			if (*s != ':' && *s != '-')
				return -1;
			s++;
		}
	}
	return *s == '\0' ? 0 : -1;
}

static const char *const flash_mode_names[] = { "qio", "qout", "dio", "dout" };

const char *espl_recipe_mode_name(int mode)
{
	if (mode == ESPL_FLASH_KEEP)
		return "keep";
	return mode >= 0 && mode < 4 ? flash_mode_names[mode] : "?";
}

static const struct {
	int code;
	const char *name;
} flash_freqs[] = { { ESPL_FREQ_40M, "40m" }, { ESPL_FREQ_26M, "26m" },
                    { ESPL_FREQ_20M, "20m" }, { ESPL_FREQ_80M, "80m" } };

const char *espl_recipe_freq_name(int freq)
{
	if (freq == ESPL_FLASH_KEEP)
		return "keep";
	for (size_t i = 0; i < 4; i++)
		if (flash_freqs[i].code == freq)
			return flash_freqs[i].name;
	return "?";
}

static const char *const step_kind_names[] = {
	[ESPL_STEP_ERASE] = "erase",
	[ESPL_STEP_WRITE] = "write",
	[ESPL_STEP_WRITE_INIT_DATA] = "write_init_data",
	[ESPL_STEP_VERIFY] = "verify",
	[ESPL_STEP_RESET] = "reset",
};
#define N_STEP_KINDS (sizeof step_kind_names / sizeof step_kind_names[0])

const char *espl_step_kind_name(enum espl_step_kind kind)
{
	return (unsigned)kind < N_STEP_KINDS ? step_kind_names[kind] : "?";
}

/* Flash sizes an ESP8266 image header can declare (protocol notes 8.2). */
static bool is_header_flash_size(uint32_t bytes)
{
	for (uint32_t s = 256u << 10; s <= ESP8266_MAX_FLASH; s <<= 1)
		if (bytes == s)
			return true;
	return false;
}

static uint32_t header_code_to_size(uint8_t code)
{
	switch (code) {
	case 0x0: return 512u << 10;
	case 0x1: return 256u << 10;
	case 0x2: return 1u << 20;
	case 0x3: case 0x5: return 2u << 20;
	case 0x4: case 0x6: return 4u << 20;
	case 0x8: return 8u << 20;
	case 0x9: return 16u << 20;
	default: return 0;
	}
}

/* ------------------------------------------------------------------ */
/* diagnostics: recipe/yaml.c, with the recipe being built beside them  */

typedef struct parse_ctx {
	espl_yaml y;
	espl_recipe *r;
} parse_ctx;

static parse_ctx recipe_ctx(const char *file, espl_recipe *r, espl_recipe_diag_fn diag_fn, void *diag_ctx,
                            espl_error *err)
{
	parse_ctx c = { { file, "recipe file", NULL, diag_fn, diag_ctx, err, ESPL_ERECIPE, 0, 0 }, r };
	return c;
}

static bool get_u32(parse_ctx *c, const yaml_node_t *n, const char *what, uint32_t *out)
{
	char buf[64];
	const char *v = espl_yaml_scalar(n);
	if (!v || espl_recipe_parse_u32(v, out) < 0) {
		espl_yaml_error(&c->y, espl_yaml_pos(n), "%s: expected a number (decimal, 0x hex, or with a KB/MB suffix), got %s",
		         what, espl_yaml_describe(n, buf, sizeof buf));
		return false;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* files                                                                */

static char *resolve_path(const char *dir, const char *p)
{
	if (p[0] == '/')
		return dup_string(p);
	size_t n = strlen(dir) + strlen(p) + 2;
	char *out = malloc(n);
	if (out)
		snprintf(out, n, "%s/%s", dir, p);
	return out;
}

/* Resolve and stat a `file:` value; fills f->path, f->size, f->pos. */
static bool get_file(parse_ctx *c, const yaml_node_t *n, const char *what, espl_recipe_file *f)
{
	const char *v;
	struct stat st;

	if (!espl_yaml_string(&c->y, n, what, &v))
		return false;
	f->pos = espl_yaml_pos(n);
	f->path = resolve_path(c->r->dir, v);
	if (!f->path) {
		espl_yaml_error(&c->y, f->pos, "%s: out of memory", what);
		return false;
	}
	if (stat(f->path, &st) < 0) {
		espl_yaml_error(&c->y, f->pos, "%s: cannot read '%s' (resolved to %s): %s", what, v, f->path,
		         strerror(errno));
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		espl_yaml_error(&c->y, f->pos, "%s: '%s' (resolved to %s) is not a regular file", what, v, f->path);
		return false;
	}
	if (st.st_size == 0) {
		espl_yaml_error(&c->y, f->pos, "%s: '%s' (resolved to %s) is empty", what, v, f->path);
		return false;
	}
	if ((uint64_t)st.st_size > ESP8266_MAX_FLASH) {
		espl_yaml_error(&c->y, f->pos, "%s: '%s' is %lld bytes, larger than the largest ESP8266 flash (16MB)",
		         what, v, (long long)st.st_size);
		return false;
	}
	f->size = (uint32_t)st.st_size;
	return true;
}

static bool get_sha256(parse_ctx *c, const yaml_node_t *n, const char *what, espl_recipe_file *f)
{
	char buf[64];
	const char *v = espl_yaml_scalar(n);
	size_t len = v ? strlen(v) : 0;
	bool ok = len == ESPL_SHA256_HEX_LEN;
	for (size_t i = 0; ok && i < len; i++)
		ok = isxdigit((unsigned char)v[i]) != 0;
	if (!ok) {
		espl_yaml_error(&c->y, espl_yaml_pos(n), "%s: expected 64 hex digits (the output of sha256sum), got %s", what,
		         espl_yaml_describe(n, buf, sizeof buf));
		return false;
	}
	for (size_t i = 0; i < len; i++)
		f->pin[i] = (char)tolower((unsigned char)v[i]);
	f->pin[len] = '\0';
	f->pin_pos = espl_yaml_pos(n);
	return true;
}

/* ------------------------------------------------------------------ */
/* top-level sections                                                   */

static void parse_connect(parse_ctx *c, yaml_node_t *n)
{
	static const char *const names[] = { "reset", "baud", "flash_baud", "stub" };
	static const char *const resets[] = { "auto", "none" };
	espl_recipe_connect *cn = &c->r->connect;
	espl_yaml_fields f = { names, 4, { 0 }, { 0 } };
	yaml_node_t *v;

	if (!espl_yaml_want_mapping(&c->y, n, "connect", "{ reset: auto, baud: 115200 }"))
		return;
	espl_yaml_read_fields(&c->y, n, "in connect", &f, NULL, NULL);
	if ((v = espl_yaml_field(&f, "reset"))) {
		int i = espl_yaml_choice(&c->y, v, "connect.reset", resets, 2);
		if (i >= 0) {
			cn->reset = i == 0 ? ESPL_CONNECT_RESET_AUTO : ESPL_CONNECT_RESET_NONE;
			cn->reset_default = false;
		}
	}
	const char *bauds[] = { "baud", "flash_baud" };
	unsigned *targets[] = { &cn->baud, &cn->flash_baud };
	bool *defaults[] = { &cn->baud_default, &cn->flash_baud_default };
	for (int i = 0; i < 2; i++) {
		uint32_t b;
		char what[32];
		snprintf(what, sizeof what, "connect.%s", bauds[i]);
		if (!(v = espl_yaml_field(&f, bauds[i])) || !get_u32(c, v, what, &b))
			continue;
		if (b < 9600 || b > 4000000) {
			espl_yaml_error(&c->y, espl_yaml_pos(v), "%s: expected a baud rate from 9600 to 4000000, got %u", what, b);
			continue;
		}
		*targets[i] = b;
		*defaults[i] = false;
	}
	if ((v = espl_yaml_field(&f, "stub"))) {
		const char *s;
		if (espl_yaml_string(&c->y, v, "connect.stub", &s)) {
			cn->stub_default = false;
			if (strcmp(s, "builtin") != 0) {
				espl_recipe_file tmp = { 0 };
				if (get_file(c, v, "connect.stub", &tmp)) {
					cn->stub = ESPL_STUB_FILE;
					cn->stub_path = tmp.path;
				} else {
					free(tmp.path);
				}
			}
		}
	}
}

static void parse_flash(parse_ctx *c, yaml_node_t *n)
{
	static const char *const names[] = { "size", "mode", "freq" };
	static const char *const modes[] = { "qio", "qout", "dio", "dout", "keep" };
	static const char *const freqs[] = { "40m", "26m", "20m", "80m", "keep" };
	espl_recipe_flash *fl = &c->r->flash;
	espl_yaml_fields f = { names, 3, { 0 }, { 0 } };
	yaml_node_t *v;
	char buf[64];

	if (!espl_yaml_want_mapping(&c->y, n, "flash", "{ size: detect, mode: dio, freq: 40m }"))
		return;
	espl_yaml_read_fields(&c->y, n, "in flash", &f, NULL, NULL);
	if ((v = espl_yaml_field(&f, "size"))) {
		const char *s = espl_yaml_scalar(v);
		uint32_t bytes;
		fl->size_pos = espl_yaml_pos(v);
		if (s && strcmp(s, "detect") == 0) {
			fl->size_mode = ESPL_FLASH_SIZE_DETECT;
			fl->size_default = false;
		} else if (s && strcmp(s, "keep") == 0) {
			fl->size_mode = ESPL_FLASH_SIZE_KEEP;
			fl->size_default = false;
		} else if (s && espl_recipe_parse_u32(s, &bytes) == 0 && is_header_flash_size(bytes)) {
			fl->size_mode = ESPL_FLASH_SIZE_FIXED;
			fl->size = bytes;
			fl->size_default = false;
		} else {
			espl_yaml_error(&c->y, espl_yaml_pos(v), "flash.size: expected detect, keep, 256KB, 512KB, 1MB, 2MB, 4MB, 8MB or 16MB, got %s",
			         espl_yaml_describe(v, buf, sizeof buf));
		}
	}
	if ((v = espl_yaml_field(&f, "mode"))) {
		int i = espl_yaml_choice(&c->y, v, "flash.mode", modes, 5);
		if (i >= 0) {
			fl->mode = i == 4 ? ESPL_FLASH_KEEP : i;
			fl->mode_default = false;
		}
	}
	if ((v = espl_yaml_field(&f, "freq"))) {
		int i = espl_yaml_choice(&c->y, v, "flash.freq", freqs, 5);
		if (i >= 0) {
			fl->freq = i == 4 ? ESPL_FLASH_KEEP : flash_freqs[i].code;
			fl->freq_default = false;
		}
	}
}

/* A single scalar or a list of scalars: calls item() for each. */
static void for_each_item(parse_ctx *c, yaml_node_t *n, const char *what, size_t max,
                          bool (*item)(parse_ctx *, yaml_node_t *, const char *, size_t))
{
	char label[48];
	if (n->type == YAML_SCALAR_NODE) {
		snprintf(label, sizeof label, "%s", what);
		item(c, n, label, 0);
		return;
	}
	if (n->type != YAML_SEQUENCE_NODE) {
		espl_yaml_error(&c->y, espl_yaml_pos(n), "%s: expected a list, got a mapping", what);
		return;
	}
	size_t i = 0;
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++, i++) {
		yaml_node_t *e = espl_yaml_node(&c->y, *it);
		snprintf(label, sizeof label, "%s[%zu]", what, i + 1);
		if (i >= max) {
			espl_yaml_error(&c->y, espl_yaml_pos(e), "%s: at most %zu entries are allowed", what, max);
			return;
		}
		item(c, e, label, i);
	}
}

static bool manufacturer_item(parse_ctx *c, yaml_node_t *n, const char *what, size_t i)
{
	espl_recipe_expect *e = &c->r->expect;
	char buf[64], list[256];
	const char *v = espl_yaml_scalar(n);
	uint32_t id;
	uint8_t byid;

	if (v && espl_recipe_parse_u32(v, &id) == 0 && id <= 0xFF) {
		e->manufacturers[i] = (uint8_t)id;
	} else if (v && espl_flash_manufacturer_by_name(v, &byid) == 0) {
		e->manufacturers[i] = byid;
	} else {
		espl_yaml_error(&c->y, espl_yaml_pos(n), "%s: expected a JEDEC manufacturer id (0x00..0xFF) or one of %s; got %s",
		         what, espl_flash_manufacturer_list(list, sizeof list), espl_yaml_describe(n, buf, sizeof buf));
		return false;
	}
	e->n_manufacturers = i + 1;
	return true;
}

static bool oui_item(parse_ctx *c, yaml_node_t *n, const char *what, size_t i)
{
	espl_recipe_expect *e = &c->r->expect;
	char buf[64];
	const char *v = espl_yaml_scalar(n);
	if (!v || espl_recipe_parse_oui(v, e->ouis[i]) < 0) {
		espl_yaml_error(&c->y, espl_yaml_pos(n), "%s: expected the first three MAC bytes as \"5C:CF:7F\", got %s", what,
		         espl_yaml_describe(n, buf, sizeof buf));
		return false;
	}
	e->n_ouis = i + 1;
	return true;
}

static void parse_expect(parse_ctx *c, yaml_node_t *key, yaml_node_t *n)
{
	static const char *const names[] = { "flash_size_min", "flash_manufacturer", "mac_oui" };
	espl_recipe_expect *e = &c->r->expect;
	espl_yaml_fields f = { names, 3, { 0 }, { 0 } };
	yaml_node_t *v;

	e->pos = espl_yaml_pos(key);
	if (!espl_yaml_want_mapping(&c->y, n, "expect", "{ flash_size_min: 4MB }"))
		return;
	espl_yaml_read_fields(&c->y, n, "in expect", &f, NULL, NULL);
	if ((v = espl_yaml_field(&f, "flash_size_min")) && get_u32(c, v, "expect.flash_size_min", &e->flash_size_min) &&
	    !is_header_flash_size(e->flash_size_min)) {
		char buf[64];
		espl_yaml_error(&c->y, espl_yaml_pos(v), "expect.flash_size_min: expected 256KB, 512KB, 1MB, 2MB, 4MB, 8MB or 16MB, got %s",
		         espl_yaml_describe(v, buf, sizeof buf));
		e->flash_size_min = 0;
	}
	if ((v = espl_yaml_field(&f, "flash_manufacturer")))
		for_each_item(c, v, "expect.flash_manufacturer", ESPL_RECIPE_MAX_LIST, manufacturer_item);
	if ((v = espl_yaml_field(&f, "mac_oui")))
		for_each_item(c, v, "expect.mac_oui", ESPL_RECIPE_MAX_LIST, oui_item);
}

/* ------------------------------------------------------------------ */
/* steps                                                                */

static const char *const step_keys[] = { "erase", "write", "write_init_data", "verify", "reset",
                                         "retries", "timeout" };
#define N_STEP_KEYS (sizeof step_keys / sizeof step_keys[0])

static const char *const write_keys[] = { "file", "address", "sha256", "compress", "skip_unchanged",
                                          "retries", "timeout" };
static const char *const init_keys[] = { "file", "sha256", "blank", "rf_cal", "retries", "timeout" };
static const char *const region_list_keys[] = { "regions", "retries", "timeout" };
static const char *const region_keys[] = { "address", "length" };

static bool keys_contain(const char *const *names, size_t n, const char *k)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], k) == 0)
			return true;
	return false;
}

/* retries/timeout may sit beside the step key or inside its mapping. */
typedef struct step_opts {
	yaml_node_t *retries, *timeout;
} step_opts;

static void take_opt(parse_ctx *c, yaml_node_t **slot, yaml_node_t *key, yaml_node_t *value,
                     const char *name)
{
	if (!value)
		return;
	if (*slot) {
		espl_yaml_error(&c->y, espl_yaml_pos(key), "'%s' is given twice for this step (also at line %u)", name,
		         espl_yaml_pos(*slot).line);
		return;
	}
	*slot = value;
}

static void apply_opts(parse_ctx *c, const step_opts *o, espl_step *s)
{
	char buf[64];
	if (o->retries) {
		uint32_t n;
		const char *v = espl_yaml_scalar(o->retries);
		if (!v || espl_recipe_parse_u32(v, &n) < 0 || n > MAX_RETRIES)
			espl_yaml_error(&c->y, espl_yaml_pos(o->retries), "%s.retries: expected a whole number from 0 to %d, got %s",
			         espl_step_kind_name(s->kind), MAX_RETRIES, espl_yaml_describe(o->retries, buf, sizeof buf));
		else {
			s->retries = n;
			s->retries_default = false;
		}
	}
	if (o->timeout) {
		unsigned ms;
		const char *v = espl_yaml_scalar(o->timeout);
		if (!v || espl_recipe_parse_duration_ms(v, &ms) < 0 || ms == 0 || ms > MAX_TIMEOUT_MS)
			espl_yaml_error(&c->y, espl_yaml_pos(o->timeout),
			         "%s.timeout: expected a duration from 1ms to 3600s such as 30s or 500ms, got %s",
			         espl_step_kind_name(s->kind), espl_yaml_describe(o->timeout, buf, sizeof buf));
		else {
			s->timeout_ms = ms;
			s->timeout_default = false;
		}
	}
}

/* regions: [ {address, length}, ... ] for erase (sector-aligned) or verify. */
static void parse_regions(parse_ctx *c, yaml_node_t *n, const char *kind, bool sector_aligned,
                          espl_region **out, size_t *count)
{
	char what[48], buf[64];
	if (n->type != YAML_SEQUENCE_NODE || n->data.sequence.items.top == n->data.sequence.items.start) {
		espl_yaml_error(&c->y, espl_yaml_pos(n), "%s.regions: expected a list of { address, length }, got %s", kind,
		         n->type == YAML_SEQUENCE_NODE ? "an empty list" : espl_yaml_describe(n, buf, sizeof buf));
		return;
	}
	size_t total = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	*out = calloc(total, sizeof **out);
	if (!*out) {
		espl_yaml_error(&c->y, espl_yaml_pos(n), "out of memory");
		return;
	}
	for (size_t i = 0; i < total; i++) {
		yaml_node_t *e = espl_yaml_node(&c->y, n->data.sequence.items.start[i]);
		espl_yaml_fields f = { region_keys, 2, { 0 }, { 0 } };
		espl_region *r = &(*out)[*count];
		yaml_node_t *a, *l;
		bool ok = true;

		snprintf(what, sizeof what, "%s.regions[%zu]", kind, i + 1);
		if (!espl_yaml_want_mapping(&c->y, e, what, "{ address: 0x3FC000, length: 4KB }"))
			continue;
		snprintf(buf, sizeof buf, "in %s", what);
		espl_yaml_read_fields(&c->y, e, buf, &f, NULL, NULL);
		if (!(a = espl_yaml_field(&f, "address"))) {
			espl_yaml_missing_key(&c->y, e, what, "address", "address: 0x3FC000");
			ok = false;
		}
		if (!(l = espl_yaml_field(&f, "length"))) {
			espl_yaml_missing_key(&c->y, e, what, "length", "length: 4KB");
			ok = false;
		}
		if (!ok)
			continue;
		snprintf(buf, sizeof buf, "%s.address", what);
		ok = get_u32(c, a, buf, &r->address);
		snprintf(buf, sizeof buf, "%s.length", what);
		ok = get_u32(c, l, buf, &r->length) && ok;
		if (!ok)
			continue;
		r->pos = espl_yaml_pos(e);
		if (r->length == 0) {
			espl_yaml_error(&c->y, espl_yaml_pos(l), "%s.length: must not be 0", what);
			continue;
		}
		if (sector_aligned && r->address % ESPL_RECIPE_SECTOR) {
			espl_yaml_error(&c->y, espl_yaml_pos(a), "%s.address: 0x%x is not aligned to a 4 KiB sector (0x1000); erase works on whole sectors",
			         what, r->address);
			continue;
		}
		if (sector_aligned && r->length % ESPL_RECIPE_SECTOR) {
			espl_yaml_error(&c->y, espl_yaml_pos(l), "%s.length: 0x%x is not a multiple of 4 KiB (0x1000); erase works on whole sectors",
			         what, r->length);
			continue;
		}
		if ((uint64_t)r->address + r->length > ESP8266_MAX_FLASH) {
			espl_yaml_error(&c->y, espl_yaml_pos(e), "%s: 0x%x + 0x%x ends past 16MB, the largest ESP8266 flash", what,
			         r->address, r->length);
			continue;
		}
		(*count)++;
	}
}

static void parse_erase(parse_ctx *c, yaml_node_t *v, espl_step *s, step_opts *o)
{
	char buf[64];
	const char *sv = espl_yaml_scalar(v);
	if (sv && strcmp(sv, "chip") == 0) {
		s->erase.chip = true;
		return;
	}
	if (v->type != YAML_MAPPING_NODE) {
		espl_yaml_error(&c->y, espl_yaml_pos(v), "erase: expected 'chip' or { regions: [ { address, length }, ... ] }, got %s",
		         espl_yaml_describe(v, buf, sizeof buf));
		return;
	}
	espl_yaml_fields f = { region_list_keys, 3, { 0 }, { 0 } };
	espl_yaml_read_fields(&c->y, v, "in erase", &f, NULL, NULL);
	take_opt(c, &o->retries, espl_yaml_field_key(&f, "retries"), espl_yaml_field(&f, "retries"), "retries");
	take_opt(c, &o->timeout, espl_yaml_field_key(&f, "timeout"), espl_yaml_field(&f, "timeout"), "timeout");
	yaml_node_t *r = espl_yaml_field(&f, "regions");
	if (!r)
		espl_yaml_missing_key(&c->y, v, "erase", "regions", "regions: [ { address: 0x3FB000, length: 4KB } ]");
	else
		parse_regions(c, r, "erase", true, &s->erase.regions, &s->erase.n_regions);
}

static void parse_verify(parse_ctx *c, yaml_node_t *v, espl_step *s, step_opts *o)
{
	char buf[64];
	const char *sv = espl_yaml_scalar(v);
	if (sv && strcmp(sv, "md5") == 0) {
		s->verify.all = true;
		return;
	}
	if (v->type != YAML_MAPPING_NODE) {
		espl_yaml_error(&c->y, espl_yaml_pos(v), "verify: expected 'md5' or { regions: [ { address, length }, ... ] }, got %s",
		         espl_yaml_describe(v, buf, sizeof buf));
		return;
	}
	espl_yaml_fields f = { region_list_keys, 3, { 0 }, { 0 } };
	espl_yaml_read_fields(&c->y, v, "in verify", &f, NULL, NULL);
	take_opt(c, &o->retries, espl_yaml_field_key(&f, "retries"), espl_yaml_field(&f, "retries"), "retries");
	take_opt(c, &o->timeout, espl_yaml_field_key(&f, "timeout"), espl_yaml_field(&f, "timeout"), "timeout");
	yaml_node_t *r = espl_yaml_field(&f, "regions");
	if (!r)
		espl_yaml_missing_key(&c->y, v, "verify", "regions", "regions: [ { address: 0x0, length: 64KB } ]");
	else
		parse_regions(c, r, "verify", false, &s->verify.regions, &s->verify.n_regions);
}

static void parse_write(parse_ctx *c, yaml_node_t *v, espl_step *s, step_opts *o)
{
	espl_yaml_fields f = { write_keys, 7, { 0 }, { 0 } };
	yaml_node_t *x;

	if (!espl_yaml_want_mapping(&c->y, v, "write", "{ file: app.bin, address: 0x0 }"))
		return;
	espl_yaml_read_fields(&c->y, v, "in write", &f, NULL, NULL);
	take_opt(c, &o->retries, espl_yaml_field_key(&f, "retries"), espl_yaml_field(&f, "retries"), "retries");
	take_opt(c, &o->timeout, espl_yaml_field_key(&f, "timeout"), espl_yaml_field(&f, "timeout"), "timeout");
	if (!(x = espl_yaml_field(&f, "file")))
		espl_yaml_missing_key(&c->y, v, "write", "file", "file: firmware.bin");
	else
		get_file(c, x, "write.file", &s->write.file);
	if (!(x = espl_yaml_field(&f, "address"))) {
		espl_yaml_missing_key(&c->y, v, "write", "address", "address: 0x0");
	} else if (get_u32(c, x, "write.address", &s->write.address)) {
		s->write.address_pos = espl_yaml_pos(x);
		if (s->write.address % 4)
			espl_yaml_error(&c->y, espl_yaml_pos(x), "write.address: 0x%x is not 4-byte aligned; the flasher writes whole 32-bit words",
			         s->write.address);
		else if (s->write.address % ESPL_RECIPE_SECTOR)
			espl_yaml_warn(&c->y, espl_yaml_pos(x), "write.address: 0x%x is not at a 4 KiB sector boundary; bytes 0x%x..0x%x of its sector are erased too",
			        s->write.address, s->write.address & ~(ESPL_RECIPE_SECTOR - 1), s->write.address - 1);
	}
	if ((x = espl_yaml_field(&f, "sha256")))
		get_sha256(c, x, "write.sha256", &s->write.file);
	if ((x = espl_yaml_field(&f, "compress")) && espl_yaml_bool(&c->y, x, "write.compress", &s->write.compress))
		s->write.compress_default = false;
	if ((x = espl_yaml_field(&f, "skip_unchanged")) && espl_yaml_bool(&c->y, x, "write.skip_unchanged", &s->write.skip_unchanged))
		s->write.skip_unchanged_default = false;
}

static void parse_init_data(parse_ctx *c, yaml_node_t *v, espl_step *s, step_opts *o)
{
	static const char *const rf[] = { "keep", "erase" };
	espl_yaml_fields f = { init_keys, 6, { 0 }, { 0 } };
	yaml_node_t *x;

	if (!espl_yaml_want_mapping(&c->y, v, "write_init_data", "{ file: esp_init_data_default.bin }"))
		return;
	espl_yaml_read_fields(&c->y, v, "in write_init_data", &f, NULL, NULL);
	take_opt(c, &o->retries, espl_yaml_field_key(&f, "retries"), espl_yaml_field(&f, "retries"), "retries");
	take_opt(c, &o->timeout, espl_yaml_field_key(&f, "timeout"), espl_yaml_field(&f, "timeout"), "timeout");
	if (!(x = espl_yaml_field(&f, "file")))
		espl_yaml_missing_key(&c->y, v, "write_init_data", "file", "file: esp_init_data_default.bin");
	else if (get_file(c, x, "write_init_data.file", &s->init_data.file) &&
	         s->init_data.file.size > ESPL_INIT_DATA_MAX)
		espl_yaml_error(&c->y, espl_yaml_pos(x), "write_init_data.file: %s is %u bytes; init data must fit in one 4 KiB sector (esp_init_data_default.bin is 128 bytes)",
		         s->init_data.file.path, s->init_data.file.size);
	if ((x = espl_yaml_field(&f, "sha256")))
		get_sha256(c, x, "write_init_data.sha256", &s->init_data.file);
	if ((x = espl_yaml_field(&f, "blank")) && espl_yaml_bool(&c->y, x, "write_init_data.blank", &s->init_data.blank))
		s->init_data.blank_default = false;
	if ((x = espl_yaml_field(&f, "rf_cal"))) {
		int i = espl_yaml_choice(&c->y, x, "write_init_data.rf_cal", rf, 2);
		if (i >= 0) {
			s->init_data.rf_cal = i ? ESPL_RF_CAL_ERASE : ESPL_RF_CAL_KEEP;
			s->init_data.rf_cal_default = false;
		}
	}
}

static void parse_reset(parse_ctx *c, yaml_node_t *v, espl_step *s)
{
	static const char *const modes[] = { "run", "stay" };
	int i = espl_yaml_choice(&c->y, v, "reset", modes, 2);
	s->reset.run = i != 1;
}

/* A step key the user put beside the step instead of inside it. */
static bool explain_misplaced(parse_ctx *c, yaml_node_t *k, const espl_step *s, bool have_kind)
{
	const char *name = (const char *)k->data.scalar.value;
	const char *const *inner = NULL;
	size_t n = 0;
	if (strcmp(name, "expect") == 0) {
		espl_yaml_error(&c->y, espl_yaml_pos(k), "'expect' is a top-level key, not a step: it is checked once per unit before any step runs");
		return true;
	}
	if (!have_kind)
		return false;
	switch (s->kind) {
	case ESPL_STEP_WRITE: inner = write_keys; n = 5; break;
	case ESPL_STEP_WRITE_INIT_DATA: inner = init_keys; n = 4; break;
	case ESPL_STEP_ERASE: case ESPL_STEP_VERIFY: inner = region_list_keys; n = 1; break;
	default: break;
	}
	if (inner && keys_contain(inner, n, name)) {
		espl_yaml_error(&c->y, espl_yaml_pos(k), "'%s' belongs inside %s: indent it under '%s:' (or write %s: { %s: ... })",
		         name, espl_step_kind_name(s->kind), espl_step_kind_name(s->kind),
		         espl_step_kind_name(s->kind), name);
		return true;
	}
	return false;
}

static void set_step_defaults(espl_step *s)
{
	s->retries_default = s->timeout_default = true;
	s->write.compress = true;
	s->write.compress_default = s->write.skip_unchanged_default = true;
	s->init_data.blank = true;
	s->init_data.rf_cal = ESPL_RF_CAL_ERASE;
	s->init_data.blank_default = s->init_data.rf_cal_default = true;
	switch (s->kind) {
	case ESPL_STEP_WRITE: case ESPL_STEP_WRITE_INIT_DATA: s->retries = 2; break;
	default: s->retries = 1; break;
	}
}

static void parse_step(parse_ctx *c, yaml_node_t *item, unsigned number, espl_step *s)
{
	char buf[64], in[32];
	yaml_node_t *others[4];
	size_t n_others = 0;
	espl_yaml_fields f = { step_keys, N_STEP_KEYS, { 0 }, { 0 } };
	int kind = -1;
	step_opts o = { NULL, NULL };

	s->number = number;
	s->pos = espl_yaml_pos(item);
	if (item->type != YAML_MAPPING_NODE) {
		espl_yaml_error(&c->y, espl_yaml_pos(item), "steps[%u]: expected a step such as '- verify: md5', got %s", number,
		         espl_yaml_describe(item, buf, sizeof buf));
		return;
	}
	snprintf(in, sizeof in, "in steps[%u]", number);
	espl_yaml_read_fields(&c->y, item, in, &f, others, &n_others);
	for (size_t i = 0; i < N_STEP_KINDS; i++) {
		if (!f.keys[i])
			continue;
		if (kind >= 0) {
			espl_yaml_error(&c->y, espl_yaml_pos(f.keys[i]), "steps[%u] has both '%s' and '%s'; give each step its own list item (- %s: ...)",
			         number, step_keys[kind], step_keys[i], step_keys[i]);
			continue;
		}
		kind = (int)i;
	}
	if (kind >= 0) {
		s->kind = (enum espl_step_kind)kind;
		s->pos = espl_yaml_pos(f.keys[kind]);
	}
	set_step_defaults(s);
	for (size_t i = 0; i < n_others; i++)
		if (!explain_misplaced(c, others[i], s, kind >= 0))
			espl_yaml_unknown_key(&c->y, others[i], in, step_keys, N_STEP_KEYS);
	if (kind < 0) {
		if (n_others == 0)
			espl_yaml_error(&c->y, espl_yaml_pos(item), "steps[%u]: expected one of erase, write, write_init_data, verify or reset",
			         number);
		return;
	}
	o.retries = espl_yaml_field(&f, "retries");
	o.timeout = espl_yaml_field(&f, "timeout");
	yaml_node_t *v = f.values[kind];
	switch (s->kind) {
	case ESPL_STEP_ERASE: parse_erase(c, v, s, &o); break;
	case ESPL_STEP_WRITE: parse_write(c, v, s, &o); break;
	case ESPL_STEP_WRITE_INIT_DATA: parse_init_data(c, v, s, &o); break;
	case ESPL_STEP_VERIFY: parse_verify(c, v, s, &o); break;
	case ESPL_STEP_RESET: parse_reset(c, v, s); break;
	}
	apply_opts(c, &o, s);
}

/* ------------------------------------------------------------------ */
/* default timeouts: generous multiples of the real part's worst case   */

static unsigned secs_ms(uint64_t bytes, unsigned secs_per_mb, unsigned floor_s)
{
	uint64_t ms = (bytes * secs_per_mb * 1000 + BYTES_PER_MB_RATE - 1) / BYTES_PER_MB_RATE;
	ms = (ms + 999) / 1000 * 1000;
	if (ms < floor_s * 1000ull)
		ms = floor_s * 1000ull;
	return ms > MAX_TIMEOUT_MS ? MAX_TIMEOUT_MS : (unsigned)ms;
}

/* Bytes written by a step, as the flash sees them (init data: its sector,
 * plus the blank sector). */
static uint64_t step_write_bytes(const espl_step *s)
{
	if (s->kind == ESPL_STEP_WRITE)
		return round_up(s->write.file.size, 4);
	if (s->kind == ESPL_STEP_WRITE_INIT_DATA)
		return round_up(s->init_data.file.size, 4) + (s->init_data.blank ? ESPL_RECIPE_SECTOR : 0);
	return 0;
}

static void fill_default_timeouts(espl_recipe *r)
{
	uint64_t written = 0;
	r->connect.timeouts_baud = r->connect.flash_baud;
	for (size_t i = 0; i < r->n_steps; i++) {
		espl_step *s = &r->steps[i];
		uint64_t bytes = 0;
		written += step_write_bytes(s);
		if (!s->timeout_default)
			continue;
		switch (s->kind) {
		case ESPL_STEP_ERASE:
			for (size_t k = 0; k < s->erase.n_regions; k++)
				bytes += s->erase.regions[k].length;
			/* esptool: 120 s for a chip erase, 30 s/MB for regions */
			s->timeout_ms = s->erase.chip ? 120000 : secs_ms(bytes, 30, 10);
			break;
		case ESPL_STEP_WRITE:
		case ESPL_STEP_WRITE_INIT_DATA: {
			/* erase+program at 40 s/MB (esptool) plus the wire time of
			 * the uncompressed bytes at flash_baud, 10 bits a byte */
			uint64_t b = step_write_bytes(s);
			uint64_t wire_ms = b * 10 * 1000 / r->connect.flash_baud;
			s->timeout_ms = secs_ms(b, 40, 10) + (unsigned)((wire_ms + 999) / 1000 * 1000);
			break;
		}
		case ESPL_STEP_VERIFY:
			if (s->verify.all)
				bytes = written;
			for (size_t k = 0; k < s->verify.n_regions; k++)
				bytes += s->verify.regions[k].length;
			s->timeout_ms = secs_ms(bytes, 8, 10); /* esptool: 8 s/MB for MD5 */
			break;
		case ESPL_STEP_RESET:
			s->timeout_ms = 5000;
			break;
		}
	}
}

/* ------------------------------------------------------------------ */
/* layout: bounds, overlaps, erase-after-write, verify coverage         */

enum op_kind { OP_WRITE, OP_ERASE };

typedef struct flash_op {
	enum op_kind kind;
	uint32_t start, end;       /* exact bytes [start, end) */
	bool floating;             /* init data whose address waits for detection */
	bool verified;
	const espl_step *step;
	char what[96];             /* "write of app.bin", "init data x.bin", ... */
} flash_op;

typedef struct layout {
	flash_op ops[256];
	size_t n;
	bool chip_erased;
	bool write_rejected;        /* a write was reported as an error already */
	uint32_t limit;
	const char *limit_why;
} layout;

static uint32_t sector_floor(uint32_t a) { return a & ~(ESPL_RECIPE_SECTOR - 1); }

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static void describe_op(const flash_op *o, char *buf, size_t len)
{
	snprintf(buf, len, "step %u (%s, line %u) at 0x%x..0x%x", o->step->number,
	         espl_step_kind_name(o->step->kind), o->step->pos.line, o->start, o->end - 1);
}

static bool bounds_ok(parse_ctx *c, const layout *l, uint64_t end, espl_recipe_pos pos,
                      const char *what)
{
	char lim[16];
	if (end <= l->limit)
		return true;
	espl_yaml_error(&c->y, pos, "%s ends at 0x%llx, past the end of the smallest allowed flash (%s, %s)", what,
	         (unsigned long long)end, espl_recipe_format_size(l->limit, lim, sizeof lim), l->limit_why);
	return false;
}

/* The stub erases whole sectors before writing, so two writes (or a write
 * and a later erase) must not share a sector. */
static bool overlap_ok(parse_ctx *c, const layout *l, enum op_kind kind, uint32_t start,
                       uint64_t end, espl_recipe_pos pos, const char *what)
{
	char buf[160];
	uint32_t s0 = sector_floor(start);
	uint64_t s1 = (end + ESPL_RECIPE_SECTOR - 1) / ESPL_RECIPE_SECTOR * ESPL_RECIPE_SECTOR;
	for (size_t i = 0; i < l->n; i++) {
		const flash_op *o = &l->ops[i];
		if (o->kind != OP_WRITE || o->floating)
			continue;
		if (s0 < round_up(o->end, ESPL_RECIPE_SECTOR) && sector_floor(o->start) < s1) {
			describe_op(o, buf, sizeof buf);
			if (kind == OP_WRITE)
				espl_yaml_error(&c->y, pos, "%s (0x%x..0x%llx) overlaps %s; writes are erased in 4 KiB sectors, so two writes must not share a sector",
				         what, start, (unsigned long long)end - 1, buf);
			else
				espl_yaml_error(&c->y, pos, "%s (0x%x..0x%llx) would erase what %s wrote", what, start,
				         (unsigned long long)end - 1, buf);
			return false;
		}
	}
	return true;
}

static void add_op(parse_ctx *c, layout *l, enum op_kind kind, uint32_t start, uint32_t len,
                   const espl_step *s, espl_recipe_pos pos, const char *what, bool floating)
{
	uint64_t end = (uint64_t)start + len;

	if (!floating && (!bounds_ok(c, l, end, pos, what) || !overlap_ok(c, l, kind, start, end, pos, what))) {
		l->write_rejected |= kind == OP_WRITE;
		return;
	}
	if (l->n == sizeof l->ops / sizeof l->ops[0]) {
		espl_yaml_error(&c->y, pos, "too many flash regions in one recipe (at most %zu)", l->n);
		return;
	}
	flash_op *o = &l->ops[l->n++];
	o->kind = kind;
	o->start = start;
	o->end = (uint32_t)end;
	o->floating = floating;
	o->verified = false;
	o->step = s;
	snprintf(o->what, sizeof o->what, "%s", what);
}

/* Is [start, end) entirely made of bytes a write or an erase defined? */
static bool covered(const layout *l, uint32_t start, uint32_t end)
{
	if (l->chip_erased)
		return true;
	while (start < end) {
		bool moved = false;
		for (size_t i = 0; i < l->n; i++)
			if (!l->ops[i].floating && l->ops[i].start <= start && start < l->ops[i].end) {
				start = l->ops[i].end;
				moved = true;
			}
		if (!moved)
			return false;
	}
	return true;
}

/* Mark writes whose bytes all lie inside regions[] as verified.  Floating
 * writes cannot be placed yet: the check at run time decides for them. */
static void mark_verified(layout *l, const espl_region *regions, size_t n)
{
	for (size_t i = 0; i < l->n; i++) {
		flash_op *o = &l->ops[i];
		uint32_t at = o->start;
		bool moved = true;
		if (o->kind != OP_WRITE)
			continue;
		if (o->floating) {
			o->verified = true;
			continue;
		}
		while (at < o->end && moved) {
			moved = false;
			for (size_t k = 0; k < n; k++)
				if (regions[k].address <= at && at < regions[k].address + regions[k].length) {
					at = regions[k].address + regions[k].length;
					moved = true;
				}
		}
		if (at >= o->end)
			o->verified = true;
	}
}

static void layout_verify(parse_ctx *c, layout *l, const espl_step *s)
{
	if (s->verify.all) {
		bool any = false;
		for (size_t i = 0; i < l->n; i++)
			if (l->ops[i].kind == OP_WRITE) {
				l->ops[i].verified = true;
				any = true;
			}
		/* A write already reported as an error is no second error here. */
		if (!any && !l->write_rejected)
			espl_yaml_error(&c->y, s->pos, "verify: md5 has nothing to check: no write comes before it");
		return;
	}
	for (size_t k = 0; k < s->verify.n_regions; k++) {
		const espl_region *r = &s->verify.regions[k];
		char what[64];
		snprintf(what, sizeof what, "verify region 0x%x..0x%x", r->address, r->address + r->length - 1);
		if (bounds_ok(c, l, (uint64_t)r->address + r->length, r->pos, what) &&
		    !covered(l, r->address, r->address + r->length)) {
			bool floating = false;
			for (size_t i = 0; i < l->n; i++)
				floating |= l->ops[i].floating;
			if (!floating)
				espl_yaml_error(&c->y, r->pos, "%s includes bytes no earlier step wrote or erased, so their MD5 cannot be known",
				         what);
		}
	}
	mark_verified(l, s->verify.regions, s->verify.n_regions);
}

static void layout_init_data(parse_ctx *c, layout *l, const espl_step *s, uint32_t system_size)
{
	espl_system_area a = { 0, 0, 0, 0 };
	char what[96];
	bool floating = system_size == 0 || espl_system_area_for(system_size, &a, NULL) < 0;

	if (s->init_data.rf_cal == ESPL_RF_CAL_ERASE)
		add_op(c, l, OP_ERASE, a.rf_cal, ESPL_RECIPE_SECTOR, s, s->pos, "RF calibration sector", floating);
	snprintf(what, sizeof what, "init data %s", base_name(s->init_data.file.path));
	add_op(c, l, OP_WRITE, a.init_data, round_up(s->init_data.file.size, 4), s, s->pos, what, floating);
	if (s->init_data.blank)
		add_op(c, l, OP_WRITE, a.blank, ESPL_RECIPE_SECTOR, s, s->pos, "blank system-param sector", floating);
}

static void layout_erase(parse_ctx *c, layout *l, const espl_step *s)
{
	if (s->erase.chip) {
		for (size_t k = 0; k < l->n; k++)
			if (l->ops[k].kind == OP_WRITE) {
				char buf[160];
				describe_op(&l->ops[k], buf, sizeof buf);
				espl_yaml_error(&c->y, s->pos, "erase: chip would erase what %s wrote", buf);
				break;
			}
		l->chip_erased = true;
	}
	for (size_t k = 0; k < s->erase.n_regions; k++)
		add_op(c, l, OP_ERASE, s->erase.regions[k].address, s->erase.regions[k].length, s,
		       s->erase.regions[k].pos, "erase region", false);
}

/* The whole layout for a unit whose system area ends at system_size (0 =
 * unknown until detection) and whose flash ends at limit. */
static void check_layout(parse_ctx *c, const espl_recipe *r, uint32_t system_size, uint32_t limit,
                         const char *limit_why)
{
	layout *l = calloc(1, sizeof *l);
	const espl_step *reported = NULL;

	if (!l) {
		espl_yaml_error(&c->y, (espl_recipe_pos){ 1, 1 }, "out of memory");
		return;
	}
	l->limit = limit;
	l->limit_why = limit_why;
	for (size_t i = 0; i < r->n_steps; i++) {
		const espl_step *s = &r->steps[i];
		char what[96];
		switch (s->kind) {
		case ESPL_STEP_ERASE:
			layout_erase(c, l, s);
			break;
		case ESPL_STEP_WRITE:
			if (!s->write.file.path)
				break;
			snprintf(what, sizeof what, "write of %s", base_name(s->write.file.path));
			add_op(c, l, OP_WRITE, s->write.address, round_up(s->write.file.size, 4), s,
			       s->write.address_pos, what, false);
			if (s->write.skip_unchanged && l->chip_erased)
				espl_yaml_warn(&c->y, s->pos, "write.skip_unchanged has no effect after erase: chip (every region was just erased)");
			break;
		case ESPL_STEP_WRITE_INIT_DATA:
			if (s->init_data.file.path)
				layout_init_data(c, l, s, system_size);
			break;
		case ESPL_STEP_VERIFY:
			layout_verify(c, l, s);
			break;
		case ESPL_STEP_RESET:
			break;
		}
	}
	for (size_t i = 0; i < l->n; i++) {
		const flash_op *o = &l->ops[i];
		if (o->kind != OP_WRITE || o->verified || o->step == reported)
			continue;
		espl_yaml_error(&c->y, o->step->pos, "%s is never verified: add '- verify: md5' after it (a unit passes only when every written region is verified)",
		         o->what);
		reported = o->step;
	}
	free(l);
}

static void check_steps(parse_ctx *c, espl_recipe *r, yaml_node_t *steps_key)
{
	size_t resets = 0;
	for (size_t i = 0; i < r->n_steps; i++) {
		const espl_step *s = &r->steps[i];
		if (s->kind == ESPL_STEP_RESET && i + 1 < r->n_steps)
			espl_yaml_error(&c->y, r->steps[i + 1].pos, "%s comes after reset (line %u); reset must be the last step",
			         espl_step_kind_name(r->steps[i + 1].kind), s->pos.line);
		resets += s->kind == ESPL_STEP_RESET;
	}
	if (resets == 0 && r->n_steps > 0)
		espl_yaml_warn(&c->y, espl_yaml_pos(steps_key), "no reset step: units stay in the bootloader after programming (add '- reset: run' to start the application)");

	if (r->flash.size_mode == ESPL_FLASH_SIZE_FIXED && r->expect.flash_size_min &&
	    r->expect.flash_size_min < r->flash.size) {
		char a[16], b[16];
		espl_yaml_warn(&c->y, r->flash.size_pos, "flash.size is %s but expect.flash_size_min lets %s units through; they will fail (raise flash_size_min to %s)",
		        espl_recipe_format_size(r->flash.size, a, sizeof a),
		        espl_recipe_format_size(r->expect.flash_size_min, b, sizeof b), a);
	}
	uint32_t limit = ESP8266_MAX_FLASH;
	const char *why = "the largest the ESP8266 can address";
	if (r->flash.size_mode == ESPL_FLASH_SIZE_FIXED) {
		limit = r->flash.size;
		why = "flash.size";
	} else if (r->expect.flash_size_min) {
		limit = r->expect.flash_size_min;
		why = "expect.flash_size_min";
	}
	check_layout(c, r, espl_recipe_min_flash_size(r), limit, why);
}

/* ------------------------------------------------------------------ */
/* the document                                                         */

static void parse_steps(parse_ctx *c, yaml_node_t *n)
{
	char buf[64];
	if (n->type != YAML_SEQUENCE_NODE) {
		espl_yaml_error(&c->y, espl_yaml_pos(n), "steps: expected a list of steps (- erase: chip, - write: {...}, ...), got %s",
		         espl_yaml_describe(n, buf, sizeof buf));
		return;
	}
	size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (count == 0) {
		espl_yaml_error(&c->y, espl_yaml_pos(n), "steps: the list is empty; a recipe needs at least one step");
		return;
	}
	c->r->steps = calloc(count, sizeof *c->r->steps);
	if (!c->r->steps) {
		espl_yaml_error(&c->y, espl_yaml_pos(n), "out of memory");
		return;
	}
	c->r->n_steps = count;
	for (size_t i = 0; i < count; i++)
		parse_step(c, espl_yaml_node(&c->y, n->data.sequence.items.start[i]), (unsigned)i + 1, &c->r->steps[i]);
}

static void set_recipe_defaults(espl_recipe *r)
{
	r->connect.reset = ESPL_CONNECT_RESET_AUTO;
	r->connect.baud = 115200;
	r->connect.flash_baud = 460800;
	r->connect.stub = ESPL_STUB_BUILTIN;
	r->connect.reset_default = r->connect.baud_default = true;
	r->connect.flash_baud_default = r->connect.stub_default = true;
	r->flash.size_mode = ESPL_FLASH_SIZE_DETECT;
	r->flash.mode = ESPL_FLASH_KEEP;
	r->flash.freq = ESPL_FLASH_KEEP;
	r->flash.size_default = r->flash.mode_default = r->flash.freq_default = true;
}

static void parse_root(parse_ctx *c, yaml_node_t *root)
{
	static const char *const names[] = { "recipe", "chip", "connect", "flash", "expect", "steps" };
	static const char *const chips[] = { "esp8266" };
	espl_yaml_fields f = { names, 6, { 0 }, { 0 } };
	yaml_node_t *v;
	char buf[64];

	if (root->type != YAML_MAPPING_NODE) {
		espl_yaml_error(&c->y, espl_yaml_pos(root), "expected a mapping with recipe, chip and steps at the top level, got %s",
		         espl_yaml_describe(root, buf, sizeof buf));
		return;
	}
	espl_yaml_read_fields(&c->y, root, "at the top level", &f, NULL, NULL);
	if (!(v = espl_yaml_field(&f, "recipe")))
		espl_yaml_missing_key(&c->y, root, "recipe", "recipe", "recipe: nodemcu-golden");
	else {
		const char *name;
		if (espl_yaml_string(&c->y, v, "recipe", &name) && !(c->r->name = dup_string(name)))
			espl_yaml_error(&c->y, espl_yaml_pos(v), "out of memory");
	}
	if (!(v = espl_yaml_field(&f, "chip")))
		espl_yaml_missing_key(&c->y, root, "recipe", "chip", "chip: esp8266");
	else
		espl_yaml_choice(&c->y, v, "chip", chips, 1);
	/* connect first: write timeouts depend on flash_baud */
	if ((v = espl_yaml_field(&f, "connect")))
		parse_connect(c, v);
	if ((v = espl_yaml_field(&f, "flash")))
		parse_flash(c, v);
	if ((v = espl_yaml_field(&f, "expect")))
		parse_expect(c, espl_yaml_field_key(&f, "expect"), v);
	if (!(v = espl_yaml_field(&f, "steps"))) {
		espl_yaml_missing_key(&c->y, root, "recipe", "steps", "steps: [ - write: {...}, - verify: md5 ]");
		return;
	}
	parse_steps(c, v);
	fill_default_timeouts(c->r);
	if (c->y.errors == 0)
		check_steps(c, c->r, espl_yaml_field_key(&f, "steps"));
}

static void parse_root_cb(espl_yaml *y, yaml_node_t *root, void *ctx)
{
	(void)y;
	parse_root(ctx, root);
}

static int read_text(const char *path, espl_recipe *r, espl_error *err)
{
	int rc = espl_yaml_read_file(path, RECIPE_TEXT_MAX, "recipe", ESPL_ERECIPE, &r->text, &r->text_len, err);
	if (rc < 0)
		return rc;
	if (sha256_hex(r->text, r->text_len, r->sha256) < 0)
		return espl_fail(err, ESPL_ESYS, "%s: SHA-256 failed (OpenSSL)", path);
	return ESPL_OK;
}

static int locate(const char *path, espl_recipe *r, espl_error *err)
{
	char *abs = realpath(path, NULL);
	if (!abs)
		return espl_fail_errno(err, "cannot open recipe %s", path);
	r->path = abs;
	r->dir = dup_string(abs);
	if (!r->dir)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	char *slash = strrchr(r->dir, '/');
	if (slash == r->dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	return ESPL_OK;
}

int espl_recipe_load(const char *path, espl_recipe_diag_fn diag_fn, void *diag_ctx,
                     espl_recipe **out, espl_error *err)
{
	espl_recipe *r = calloc(1, sizeof *r);
	parse_ctx c = recipe_ctx(path, r, diag_fn, diag_ctx, err);
	int rc;

	*out = NULL;
	if (!r)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	set_recipe_defaults(r);
	if ((rc = locate(path, r, err)) < 0 || (rc = read_text(path, r, err)) < 0) {
		espl_recipe_free(r);
		return rc;
	}
	espl_yaml_parse(&c.y, r->text, r->text_len,
	                "the recipe is empty; expected a mapping with recipe, chip and steps", parse_root_cb, &c);
	if (c.y.errors) {
		espl_recipe_free(r);
		return ESPL_ERECIPE;
	}
	*out = r;
	return ESPL_OK;
}

/* ------------------------------------------------------------------ */
/* prepare                                                              */

static int read_file_data(parse_ctx *c, espl_recipe_file *f, const char *what)
{
	FILE *fp = fopen(f->path, "rb");
	if (!fp) {
		espl_yaml_error(&c->y, f->pos, "%s: cannot read %s: %s", what, f->path, strerror(errno));
		return -1;
	}
	free(f->data);
	f->data = malloc(f->size ? f->size : 1);
	size_t got = f->data ? fread(f->data, 1, f->size, fp) : 0;
	int extra = fgetc(fp);
	fclose(fp);
	if (!f->data || got != f->size || extra != EOF) {
		espl_yaml_error(&c->y, f->pos, "%s: %s changed size while the recipe was being loaded (%u bytes expected)",
		         what, f->path, f->size);
		return -1;
	}
	if (sha256_hex(f->data, f->size, f->sha256) < 0) {
		espl_yaml_error(&c->y, f->pos, "%s: SHA-256 failed (OpenSSL)", what);
		return -1;
	}
	if (f->pin[0] && strcmp(f->pin, f->sha256) != 0) {
		espl_yaml_error(&c->y, f->pin_pos, "%s: sha256 mismatch for %s: the file has %s, the recipe pins %s",
		         what, f->path, f->sha256, f->pin);
		return -1;
	}
	return 0;
}

static void note_image_header(parse_ctx *c, espl_recipe *r, const espl_step *s)
{
	const espl_recipe_file *f = &s->write.file;
	bool patching = r->flash.size_mode != ESPL_FLASH_SIZE_KEEP || r->flash.mode != ESPL_FLASH_KEEP ||
	                r->flash.freq != ESPL_FLASH_KEEP;
	if (f->size >= 8 && f->data[0] == 0xE9) {
		r->image_declared_size = header_code_to_size(f->data[3] >> 4);
		return;
	}
	/* esptool only warns and writes the file unpatched; on a line that is
	 * a wrong image or a header that will not say what the recipe says */
	if (patching)
		espl_yaml_error(&c->y, f->pos, "%s is written at 0x0 but is not an ESP8266 image (first byte 0x%02x, expected 0xe9), so flash.size/mode/freq cannot be written into its header; check the file, or set flash: { size: keep, mode: keep, freq: keep }",
		         base_name(f->path), f->size ? f->data[0] : 0);
}

int espl_recipe_prepare(espl_recipe *r, espl_recipe_diag_fn diag_fn, void *diag_ctx, espl_error *err)
{
	parse_ctx c = recipe_ctx(r->path, r, diag_fn, diag_ctx, err);

	if (r->prepared)
		return ESPL_OK;
	for (size_t i = 0; i < r->n_steps; i++) {
		espl_step *s = &r->steps[i];
		if (s->kind == ESPL_STEP_WRITE && read_file_data(&c, &s->write.file, "write.file") == 0 &&
		    s->write.address == 0)
			note_image_header(&c, r, s);
		if (s->kind == ESPL_STEP_WRITE_INIT_DATA)
			read_file_data(&c, &s->init_data.file, "write_init_data.file");
	}
	if (c.y.errors)
		return ESPL_ERECIPE;
	r->prepared = true;
	return ESPL_OK;
}

static void free_file(espl_recipe_file *f)
{
	free(f->path);
	free(f->data);
}

void espl_recipe_free(espl_recipe *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_steps; i++) {
		espl_step *s = &r->steps[i];
		free(s->erase.regions);
		free(s->verify.regions);
		free_file(&s->write.file);
		free_file(&s->init_data.file);
	}
	free(r->steps);
	free(r->connect.stub_path);
	free(r->name);
	free(r->path);
	free(r->dir);
	free(r->text);
	free(r);
}

/* ------------------------------------------------------------------ */
/* system area                                                          */

int espl_system_area_for(uint32_t flash_size, espl_system_area *out, espl_error *err)
{
	if (flash_size < 0x10000 || flash_size % ESPL_RECIPE_SECTOR)
		return espl_fail(err, ESPL_EARG, "flash size 0x%x is too small or not a whole number of sectors",
		                 flash_size);
	espl_flashmap map;
	espl_flashmap_layout(flash_size, &map);
	out->flash_size = flash_size;
	out->rf_cal = map.rf_cal;
	out->init_data = map.init_data;
	out->blank = map.blank;
	return ESPL_OK;
}

uint32_t espl_recipe_min_flash_size(const espl_recipe *r)
{
	if (r->flash.size_mode == ESPL_FLASH_SIZE_FIXED)
		return r->flash.size;
	return r->expect.flash_size_min;
}

int espl_recipe_system_flash_size(const espl_recipe *r, uint32_t detected_size, uint32_t *out,
                                  espl_error *err)
{
	char a[16], b[16];
	uint32_t size = detected_size;
	const char *why = "detected";

	if (r->flash.size_mode == ESPL_FLASH_SIZE_FIXED) {
		size = r->flash.size;
		why = "flash.size";
	} else if (r->flash.size_mode == ESPL_FLASH_SIZE_KEEP && r->image_declared_size) {
		size = r->image_declared_size;
		why = "the image header at 0x0";
	}
	if (size == 0)
		return espl_fail(err, ESPL_ECHIP, "flash size unknown: detection found no size");
	if (size > detected_size)
		return espl_fail(err, ESPL_ECHIP, "the chip has %s of flash but %s says %s",
		                 espl_recipe_format_size(detected_size, a, sizeof a), why,
		                 espl_recipe_format_size(size, b, sizeof b));
	*out = size;
	return ESPL_OK;
}

int espl_recipe_check_layout(const espl_recipe *r, uint32_t system_size, uint32_t chip_size,
                             espl_error *err)
{
	parse_ctx c = recipe_ctx(r->path, NULL, NULL, NULL, err);
	check_layout(&c, r, system_size, chip_size, "the size detected on this unit");
	return c.y.errors ? ESPL_ERECIPE : ESPL_OK;
}
