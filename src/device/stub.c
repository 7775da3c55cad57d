/* stub.c - find, parse and run the ESP8266 flasher stub; see
 * include/espline/stub.h. */
#include "espline/stub.h"

#include <glob.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/file.h"

#ifndef ESPLINE_SOURCE_DIR
#define ESPLINE_SOURCE_DIR "."
#endif

#define MAX_CANDIDATES 48
/* The ESP8266 stub is about 20 KB of base64; a file 50 times that is not a stub. */
#define STUB_FILE_MAX (1u << 20)

/* ---- base64 ------------------------------------------------------------- */

static int b64_value(int c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+' || c == '-') return 62;
	if (c == '/' || c == '_') return 63;
	return -1;
}

int espl_base64_decode(const char *in, uint8_t **out, size_t *out_len, espl_error *err)
{
	size_t n = strlen(in), o = 0;
	uint8_t *buf = malloc(n / 4 * 3 + 3);
	uint32_t acc = 0;
	int bits = 0;

	if (!buf)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)in[i];
		if (c == '=')
			break;
		if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
			continue;
		int v = b64_value(c);
		if (v < 0) {
			free(buf);
			return espl_fail(err, ESPL_EARG, "invalid base64 character 0x%02X at offset %zu",
					 c, i);
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (uint8_t)(acc >> bits);
		}
	}
	*out = buf;
	*out_len = o;
	return 0;
}

/* ---- JSON --------------------------------------------------------------- */

static int get_u32(json_t *root, const char *key, int required, uint32_t *v, const char *path,
		   espl_error *err)
{
	json_t *j = json_object_get(root, key);
	if (!j) {
		if (!required)
			return 0;
		return espl_fail(err, ESPL_EARG, "stub %s: key \"%s\" is missing", path, key);
	}
	if (!json_is_integer(j) || json_integer_value(j) < 0 || json_integer_value(j) > 0xFFFFFFFFLL)
		return espl_fail(err, ESPL_EARG, "stub %s: \"%s\" must be an address (integer)", path, key);
	*v = (uint32_t)json_integer_value(j);
	return 1;
}

static int get_blob(json_t *root, const char *key, int required, uint8_t **buf, size_t *len,
		    const char *path, espl_error *err)
{
	json_t *j = json_object_get(root, key);
	if (!j || json_is_null(j)) {
		if (!required)
			return 0;
		return espl_fail(err, ESPL_EARG, "stub %s: key \"%s\" is missing", path, key);
	}
	if (!json_is_string(j))
		return espl_fail(err, ESPL_EARG, "stub %s: \"%s\" must be a base64 string", path, key);
	if (espl_base64_decode(json_string_value(j), buf, len, err) < 0) {
		espl_error_prefix(err, "stub %s: \"%s\"", path, key);
		return err->code;
	}
	return 1;
}

static int parse_stub(json_t *root, const char *path, espl_stub *stub, espl_error *err)
{
	int has_data, has_start;

	if (!json_is_object(root))
		return espl_fail(err, ESPL_EARG, "stub %s: not a JSON object", path);
	ESPL_TRY(get_blob(root, "text", 1, &stub->text, &stub->text_len, path, err));
	ESPL_TRY(get_u32(root, "text_start", 1, &stub->text_start, path, err));
	ESPL_TRY(get_u32(root, "entry", 1, &stub->entry, path, err));
	ESPL_TRY(has_data = get_blob(root, "data", 0, &stub->data, &stub->data_len, path, err));
	ESPL_TRY(has_start = get_u32(root, "data_start", 0, &stub->data_start, path, err));
	if (has_data && !has_start)
		return espl_fail(err, ESPL_EARG, "stub %s: \"data\" without \"data_start\"", path);
	if (stub->text_len == 0)
		return espl_fail(err, ESPL_EARG, "stub %s: \"text\" is empty", path);
	return 0;
}

