/* recipe.c - YAML recipes: helpers, value parsing, files, the document; see include/espline/recipe.h and src/recipe/recipe_int.h. */
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

#include "espline/loader.h"
#include "recipe/recipe_int.h"
#include "recipe/yaml.h"
#include "util/file.h"

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

uint32_t espl__recipe_round_up(uint32_t v, uint32_t to)
{
	return (uint32_t)(((uint64_t)v + to - 1) / to * to);
}

int espl__recipe_sha256_hex(const void *data, size_t len, char out[ESPL_SHA256_HEX_LEN + 1])
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

static const char *const step_kind_names[] = {
	[ESPL_STEP_ERASE] = "erase",
	[ESPL_STEP_WRITE] = "write",
	[ESPL_STEP_WRITE_INIT_DATA] = "write_init_data",
	[ESPL_STEP_VERIFY] = "verify",
	[ESPL_STEP_RESET] = "reset",
	[ESPL_STEP_BOOT_CHECK] = "boot_check",
	[ESPL_STEP_WRITE_UNIT_DATA] = "write_unit_data",
	[ESPL_STEP_READ] = "read",
};
_Static_assert(sizeof step_kind_names / sizeof step_kind_names[0] == N_STEP_KINDS,
	       "one name per step kind");

const char *espl_step_kind_name(enum espl_step_kind kind)
{
	return (unsigned)kind < N_STEP_KINDS ? step_kind_names[kind] : "?";
}

/* Flash sizes an ESP8266 image header can declare (protocol notes 8.2). */
bool espl__recipe_is_header_flash_size(uint32_t bytes)
{
	for (uint32_t s = 256u << 10; s <= ESP8266_MAX_FLASH; s <<= 1)
		if (bytes == s)
			return true;
	return false;
}

uint32_t espl__recipe_header_code_to_size(uint8_t code)
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


parse_ctx espl__recipe_ctx(const char *file, espl_recipe *r, espl_recipe_diag_fn diag_fn, void *diag_ctx,
                            espl_error *err)
{
	parse_ctx c = { { file, "recipe file", NULL, diag_fn, diag_ctx, err, ESPL_ERECIPE, 0, 0 }, r };
	return c;
}

/* Decimal or 0x hex digits, perhaps with a KB/MB suffix: a number, if not
 * one that fits. */
static bool looks_numeric(const char *v)
{
	const char *d = v;
	bool hex = d[0] == '0' && (d[1] == 'x' || d[1] == 'X');
	if (hex)
		d += 2;
	size_t n = hex ? strspn(d, "0123456789abcdefABCDEF") : strspn(d, "0123456789");
	if (!n)
		return false;
	d += n;
	return !*d || !strcmp(d, "KB") || !strcmp(d, "MB");
}

bool espl__recipe_get_u32(parse_ctx *c, const yaml_node_t *n, const char *what, uint32_t *out)
{
	char buf[64];
	const char *v = espl__yaml_scalar(n);
	if (v && espl_recipe_parse_u32(v, out) < 0 && looks_numeric(v)) {
		espl__yaml_error(&c->y, espl__yaml_pos(n), "%s: %s is out of range (at most 0xFFFFFFFF; the largest "
		                 "ESP8266 flash is 16MB, 0x1000000)", what, espl__yaml_describe(n, buf, sizeof buf));
		return false;
	}
	if (!v || espl_recipe_parse_u32(v, out) < 0) {
		espl__yaml_error(&c->y, espl__yaml_pos(n), "%s: expected a number (decimal, 0x hex, or with a KB/MB suffix), got %s",
		         what, espl__yaml_describe(n, buf, sizeof buf));
		return false;
	}
	return true;
}

/* One baud rate in range, or false with a diagnostic. */
static bool get_baud(parse_ctx *c, const yaml_node_t *n, const char *what, unsigned *out)
{
	uint32_t b;
	if (!espl__recipe_get_u32(c, n, what, &b))
		return false;
	if (b < ESPL_BAUD_MIN || b > ESPL_BAUD_MAX) {
		espl__yaml_error(&c->y, espl__yaml_pos(n), "%s: expected a baud rate from %u to %u, got %u",
		                 what, ESPL_BAUD_MIN, ESPL_BAUD_MAX, b);
		return false;
	}
	*out = b;
	return true;
}

bool espl__recipe_get_bauds(parse_ctx *c, yaml_node_t *n, const char *what, unsigned *first,
                            unsigned *rest, size_t *n_rest)
{
	if (n->type != YAML_SEQUENCE_NODE || !rest)
		return get_baud(c, n, what, first);
	size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (count < 1 || count > ESPL_BAUD_LADDER_MAX) {
		espl__yaml_error(&c->y, espl__yaml_pos(n), "%s: a ladder of 1 to %d baud rates, highest first, "
		                 "e.g. [2000000, 1500000, 921600]", what, ESPL_BAUD_LADDER_MAX);
		return false;
	}
	unsigned got[ESPL_BAUD_LADDER_MAX];
	for (size_t i = 0; i < count; i++) {
		yaml_node_t *item = espl__yaml_node(&c->y, n->data.sequence.items.start[i]);
		if (!item || !get_baud(c, item, what, &got[i]))
			return false;
		if (i && got[i] >= got[i - 1]) {
			espl__yaml_error(&c->y, espl__yaml_pos(item), "%s: the ladder goes from the highest rate "
			                 "down (%u is not below %u)", what, got[i], got[i - 1]);
			return false;
		}
	}
	*first = got[0];
	*n_rest = count - 1;
	memcpy(rest, got + 1, *n_rest * sizeof *rest);
	return true;
}

