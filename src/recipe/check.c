/* check.c - a recipe's default timeouts and layout rules; see include/espline/recipe.h and src/recipe/recipe_int.h. */
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

#include "recipe/recipe_int.h"
#include "recipe/yaml.h"


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
	if (s->kind == ESPL_STEP_WRITE && !s->write.check_only)
		return espl__recipe_round_up(s->write.file.size, 4);
	if (s->kind == ESPL_STEP_WRITE_INIT_DATA)
		return espl__recipe_round_up(s->init_data.file.size, 4) + (s->init_data.blank ? ESPL_RECIPE_SECTOR : 0);
	if (s->kind == ESPL_STEP_WRITE_UNIT_DATA)
		return s->unit_data.size;
	return 0;
}

void espl__recipe_fill_default_timeouts(espl_recipe *r)
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
			if (s->write.check_only) { /* an MD5 only */
				s->timeout_ms = secs_ms(s->write.file.size, 8, 10);
				break;
			}
			/* fall through */
		case ESPL_STEP_WRITE_INIT_DATA:
		case ESPL_STEP_WRITE_UNIT_DATA: {
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
		case ESPL_STEP_BOOT_CHECK:
			s->timeout_ms = 5000;
			break;
		case ESPL_STEP_READ: {
			/* the wire time at flash_baud, plus the MD5 of the whole */
			uint64_t wire_ms = (uint64_t)s->read.length * 10 * 1000 / r->connect.flash_baud;
			s->timeout_ms = secs_ms(s->read.length, 8, 10) + (unsigned)((wire_ms + 999) / 1000 * 1000);
			break;
		}
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
	bool built;                 /* a device command's: there is one unit's flash */
} layout;

static uint32_t sector_floor(uint32_t a) { return a & ~(ESPL_RECIPE_SECTOR - 1); }

const char *espl__recipe_base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static void describe_op(const flash_op *o, char *buf, size_t len)
{
	if (o->step->pos.line == 0) /* a built recipe: no lines, name the file */
		snprintf(buf, len, "%s (0x%x..0x%x)", o->what, o->start, o->end - 1);
	else
		snprintf(buf, len, "step %u (%s, line %u) at 0x%x..0x%x", o->step->number,
	         espl_step_kind_name(o->step->kind), o->step->pos.line, o->start, o->end - 1);
}

static bool bounds_ok(parse_ctx *c, const layout *l, uint64_t end, espl_recipe_pos pos,
                      const char *what)
{
	char lim[16];
	if (end <= l->limit)
		return true;
	/* A recipe allows a range of units; a device command has one. */
	espl__yaml_error(&c->y, pos, "%s ends at 0x%llx, past the end of the %s (%s, %s)", what,
	         (unsigned long long)end, l->built ? "flash" : "smallest allowed flash",
	         espl_recipe_format_size(l->limit, lim, sizeof lim), l->limit_why);
	return false;
}

bool espl_recipe_sectors_meet(uint32_t a, uint64_t a_end, uint32_t b, uint64_t b_end)
{
	uint64_t a_last = (a_end + ESPL_RECIPE_SECTOR - 1) / ESPL_RECIPE_SECTOR * ESPL_RECIPE_SECTOR;
	uint64_t b_last = (b_end + ESPL_RECIPE_SECTOR - 1) / ESPL_RECIPE_SECTOR * ESPL_RECIPE_SECTOR;
	return sector_floor(a) < b_last && sector_floor(b) < a_last;
}

/* Two writes (or a write and a later erase) must not share a sector
 * (espl_recipe_sectors_meet). */
