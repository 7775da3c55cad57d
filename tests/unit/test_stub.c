/* test_stub.c - base64, stub JSON loading and the search order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "espline/stub.h"

static char dir[64];

static void write_file(const char *name, const char *text, char *path, size_t cap)
{
	snprintf(path, cap, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/espline-test-stub-%d", (int)getpid());
	char cmd[128];
	snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
	return system(cmd);
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd);
}

static void test_base64(void **state)
{
	(void)state;
	uint8_t *out;
	size_t n;
	espl_error err;
	assert_int_equal(espl_base64_decode("SGVsbG8sIHdvcmxkIQ==", &out, &n, &err), 0);
	assert_int_equal(n, 13);
	assert_memory_equal(out, "Hello, world!", 13);
	free(out);
	assert_int_equal(espl_base64_decode("AAEC\n/w", &out, &n, &err), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "\x00\x01\x02\xff", 4);
	free(out);
	assert_int_equal(espl_base64_decode("", &out, &n, &err), 0);
	assert_int_equal(n, 0);
	free(out);
	assert_int_equal(espl_base64_decode("AA*B", &out, &n, &err), ESPL_EARG);
}

static void test_load_valid(void **state)
{
	(void)state;
	char path[128];
	espl_stub stub;
	espl_error err;
	write_file("ok.json", "{\"text\": \"AAECAw==\", \"text_start\": 1074843648, \"entry\": 1074843652,"
		   " \"data\": \"/w==\", \"data_start\": 1073720488, \"bss_start\": 1073643776,"
		   " \"extra\": [1, 2]}", path, sizeof path);
	assert_int_equal(espl_stub_load_file(path, &stub, &err), 0);
	assert_int_equal(stub.text_len, 4);
	assert_memory_equal(stub.text, "\x00\x01\x02\x03", 4);
	assert_int_equal(stub.text_start, 0x4010D000);
	assert_int_equal(stub.entry, 0x4010D004);
	assert_int_equal(stub.data_len, 1);
	assert_int_equal(stub.data[0], 0xFF);
	assert_int_equal(stub.data_start, 0x3FFFACA8);
	assert_string_equal(stub.path, path);
	espl_stub_free(&stub);

	/* data is optional */
	write_file("nodata.json", "{\"text\": \"AAECAw==\", \"text_start\": 1, \"entry\": 2}", path, sizeof path);
	assert_int_equal(espl_stub_load_file(path, &stub, &err), 0);
	assert_null(stub.data);
	espl_stub_free(&stub);
}

static void test_load_invalid(void **state)
{
	(void)state;
	char path[128];
	espl_stub stub;
	espl_error err;
	write_file("noentry.json", "{\"text\": \"AAECAw==\", \"text_start\": 1}", path, sizeof path);
	assert_int_equal(espl_stub_load_file(path, &stub, &err), ESPL_EARG);
	assert_non_null(strstr(err.msg, "\"entry\""));
	assert_non_null(strstr(err.msg, path));
	write_file("badtext.json", "{\"text\": 5, \"text_start\": 1, \"entry\": 2}", path, sizeof path);
	assert_int_equal(espl_stub_load_file(path, &stub, &err), ESPL_EARG);
	assert_non_null(strstr(err.msg, "base64"));
	write_file("broken.json", "{\"text\": ", path, sizeof path);
	assert_int_equal(espl_stub_load_file(path, &stub, &err), ESPL_EARG);
	assert_non_null(strstr(err.msg, "broken.json:"));
	snprintf(path, sizeof path, "%s/missing.json", dir);
	assert_int_equal(espl_stub_load_file(path, &stub, &err), ESPL_ENOTFOUND);
}