void espl_recipe_set_flash_baud(espl_recipe *r, unsigned baud)
{
	r->connect.flash_baud = baud;
	r->connect.n_lower_bauds = 0;
}

/* ------------------------------------------------------------------ */
/* files                                                                */

static char *resolve_path(const char *dir, const char *p)
{
	if (p[0] == '/')
		return strdup(p);
	size_t n = strlen(dir) + strlen(p) + 2;
	char *out = malloc(n);
	if (out)
		snprintf(out, n, "%s/%s", dir, p);
	return out;
}

/* Resolve and stat a `file:` value; fills f->path, f->size, f->pos. */
bool espl__recipe_get_file(parse_ctx *c, const yaml_node_t *n, const char *what, espl_recipe_file *f)
{
	const char *v;
	struct stat st;

	if (!espl__yaml_string(&c->y, n, what, &v))
		return false;
	f->pos = espl__yaml_pos(n);
	f->path = resolve_path(c->r->dir, v);
	if (!f->path) {
		espl__yaml_error(&c->y, f->pos, "%s: out of memory", what);
		return false;
	}
	if (stat(f->path, &st) < 0) {
		espl__yaml_error(&c->y, f->pos, "%s: cannot read '%s' (resolved to %s): %s", what, v, f->path,
		         strerror(errno));
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		espl__yaml_error(&c->y, f->pos, "%s: '%s' (resolved to %s) is not a regular file", what, v, f->path);
		return false;
	}
	if (st.st_size == 0) {
		espl__yaml_error(&c->y, f->pos, "%s: '%s' (resolved to %s) is empty", what, v, f->path);
		return false;
	}
	if ((uint64_t)st.st_size > ESP8266_MAX_FLASH) {
		espl__yaml_error(&c->y, f->pos, "%s: '%s' is %lld bytes, larger than the largest ESP8266 flash (16MB)",
		         what, v, (long long)st.st_size);
		return false;
	}
	f->size = (uint32_t)st.st_size;
	return true;
}

bool espl__recipe_get_sha256(parse_ctx *c, const yaml_node_t *n, const char *what, espl_recipe_file *f)
{
	char buf[64];
	const char *v = espl__yaml_scalar(n);
	size_t len = v ? strlen(v) : 0;
	bool ok = len == ESPL_SHA256_HEX_LEN;
	for (size_t i = 0; ok && i < len; i++)
		ok = isxdigit((unsigned char)v[i]) != 0;
	if (!ok) {
		espl__yaml_error(&c->y, espl__yaml_pos(n), "%s: expected 64 hex digits (the output of sha256sum), got %s", what,
		         espl__yaml_describe(n, buf, sizeof buf));
		return false;
	}
	for (size_t i = 0; i < len; i++)
		f->pin[i] = (char)tolower((unsigned char)v[i]);
	f->pin[len] = '\0';
	f->pin_pos = espl__yaml_pos(n);
	return true;
}

/* ------------------------------------------------------------------ */
/* the document                                                         */

static void parse_steps(parse_ctx *c, yaml_node_t *n)
{
	char buf[64];
	if (n->type != YAML_SEQUENCE_NODE) {
		espl__yaml_error(&c->y, espl__yaml_pos(n), "steps: expected a list of steps (- erase: chip, - write: {...}, ...), got %s",
		         espl__yaml_describe(n, buf, sizeof buf));
		return;
	}
	size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (count == 0) {
		espl__yaml_error(&c->y, espl__yaml_pos(n), "steps: the list is empty; a recipe needs at least one step");
		return;
	}
	c->r->steps = calloc(count, sizeof *c->r->steps);
	if (!c->r->steps) {
		espl__yaml_error(&c->y, espl__yaml_pos(n), "out of memory");
		return;
	}
	c->r->n_steps = count;
	for (size_t i = 0; i < count; i++)
		espl__recipe_parse_step(c, espl__yaml_node(&c->y, n->data.sequence.items.start[i]), (unsigned)i + 1, &c->r->steps[i]);
}

unsigned espl_recipe_rom_baud(const espl_recipe *r)
{
	const espl_recipe_connect *cn = &r->connect;
	if (!cn->baud_default)
		return cn->baud;
	return cn->n_lower_bauds ? cn->lower_bauds[cn->n_lower_bauds - 1] : cn->flash_baud;
}

