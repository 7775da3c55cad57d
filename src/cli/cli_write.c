/* cli_write.c - the write and verify commands: parse the files, check the
 * layout, connect, write or verify, report; see src/cli/cli_device.h. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/cli_device.h"
#include "espline/esp8266.h"
#include "util/clock.h"
#include "espline/flash.h"
#include "espline/flashmap.h"
#include "espline/image.h"
#include "espline/loader.h"
#include "espline/port.h"
#include "espline/recipe.h"
#include "espline/reset.h"
#include "espline/stub.h"

/* ---- write / verify ----------------------------------------------------- */

typedef struct file_arg {
	uint32_t addr;
	const char *path;
	espl_image_source *src;
} file_arg;

static int cmp_addr(const void *x, const void *y)
{
	const file_arg *a = x, *b = y;
	return a->addr < b->addr ? -1 : a->addr > b->addr;
}

/* ADDR FILE pairs from the positional arguments after PORT, loaded and
 * checked before any device is touched. */
static int load_files(dev_args *a, file_arg *files, int *nfiles)
{
	espl_error err;
	int n = (a->npos - 1) / 2;
	if (a->npos < 3 || (a->npos - 1) % 2) {
		fprintf(stderr, "espline %s: needs PORT and one or more ADDR FILE pairs (espline %s --help)\n",
			a->cmd, a->cmd);
		return ESPL_EXIT_USAGE;
	}
	if (n > MAX_FILES) {
		fprintf(stderr, "espline %s: at most %d files\n", a->cmd, MAX_FILES);
		return ESPL_EXIT_USAGE;
	}
	for (int i = 0; i < n; i++) {
		int rc = espl__cli_parse_u32(a->cmd, "address", a->pos[1 + 2 * i], &files[i].addr);
		if (rc)
			return rc;
		files[i].path = a->pos[2 + 2 * i];
		files[i].src = NULL;
	}
	*nfiles = n;
	for (int i = 0; i < n; i++) {
		if (espl_image_source_open(files[i].path, files[i].addr, &a->params, &files[i].src, &err) < 0)
			return espl__cli_fail(a, &err);
	}
	qsort(files, (size_t)n, sizeof *files, cmp_addr);
	return 0;
}

static void free_files(file_arg *files, int n)
{
	for (int i = 0; i < n; i++)
		espl_image_source_free(files[i].src);
}

/* Files must not overlap, and must not share a 4 KiB sector: the erase
 * before writing the second would wipe the end of the first. */
static int check_layout(const dev_args *a, espl_loader *l, const espl_image *const *imgs, int n)
{
	espl_error err;
	for (int i = 0; i < n; i++) {
		if (espl_flash_check_fits(l, imgs[i], &err) < 0)
			return espl__cli_fail(a, &err);
		if (imgs[i]->address % ESPL_SECTOR_SIZE && !a->quiet)
			fprintf(stderr, "warning: %s starts at 0x%X, inside a 4 KiB sector: the bytes from "
				"0x%X up to it will be erased\n", espl_cli_shown(imgs[i]->name), imgs[i]->address,
				imgs[i]->address & ~(uint32_t)(ESPL_SECTOR_SIZE - 1));
		if (i == 0)
			continue;
		uint64_t prev_end = (uint64_t)imgs[i - 1]->address + imgs[i - 1]->size;
		if (prev_end > imgs[i]->address) {
			fprintf(stderr, "espline %s: %s (0x%X..0x%llX) overlaps %s at 0x%X\n", a->cmd,
				espl_cli_shown(imgs[i - 1]->name), imgs[i - 1]->address, (unsigned long long)prev_end,
				espl_cli_shown(imgs[i]->name), imgs[i]->address);
			return ESPL_EXIT_USAGE;
		}
		if (strcmp(a->cmd, "write") == 0 &&
		    espl_recipe_sectors_meet(imgs[i - 1]->address, prev_end, imgs[i]->address,
		                             (uint64_t)imgs[i]->address + imgs[i]->size)) {
			fprintf(stderr, "espline %s: %s ends in the 4 KiB sector where %s starts (0x%X): "
				"writing it would erase the end of %s; align it to 0x1000 or merge the files\n",
				a->cmd, espl_cli_shown(imgs[i - 1]->name), espl_cli_shown(imgs[i]->name), imgs[i]->address,
				espl_cli_shown(imgs[i - 1]->name));
			return ESPL_EXIT_USAGE;
		}
	}
	return 0;
}

static int verify_one(const dev_args *a, espl_loader *l, const espl_image *img)
{
	espl_error err;
	if (espl_flash_verify(l, img, &err) < 0)
		return espl__cli_fail(a, &err);
	if (!a->quiet)
		fprintf(stderr, "verified %s at 0x%X: MD5 %s\n", espl_cli_shown(img->name), img->address, img->md5_hex);
	return 0;
}

