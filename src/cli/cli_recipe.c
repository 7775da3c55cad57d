/* cli_recipe.c - `espline recipe check|show FILE`: validate or print a recipe
 * without touching a device. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "espline/runner.h"
#include "espline/csvtable.h"
#include "espline/recipe.h"

static void recipe_usage(FILE *out)
{
	fputs("usage: espline recipe check FILE...   validate recipes (exit 0 ok, 2 invalid)\n"
	      "       espline recipe show FILE       print the recipe fully resolved:\n"
	      "                                      defaults, absolute paths, file hashes\n"
	      "Messages go to stderr as FILE:LINE:COLUMN: error: ...; no device is touched.\n",
	      out);
}

espl_recipe *espl_cli_recipe_load(const char *path)
{
	espl_recipe *r = NULL;
	espl_error err = { 0, "" };

	int rc = espl_recipe_load(path, espl_cli_print_diag, NULL, &r, &err);
	if (rc == ESPL_OK)
		rc = espl_recipe_prepare(r, espl_cli_print_diag, NULL, &err);
	if (rc == ESPL_OK)
		return r;
	if (rc != ESPL_ERECIPE) /* the recipe itself could not be read */
		fprintf(stderr, "%s\n", espl_cli_shown(err.msg));
	espl_recipe_free(r);
	return NULL;
}

/* ---- show: YAML that re-parses to the same recipe --------------------- */

void espl_cli_put_quoted(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch < 0x20 || ch == 0x7f)
			printf("\\x%02x", ch);   /* a YAML double-quoted escape */
		else {
			if (ch == '"' || ch == '\\')
				putchar('\\');
			putchar(ch);
		}
	}
	putchar('"');
}

static const char *dflt(bool is_default)
{
	return is_default ? "  # default" : "";
}

static void put_duration(unsigned ms)
{
	if (ms % 1000 == 0)
		printf("%us", ms / 1000);
	else
		printf("%ums", ms);
}

static void show_strings(const char *key, char *const *v, size_t n)
{
	printf("%s: [", key);
	for (size_t i = 0; i < n; i++) {
		fputs(i ? ", " : "", stdout);
		espl_cli_put_quoted(v[i]);
	}
	puts("]");
}

static void show_connect(const espl_recipe *r)
{
	const espl_recipe_connect *c = &r->connect;
	if (c->reset == ESPL_CONNECT_RESET_FIXTURE) {
		puts("connect:\n  reset:  # a fixture's commands, run without a shell");
		show_strings("    download", c->fixture.download, c->fixture.n_download);
		show_strings("    run", c->fixture.run, c->fixture.n_run);
	} else {
		printf("connect:\n  reset: %s%s\n", c->reset == ESPL_CONNECT_RESET_AUTO ? "auto" : "none",
		       dflt(c->reset_default));
	}
	printf("  baud: %u%s\n", espl_recipe_rom_baud(r), !c->baud_default ? ""
	       : c->n_lower_bauds ? "  # default: the ladder's last rate (115200 if the ROM is deaf there)"
	       : "  # default: the flash_baud (115200 if the ROM is deaf there)");
	printf("  flash_baud: %s%u", c->n_lower_bauds ? "[" : "", c->flash_baud);
	for (size_t i = 0; i < c->n_lower_bauds; i++)
		printf(", %u", c->lower_bauds[i]);
	printf("%s%s\n", c->n_lower_bauds ? "]" : "", dflt(c->flash_baud_default));
	if (c->stub == ESPL_STUB_GENERATION) {
		printf("  stub: %s\n", c->stub_path);  /* a generation's name, checked */
	} else if (c->stub == ESPL_STUB_FILE) {
		fputs("  stub: ", stdout);
		espl_cli_put_quoted(c->stub_path);
		putchar('\n');
	} else {
		printf("  stub: builtin%s\n", dflt(c->stub_default));
	}
}