int espl_stub_load_file(const char *path, espl_stub *stub, espl_error *err)
{
	json_error_t jerr;
	json_t *root;
	int rc;

	memset(stub, 0, sizeof *stub);
	snprintf(stub->path, sizeof stub->path, "%s", path);
	char *text;
	size_t len;
	ESPL_TRY(espl__file_read(path, STUB_FILE_MAX, "stub", &text, &len, err));
	root = json_loadb(text, len, 0, &jerr);
	free(text);
	if (!root)
		return espl_fail(err, ESPL_EARG, "stub %s:%d:%d: %s", path, jerr.line, jerr.column,
				 jerr.text);
	rc = parse_stub(root, path, stub, err);
	json_decref(root);
	if (rc < 0)
		espl_stub_free(stub);
	return rc;
}

void espl_stub_free(espl_stub *stub)
{
	free(stub->text);
	free(stub->data);
	stub->text = stub->data = NULL;
	stub->text_len = stub->data_len = 0;
}

/* ---- search ------------------------------------------------------------- */

static size_t add(char **paths, size_t n, size_t max, const char *fmt, const char *a, const char *b)
{
	char buf[1024];
	if (n >= max)
		return n;
	snprintf(buf, sizeof buf, fmt, a, b ? b : "");
	for (size_t i = 0; i < n; i++)
		if (strcmp(paths[i], buf) == 0)
			return n;
	paths[n] = strdup(buf);
	return paths[n] ? n + 1 : n;
}

int espl_stub_is_generation(const char *s)
{
	return s && (strcmp(s, ESPL_STUB_LEGACY) == 0 || strcmp(s, ESPL_STUB_ESP_FLASHER) == 0);
}

/* Where pip, pipx and npm put esptool / esptool-js (glob patterns), for
 * gen: 0 any (legacy first, as before), 1 legacy only, 2 esp-flasher-stub
 * only.  esptool's set 1 and esptool-js's stub_flasher_8266.json are the
 * legacy stub; esptool's set 2 and esptool-js 0.7's esp8266.json are
 * esp-flasher-stub. */
static size_t add_installed(char **paths, size_t n, size_t max, int gen)
{
	static const char *const user_py[] = {
		"%s/.local/lib/python3*/site-packages/%s",
		"%s/.local/pipx/venvs/esptool/lib/python3*/site-packages/%s",
		"%s/.local/share/pipx/venvs/esptool/lib/python3*/site-packages/%s",
	};
	static const char *const sys_py[] = {
		"/usr/lib/python3/dist-packages/%s%s",
		"/usr/local/lib/python3*/dist-packages/%s%s",
		"/usr/local/lib/python3*/site-packages/%s%s",
	};
	static const char *const py_tails[] = {
		"esptool/targets/stub_flasher/1/esp8266.json",
		"esptool/targets/stub_flasher/stub_flasher_8266.json",
		"esptool/targets/stub_flasher/2/esp8266.json",
	};
	static const int py_gen[] = { 1, 1, 2 };
	static const char *const npm[] = {
		"/usr/local/lib/node_modules/%s%s",
		"/usr/lib/node_modules/%s%s",
		"%s/.npm-global/lib/node_modules/%s",
	};
	static const char *const npm_tails[] = {
		"esptool-js/lib/targets/stub_flasher/esp8266.json",
		"esptool-js/lib/targets/stub_flasher/stub_flasher_8266.json",
	};
	static const int npm_gen[] = { 2, 1 };
	const char *home = getenv("HOME");

	for (size_t t = 0; t < 3; t++) {
		if (gen ? py_gen[t] != gen : t == 2)  /* set 2 only when asked for: as before */
			continue;
		for (size_t r = 0; home && r < 3; r++)
			n = add(paths, n, max, user_py[r], home, py_tails[t]);
		for (size_t r = 0; r < 3; r++)
			n = add(paths, n, max, sys_py[r], py_tails[t], NULL);
	}
	for (size_t t = 0; t < 2; t++) {
		if (gen && npm_gen[t] != gen)
			continue;
		n = add(paths, n, max, npm[0], npm_tails[t], NULL);
		n = add(paths, n, max, npm[1], npm_tails[t], NULL);
		if (home)
			n = add(paths, n, max, npm[2], home, npm_tails[t]);
	}
	return n;
}

