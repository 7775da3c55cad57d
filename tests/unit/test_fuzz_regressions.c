/* test_fuzz_regressions.c - replay stored fuzz inputs through the fuzz
 * targets' own entry points (tests/fuzz/fuzz_*.c, included here with
 * FUZZ_NO_MAIN so the code that found a crash is the code that replays it).
 *
 * Two kinds of test per target:
 *   - "<target>/<file>" for every file in tests/fuzz/regressions/<target>/:
 *     an input that once crashed or broke a property.  Each stays here for
 *     good; it fails (aborts, or is caught by ASan under `make asan`) until
 *     the bug is fixed.
 *   - "<target>/seed corpus": every committed seed in tests/fuzz/corpus/<target>/
 *     runs clean, so a change that breaks a harness or a module's promise on
 *     ordinary input shows up in `make test` without clang.
 * Memory errors and undefined behaviour are only certain to be caught in the
 * sanitizer builds (make asan; and tests/integration/fuzz_smoke.sh replays
 * the same files through the ASan+UBSan fuzz binaries in every make test);
 * property checks (FUZZ_CHECK) abort anywhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <cmocka.h>

#define FUZZ_NO_MAIN 1
#include "../fuzz/fuzz_image.c"
#include "../fuzz/fuzz_loader.c"
#include "../fuzz/fuzz_recipe.c"
#include "../fuzz/fuzz_rfc2217.c"
#include "../fuzz/fuzz_sim.c"
#include "../fuzz/fuzz_slip.c"
#include "../fuzz/fuzz_stub.c"
#include "../fuzz/fuzz_unitdata.c"

/* Under `make asan` UBSan only prints by default; a stored input that hits
 * undefined behaviour must fail its test, as it did in the fuzzer. */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

#ifndef ESPLINE_SOURCE_DIR
#define ESPLINE_SOURCE_DIR "."
#endif

typedef int (*entry_fn)(const uint8_t *data, size_t size);

static const struct target {
	const char *name;
	entry_fn one;
} targets[] = {
	{ "image", fuzz_image_one },   { "loader", fuzz_loader_one }, { "recipe", fuzz_recipe_one },
	{ "rfc2217", fuzz_rfc2217_one }, { "sim", fuzz_sim_one },     { "slip", fuzz_slip_one },
	{ "stub", fuzz_stub_one },     { "unitdata", fuzz_unitdata_one },
};
#define N_TARGETS (sizeof targets / sizeof *targets)

typedef struct replay {
	const struct target *target;
	char path[2048];       /* a file, or a folder for "seed corpus" */
	char name[320];
	int whole_folder;
} replay;

static uint8_t *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	long n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	uint8_t *buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void replay_file(const struct target *t, const char *path, int verbose)
{
	size_t len;
	uint8_t *data = read_all(path, &len);
	if (verbose)
		print_message("# %s < %s (%zu bytes)\n", t->name, path, len);
	assert_int_equal(t->one(data, len), 0);
	free(data);
}

static int is_input(const char *dir, const char *name, char *path, size_t cap)
{
	struct stat st;
	if (name[0] == '.')
		return 0;
	int n = snprintf(path, cap, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= cap)
		return 0;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void test_replay(void **state)
{
	const replay *r = *state;
	if (!r->whole_folder) {
		replay_file(r->target, r->path, 1);
		return;
	}
	DIR *d = opendir(r->path);
	if (!d)
		fail_msg("seed corpus %s is missing", r->path);
	struct dirent *e;
	char path[2048];
	size_t n = 0;
	while ((e = readdir(d)) != NULL) {
		if (!is_input(r->path, e->d_name, path, sizeof path))
			continue;
		replay_file(r->target, path, 0);
		n++;
	}
	closedir(d);
	if (n == 0)
		fail_msg("seed corpus %s is empty", r->path);
	print_message("# %s: %zu seeds replayed\n", r->target->name, n);
}

static int cmp_replay(const void *a, const void *b)
{
	return strcmp(((const replay *)a)->name, ((const replay *)b)->name);
}

/* One test per stored regression input, then one per seed corpus. */
static size_t collect(replay **out)
{
	size_t n = 0, cap = 64;
	replay *list = calloc(cap, sizeof *list);
	assert_non_null(list);
	for (size_t i = 0; i < N_TARGETS; i++) {
		char dir[1024];
		snprintf(dir, sizeof dir, "%s/tests/fuzz/regressions/%s", ESPLINE_SOURCE_DIR,
			 targets[i].name);
		DIR *d = opendir(dir);
		struct dirent *e;
		while (d && (e = readdir(d)) != NULL) {
			char path[2048];
			if (!is_input(dir, e->d_name, path, sizeof path))
				continue;
			if (n == cap) {
				cap *= 2;
				list = realloc(list, cap * sizeof *list);
				assert_non_null(list);
			}
			replay *r = &list[n++];
			memset(r, 0, sizeof *r);
			r->target = &targets[i];
			memcpy(r->path, path, sizeof r->path);
			snprintf(r->name, sizeof r->name, "regression %s/%s", targets[i].name, e->d_name);
		}
		if (d)
			closedir(d);
	}
	qsort(list, n, sizeof *list, cmp_replay);
	for (size_t i = 0; i < N_TARGETS; i++) {
		if (n == cap) {
			cap *= 2;
			list = realloc(list, cap * sizeof *list);
			assert_non_null(list);
		}
		replay *r = &list[n++];
		memset(r, 0, sizeof *r);
		r->target = &targets[i];
		r->whole_folder = 1;
		snprintf(r->path, sizeof r->path, "%s/tests/fuzz/corpus/%s", ESPLINE_SOURCE_DIR,
			 targets[i].name);
		snprintf(r->name, sizeof r->name, "seed corpus %s", targets[i].name);
	}
	*out = list;
	return n;
}

int main(void)
{
	replay *list;
	size_t n = collect(&list);
	struct CMUnitTest *tests = calloc(n, sizeof *tests);
	if (!tests)
		return 1;
	for (size_t i = 0; i < n; i++) {
		tests[i].name = list[i].name;
		tests[i].test_func = test_replay;
		tests[i].initial_state = &list[i];
	}
	int rc = _cmocka_run_group_tests("fuzz_regressions", tests, n, NULL, NULL);
	free(tests);
	free(list);
	return rc;
}