static void show_flash(const espl_recipe *r)
{
	const espl_recipe_flash *f = &r->flash;
	char buf[16];
	const char *size = f->size_mode == ESPL_FLASH_SIZE_DETECT ? "detect"
	                   : f->size_mode == ESPL_FLASH_SIZE_KEEP ? "keep"
	                   : espl_recipe_format_size(f->size, buf, sizeof buf);
	printf("flash:\n  size: %s%s\n", size, dflt(f->size_default));
	printf("  mode: %s%s\n", espl_flash_mode_name(f->mode), dflt(f->mode_default));
	printf("  freq: %s%s\n", espl_flash_freq_name(f->freq), dflt(f->freq_default));
}

static void show_expect(const espl_recipe *r)
{
	const espl_recipe_expect *e = &r->expect;
	char buf[16];
	if (!e->flash_size_min && !e->n_manufacturers && !e->n_ouis && !e->flash_capacity && !e->crystal_mhz &&
	    !e->barcode) {
		puts("expect: {}  # no conditions: any ESP8266 is programmed");
		return;
	}
	puts("expect:  # checked once per unit, before any step");
	if (e->flash_size_min)
		printf("  flash_size_min: %s\n", espl_recipe_format_size(e->flash_size_min, buf, sizeof buf));
	if (e->n_manufacturers) {
		puts("  flash_manufacturer:");
		for (size_t i = 0; i < e->n_manufacturers; i++) {
			const char *name = espl_flash_manufacturer_name(e->manufacturers[i]);
			printf("    - 0x%02X%s%s\n", e->manufacturers[i], name ? "  # " : "", name ? name : "");
		}
	}
	if (e->n_ouis) {
		puts("  mac_oui:");
		for (size_t i = 0; i < e->n_ouis; i++)
			printf("    - \"%02X:%02X:%02X\"\n", e->ouis[i][0], e->ouis[i][1], e->ouis[i][2]);
	}
	if (e->flash_capacity)
		puts("  flash_capacity: verified  # after the last verify: no address alias holds the image");
	if (e->crystal_mhz)
		printf("  crystal_mhz: %u  # the unit's crystal, and byte 48 of the init data\n", e->crystal_mhz);
	if (e->barcode) {
		printf("  barcode: ");
		espl_cli_put_quoted(e->barcode);
		printf("  # the code scanned for each unit (station file: scan)\n");
	}
}

static void show_file(const char *key, const espl_recipe_file *f)
{
	printf("      %s: ", key);
	espl_cli_put_quoted(f->path);
	printf("  # %u bytes\n", f->size);
	if (f->pin[0])
		printf("      sha256: \"%s\"  # pinned, matches\n", f->pin);
	else
		printf("      # sha256 %s (not pinned)\n", f->sha256);
}

static void show_regions(const espl_region *regions, size_t n)
{
	puts("      regions:");
	for (size_t i = 0; i < n; i++)
		printf("        - { address: 0x%06x, length: 0x%x }\n", regions[i].address, regions[i].length);
}

static void show_system_area(const espl_recipe *r, const espl_step *s)
{
	espl_system_area a;
	char buf[16];
	uint32_t size = espl_recipe_min_flash_size(r);
	if (r->flash.size_mode == ESPL_FLASH_SIZE_FIXED && espl_system_area_for(size, &a, NULL) == 0) {
		printf("      # init data at 0x%06x", a.init_data);
	} else if (r->flash.size_mode == ESPL_FLASH_SIZE_KEEP && r->image_declared_size &&
	           espl_system_area_for(r->image_declared_size, &a, NULL) == 0) {
		printf("      # image at 0x0 declares %s: init data at 0x%06x",
		       espl_recipe_format_size(r->image_declared_size, buf, sizeof buf), a.init_data);
	} else {
		puts("      # init data at (detected flash size - 0x4000); blank at - 0x2000; RF cal at - 0x5000");
		if (size && espl_system_area_for(size, &a, NULL) == 0)
			printf("      # smallest allowed flash %s: init data at 0x%06x\n",
			       espl_recipe_format_size(size, buf, sizeof buf), a.init_data);
		return;
	}
	if (s->init_data.blank)
		printf(", blank at 0x%06x", a.blank);
	if (s->init_data.rf_cal == ESPL_RF_CAL_ERASE)
		printf(", RF cal erased at 0x%06x", a.rf_cal);
	putchar('\n');
}