size_t espl_stub_candidates(const char *explicit_path, char **paths, size_t max)
{
	size_t n = 0;
	const char *env = getenv("ESPLINE_STUB");

	if (espl_stub_is_generation(explicit_path)) {
		int legacy = strcmp(explicit_path, ESPL_STUB_LEGACY) == 0;
		n = add(paths, n, max, "%s%s", ESPLINE_SOURCE_DIR,
			legacy ? "/third_party/stub/esp8266-legacy.json" : "/third_party/stub/esp8266.json");
		return add_installed(paths, n, max, legacy ? 1 : 2);
	}
	if (explicit_path && *explicit_path)
		return add(paths, n, max, "%s%s", explicit_path, NULL);
	if (env && *env)
		n = add(paths, n, max, "%s%s", env, NULL);
	n = add(paths, n, max, "%s%s", ESPLINE_SOURCE_DIR, "/third_party/stub/esp8266.json");
	return add_installed(paths, n, max, 0);
}

/* First readable file matching pattern (which may contain '*'), or NULL. */
static char *first_match(const char *pattern)
{
	glob_t g;
	char *found = NULL;
	if (!strchr(pattern, '*'))
		return access(pattern, R_OK) == 0 ? strdup(pattern) : NULL;
	if (glob(pattern, 0, NULL, &g) == 0) {
		for (size_t i = g.gl_pathc; i-- > 0 && !found;) /* newest python first */
			if (access(g.gl_pathv[i], R_OK) == 0)
				found = strdup(g.gl_pathv[i]);
	}
	globfree(&g);
	return found;
}

int espl_stub_find(const char *explicit_path, espl_stub *stub, espl_error *err)
{
	char *paths[MAX_CANDIDATES];
	size_t n = espl_stub_candidates(explicit_path, paths, MAX_CANDIDATES);
	int rc = ESPL_ENOTFOUND;
	size_t i;

	memset(stub, 0, sizeof *stub);
	for (i = 0; i < n; i++) {
		/* An explicit path is used even if unreadable, to report why. */
		int is_path = explicit_path && *explicit_path && !espl_stub_is_generation(explicit_path);
		char *hit = is_path ? strdup(paths[i]) : first_match(paths[i]);
		if (hit) {
			rc = espl_stub_load_file(hit, stub, err);
			free(hit);
			break;
		}
	}
	if (i == n) {
		char list[ESPL_ERROR_MAX];
		size_t len = 0;
		list[0] = '\0';
		for (size_t k = 0; k < n && len < sizeof list; k++)
			len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", k ? ", " : "", paths[k]);
		espl_fail(err, ESPL_ENOTFOUND, "no ESP8266 flasher stub found: run scripts/install-deps.sh "
			  "(it copies one from esptool-js), or set ESPLINE_STUB=FILE.json, or pass --stub "
			  "FILE.json (a recipe: connect: { stub: FILE.json }). "
			  "Tried: %s", list);
	}
	for (size_t k = 0; k < n; k++)
		free(paths[k]);
	return rc;
}

/* ---- upload ------------------------------------------------------------- */

static int upload_segment(espl_loader *l, const uint8_t *buf, size_t len, uint32_t addr,
			  espl_error *err)
{
	uint32_t blocks = (uint32_t)((len + ESPL_RAM_BLOCK - 1) / ESPL_RAM_BLOCK);

	if (espl_loader_mem_begin(l, (uint32_t)len, blocks, ESPL_RAM_BLOCK, addr, err) < 0) {
		espl_error_prefix(err, "uploading stub to 0x%08X", addr);
		return err->code;
	}
	for (uint32_t seq = 0; seq < blocks; seq++) {
		size_t off = (size_t)seq * ESPL_RAM_BLOCK;
		size_t n = len - off < ESPL_RAM_BLOCK ? len - off : ESPL_RAM_BLOCK;
		if (espl_loader_mem_data(l, buf + off, n, seq, err) < 0) {
			espl_error_prefix(err, "uploading stub block %u/%u", seq + 1, blocks);
			return err->code;
		}
	}
	return 0;
}

int espl_stub_run(espl_loader *l, const espl_stub *stub, espl_error *err)
{
	ESPL_TRY(upload_segment(l, stub->text, stub->text_len, stub->text_start, err));
	if (stub->data && stub->data_len)
		ESPL_TRY(upload_segment(l, stub->data, stub->data_len, stub->data_start, err));
	ESPL_TRY(espl_loader_mem_end(l, stub->entry, err));
	return espl_loader_wait_ohai(l, 3000, err);
}