static bool overlap_ok(parse_ctx *c, const layout *l, enum op_kind kind, uint32_t start,
                       uint64_t end, espl_recipe_pos pos, const char *what)
{
	char buf[160];
	for (size_t i = 0; i < l->n; i++) {
		const flash_op *o = &l->ops[i];
		if (o->kind != OP_WRITE || o->floating)
			continue;
		if (espl_recipe_sectors_meet(start, end, o->start, o->end)) {
			describe_op(o, buf, sizeof buf);
			if (kind == OP_WRITE)
				espl__yaml_error(&c->y, pos, "%s (0x%x..0x%llx) overlaps %s; writes are erased in 4 KiB sectors, so two writes must not share a sector",
				         what, start, (unsigned long long)end - 1, buf);
			else
				espl__yaml_error(&c->y, pos, "%s (0x%x..0x%llx) would erase what %s wrote", what, start,
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
		espl__yaml_error(&c->y, pos, "too many flash regions in one recipe (at most %zu)", l->n);
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
			espl__yaml_error(&c->y, s->pos, "verify: md5 has nothing to check: no write comes before it");
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
				espl__yaml_error(&c->y, r->pos, "%s includes bytes no earlier step wrote or erased, so their MD5 cannot be known",
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
	snprintf(what, sizeof what, "init data %s", espl__recipe_base_name(s->init_data.file.path));
	add_op(c, l, OP_WRITE, a.init_data, espl__recipe_round_up(s->init_data.file.size, 4), s, s->pos, what, floating);
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
				espl__yaml_error(&c->y, s->pos, "erase: chip would erase what %s wrote", buf);
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
void espl__recipe_check_layout(parse_ctx *c, const espl_recipe *r, uint32_t system_size, uint32_t limit,
                         const char *limit_why)
{
	layout *l = calloc(1, sizeof *l);
	const espl_step *reported = NULL;

	if (!l) {
		espl__yaml_error(&c->y, (espl_recipe_pos){ 1, 1 }, "out of memory");
		return;
	}
	l->limit = limit;
	l->limit_why = limit_why;
	l->built = r->built;
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
			if (s->write.check_only) { /* writes nothing: only its bounds */
				snprintf(what, sizeof what, "%s", espl__recipe_base_name(s->write.file.path));
				bounds_ok(c, l, (uint64_t)s->write.address + s->write.file.size, s->write.address_pos, what);
				break;
			}
			snprintf(what, sizeof what, "write of %s", espl__recipe_base_name(s->write.file.path));
			add_op(c, l, OP_WRITE, s->write.address, espl__recipe_round_up(s->write.file.size, 4), s,
			       s->write.address_pos, what, false);
			if (s->write.skip_unchanged && l->chip_erased)
				espl__yaml_warn(&c->y, s->pos, "write.skip_unchanged has no effect after erase: chip (every region was just erased)");
			break;
		case ESPL_STEP_WRITE_INIT_DATA:
			if (s->init_data.file.path)
				layout_init_data(c, l, s, system_size);
			break;
		case ESPL_STEP_WRITE_UNIT_DATA:
			add_op(c, l, OP_WRITE, s->unit_data.address, s->unit_data.size, s, s->unit_data.address_pos,
			       "write_unit_data", false);
			break;
		case ESPL_STEP_VERIFY:
			layout_verify(c, l, s);
			break;
		case ESPL_STEP_RESET:
		case ESPL_STEP_BOOT_CHECK:
			break;
		case ESPL_STEP_READ:
			bounds_ok(c, l, (uint64_t)s->read.address + s->read.length, s->pos, "read");
			break;
		}
	}
	for (size_t i = 0; i < l->n && !r->verify_optional; i++) {
		const flash_op *o = &l->ops[i];
		if (o->kind != OP_WRITE || o->verified || o->step == reported)
			continue;
		espl__yaml_error(&c->y, o->step->pos, "%s is never verified: add '- verify: md5' after it (a unit passes only when every written region is verified)",
		         o->what);
		reported = o->step;
	}
	free(l);
}

void espl__recipe_check_steps(parse_ctx *c, espl_recipe *r, yaml_node_t *steps_key)
{
	size_t resets = 0;
	for (size_t i = 0; i < r->n_steps; i++) {
		const espl_step *s = &r->steps[i];
		if (s->kind == ESPL_STEP_BOOT_CHECK && i + 1 < r->n_steps)
			espl__yaml_error(&c->y, r->steps[i + 1].pos, "%s comes after boot_check (line %u); boot_check must be the last step: it starts the firmware itself, in place of 'reset: run'",
			         espl_step_kind_name(r->steps[i + 1].kind), s->pos.line);
		else if (s->kind == ESPL_STEP_RESET && i + 1 < r->n_steps)
			espl__yaml_error(&c->y, r->steps[i + 1].pos, "%s comes after reset (line %u); reset must be the last step%s",
			         espl_step_kind_name(r->steps[i + 1].kind), s->pos.line,
			         r->steps[i + 1].kind == ESPL_STEP_BOOT_CHECK ? " (boot_check resets the module itself: drop the reset step)" : "");
		if (s->kind == ESPL_STEP_BOOT_CHECK && r->connect.reset == ESPL_CONNECT_RESET_NONE)
			espl__yaml_error(&c->y, s->pos, "boot_check needs a way to restart the module into its firmware, and connect.reset is none: use reset: auto (DTR/RTS), or a fixture's commands, connect: { reset: { run: [\"CMD ...\"] } }");
		if (s->kind == ESPL_STEP_BOOT_CHECK && r->connect.reset == ESPL_CONNECT_RESET_FIXTURE && !r->connect.fixture.n_run)
			espl__yaml_error(&c->y, s->pos, "boot_check needs connect.reset.run: the fixture's commands that restart the module with GPIO0 high");
		resets += s->kind == ESPL_STEP_RESET || s->kind == ESPL_STEP_BOOT_CHECK;
	}
	if (resets == 0 && r->n_steps > 0)
		espl__yaml_warn(&c->y, espl__yaml_pos(steps_key), "no reset step: units stay in the bootloader after programming (add '- reset: run' to start the application)");

	if (r->flash.size_mode == ESPL_FLASH_SIZE_FIXED && r->expect.flash_size_min &&
	    r->expect.flash_size_min < r->flash.size) {
		char a[16], b[16];
		espl__yaml_warn(&c->y, r->flash.size_pos, "flash.size is %s but expect.flash_size_min lets %s units through; they will fail (raise flash_size_min to %s)",
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
	espl__recipe_check_layout(c, r, espl_recipe_min_flash_size(r), limit, why);
}
