/*
 * runner_int.h - what the runner's files share (internal to src/job, not
 * installed; private names start with espl__runner_).
 *
 *   runner.c  small helpers, the checks before the steps, one unit start to
 *             end, the public entry points
 *   plan.c    the shared read-only plan: images, init data, the stub
 *   steps.c   the steps on one unit: erase, write (or a built recipe's
 *             check_only write), verify, read, reset, retries
 *   boot_step.c  after the flash is written: the screening checks
 *             (expect.flash_capacity, expect.crystal_mhz) and boot_check
 *   unit_data.c  the unit's identity reserved, write_unit_data rendered
 *             and written
 *
 * Thread-safety: as runner.h; a unit belongs to its worker thread, a plan
 * is read-only once made.
 */
#ifndef ESPLINE_JOB_RUNNER_INT_H
#define ESPLINE_JOB_RUNNER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "espline/image.h"
#include "espline/runner.h"
#include "espline/stub.h"

/* System-area sizes the init data can be placed for: 256KB .. 16MB. */
#define N_SYS_SIZES 7
#define MAX_OPS 256
/* skip_unchanged hashes a differing image in chunks of this size and writes
 * only the chunks that differ.  Measured (1 MB image, one sector changed,
 * simulator at real speed): 4/8/16/32/64/256 KiB took 2.13/1.83/1.78/2.05/
 * 1.93/3.58 s at 921600 baud and 4 KiB 4.64, 16 KiB 4.25, 64 KiB 6.76 s at
 * 115200: smaller chunks cost a round trip each, bigger ones rewrite more. */
#define SKIP_CHUNK (16u * 1024u)

static inline uint32_t sys_size_at(size_t i) { return (256u << 10) << i; }

struct espl_plan {
	const espl_recipe *r;
	espl_stub stub;
	bool have_stub;
	espl_image_source **write_src;             /* per step; NULL unless write */
	espl_image *(*init_img)[N_SYS_SIZES];      /* per step; NULL unless write_init_data */
	struct espl_boot_rules **boot_rules;       /* per step; NULL unless boot_check */
	size_t last_verify;                        /* index of the last verify step (screening) */
	char blank_md5[33];                        /* of one sector of 0xFF */
};

/* What the flash got, in order, to know the expected bytes of any region. */
typedef struct flash_op {
	enum { OP_ERASE_ALL, OP_ERASE, OP_WRITE } kind;
	uint32_t address, length;
	const uint8_t *data;       /* OP_WRITE; NULL = all 0xFF */
} flash_op;

typedef struct unit {
	const espl_plan *plan;
	const espl_recipe *r;
	const espl_runner_options *o;
	espl_loader *l;
	espl_unit_result *res;
	espl_system_area area;
	size_t sys_index;
	flash_op ops[MAX_OPS];
	size_t n_ops;
	bool ops_incomplete;       /* an op was dropped or a failed attempt may have written */
	/* skip_unchanged confirmed region i's MD5 on the chip when ops[0..n)
	 * were done (n = confirmed_at[i]; 0 = not confirmed): verify need not
	 * hash it again unless a later op touches it. */
	size_t confirmed_at[ESPL_UNIT_MAX_REGIONS];
	double attempt_started;
	const espl_step *step;
	espl_image **unit_data;    /* per step: the rendered write_unit_data (unit_data.c) */
} unit;

/* runner.c */
/* Lower-case hex MD5 of data. */
void espl__runner_md5_hex_of(const uint8_t *data, size_t len, char out[33]);
/* The file name of path without its folders. */
const char *espl__runner_base_name(const char *path);

/* steps.c */
/* Whether the unit was asked to stop (options.stop). */
int espl__runner_stopped(const unit *u);
/* Whether an error code is worth another attempt of the step. */
bool espl__runner_retryable(int code);
/* Run step index with its retries; fills u->res->steps[index]. */
int espl__runner_run_step(unit *u, size_t index);

/* Write a prepared image as a step's region (write, write_init_data,
 * write_unit_data: one write path), honouring skip_unchanged. */
int espl__runner_write_image(unit *u, const espl_image *img, bool compress, bool skip_unchanged,
                             const char *what, espl_step_result *sr, espl_error *err);

/* unit_data.c */
/* Whether the recipe needs the unit's identity (serial, CSV, unit data). */
bool espl__runner_needs_identity(const espl_recipe *r);
/* Reserve the identity (options' reserve event) and render every
 * write_unit_data step's bytes into u->unit_data. */
int espl__runner_identity(unit *u, espl_error *err);
/* The write_unit_data step. */
int espl__runner_write_unit_data(unit *u, size_t index, espl_step_result *sr, espl_error *err);
void espl__runner_free_unit_data(unit *u);

/* boot_step.c */
/* Append a line to the step's detail text. */
void espl__runner_add_detail(espl_step_result *sr, const char *line);
/* After verify step index: when it is the recipe's last verify, the
 * screening checks (their findings go to sr->detail). */
int espl__runner_screen(unit *u, size_t index, espl_step_result *sr, espl_error *err);
/* The boot_check step: restart into the firmware, read and judge the boot;
 * the capture goes to sr->detail. */
int espl__runner_boot_check(unit *u, size_t index, espl_step_result *sr, espl_error *err);

#endif /* ESPLINE_JOB_RUNNER_INT_H */
