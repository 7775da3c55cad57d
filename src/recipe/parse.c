/* parse.c - a recipe's top-level sections and steps; see include/espline/recipe.h and src/recipe/recipe_int.h. */
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
#include <regex.h>
#include <yaml.h>

#include "espline/loader.h"
#include "recipe/recipe_int.h"
#include "recipe/yaml.h"


/* ------------------------------------------------------------------ */
/* top-level sections                                                   */

/* A list of strings (or one string) into out[0..*n); false after an error. */
bool espl__recipe_string_list(parse_ctx *c, yaml_node_t *n, const char *what, size_t max, char **out, size_t *count)
{
	char buf[64];
	yaml_node_item_t *start = NULL, *end = NULL;
	if (n->type == YAML_SEQUENCE_NODE) {
		start = n->data.sequence.items.start;
		end = n->data.sequence.items.top;
	}
	size_t total = n->type == YAML_SEQUENCE_NODE ? (size_t)(end - start) : 1;
	if (n->type == YAML_MAPPING_NODE || total > max) {
		espl__yaml_error(&c->y, espl__yaml_pos(n), "%s: expected a list of at most %zu strings, got %s", what, max,
		                n->type == YAML_MAPPING_NODE ? "a mapping" : "more");
		return false;
	}
	for (size_t i = 0; i < total; i++) {
		yaml_node_t *e = n->type == YAML_SEQUENCE_NODE ? espl__yaml_node(&c->y, start[i]) : n;
		const char *v = espl__yaml_scalar(e);
		if (!v || !*v) {
			espl__yaml_error(&c->y, espl__yaml_pos(e), "%s[%zu]: expected a non-empty string, got %s", what, i + 1,
			                espl__yaml_describe(e, buf, sizeof buf));
			return false;
		}
		if (!(out[*count] = strdup(v))) {
			espl__yaml_error(&c->y, espl__yaml_pos(e), "out of memory");
			return false;
		}
		(*count)++;
	}
	return true;
}

/* connect.reset: { download: [CMD...], run: [CMD...] }: a fixture. */
static void parse_fixture(parse_ctx *c, yaml_node_t *n)
{
	static const char *const names[] = { "download", "run" };
	espl_recipe_connect *cn = &c->r->connect;
	espl__yaml_fields f = { names, 2, { 0 }, { 0 } };
	yaml_node_t *v;

	espl__yaml_read_fields(&c->y, n, "in connect.reset", &f, NULL, NULL);
	if ((v = espl__yaml_field(&f, "download")))
		espl__recipe_string_list(c, v, "connect.reset.download", ESPL_FIXTURE_MAX_CMDS, cn->fixture.download, &cn->fixture.n_download);
	if ((v = espl__yaml_field(&f, "run")))
		espl__recipe_string_list(c, v, "connect.reset.run", ESPL_FIXTURE_MAX_CMDS, cn->fixture.run, &cn->fixture.n_run);
	if (!cn->fixture.n_download && !cn->fixture.n_run)
		espl__yaml_error(&c->y, espl__yaml_pos(n), "connect.reset: a fixture needs download: [commands] and/or run: [commands], e.g. { run: [\"jig-reset --run\"] }");
	cn->reset = ESPL_CONNECT_RESET_FIXTURE;
	cn->reset_default = false;
}