static void show_unit_data(const espl_recipe *r, const espl_step *s)
{
	const espl_recipe_csv *c = &r->csv;
	printf("  - write_unit_data:\n      address: 0x%06x\n      size: 0x%x\n", s->unit_data.address, s->unit_data.size);
	if (s->unit_data.layout)
		printf("      layout: [ %zu fields ]  # line %u\n", s->unit_data.n_layout, s->unit_data.layout_pos.line);
	else
		show_file("template", &s->unit_data.tmpl);
	printf("      pad: 0x%02X%s\n", s->unit_data.pad, dflt(s->unit_data.pad_default));
	printf("      skip_unchanged: %s%s\n", s->unit_data.skip_unchanged ? "true" : "false",
	       dflt(s->unit_data.skip_unchanged_default));
	if (!c->path || c->pos.line < s->pos.line || (s + 1 < r->steps + r->n_steps && c->pos.line >= s[1].pos.line))
		return;
	printf("      from_csv: ");
	espl_cli_put_quoted(c->path);
	printf("  # %zu rows\n      csv_key: ", c->table ? espl_csv_rows(c->table) : 0);
	espl_cli_put_quoted(c->table ? espl_csv_column_name(c->table, espl_csv_key_column(c->table)) : "?");
	puts(c->key_column ? "" : "  # default: the first column");
	show_strings("      secret_columns", c->secret, c->n_secret);
	printf("      csv_policy: %s%s\n", c->policy == ESPL_POLICY_VOID_ON_FAIL ? "void_on_fail" : "commit_on_pass",
	       dflt(c->policy_default));
}

static void show_serial(const espl_recipe *r)
{
	const espl_recipe_serial *s = &r->serial;
	if (!s->enabled)
		return;
	fputs("serial:  # reserved when a unit starts, committed when it passes\n  counter: ", stdout);
	espl_cli_put_quoted(s->counter);
	fputs("\n  format: ", stdout);
	espl_cli_put_quoted(s->format);
	printf("\n  policy: %s%s\n", s->policy == ESPL_POLICY_VOID_ON_FAIL ? "void_on_fail" : "commit_on_pass",
	       dflt(s->policy_default));
	printf("  reuse_for_mac: %s%s\n", s->reuse_for_mac ? "true" : "false", dflt(s->reuse_default));
	printf("  first: %u%s\n", s->first, dflt(s->first_default));
	printf("  lease: %u%s  # numbers taken from a central database at a time (--central)\n", s->lease,
	       dflt(s->lease_default));
}

static void show_step(const espl_recipe *r, const espl_step *s)
{
	switch (s->kind) {
	case ESPL_STEP_ERASE:
		if (s->erase.chip)
			printf("  - erase: chip\n");
		else {
			printf("  - erase:\n");
			show_regions(s->erase.regions, s->erase.n_regions);
		}
		break;
	case ESPL_STEP_VERIFY:
		if (s->verify.all)
			printf("  - verify: md5  # every region written before this step\n");
		else {
			printf("  - verify:\n");
			show_regions(s->verify.regions, s->verify.n_regions);
		}
		break;
	case ESPL_STEP_WRITE:
		printf("  - write:\n");
		show_file("file", &s->write.file);
		printf("      address: 0x%06x\n", s->write.address);
		printf("      compress: %s%s\n", s->write.compress ? "true" : "false",
		       dflt(s->write.compress_default));
		printf("      skip_unchanged: %s%s\n", s->write.skip_unchanged ? "true" : "false",
		       dflt(s->write.skip_unchanged_default));
		break;
	case ESPL_STEP_WRITE_INIT_DATA:
		printf("  - write_init_data:\n");
		show_file("file", &s->init_data.file);
		printf("      blank: %s%s\n", s->init_data.blank ? "true" : "false",
		       dflt(s->init_data.blank_default));
		printf("      rf_cal: %s%s\n", s->init_data.rf_cal == ESPL_RF_CAL_ERASE ? "erase" : "keep",
		       dflt(s->init_data.rf_cal_default));
		show_system_area(r, s);
		break;
	case ESPL_STEP_RESET:
		printf("  - reset: %s\n", s->reset.run ? "run" : "stay");
		break;
	case ESPL_STEP_BOOT_CHECK:
		printf("  - boot_check:\n");
		show_strings("      expect", s->boot.expect, s->boot.n_expect);
		show_strings("      reject", s->boot.reject, s->boot.n_reject);
		printf("      # and always rejected: rf_cal, csum err, Fatal exception, wdt reset\n");
		printf("      baud: %u%s\n", s->boot.baud, dflt(s->boot.baud_default));
		printf("      settle: %ums%s\n", s->boot.settle_ms, dflt(s->boot.settle_default));
		break;
	case ESPL_STEP_WRITE_UNIT_DATA:
		show_unit_data(r, s);
		break;
	case ESPL_STEP_READ: /* a built recipe's only: never loaded from a file */
		printf("  # read 0x%x+0x%x\n", s->read.address, s->read.length);
		break;
	}
	printf("    retries: %u%s\n    timeout: ", s->retries, dflt(s->retries_default));
	put_duration(s->timeout_ms);
	printf("%s\n", s->timeout_default ? "  # default, per attempt" : "  # per attempt");
}