void espl__recipe_set_defaults(espl_recipe *r)
{
	r->connect.reset = ESPL_CONNECT_RESET_AUTO;
	r->connect.baud = ESPL_DEFAULT_BAUD;
	r->connect.flash_baud = ESPL_DEFAULT_FLASH_BAUD;
	r->connect.stub = ESPL_STUB_BUILTIN;
	r->connect.reset_default = r->connect.baud_default = true;
	r->connect.flash_baud_default = r->connect.stub_default = true;
	r->flash.size_mode = ESPL_FLASH_SIZE_DETECT;
	r->flash.mode = ESPL_FLASH_MODE_KEEP;
	r->flash.freq = ESPL_FREQ_KEEP;
	r->flash.size_default = r->flash.mode_default = r->flash.freq_default = true;
	r->serial.reuse_for_mac = true;
	r->serial.first = 1;
	r->serial.lease = 100;
	r->serial.policy_default = r->serial.reuse_default = r->serial.first_default = true;
	r->serial.lease_default = true;
	r->csv.policy = ESPL_POLICY_VOID_ON_FAIL;
	r->csv.policy_default = true;
}

static void parse_root(parse_ctx *c, yaml_node_t *root)
{
	static const char *const names[] = { "recipe", "chip", "connect", "flash", "expect", "serial", "steps" };
	static const char *const chips[] = { "esp8266" };
	espl__yaml_fields f = { names, 7, { 0 }, { 0 } };
	yaml_node_t *v;
	char buf[64];

	if (root->type != YAML_MAPPING_NODE) {
		espl__yaml_error(&c->y, espl__yaml_pos(root), "expected a mapping with recipe, chip and steps at the top level, got %s",
		         espl__yaml_describe(root, buf, sizeof buf));
		return;
	}
	espl__yaml_read_fields(&c->y, root, "at the top level", &f, NULL, NULL);
	if (!(v = espl__yaml_field(&f, "recipe")))
		espl__yaml_missing_key(&c->y, root, "recipe", "recipe", "recipe: nodemcu-golden");
	else {
		const char *name;
		if (espl__yaml_string(&c->y, v, "recipe", &name) && !(c->r->name = strdup(name)))
			espl__yaml_error(&c->y, espl__yaml_pos(v), "out of memory");
	}
	if (!(v = espl__yaml_field(&f, "chip")))
		espl__yaml_missing_key(&c->y, root, "recipe", "chip", "chip: esp8266");
	else
		espl__yaml_choice(&c->y, v, "chip", chips, 1);
	/* connect first: write timeouts depend on flash_baud */
	if ((v = espl__yaml_field(&f, "connect")))
		espl__recipe_parse_connect(c, v);
	if ((v = espl__yaml_field(&f, "flash")))
		espl__recipe_parse_flash(c, v);
	if ((v = espl__yaml_field(&f, "expect")))
		espl__recipe_parse_expect(c, espl__yaml_field_key(&f, "expect"), v);
	if ((v = espl__yaml_field(&f, "serial")))
		espl__recipe_parse_serial(c, espl__yaml_field_key(&f, "serial"), v);
	if (!(v = espl__yaml_field(&f, "steps"))) {
		espl__yaml_missing_key(&c->y, root, "recipe", "steps", "steps: [ - write: {...}, - verify: md5 ]");
		return;
	}
	parse_steps(c, v);
	espl__recipe_fill_default_timeouts(c->r);
	if (c->y.errors == 0)
		espl__recipe_check_steps(c, c->r, espl__yaml_field_key(&f, "steps"));
}

static void parse_root_cb(espl__yaml *y, yaml_node_t *root, void *ctx)
{
	(void)y;
	parse_root(ctx, root);
}

static int read_text(const char *path, espl_recipe *r, espl_error *err)
{
	int rc = espl__file_read(path, RECIPE_TEXT_MAX, "recipe", &r->text, &r->text_len, err);
	if (rc < 0)
		return rc;
	if (espl__recipe_sha256_hex(r->text, r->text_len, r->sha256) < 0)
		return espl_fail(err, ESPL_ESYS, "%s: SHA-256 failed (OpenSSL)", path);
	return ESPL_OK;
}

static int locate(const char *path, espl_recipe *r, espl_error *err)
{
	char *abs = realpath(path, NULL);
	if (!abs)
		return espl_fail_errno(err, "cannot open recipe %s", path);
	r->path = abs;
	r->dir = strdup(abs);
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
	parse_ctx c = espl__recipe_ctx(path, r, diag_fn, diag_ctx, err);
	int rc;

	*out = NULL;
	if (!r)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	espl__recipe_set_defaults(r);
	if ((rc = locate(path, r, err)) < 0 || (rc = read_text(path, r, err)) < 0) {
		espl_recipe_free(r);
		return rc;
	}
	espl__yaml_parse(&c.y, r->text, r->text_len,
	                "the recipe is empty; expected a mapping with recipe, chip and steps", parse_root_cb, &c);
	if (c.y.errors) {
		espl_recipe_free(r);
		return ESPL_ERECIPE;
	}
	*out = r;
	return ESPL_OK;
}
