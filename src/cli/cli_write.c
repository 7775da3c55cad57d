/* cli_write.c - the write and verify commands: ADDR FILE pairs into a
 * one-unit job, run through the runner, the regions reported; see
 * src/cli/cli_device.h. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_device.h"
#include "util/clock.h"

/* ADDR FILE pairs from the positional arguments after PORT. */
static int parse_files(dev_args *a, espl_job_file *files)
{
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
		int rc = espl__cli_parse_u32(a->cmd, "address", a->pos[1 + 2 * i], &files[i].address);
		if (rc)
			return rc;
		files[i].path = a->pos[2 + 2 * i];
	}
	a->job.files = files;
	a->job.n_files = (size_t)n;
	return 0;
}

/* Each region the chip's MD5 confirmed. */
static void print_verified(const dev_args *a, const espl_unit_result *res)
{
	for (size_t i = 0; i < res->n_regions && !a->quiet; i++)
		if (res->regions[i].verified)
			fprintf(stderr, "verified %s at 0x%X: MD5 %s\n", espl_cli_shown(res->regions[i].what),
				res->regions[i].address, res->regions[i].actual_md5);
}

/* write and verify: which one is a->cmd. */
static int run_files(dev_args *a)
{
	espl_job_file files[MAX_FILES];
	espl_dev_job j;
	double t0 = espl__now_s();

	a->job.kind = strcmp(a->cmd, "write") == 0 ? ESPL_JOB_WRITE : ESPL_JOB_VERIFY;
	int rc = parse_files(a, files);
	if (rc)
		return rc;
	rc = espl__cli_plan(a, &j);
	if (rc == 0) {
		rc = espl__cli_run(a, &j);
		print_verified(a, &j.res);
		if (rc == 0 && !a->quiet)
			fprintf(stderr, "%s done in %.1f s\n", a->cmd, espl__now_s() - t0);
		rc = espl__cli_record(a, &j, rc);
	}
	espl__cli_job_free(&j);
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