void espl__recipe_parse_connect(parse_ctx *c, yaml_node_t *n)
{
	static const char *const names[] = { "reset", "baud", "flash_baud", "stub" };
	static const char *const resets[] = { "auto", "none" };
	espl_recipe_connect *cn = &c->r->connect;
	espl__yaml_fields f = { names, 4, { 0 }, { 0 } };
	yaml_node_t *v;

	if (!espl__yaml_want_mapping(&c->y, n, "connect", "{ reset: auto, baud: 115200 }"))
		return;
	espl__yaml_read_fields(&c->y, n, "in connect", &f, NULL, NULL);
	if ((v = espl__yaml_field(&f, "reset")) && v->type == YAML_MAPPING_NODE) {
		parse_fixture(c, v);
	} else if (v) {
		int i = espl__yaml_choice(&c->y, v, "connect.reset", resets, 2);
		if (i >= 0) {
			cn->reset = i == 0 ? ESPL_CONNECT_RESET_AUTO : ESPL_CONNECT_RESET_NONE;
			cn->reset_default = false;
		}
	}
	if ((v = espl__yaml_field(&f, "baud")) && espl__recipe_get_bauds(c, v, "connect.baud", &cn->baud, NULL, NULL))
		cn->baud_default = false;
	if ((v = espl__yaml_field(&f, "flash_baud")) &&
	    espl__recipe_get_bauds(c, v, "connect.flash_baud", &cn->flash_baud, cn->lower_bauds, &cn->n_lower_bauds))
		cn->flash_baud_default = false;
	if ((v = espl__yaml_field(&f, "stub"))) {
		const char *s;
		if (espl__yaml_string(&c->y, v, "connect.stub", &s)) {
			cn->stub_default = false;
			if (strcmp(s, "legacy") == 0 || strcmp(s, "esp-flasher-stub") == 0) {
				/* a stub generation, searched by the device layer */
				cn->stub = ESPL_STUB_GENERATION;
				cn->stub_path = strdup(s);
				if (!cn->stub_path)
					espl__yaml_error(&c->y, espl__yaml_pos(v), "out of memory");
			} else if (strcmp(s, "builtin") != 0) {
				espl_recipe_file tmp = { 0 };
				if (espl__recipe_get_file(c, v, "connect.stub", &tmp)) {
					cn->stub = ESPL_STUB_FILE;
					cn->stub_path = tmp.path;
				} else {
					free(tmp.path);
				}
			}
		}
	}
}

void espl__recipe_parse_flash(parse_ctx *c, yaml_node_t *n)
{
	static const char *const names[] = { "size", "mode", "freq" };
	static const char *const modes[] = { "qio", "qout", "dio", "dout", "keep" };
	static const char *const freqs[] = { "40m", "26m", "20m", "80m", "keep" };
	espl_recipe_flash *fl = &c->r->flash;
	espl__yaml_fields f = { names, 3, { 0 }, { 0 } };
	yaml_node_t *v;
	char buf[64];

	if (!espl__yaml_want_mapping(&c->y, n, "flash", "{ size: detect, mode: dio, freq: 40m }"))
		return;
	espl__yaml_read_fields(&c->y, n, "in flash", &f, NULL, NULL);
	if ((v = espl__yaml_field(&f, "size"))) {
		const char *s = espl__yaml_scalar(v);
		uint32_t bytes;
		fl->size_pos = espl__yaml_pos(v);
		if (s && strcmp(s, "detect") == 0) {
			fl->size_mode = ESPL_FLASH_SIZE_DETECT;
			fl->size_default = false;
		} else if (s && strcmp(s, "keep") == 0) {
			fl->size_mode = ESPL_FLASH_SIZE_KEEP;
			fl->size_default = false;
		} else if (s && espl_recipe_parse_u32(s, &bytes) == 0 && espl__recipe_is_header_flash_size(bytes)) {
			fl->size_mode = ESPL_FLASH_SIZE_FIXED;
			fl->size = bytes;
			fl->size_default = false;
		} else {
			espl__yaml_error(&c->y, espl__yaml_pos(v), "flash.size: expected detect, keep, 256KB, 512KB, 1MB, 2MB, 4MB, 8MB or 16MB, got %s",
			         espl__yaml_describe(v, buf, sizeof buf));
		}
	}
	if ((v = espl__yaml_field(&f, "mode"))) {
		int i = espl__yaml_choice(&c->y, v, "flash.mode", modes, 5);
		if (i >= 0) {
			espl_flash_mode_parse(modes[i], &fl->mode, NULL);  /* the same names, and "keep" */
			fl->mode_default = false;
		}
	}
	if ((v = espl__yaml_field(&f, "freq"))) {
		int i = espl__yaml_choice(&c->y, v, "flash.freq", freqs, 5);
		if (i >= 0) {
			espl_flash_freq_parse(freqs[i], &fl->freq, NULL);
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
		espl__yaml_error(&c->y, espl__yaml_pos(n), "%s: expected a list, got a mapping", what);
		return;
	}
	size_t i = 0;
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++, i++) {
		yaml_node_t *e = espl__yaml_node(&c->y, *it);
		snprintf(label, sizeof label, "%s[%zu]", what, i + 1);
		if (i >= max) {
			espl__yaml_error(&c->y, espl__yaml_pos(e), "%s: at most %zu entries are allowed", what, max);
			return;
		}
		item(c, e, label, i);
	}
}