static void test_search_order(void **state)
{
	(void)state;
	char env_path[128], explicit_path[128];
	char *paths[64];
	espl_stub stub;
	espl_error err;
	write_file("env.json", "{\"text\": \"AQ==\", \"text_start\": 1, \"entry\": 11}", env_path, sizeof env_path);
	write_file("explicit.json", "{\"text\": \"Ag==\", \"text_start\": 2, \"entry\": 22}", explicit_path,
		   sizeof explicit_path);

	/* The library reads no environment: the program passes these in.  The
	 * real variables are set to other places, which must not show. */
	setenv("ESPLINE_STUB", "/from-environ/env.json", 1);
	setenv("XDG_DATA_HOME", "/from-environ", 1);
	espl_stub_env env = { .stub = env_path, .data_home = dir, .home = "/home/nobody" };
	size_t n = espl_stub_candidates(NULL, &env, paths, 64);
	assert_true(n > 3);
	assert_string_equal(paths[0], env_path);
	/* then the tree's copy (this test runs from build/tests/, two folders
	 * below the tree), the user's, the one beside the binary's folder
	 * (build/share here, /usr/share for /usr/bin/espline), the service's */
	char xdg[160], exe[1024], beside[1100];
	snprintf(xdg, sizeof xdg, "%s/espline/stub/esp8266.json", dir);
	ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
	assert_true(len > 0);
	exe[len] = '\0';
	*strrchr(exe, '/') = '\0';
	*strrchr(exe, '/') = '\0';
	snprintf(beside, sizeof beside, "%s/share/espline/stub/esp8266.json", exe);
	int saw_pip = 0, saw_npm = 0, at_xdg = -1, at_beside = -1, at_state = -1, at_tree = -1;
	for (size_t i = 0; i < n; i++) {
		saw_pip |= strstr(paths[i], "esptool/targets/stub_flasher/1/esp8266.json") != NULL;
		saw_npm |= strstr(paths[i], "node_modules/esptool-js") != NULL;
		assert_null(strstr(paths[i], "/from-environ"));
		if (strstr(paths[i], "/third_party/stub/esp8266.json"))
			at_tree = (int)i;
		if (strcmp(paths[i], xdg) == 0)
			at_xdg = (int)i;
		if (strcmp(paths[i], beside) == 0)
			at_beside = (int)i;
		if (strcmp(paths[i], ESPL_STUB_STATE_PATH) == 0)
			at_state = (int)i;
		free(paths[i]);
	}
	assert_true(saw_pip && saw_npm);
	/* the tree's copy is listed only where it exists, and then first: this
	 * test runs two (build/tests) or three (build/asan/tests) folders below
	 * the tree */
	char tree_copy[1100];
	int tree_exists = 0;
	for (int up = 2; up <= 3 && !tree_exists; up++) {
		*strrchr(exe, '/') = '\0';
		snprintf(tree_copy, sizeof tree_copy, "%s/third_party/stub/esp8266.json", exe);
		tree_exists = access(tree_copy, R_OK) == 0;
	}
	assert_int_equal(at_tree, tree_exists ? 1 : -1);
	assert_true(at_xdg > 0 && at_beside > at_xdg && at_state > at_beside);
	unsetenv("XDG_DATA_HOME");

	/* explicit wins over the environment */
	assert_int_equal(espl_stub_find(explicit_path, &env, &stub, &err), 0);
	assert_int_equal(stub.entry, 22);
	espl_stub_free(&stub);
	assert_int_equal(espl_stub_find(NULL, &env, &stub, &err), 0);
	assert_int_equal(stub.entry, 11);
	espl_stub_free(&stub);

	/* an explicit path that does not exist is an error, not a fallback */
	char missing[160];
	snprintf(missing, sizeof missing, "%s/nope.json", dir);
	assert_int_equal(espl_stub_find(missing, &env, &stub, &err), ESPL_ENOTFOUND);
	assert_non_null(strstr(err.msg, "nope.json"));

	/* no environment given: none of its places is listed */
	n = espl_stub_candidates(NULL, NULL, paths, 64);
	assert_true(n > 3);
	for (size_t i = 0; i < n; i++) {
		assert_null(strstr(paths[i], env_path));
		assert_null(strstr(paths[i], "/home/nobody"));
		free(paths[i]);
	}
}

/* "legacy" / "esp-flasher-stub" search only that generation's files */
static void test_generation_names(void **state)
{
	(void)state;
	char *paths[64];
	espl_stub_env env = { .stub = "/nowhere/env.json" };
	static const char *const want_first[2] = { "third_party/stub/esp8266-legacy.json",
						   "third_party/stub/esp8266.json" };
	static const char *const names[2] = { ESPL_STUB_LEGACY, ESPL_STUB_ESP_FLASHER };
	for (int g = 0; g < 2; g++) {
		assert_true(espl_stub_is_generation(names[g]));
		size_t n = espl_stub_candidates(names[g], &env, paths, 64);
		assert_true(n > 1);
		assert_non_null(strstr(paths[0], want_first[g]));
		for (size_t i = 0; i < n; i++) {
			assert_null(strstr(paths[i], "/nowhere/"));  /* not $ESPLINE_STUB */
			if (g == 0) {  /* no set-2 / esptool-js 0.7 file for legacy, and the reverse */
				assert_null(strstr(paths[i], "stub_flasher/2/"));
				assert_null(strstr(paths[i], "esptool-js/lib/targets/stub_flasher/esp8266.json"));
			} else {
				assert_null(strstr(paths[i], "stub_flasher/1/"));
				assert_null(strstr(paths[i], "stub_flasher_8266.json"));
			}
			free(paths[i]);
		}
	}
	assert_false(espl_stub_is_generation("legacy.json"));
	assert_false(espl_stub_is_generation(NULL));
	unsetenv("ESPLINE_STUB");
}

/* espline setup: a checked, atomic copy into a folder made on the way */
static void test_install(void **state)
{
	(void)state;
	char src[128], dst[160], bad[128];
	espl_stub stub;
	espl_error err;
	write_file("good.json", "{\"text\": \"Aw==\", \"text_start\": 3, \"entry\": 33}", src, sizeof src);
	write_file("bad.json", "{\"text_start\": 3}", bad, sizeof bad);
	snprintf(dst, sizeof dst, "%s/var/lib/espline/stub/esp8266.json", dir);
	assert_int_equal(espl_stub_install(src, dst, &err), 0);
	assert_int_equal(espl_stub_load_file(dst, &stub, &err), 0);
	assert_int_equal(stub.entry, 33);
	espl_stub_free(&stub);
	/* not a stub: refused, and the installed copy is left as it was */
	assert_int_equal(espl_stub_install(bad, dst, &err), ESPL_EARG);
	assert_non_null(strstr(err.msg, "text"));
	assert_int_equal(espl_stub_load_file(dst, &stub, &err), 0);
	assert_int_equal(stub.entry, 33);
	espl_stub_free(&stub);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_load_valid),
		cmocka_unit_test(test_load_invalid),
		cmocka_unit_test(test_search_order),
		cmocka_unit_test(test_generation_names),
		cmocka_unit_test(test_install),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
