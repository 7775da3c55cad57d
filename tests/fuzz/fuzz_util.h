/*
 * fuzz_util.h - small helpers shared by the libFuzzer targets in tests/fuzz.
 *
 * Each fuzz_*.c file holds one target: a function fuzz_<name>_one(data, size)
 * that does the work, and (unless FUZZ_NO_MAIN is defined) the
 * LLVMFuzzerTestOneInput that libFuzzer calls.  tests/unit/
 * test_fuzz_regressions.c includes the same files with FUZZ_NO_MAIN, so a
 * stored crash input replays through exactly the code that found it.
 *
 * FUZZ_CHECK is a property check: it aborts (libFuzzer and cmocka both
 * report that as a crash with the input) when a module breaks a promise its
 * header makes, e.g. a decoded frame longer than the buffer.
 *
 * Not thread-safe: the temp-file helper keeps one scratch directory per
 * process, which is what a fuzzer or a single-threaded replay needs.
 */
#ifndef ESPLINE_FUZZ_UTIL_H
#define ESPLINE_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <unistd.h>

#define FUZZ_CHECK(cond)                                                          \
	do {                                                                      \
		if (!(cond)) {                                                    \
			fprintf(stderr, "%s:%d: fuzz property failed: %s\n",      \
				__FILE__, __LINE__, #cond);                       \
			abort();                                                  \
		}                                                                 \
	} while (0)

static char fuzz_scratch[256];

static inline int fuzz_scratch_rm(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st; (void)flag; (void)f;
	return remove(path);
}

/* Remove the scratch directory (at exit; a crash leaves it for a look). */
static inline void fuzz_scratch_remove(void)
{
	if (fuzz_scratch[0])
		nftw(fuzz_scratch, fuzz_scratch_rm, 8, FTW_DEPTH | FTW_PHYS);
	fuzz_scratch[0] = '\0';
}

/* A scratch directory for this process ($TMPDIR or /tmp), created on first
 * use and removed at exit; NULL if it cannot be made. */
static inline const char *fuzz_scratch_dir(void)
{
	if (!fuzz_scratch[0]) {
		const char *t = getenv("TMPDIR");
		snprintf(fuzz_scratch, sizeof fuzz_scratch, "%s/espline-fuzz-XXXXXX", t && *t ? t : "/tmp");
		if (!mkdtemp(fuzz_scratch)) {
			fuzz_scratch[0] = '\0';
			return NULL;
		}
		atexit(fuzz_scratch_remove);
	}
	return fuzz_scratch;
}

/* Write data[0..size) to <scratch>/<name>; returns path (the caller's
 * buffer of cap bytes, filled here) or NULL. */
static inline const char *fuzz_write_file(const char *name, const uint8_t *data, size_t size,
					  char *path, size_t cap)
{
	const char *dir = fuzz_scratch_dir();
	if (!dir)
		return NULL;
	snprintf(path, cap, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f)
		return NULL;
	size_t n = size ? fwrite(data, 1, size, f) : 0;
	if (fclose(f) != 0 || n != size)
		return NULL;
	return path;
}

/* Little-endian helpers for building and reading frames. */
static inline uint32_t fuzz_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void fuzz_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

#endif /* ESPLINE_FUZZ_UTIL_H */