static bool manufacturer_item(parse_ctx *c, yaml_node_t *n, const char *what, size_t i)
{
	espl_recipe_expect *e = &c->r->expect;
	char buf[64], list[256];
	const char *v = espl__yaml_scalar(n);
	uint32_t id;
	uint8_t byid;

	if (v && espl_recipe_parse_u32(v, &id) == 0 && id <= 0xFF) {
		e->manufacturers[i] = (uint8_t)id;
	} else if (v && espl_flash_manufacturer_by_name(v, &byid) == 0) {
		e->manufacturers[i] = byid;
	} else {
		espl__yaml_error(&c->y, espl__yaml_pos(n), "%s: expected a JEDEC manufacturer id (0x00..0xFF) or one of %s; got %s",
		         what, espl_flash_manufacturer_list(list, sizeof list), espl__yaml_describe(n, buf, sizeof buf));
		return false;
	}
	e->n_manufacturers = i + 1;
	return true;
}

static bool oui_item(parse_ctx *c, yaml_node_t *n, const char *what, size_t i)
{
	espl_recipe_expect *e = &c->r->expect;
	char buf[64];
	const char *v = espl__yaml_scalar(n);
	if (!v || espl_recipe_parse_oui(v, e->ouis[i]) < 0) {
		espl__yaml_error(&c->y, espl__yaml_pos(n), "%s: expected the first three MAC bytes as \"5C:CF:7F\", got %s", what,
		         espl__yaml_describe(n, buf, sizeof buf));
		return false;
	}
	e->n_ouis = i + 1;
	return true;
}

static void boot_patterns(parse_ctx *c, yaml_node_t *n, const char *what, char **out, size_t *count);

void espl__recipe_parse_expect(parse_ctx *c, yaml_node_t *key, yaml_node_t *n)
{
	static const char *const names[] = { "flash_size_min", "flash_manufacturer", "mac_oui", "flash_capacity",
	                                     "crystal_mhz", "barcode" };
	static const char *const verified[] = { "verified" };
	static const char *const crystals[] = { "26", "40" };
	espl_recipe_expect *e = &c->r->expect;
	espl__yaml_fields f = { names, 6, { 0 }, { 0 } };
	yaml_node_t *v;

	e->pos = espl__yaml_pos(key);
	if (!espl__yaml_want_mapping(&c->y, n, "expect", "{ flash_size_min: 4MB }"))
		return;
	espl__yaml_read_fields(&c->y, n, "in expect", &f, NULL, NULL);
	if ((v = espl__yaml_field(&f, "flash_size_min")) && espl__recipe_get_u32(c, v, "expect.flash_size_min", &e->flash_size_min) &&
	    !espl__recipe_is_header_flash_size(e->flash_size_min)) {
		char buf[64];
		espl__yaml_error(&c->y, espl__yaml_pos(v), "expect.flash_size_min: expected 256KB, 512KB, 1MB, 2MB, 4MB, 8MB or 16MB, got %s",
		         espl__yaml_describe(v, buf, sizeof buf));
		e->flash_size_min = 0;
	}
	if ((v = espl__yaml_field(&f, "flash_manufacturer")))
		for_each_item(c, v, "expect.flash_manufacturer", ESPL_RECIPE_MAX_LIST, manufacturer_item);
	if ((v = espl__yaml_field(&f, "mac_oui")))
		for_each_item(c, v, "expect.mac_oui", ESPL_RECIPE_MAX_LIST, oui_item);
	if ((v = espl__yaml_field(&f, "flash_capacity")) && espl__yaml_choice(&c->y, v, "expect.flash_capacity", verified, 1) == 0) {
		e->flash_capacity = true;
		e->capacity_pos = espl__yaml_pos(v);
	}
	if ((v = espl__yaml_field(&f, "crystal_mhz"))) {
		int i = espl__yaml_choice(&c->y, v, "expect.crystal_mhz", crystals, 2);
		if (i >= 0) {
			e->crystal_mhz = i == 0 ? 26 : 40;
			e->crystal_pos = espl__yaml_pos(v);
		}
	}
	if ((v = espl__yaml_field(&f, "barcode"))) {  /* one pattern, compiled as boot_check's are */
		size_t one = 0;
		e->barcode_pos = espl__yaml_pos(v);
		if (v->type == YAML_SCALAR_NODE)
			boot_patterns(c, v, "expect.barcode", &e->barcode, &one);
		else
			espl__yaml_error(&c->y, e->barcode_pos, "expect.barcode: expected one regular expression");
	}
}

