/* stub.c - find, parse and run the ESP8266 flasher stub; see
 * include/espline/stub.h. */
#include "espline/stub.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/file.h"

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
static size_t add_installed(char **paths, size_t n, size_t max, int gen, const char *home)
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
	if (home && !*home)
		home = NULL;

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

#define STUB_TAIL "espline/stub/esp8266.json"

/* The folder `up` levels above the running program's own folder (from
 * /proc/self/exe), or 0 when it cannot be known.  Nothing of the build
 * tree is compiled in: an installed or moved binary looks beside itself. */
static int exe_ancestor(unsigned up, char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	if (n <= 0 || (size_t)n >= len - 1)
		return 0;
	buf[n] = '\0';
	for (unsigned i = 0; i <= up; i++) {
		char *slash = strrchr(buf, '/');
		if (!slash || slash == buf)
			return 0;
		*slash = '\0';
	}
	return 1;
}

/* A source tree's own copy (third_party/stub, made by
 * scripts/install-deps.sh), for a binary in its build folder (build/espline,
 * build/asan/espline, build/tests/test_*, build/asan/tests/test_*: up to
 * three folders up); listed only where it exists, so an installed
 * program's messages name no source-tree paths. */
static size_t add_source_tree(char **paths, size_t n, size_t max, const char *name)
{
	char dir[1024];
	for (unsigned up = 1; up <= 3; up++) {
		if (!exe_ancestor(up, dir, sizeof dir))
			continue;
		size_t before = n;
		n = add(paths, n, max, "%s/third_party/stub/%s", dir, name);
		if (n > before && access(paths[n - 1], R_OK) != 0)
			free(paths[--n]);
		else if (n > before)
			break;
	}
	return n;
}

/* Installed places: the user's data folder, share/ beside the program's
 * folder (/usr/bin/espline -> /usr/share), the copy `espline setup` makes for
 * the service, then the usual system-wide share folders. */
static size_t add_installed_espline(char **paths, size_t n, size_t max, const espl_stub_env *env)
{
	const char *xdg = env->data_home, *home = env->home;
	char dir[1024];

	if (xdg && xdg[0] == '/')
		n = add(paths, n, max, "%s/%s", xdg, STUB_TAIL);
	else if (home && *home)
		n = add(paths, n, max, "%s/.local/share/%s", home, STUB_TAIL);
	if (exe_ancestor(1, dir, sizeof dir))
		n = add(paths, n, max, "%s/share/%s", dir, STUB_TAIL);
	n = add(paths, n, max, "%s%s", ESPL_STUB_STATE_PATH, NULL);
	n = add(paths, n, max, "%s%s", "/usr/local/share/" STUB_TAIL, NULL);
	return add(paths, n, max, "%s%s", "/usr/share/" STUB_TAIL, NULL);
}

size_t espl_stub_candidates(const char *explicit_path, const espl_stub_env *env, char **paths, size_t max)
{
	static const espl_stub_env none = { NULL, NULL, NULL };
	size_t n = 0;

	if (!env)
		env = &none;

	if (espl_stub_is_generation(explicit_path)) {
		int legacy = strcmp(explicit_path, ESPL_STUB_LEGACY) == 0;
		n = add_source_tree(paths, n, max, legacy ? "esp8266-legacy.json" : "esp8266.json");
		return add_installed(paths, n, max, legacy ? 1 : 2, env->home);
	}
	if (explicit_path && *explicit_path)
		return add(paths, n, max, "%s%s", explicit_path, NULL);
	if (env->stub && *env->stub)
		n = add(paths, n, max, "%s%s", env->stub, NULL);
	n = add_source_tree(paths, n, max, "esp8266.json");
	n = add_installed_espline(paths, n, max, env);
	return add_installed(paths, n, max, 0, env->home);
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

int espl_stub_find(const char *explicit_path, const espl_stub_env *env, espl_stub *stub, espl_error *err)
{
	char *paths[MAX_CANDIDATES];
	size_t n = espl_stub_candidates(explicit_path, env, paths, MAX_CANDIDATES);
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
		espl_fail(err, ESPL_ENOTFOUND, "no ESP8266 flasher stub found: run `espline setup` (it "
			  "copies one from an installed esptool-js or esptool, or says how to get one; in a "
			  "source tree scripts/install-deps.sh does it), or set ESPLINE_STUB=FILE.json, or pass "
			  "--stub FILE.json (a recipe: connect: { stub: FILE.json }). Tried: %s", list);
	}
	for (size_t k = 0; k < n; k++)
		free(paths[k]);
	return rc;
}

size_t espl_stub_installed_sources(const espl_stub_env *env, char **paths, size_t max)
{
	char *patterns[MAX_CANDIDATES];
	size_t np = add_installed(patterns, 0, MAX_CANDIDATES, 0, env ? env->home : NULL), n = 0;
	for (size_t i = 0; i < np; i++) {
		char *hit = first_match(patterns[i]);
		if (hit && n < max)
			paths[n++] = hit;
		else
			free(hit);
		free(patterns[i]);
	}
	return n;
}

/* ---- install (espline setup) ------------------------------------------- */

static int make_parents(const char *path, espl_error *err)
{
	char dir[1024];
	snprintf(dir, sizeof dir, "%s", path);
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return espl_fail_errno(err, "cannot create folder %s", dir);
		*p = '/';
	}
	return ESPL_OK;
}

static int write_atomically(const char *dst, const char *buf, size_t len, espl_error *err)
{
	char tmp[1100];
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dst, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return espl_fail_errno(err, "cannot write %s", tmp);
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, buf + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	int ok = off == len && fchmod(fd, 0644) == 0 && fsync(fd) == 0;
	if (close(fd) < 0)
		ok = 0;
	if (!ok || rename(tmp, dst) < 0) {
		espl_fail_errno(err, "cannot write %s", dst);
		unlink(tmp);
		return err->code;
	}
	return ESPL_OK;
}

int espl_stub_install(const char *src, const char *dst, espl_error *err)
{
	espl_stub stub;
	char *buf = NULL;
	size_t len = 0;

	ESPL_TRY(espl_stub_load_file(src, &stub, err));
	espl_stub_free(&stub);
	int rc = espl__file_read(src, STUB_FILE_MAX, "stub", &buf, &len, err);
	if (rc == ESPL_OK)
		rc = make_parents(dst, err);
	if (rc == ESPL_OK)
		rc = write_atomically(dst, buf, len, err);
	free(buf);
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