static void show(const espl_recipe *r)
{
	printf("# espline recipe show %s\n", espl_cli_shown(r->path));
	printf("# recipe text sha256 %s\n", r->sha256);
	puts("# Fully resolved: defaults filled in (marked), paths absolute.");
	fputs("recipe: ", stdout);
	espl_cli_put_quoted(r->name);
	puts("\nchip: esp8266");
	show_connect(r);
	show_flash(r);
	show_expect(r);
	show_serial(r);
	puts("steps:");
	for (size_t i = 0; i < r->n_steps; i++)
		show_step(r, &r->steps[i]);
}

/* Everything `espline run` checks before it touches a device: the recipe,
 * and the plan built from it (the flasher stub found and parsed, every
 * image prepared for the flash sizes it may meet). */
static int check_one(const char *path)
{
	espl_recipe *r = espl_cli_recipe_load(path);
	espl_plan *plan = NULL;
	espl_error err = { 0, "" };
	if (!r)
		return ESPL_EXIT_USAGE;
	int rc = espl_plan_new(r, espl_cli_stub_env(), &plan, &err);
	if (rc < 0) {
		/* a recipe fault (already placed at FILE:LINE:COL) is 2; no usable
		 * stub or memory is the station's (5), as for `espline run` */
		if (rc == ESPL_ERECIPE)
			fprintf(stderr, "%s\n", espl_cli_shown(err.msg));
		else
			fprintf(stderr, "%s: error: %s\n", espl_cli_shown(path), espl_cli_shown(err.msg));
		espl_recipe_free(r);
		return rc == ESPL_ERECIPE ? ESPL_EXIT_USAGE : ESPL_EXIT_STATION;
	}
	printf("%s: ok: recipe \"%s\", %zu steps\n", espl_cli_shown(path), espl_cli_shown(r->name), r->n_steps);
	espl_plan_free(plan);
	espl_recipe_free(r);
	return ESPL_EXIT_OK;
}

static int cmd_check(int argc, char **argv)
{
	int rc = ESPL_EXIT_OK;
	for (int i = 0; i < argc; i++) {
		int one = check_one(argv[i]);
		if (one && (rc == ESPL_EXIT_OK || one == ESPL_EXIT_USAGE))
			rc = one;
	}
	return rc;
}

static int cmd_show(const char *path)
{
	espl_recipe *r = espl_cli_recipe_load(path);
	if (!r)
		return ESPL_EXIT_USAGE;
	show(r);
	espl_recipe_free(r);
	return ESPL_EXIT_OK;
}

static int run_recipe(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		recipe_usage(stdout);
		return ESPL_EXIT_OK;
	}
	if (argc >= 3 && strcmp(argv[1], "check") == 0)
		return cmd_check(argc - 2, argv + 2);
	if (argc == 3 && strcmp(argv[1], "show") == 0)
		return cmd_show(argv[2]);
	recipe_usage(stderr);
	return ESPL_EXIT_USAGE;
}

const espl_cli_command espl_cmd_recipe = {
	"recipe", "check or show a YAML recipe without touching a device", run_recipe,
};