/* ------------------------------------------------------------------ */
/* steps                                                                */

static const char *const step_keys[] = { "erase", "write", "write_init_data", "verify", "reset",
                                         "boot_check", "write_unit_data", "retries", "timeout" };
#define N_STEP_KEYS (sizeof step_keys / sizeof step_keys[0])

static const char *const write_keys[] = { "file", "address", "sha256", "compress", "skip_unchanged",
                                          "retries", "timeout" };
static const char *const init_keys[] = { "file", "sha256", "blank", "rf_cal", "retries", "timeout" };
static const char *const region_list_keys[] = { "regions", "retries", "timeout" };
static const char *const region_keys[] = { "address", "length" };
static const char *const boot_keys[] = { "expect", "reject", "baud", "settle", "retries", "timeout" };

static bool keys_contain(const char *const *names, size_t n, const char *k)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], k) == 0)
			return true;
	return false;
}

static void take_opt(parse_ctx *c, yaml_node_t **slot, yaml_node_t *key, yaml_node_t *value,
                     const char *name)
{
	if (!value)
		return;
	if (*slot) {
		espl__yaml_error(&c->y, espl__yaml_pos(key), "'%s' is given twice for this step (also at line %u)", name,
		         espl__yaml_pos(*slot).line);
		return;
	}
	*slot = value;
}

void espl__recipe_take_opts(parse_ctx *c, const espl__yaml_fields *f, step_opts *o)
{
	take_opt(c, &o->retries, espl__yaml_field_key(f, "retries"), espl__yaml_field(f, "retries"), "retries");
	take_opt(c, &o->timeout, espl__yaml_field_key(f, "timeout"), espl__yaml_field(f, "timeout"), "timeout");
}

static void apply_opts(parse_ctx *c, const step_opts *o, espl_step *s)
{
	char buf[64];
	if (o->retries) {
		uint32_t n;
		const char *v = espl__yaml_scalar(o->retries);
		if (!v || espl_recipe_parse_u32(v, &n) < 0 || n > MAX_RETRIES)
			espl__yaml_error(&c->y, espl__yaml_pos(o->retries), "%s.retries: expected a whole number from 0 to %d, got %s",
			         espl_step_kind_name(s->kind), MAX_RETRIES, espl__yaml_describe(o->retries, buf, sizeof buf));
		else {
			s->retries = n;
			s->retries_default = false;
		}
	}
	if (o->timeout) {
		unsigned ms;
		const char *v = espl__yaml_scalar(o->timeout);
		if (!v || espl_recipe_parse_duration_ms(v, &ms) < 0 || ms == 0 || ms > MAX_TIMEOUT_MS)
			espl__yaml_error(&c->y, espl__yaml_pos(o->timeout),
			         "%s.timeout: expected a duration from 1ms to 3600s such as 30s or 500ms, got %s",
			         espl_step_kind_name(s->kind), espl__yaml_describe(o->timeout, buf, sizeof buf));
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
		espl__yaml_error(&c->y, espl__yaml_pos(n), "%s.regions: expected a list of { address, length }, got %s", kind,
		         n->type == YAML_SEQUENCE_NODE ? "an empty list" : espl__yaml_describe(n, buf, sizeof buf));
		return;
	}
	size_t total = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	*out = calloc(total, sizeof **out);
	if (!*out) {
		espl__yaml_error(&c->y, espl__yaml_pos(n), "out of memory");
		return;
	}
	for (size_t i = 0; i < total; i++) {
		yaml_node_t *e = espl__yaml_node(&c->y, n->data.sequence.items.start[i]);
		espl__yaml_fields f = { region_keys, 2, { 0 }, { 0 } };
		espl_region *r = &(*out)[*count];
		yaml_node_t *a, *l;
		bool ok = true;

		snprintf(what, sizeof what, "%s.regions[%zu]", kind, i + 1);
		if (!espl__yaml_want_mapping(&c->y, e, what, "{ address: 0x3FC000, length: 4KB }"))
			continue;
		snprintf(buf, sizeof buf, "in %s", what);
		espl__yaml_read_fields(&c->y, e, buf, &f, NULL, NULL);
		if (!(a = espl__yaml_field(&f, "address"))) {
			espl__yaml_missing_key(&c->y, e, what, "address", "address: 0x3FC000");
			ok = false;
		}
		if (!(l = espl__yaml_field(&f, "length"))) {
			espl__yaml_missing_key(&c->y, e, what, "length", "length: 4KB");
			ok = false;
		}
		if (!ok)
			continue;
		snprintf(buf, sizeof buf, "%s.address", what);
		ok = espl__recipe_get_u32(c, a, buf, &r->address);
		snprintf(buf, sizeof buf, "%s.length", what);
		ok = espl__recipe_get_u32(c, l, buf, &r->length) && ok;
		if (!ok)
			continue;
		r->pos = espl__yaml_pos(e);
		if (r->length == 0) {
			espl__yaml_error(&c->y, espl__yaml_pos(l), "%s.length: must not be 0", what);
			continue;
		}
		if (sector_aligned && r->address % ESPL_RECIPE_SECTOR) {
			espl__yaml_error(&c->y, espl__yaml_pos(a), "%s.address: 0x%x is not aligned to a 4 KiB sector (0x1000); erase works on whole sectors",
			         what, r->address);
			continue;
		}
		if (sector_aligned && r->length % ESPL_RECIPE_SECTOR) {
			espl__yaml_error(&c->y, espl__yaml_pos(l), "%s.length: 0x%x is not a multiple of 4 KiB (0x1000); erase works on whole sectors",
			         what, r->length);
			continue;
		}
		if ((uint64_t)r->address + r->length > ESP8266_MAX_FLASH) {
			espl__yaml_error(&c->y, espl__yaml_pos(e), "%s: 0x%x + 0x%x ends past 16MB, the largest ESP8266 flash", what,
			         r->address, r->length);
			continue;
		}
		(*count)++;
	}
}

