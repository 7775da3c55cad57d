/*
 * stub.h - the ESP8266 flasher stub: finding its JSON file, parsing it, and
 * running it on the chip.
 *
 * Two generations exist and espline works with both: the legacy stub
 * (esptool-legacy-flasher-stub; esptool-js up to 0.6) and esp-flasher-stub
 * (esptool-js 0.7 on, esptool's stub set 2).  docs/simulator-fidelity.md
 * lists how they answer.
 *
 * The stub is never compiled in (license, and so that updating it needs no
 * rebuild).  No path of the build tree is compiled in: an installed binary
 * looks in installed places, and beside itself.  Search order, first
 * existing file wins:
 *   1. the explicit path (--stub, a recipe's stub:), or a generation name:
 *      "legacy" or "esp-flasher-stub" search only that generation's files,
 *      a source tree's third_party/stub/esp8266-legacy.json or esp8266.json
 *      (as in 3) first, then the installed esptool / esptool-js files of that
 *      generation
 *   2. $ESPLINE_STUB (env->stub)
 *   3. a source tree's third_party/stub/esp8266.json (scripts/install-deps.sh
 *      makes it), for a binary one or two folders below that tree (build/,
 *      build/asan/, build/tests/); only where that file exists
 *   4. $XDG_DATA_HOME/espline/stub/esp8266.json (env->data_home; without it
 *      env->home/.local/share/...)
 *   5. share/espline/stub/esp8266.json beside the binary's folder
 *      (/usr/bin/espline -> /usr/share/espline/stub/esp8266.json)
 *   6. ESPL_STUB_STATE_PATH, the copy `espline setup` makes for the service
 *   7. /usr/local/share/espline/stub/, /usr/share/espline/stub/
 *   8. an installed esptool (Python site-packages: targets/stub_flasher/1/
 *      esp8266.json, targets/stub_flasher/stub_flasher_8266.json) or esptool-js
 *      (global npm: lib/targets/stub_flasher/{esp8266,stub_flasher_8266}.json)
 * If none exists the error lists every path tried and how to get one.
 *
 * The library reads no environment variable: the places that come from the
 * environment (2, 4, and the user's pip/npm folders of 8) are passed in an
 * espl_stub_env that the program fills (src/cli); NULL skips them.
 *
 * Thread safety: a loaded espl_stub is read-only and may be shared; loading
 * touches only the file system and the caller's objects.
 */
#ifndef ESPLINE_STUB_H
#define ESPLINE_STUB_H

#include <stddef.h>
#include <stdint.h>

#include "espline/error.h"
#include "espline/loader.h"

typedef struct espl_stub {
	char path[512];          /* where it came from */
	uint8_t *text;           /* IRAM code */
	size_t text_len;
	uint32_t text_start;
	uint8_t *data;           /* DRAM data; NULL if the JSON has none */
	size_t data_len;
	uint32_t data_start;
	uint32_t entry;
} espl_stub;

/* The search places that come from the user's environment; each NULL or ""
 * when absent.  The strings must outlive the calls (and a loader given
 * them in espl_loader_options.stub_env). */
typedef struct espl_stub_env {
	const char *stub;        /* $ESPLINE_STUB: a stub file, tried after --stub */
	const char *data_home;   /* $XDG_DATA_HOME (used only when absolute) */
	const char *home;        /* $HOME: ~/.local/share, pip's and npm's user folders */
} espl_stub_env;

/* Parse one JSON file (keys text, text_start, entry; optional data,
 * data_start; others ignored).  Errors name the file and the bad key. */
int espl_stub_load_file(const char *path, espl_stub *stub, espl_error *err);

#define ESPL_STUB_LEGACY "legacy"
#define ESPL_STUB_ESP_FLASHER "esp-flasher-stub"

/* Is s one of the generation names above (not a file name)? */
int espl_stub_is_generation(const char *s);

/* Find and load per the search order above; explicit may be NULL, a path or
 * a generation name; env may be NULL (no places from the environment). */
int espl_stub_find(const char *explicit_path, const espl_stub_env *env, espl_stub *stub, espl_error *err);

/* Candidate paths in search order (for messages and tests); returns how many
 * were written to paths[0..max) (each a malloc'd string the caller frees). */
size_t espl_stub_candidates(const char *explicit_path, const espl_stub_env *env, char **paths, size_t max);

void espl_stub_free(espl_stub *stub);

/* Where `espline setup` puts the service's copy (root). */
#define ESPL_STUB_STATE_PATH "/var/lib/espline/stub/esp8266.json"

/* The stub files of an installed esptool or esptool-js that exist (search
 * step 8), newest Python first; malloc'd strings the caller frees. */
size_t espl_stub_installed_sources(const espl_stub_env *env, char **paths, size_t max);

/* Check that src is a stub (espl_stub_load_file) and copy it to dst,
 * creating dst's folders (mode 0755) and replacing dst atomically (file mode
 * 0644).  Errors: those of loading src, ESPL_ESYS/ESPL_EPERM writing dst. */
int espl_stub_install(const char *src, const char *dst, espl_error *err);

/* Upload with MEM_BEGIN/MEM_DATA/MEM_END, wait for "OHAI", switch the loader
 * to stub mode. */
int espl_stub_run(espl_loader *l, const espl_stub *stub, espl_error *err);

/* Base64 decode (RFC 4648, padding optional, whitespace skipped); *out is
 * malloc'd. */
int espl_base64_decode(const char *in, uint8_t **out, size_t *out_len, espl_error *err);

#endif /* ESPLINE_STUB_H */
