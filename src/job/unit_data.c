/* unit_data.c - a unit's identity (serial number, CSV row) and its
 * write_unit_data steps: rendered once the identity is reserved, written
 * and verified through the same path as every other region; see
 * include/espline/runner.h. */
#include "espline/runner.h"
#include "espline/csvtable.h"
#include "espline/unitdata.h"
#include "job/runner_int.h"
#include "util/str.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool espl__runner_needs_identity(const espl_recipe *r)
{
	if (r->serial.enabled || r->csv.path)
		return true;
	for (size_t i = 0; i < r->n_steps; i++)
		if (r->steps[i].kind == ESPL_STEP_WRITE_UNIT_DATA)
			return true;
	return false;
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned n = 0;
	out[0] = '\0';
	if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL))
		return;
	for (unsigned i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int render_step(unit *u, const espl_step *s, espl_image **out, espl_error *err)
{
	const espl_unit_result *res = u->res;
	espl_unit_values v = { 0 };
	espl_flash_params keep;
	size_t n = 0;
	uint8_t *buf = malloc(s->unit_data.size);

	if (!buf)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	v.serial = res->identity.serial;
	v.mac = res->chip.mac_str;
	v.chip_id = res->chip.chip_id;
	v.batch = res->identity.batch;
	v.time_ms = res->started_unix_ms;
	v.csv = res->identity.csv_row >= 0 ? u->r->csv.table : NULL;
	v.csv_row = res->identity.csv_row >= 0 ? (size_t)res->identity.csv_row : 0;
	int rc = s->unit_data.layout
	         ? espl_layout_render(s->unit_data.layout, s->unit_data.n_layout, &v, s->unit_data.pad, buf,
	                              s->unit_data.size, err)
	         : espl_template_render((const char *)s->unit_data.tmpl.data, s->unit_data.tmpl.size,
	                                ESPL_TEMPLATE_UNIT_DATA, &v, buf, s->unit_data.size, &n, err);
	if (rc == ESPL_OK) {
		if (!s->unit_data.layout)
			memset(buf + n, s->unit_data.pad, s->unit_data.size - n);
		espl_flash_params_keep(&keep);
		rc = espl_image_prepare(buf, s->unit_data.size, s->unit_data.address, &keep, 0, "unit data", out, err);
	}
	/* the bytes may hold a secret from the CSV: no copy left behind */
	memset(buf, 0, s->unit_data.size);
	free(buf);
	if (rc < 0)
		espl_error_prefix(err, "step %u (write_unit_data, line %u)", s->number, s->pos.line);
	return rc;
}

int espl__runner_identity(unit *u, espl_error *err)
{
	const espl_recipe *r = u->r;
	espl_unit_result *res = u->res;

	res->identity.csv_row = -1;
	if (!espl__runner_needs_identity(r))
		return ESPL_OK;
	if (!u->o->events.reserve)
		return espl_fail(err, ESPL_EARG, "this recipe gives each unit a serial number, a CSV row or unit data: "
		                 "those come from a station's database (espline run), not from a one-unit command");
	ESPL_TRY(u->o->events.reserve(u->o->events.ctx, res, err));
	res->reserved = true;
	u->unit_data = calloc(r->n_steps, sizeof *u->unit_data);
	if (!u->unit_data)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	for (size_t i = 0; i < r->n_steps; i++)
		if (r->steps[i].kind == ESPL_STEP_WRITE_UNIT_DATA)
			ESPL_TRY(render_step(u, &r->steps[i], &u->unit_data[i], err));
	return ESPL_OK;
}

void espl__runner_free_unit_data(unit *u)
{
	for (size_t i = 0; u->unit_data && i < u->r->n_steps; i++) {
		espl_image *img = u->unit_data[i];
		if (img && img->data)
			memset(img->data, 0, img->size);
		espl_image_free(img);
	}
	free(u->unit_data);
	u->unit_data = NULL;
}

/* What the record keeps of the unit's data: the bytes' SHA-256, the
 * serial, the CSV row's key and the SHA-256 of each secret cell (never the
 * cell).  Escaped: keys come from a file. */
static void describe(unit *u, const espl_image *img, espl_step_result *sr)
{
	const espl_recipe_csv *c = &u->r->csv;
	const espl_unit_identity *id = &u->res->identity;
	char line[512], hex[65], esc[256];

	sha256_hex(img->data, img->size, hex);
	snprintf(line, sizeof line, "sha256 %s (%zu bytes at 0x%06X)", hex, img->size, img->address);
	espl__runner_add_detail(sr, line);
	if (id->serial[0]) {
		snprintf(line, sizeof line, "serial %s", espl__str_escape(id->serial, esc, sizeof esc));
		espl__runner_add_detail(sr, line);
	}
	if (id->csv_row < 0 || !c->table)
		return;
	size_t row = (size_t)id->csv_row;
	snprintf(line, sizeof line, "csv %s key %s", espl__runner_base_name(c->path),
	         espl__str_escape(espl_csv_key(c->table, row), esc, sizeof esc));
	espl__runner_add_detail(sr, line);
	for (size_t i = 0; i < c->n_secret; i++) {
		int col = espl_csv_column(c->table, c->secret[i]);
		const char *cell = col >= 0 ? espl_csv_cell(c->table, row, (size_t)col) : "";
		sha256_hex(cell, strlen(cell), hex);
		snprintf(line, sizeof line, "secret %s sha256 %s", espl__str_escape(c->secret[i], esc, sizeof esc), hex);
		espl__runner_add_detail(sr, line);
	}
}

int espl__runner_write_unit_data(unit *u, size_t index, espl_step_result *sr, espl_error *err)
{
	const espl_step *s = u->step;
	const espl_image *img = u->unit_data ? u->unit_data[index] : NULL;
	if (!img)
		return espl_fail(err, ESPL_EARG, "the unit data was not rendered (no identity reserved)");
	describe(u, img, sr);
	return espl__runner_write_image(u, img, true, s->unit_data.skip_unchanged, "unit data", sr, err);
}