static void parse_erase(parse_ctx *c, yaml_node_t *v, espl_step *s, step_opts *o)
{
	char buf[64];
	const char *sv = espl__yaml_scalar(v);
	if (sv && strcmp(sv, "chip") == 0) {
		s->erase.chip = true;
		return;
	}
	if (v->type != YAML_MAPPING_NODE) {
		espl__yaml_error(&c->y, espl__yaml_pos(v), "erase: expected 'chip' or { regions: [ { address, length }, ... ] }, got %s",
		         espl__yaml_describe(v, buf, sizeof buf));
		return;
	}
	espl__yaml_fields f = { region_list_keys, 3, { 0 }, { 0 } };
	espl__yaml_read_fields(&c->y, v, "in erase", &f, NULL, NULL);
	espl__recipe_take_opts(c, &f, o);
	yaml_node_t *r = espl__yaml_field(&f, "regions");
	if (!r)
		espl__yaml_missing_key(&c->y, v, "erase", "regions", "regions: [ { address: 0x3FB000, length: 4KB } ]");
	else
		parse_regions(c, r, "erase", true, &s->erase.regions, &s->erase.n_regions);
}

static void parse_verify(parse_ctx *c, yaml_node_t *v, espl_step *s, step_opts *o)
{
	char buf[64];
	const char *sv = espl__yaml_scalar(v);
	if (sv && strcmp(sv, "md5") == 0) {
		s->verify.all = true;
		return;
	}
	if (v->type != YAML_MAPPING_NODE) {
		espl__yaml_error(&c->y, espl__yaml_pos(v), "verify: expected 'md5' or { regions: [ { address, length }, ... ] }, got %s",
		         espl__yaml_describe(v, buf, sizeof buf));
		return;
	}
	espl__yaml_fields f = { region_list_keys, 3, { 0 }, { 0 } };
	espl__yaml_read_fields(&c->y, v, "in verify", &f, NULL, NULL);
	espl__recipe_take_opts(c, &f, o);
	yaml_node_t *r = espl__yaml_field(&f, "regions");
	if (!r)
		espl__yaml_missing_key(&c->y, v, "verify", "regions", "regions: [ { address: 0x0, length: 64KB } ]");
	else
		parse_regions(c, r, "verify", false, &s->verify.regions, &s->verify.n_regions);
}