typedef struct prep_job {
	file_arg *files;
	int n;
} prep_job;

/* Deflate and hash the images while the chip is being connected (the stub
 * upload alone takes a second); errors resurface at the later get. */
static void *prepare_images(void *arg)
{
	prep_job *job = arg;
	for (int i = 0; i < job->n; i++) {
		const espl_image *img;
		espl_error err;
		if (!espl_image_source_needs_size(job->files[i].src))
			(void)espl_image_source_get(job->files[i].src, 0, &img, &err);
	}
	return NULL;
}

/* write and verify: which one is a->cmd. */
static int run_files(dev_args *a)
{
	int do_write = strcmp(a->cmd, "write") == 0;
	progress_view v = { 0 };
	file_arg files[MAX_FILES];
	const espl_image *imgs[MAX_FILES];
	int nfiles = 0, rc, images_ready = 0;
	espl_loader *l = NULL;
	espl_chip_info chip;
	espl_error err;
	double t0 = espl__now_s();

	rc = load_files(a, files, &nfiles);
	if (rc == 0) {
		prep_job job = { files, nfiles };
		pthread_t prep;
		int threaded = pthread_create(&prep, NULL, prepare_images, &job) == 0;
		if (!threaded)
			prepare_images(&job);
		rc = espl__cli_connect_device(a, a->pos[0], &v, &l, &chip);
		if (threaded)
			pthread_join(prep, NULL);
	}
	for (int i = 0; rc == 0 && i < nfiles; i++) {
		if (espl_image_source_get(files[i].src, chip.flash_size, &imgs[i], &err) < 0) {
			rc = espl__cli_fail(a, &err);
			break;
		}
		images_ready++;
		if (imgs[i]->patched && !a->quiet)
			fprintf(stderr, "%s: flash params set to 0x%02X%02X\n", espl_cli_shown(imgs[i]->name),
				imgs[i]->header[0], imgs[i]->header[1]);
	}
	if (rc == 0)
		rc = check_layout(a, l, imgs, nfiles);
	for (int i = 0; rc == 0 && i < nfiles; i++) {
		if (do_write) {
			int flags = a->no_compress ? 0 : ESPL_WRITE_COMPRESS;
			if (espl_flash_write(l, imgs[i], flags, &err) < 0) {
				rc = espl__cli_fail(a, &err);
				break;
			}
		}
		if (!do_write || a->verify)
			rc = verify_one(a, l, imgs[i]);
	}
	if (rc == 0 && !a->quiet)
		fprintf(stderr, "%s done in %.1f s\n", a->cmd, espl__now_s() - t0);
	if (l) {
		char what[2048];
		espl__cli_describe_images(imgs, images_ready, what, sizeof what);
		espl__cli_finish(a, l);
		rc = espl__cli_record(a, &chip, what, rc, rc ? espl__cli_last_error() : NULL);
	}
	free_files(files, nfiles);
	return rc;
}

static const char write_help_head[] =
	"usage: espline write PORT [options] ADDR FILE [ADDR FILE ...]\n\n"
	"Write each FILE at flash address ADDR (deflate-compressed through the stub).\n"
	"  --no-compress     send the bytes as they are\n"
	"  --verify          check every region by MD5 computed on the chip afterwards\n"
	"  --flash-mode M    qio|qout|dio|dout|keep (default keep)\n"
	"  --flash-size S    256KB..16MB|detect|keep (default keep)\n"
	"  --flash-freq F    40m|26m|20m|80m|keep (default keep)\n"
	"                    (these patch the image header only for a file at 0x0, which\n"
	"                    must then be a bootable image)\n\n";

static int cmd_write(int argc, char **argv)
{
	return espl__cli_device_command(argc, argv, CONN_OPTS "GHIJK" RECORD_OPTS, write_help_head, run_files);
}

static const char verify_help_head[] =
	"usage: espline verify PORT [options] ADDR FILE [ADDR FILE ...]\n\n"
	"Compare each FILE with the flash at ADDR by MD5 computed on the chip.  Give the\n"
	"same --flash-mode/--flash-size/--flash-freq as for write: the header patch\n"
	"changes the expected bytes.\n\n";

static int cmd_verify(int argc, char **argv)
{
	return espl__cli_device_command(argc, argv, CONN_OPTS "IJK" RECORD_OPTS, verify_help_head, run_files);
}

const espl_cli_command espl_cmd_write = { "write", "write files to flash (--verify)", cmd_write };
const espl_cli_command espl_cmd_verify = { "verify", "compare flash with files by MD5", cmd_verify };