static void parse_write(parse_ctx *c, yaml_node_t *v, espl_step *s, step_opts *o)
{
	espl__yaml_fields f = { write_keys, 7, { 0 }, { 0 } };
	yaml_node_t *x;

	if (!espl__yaml_want_mapping(&c->y, v, "write", "{ file: app.bin, address: 0x0 }"))
		return;
	espl__yaml_read_fields(&c->y, v, "in write", &f, NULL, NULL);
	espl__recipe_take_opts(c, &f, o);
	if (!(x = espl__yaml_field(&f, "file")))
		espl__yaml_missing_key(&c->y, v, "write", "file", "file: firmware.bin");
	else
		espl__recipe_get_file(c, x, "write.file", &s->write.file);
	if (!(x = espl__yaml_field(&f, "address"))) {
		espl__yaml_missing_key(&c->y, v, "write", "address", "address: 0x0");
	} else if (espl__recipe_get_u32(c, x, "write.address", &s->write.address)) {
		s->write.address_pos = espl__yaml_pos(x);
		if (s->write.address % 4)
			espl__yaml_error(&c->y, espl__yaml_pos(x), "write.address: 0x%x is not 4-byte aligned; the flasher writes whole 32-bit words",
			         s->write.address);
		else if (s->write.address % ESPL_RECIPE_SECTOR)
			espl__yaml_warn(&c->y, espl__yaml_pos(x), "write.address: 0x%x is not at a 4 KiB sector boundary; bytes 0x%x..0x%x of its sector are erased too",
			        s->write.address, s->write.address & ~(ESPL_RECIPE_SECTOR - 1), s->write.address - 1);
	}
	if ((x = espl__yaml_field(&f, "sha256")))
		espl__recipe_get_sha256(c, x, "write.sha256", &s->write.file);
	if ((x = espl__yaml_field(&f, "compress")) && espl__yaml_bool(&c->y, x, "write.compress", &s->write.compress))
		s->write.compress_default = false;
	if ((x = espl__yaml_field(&f, "skip_unchanged")) && espl__yaml_bool(&c->y, x, "write.skip_unchanged", &s->write.skip_unchanged))
		s->write.skip_unchanged_default = false;
}

static void parse_init_data(parse_ctx *c, yaml_node_t *v, espl_step *s, step_opts *o)
{
	static const char *const rf[] = { "keep", "erase" };
	espl__yaml_fields f = { init_keys, 6, { 0 }, { 0 } };
	yaml_node_t *x;

	if (!espl__yaml_want_mapping(&c->y, v, "write_init_data", "{ file: esp_init_data_default.bin }"))
		return;
	espl__yaml_read_fields(&c->y, v, "in write_init_data", &f, NULL, NULL);
	espl__recipe_take_opts(c, &f, o);
	if (!(x = espl__yaml_field(&f, "file")))
		espl__yaml_missing_key(&c->y, v, "write_init_data", "file", "file: esp_init_data_default.bin");
	else if (espl__recipe_get_file(c, x, "write_init_data.file", &s->init_data.file) &&
	         s->init_data.file.size > ESPL_INIT_DATA_MAX)
		espl__yaml_error(&c->y, espl__yaml_pos(x), "write_init_data.file: %s is %u bytes; init data must fit in one 4 KiB sector (esp_init_data_default.bin is 128 bytes)",
		         s->init_data.file.path, s->init_data.file.size);
	if ((x = espl__yaml_field(&f, "sha256")))
		espl__recipe_get_sha256(c, x, "write_init_data.sha256", &s->init_data.file);
	if ((x = espl__yaml_field(&f, "blank")) && espl__yaml_bool(&c->y, x, "write_init_data.blank", &s->init_data.blank))
		s->init_data.blank_default = false;
	if ((x = espl__yaml_field(&f, "rf_cal"))) {
		int i = espl__yaml_choice(&c->y, x, "write_init_data.rf_cal", rf, 2);
		if (i >= 0) {
			s->init_data.rf_cal = i ? ESPL_RF_CAL_ERASE : ESPL_RF_CAL_KEEP;
			s->init_data.rf_cal_default = false;
		}
	}
}

/* Patterns compile here so that a bad one is reported at its position. */
static void boot_patterns(parse_ctx *c, yaml_node_t *n, const char *what, char **out, size_t *count)
{
	size_t before = *count;
	if (!espl__recipe_string_list(c, n, what, ESPL_BOOT_PATTERNS_MAX, out, count))
		return;
	for (size_t i = before; i < *count; i++) {
		regex_t re;
		int rc = regcomp(&re, out[i], REG_EXTENDED | REG_NOSUB);
		yaml_node_t *e = n->type == YAML_SEQUENCE_NODE ? espl__yaml_node(&c->y, n->data.sequence.items.start[i]) : n;
		if (rc != 0) {
			char why[128];
			regerror(rc, &re, why, sizeof why);
			espl__yaml_error(&c->y, espl__yaml_pos(e), "%s[%zu]: not a valid regular expression (POSIX extended): %s",
			                what, i + 1, why);
			continue;
		}
		regfree(&re);
	}
}

static void parse_boot_check(parse_ctx *c, yaml_node_t *v, espl_step *s, step_opts *o)
{
	espl__yaml_fields f = { boot_keys, 6, { 0 }, { 0 } };
	yaml_node_t *x;

	if (espl__yaml_is_null(v))
		return; /* - boot_check: with every default */
	if (!espl__yaml_want_mapping(&c->y, v, "boot_check", "{ expect: [\"NodeMCU [0-9.]+\"], timeout: 5s }"))
		return;
	espl__yaml_read_fields(&c->y, v, "in boot_check", &f, NULL, NULL);
	espl__recipe_take_opts(c, &f, o);
	if ((x = espl__yaml_field(&f, "expect")))
		boot_patterns(c, x, "boot_check.expect", s->boot.expect, &s->boot.n_expect);
	if ((x = espl__yaml_field(&f, "reject")))
		boot_patterns(c, x, "boot_check.reject", s->boot.reject, &s->boot.n_reject);
	if ((x = espl__yaml_field(&f, "baud"))) {
		uint32_t b;
		if (espl__recipe_get_u32(c, x, "boot_check.baud", &b)) {
			if (b < 9600 || b > 4000000)
				espl__yaml_error(&c->y, espl__yaml_pos(x), "boot_check.baud: expected a baud rate from 9600 to 4000000, got %u", b);
			else {
				s->boot.baud = b;
				s->boot.baud_default = false;
			}
		}
	}
	if ((x = espl__yaml_field(&f, "settle"))) {
		unsigned ms;
		const char *sv = espl__yaml_scalar(x);
		char buf[64];
		if (!sv || espl_recipe_parse_duration_ms(sv, &ms) < 0 || ms > 60000)
			espl__yaml_error(&c->y, espl__yaml_pos(x), "boot_check.settle: expected a duration up to 60s such as 50ms, got %s",
			                espl__yaml_describe(x, buf, sizeof buf));
		else {
			s->boot.settle_ms = ms;
			s->boot.settle_default = false;
		}
	}
}

static void parse_reset(parse_ctx *c, yaml_node_t *v, espl_step *s)
{
	static const char *const modes[] = { "run", "stay" };
	int i = espl__yaml_choice(&c->y, v, "reset", modes, 2);
	s->reset.run = i != 1;
}

/* A step key the user put beside the step instead of inside it. */
static bool explain_misplaced(parse_ctx *c, yaml_node_t *k, const espl_step *s, bool have_kind)
{
	const char *name = (const char *)k->data.scalar.value;
	const char *const *inner = NULL;
	size_t n = 0;
	if (strcmp(name, "expect") == 0) {
		espl__yaml_error(&c->y, espl__yaml_pos(k), "'expect' is a top-level key, not a step: it is checked once per unit before any step runs");
		return true;
	}
	if (!have_kind)
		return false;
	switch (s->kind) {
	case ESPL_STEP_WRITE: inner = write_keys; n = 5; break;
	case ESPL_STEP_WRITE_INIT_DATA: inner = init_keys; n = 4; break;
	case ESPL_STEP_ERASE: case ESPL_STEP_VERIFY: inner = region_list_keys; n = 1; break;
	case ESPL_STEP_BOOT_CHECK: inner = boot_keys; n = 4; break;
	default: break;
	}
	if (inner && keys_contain(inner, n, name)) {
		espl__yaml_error(&c->y, espl__yaml_pos(k), "'%s' belongs inside %s: indent it under '%s:' (or write %s: { %s: ... })",
		         name, espl_step_kind_name(s->kind), espl_step_kind_name(s->kind),
		         espl_step_kind_name(s->kind), name);
		return true;
	}
	return false;
}

void espl__recipe_step_defaults(espl_step *s)
{
	s->retries_default = s->timeout_default = true;
	s->write.compress = true;
	s->write.compress_default = s->write.skip_unchanged_default = true;
	s->init_data.blank = true;
	s->init_data.rf_cal = ESPL_RF_CAL_ERASE;
	s->init_data.blank_default = s->init_data.rf_cal_default = true;
	s->boot.baud = 115200;
	s->boot.settle_ms = 50;
	s->boot.baud_default = s->boot.settle_default = true;
	s->unit_data.pad = 0xFF;
	s->unit_data.pad_default = s->unit_data.skip_unchanged_default = true;
	switch (s->kind) {
	case ESPL_STEP_WRITE: case ESPL_STEP_WRITE_INIT_DATA: case ESPL_STEP_WRITE_UNIT_DATA: s->retries = 2; break;
	case ESPL_STEP_BOOT_CHECK: s->retries = 0; break; /* a boot that failed is an answer */
	default: s->retries = 1; break;
	}
}

void espl__recipe_parse_step(parse_ctx *c, yaml_node_t *item, unsigned number, espl_step *s)
{
	char buf[64], in[32];
	yaml_node_t *others[4];
	size_t n_others = 0;
	espl__yaml_fields f = { step_keys, N_STEP_KEYS, { 0 }, { 0 } };
	int kind = -1;
	step_opts o = { NULL, NULL };

	s->number = number;
	s->pos = espl__yaml_pos(item);
	if (item->type != YAML_MAPPING_NODE) {
		espl__yaml_error(&c->y, espl__yaml_pos(item), "steps[%u]: expected a step such as '- verify: md5', got %s", number,
		         espl__yaml_describe(item, buf, sizeof buf));
		return;
	}
	snprintf(in, sizeof in, "in steps[%u]", number);
	espl__yaml_read_fields(&c->y, item, in, &f, others, &n_others);
	for (size_t i = 0; i < N_YAML_STEP_KINDS; i++) {
		if (!f.keys[i])
			continue;
		if (kind >= 0) {
			espl__yaml_error(&c->y, espl__yaml_pos(f.keys[i]), "steps[%u] has both '%s' and '%s'; give each step its own list item (- %s: ...)",
			         number, step_keys[kind], step_keys[i], step_keys[i]);
			continue;
		}
		kind = (int)i;
	}
	if (kind >= 0) {
		s->kind = (enum espl_step_kind)kind;
		s->pos = espl__yaml_pos(f.keys[kind]);
	}
	espl__recipe_step_defaults(s);
	for (size_t i = 0; i < n_others; i++)
		if (!explain_misplaced(c, others[i], s, kind >= 0))
			espl__yaml_unknown_key(&c->y, others[i], in, step_keys, N_STEP_KEYS);
	if (kind < 0) {
		if (n_others == 0)
			espl__yaml_error(&c->y, espl__yaml_pos(item), "steps[%u]: expected one of erase, write, write_init_data, write_unit_data, verify, reset or boot_check",
			         number);
		return;
	}
	o.retries = espl__yaml_field(&f, "retries");
	o.timeout = espl__yaml_field(&f, "timeout");
	yaml_node_t *v = f.values[kind];
	switch (s->kind) {
	case ESPL_STEP_ERASE: parse_erase(c, v, s, &o); break;
	case ESPL_STEP_WRITE: parse_write(c, v, s, &o); break;
	case ESPL_STEP_WRITE_INIT_DATA: parse_init_data(c, v, s, &o); break;
	case ESPL_STEP_VERIFY: parse_verify(c, v, s, &o); break;
	case ESPL_STEP_RESET: parse_reset(c, v, s); break;
	case ESPL_STEP_BOOT_CHECK: parse_boot_check(c, v, s, &o); break;
	case ESPL_STEP_WRITE_UNIT_DATA: espl__recipe_parse_unit_data(c, v, s, &o); break;
	case ESPL_STEP_READ: break; /* not a YAML key (N_YAML_STEP_KINDS) */
	}
	apply_opts(c, &o, s);
}
