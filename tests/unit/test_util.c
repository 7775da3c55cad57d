/* test_util.c - util/file (bounded regular files) and util/str (escaping,
 * name checks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "util/file.h"
#include "util/spawn.h"
#include "util/str.h"
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>

static char dir[] = "/tmp/espline-test-util.XXXXXX";

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *path_of(const char *name)
{
	static char p[256];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return p;
}

static void write_bytes(const char *name, size_t n)
{
	FILE *f = fopen(path_of(name), "wb");
	assert_non_null(f);
	for (size_t i = 0; i < n; i++)
		fputc('a' + (int)(i % 26), f);
	fclose(f);
}

static void test_reads_a_regular_file_whole(void **state)
{
	(void)state;
	espl_error e;
	char *d;
	size_t n;
	write_bytes("ok", 1000);
	assert_int_equal(espl__file_read(path_of("ok"), 1000, "image", &d, &n, &e), 0);
	assert_int_equal(n, 1000);
	assert_int_equal(d[0], 'a');
	assert_int_equal(d[999], 'a' + 999 % 26);
	assert_int_equal(d[1000], '\0');
	free(d);
}

static void test_over_the_bound_names_file_and_limit(void **state)
{
	(void)state;
	espl_error e;
	char *d = (char *)1;
	size_t n;
	write_bytes("big", 1025);
	assert_int_equal(espl__file_read(path_of("big"), 1024, "recipe", &d, &n, &e), ESPL_EARG);
	assert_null(d);
	assert_non_null(strstr(e.msg, path_of("big")));
	assert_non_null(strstr(e.msg, "1025 bytes, over the 1 KB limit for recipe files"));
}

static void test_sparse_20gb_refused_before_reading(void **state)
{
	(void)state;
	espl_error e;
	char *d;
	size_t n;
	FILE *f = fopen(path_of("sparse"), "wb");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(truncate(path_of("sparse"), 20LL << 30), 0);
	assert_int_equal(espl__file_read(path_of("sparse"), 16u << 20, "image", &d, &n, &e), ESPL_EARG);
	assert_non_null(strstr(e.msg, "21474836480 bytes, over the 16 MB limit for image files"));
}

static void test_fifo_device_directory_refused_without_blocking(void **state)
{
	(void)state;
	espl_error e;
	char *d;
	size_t n;
	assert_int_equal(mkfifo(path_of("fifo"), 0600), 0);
	/* no writer: a plain open would block forever */
	assert_int_equal(espl__file_read(path_of("fifo"), 1024, "image", &d, &n, &e), ESPL_EARG);
	assert_non_null(strstr(e.msg, "is a FIFO (named pipe)"));
	assert_int_equal(espl__file_read("/dev/zero", 1024, "recipe", &d, &n, &e), ESPL_EARG);
	assert_non_null(strstr(e.msg, "recipe /dev/zero is a character device"));
	assert_int_equal(espl__file_read(dir, 1024, "stub", &d, &n, &e), ESPL_EARG);
	assert_non_null(strstr(e.msg, "is a directory"));
	assert_int_equal(espl__file_read(path_of("none"), 1024, "stub", &d, &n, &e), ESPL_ENOTFOUND);
}

static void test_escape_makes_controls_visible(void **state)
{
	(void)state;
	char out[128];
	assert_string_equal(espl__str_escape("LOT\x1b[2J\nfake line\r\t\\", out, sizeof out),
	                    "LOT\\x1B[2J\\nfake line\\r\\t\\\\");
	assert_string_equal(espl__str_escape("caf\xc3\xa9 \xe2\x82\xac", out, sizeof out), "caf\xc3\xa9 \xe2\x82\xac");
	assert_string_equal(espl__str_escape("a\xc2\x9b" "b\xff\x7f", out, sizeof out), "a\\xC2\\x9Bb\\xFF\\x7F");
	assert_string_equal(espl__str_escape("\xc0\xaf", out, sizeof out), "\\xC0\\xAF"); /* overlong */
	assert_string_equal(espl__str_escape(NULL, out, sizeof out), "");
	assert_false(espl__str_needs_escape("plain text, caf\xc3\xa9"));
	assert_true(espl__str_needs_escape("x\x1b"));
}

static void test_escape_truncates_whole_pieces(void **state)
{
	(void)state;
	char out[10];
	assert_string_equal(espl__str_escape("abcdefghijkl", out, sizeof out), "abcdef...");
	assert_string_equal(espl__str_escape("ab\x1b\x1b\x1b", out, sizeof out), "ab\\x1B...");
	assert_string_equal(espl__str_escape("abcdefghi", out, sizeof out), "abcdefghi");
}

static void test_name_check(void **state)
{
	(void)state;
	espl_error e;
	char longname[ESPL_NAME_MAX + 2];
	assert_int_equal(espl__name_check("LOT-42 caf\xc3\xa9", "--batch", &e), 0);
	assert_int_equal(espl__name_check("", "--batch", &e), ESPL_EARG);
	assert_int_equal(espl__name_check("a\nb", "--operator", &e), ESPL_EARG);
	assert_string_equal(e.msg, "--operator: the name holds a control character at offset 1: a\\nb");
	assert_int_equal(espl__name_check("a\xff", "--batch", &e), ESPL_EARG);
	memset(longname, 'x', ESPL_NAME_MAX);
	longname[ESPL_NAME_MAX] = '\0';
	assert_int_equal(espl__name_check(longname, "--batch", &e), 0);
	longname[ESPL_NAME_MAX] = 'x';
	longname[ESPL_NAME_MAX + 1] = '\0';
	assert_int_equal(espl__name_check(longname, "--batch", &e), ESPL_EARG);
	assert_non_null(strstr(e.msg, "65 bytes long, over the limit of 64"));
}

/* ---- spawn: no shell, stdin in, stdout out, a time limit ------------------ */

static void test_spawn_feeds_stdin_and_reads_stdout(void **state)
{
	(void)state;
	char *const argv[] = { "tr", "a-z", "A-Z", NULL };
	espl__spawn_result res;
	espl_error err;
	assert_int_equal(espl__spawn_run(argv, "label for a1\n", 13, 5000, &res, &err), ESPL_OK);
	assert_true(res.exited);
	assert_int_equal(res.status, 0);
	assert_string_equal(res.out, "LABEL FOR A1\n");
}

static void test_spawn_reports_exit_status_and_no_shell(void **state)
{
	(void)state;
	espl__spawn_result res;
	espl_error err;
	char *const fails[] = { "sh", "-c", "echo refused; exit 3", NULL };
	assert_int_equal(espl__spawn_run(fails, NULL, 0, 5000, &res, &err), ESPL_OK);
	assert_true(res.exited);
	assert_int_equal(res.status, 3);
	assert_string_equal(res.out, "refused\n");
	/* a command line is not split or interpreted: the whole string is argv[0] */
	char *const whole[] = { "echo hi; exit 3", NULL };
	assert_int_equal(espl__spawn_run(whole, NULL, 0, 5000, &res, &err), ESPL_ENOTFOUND);
}

static void test_spawn_kills_a_hang_and_what_it_started(void **state)
{
	(void)state;
	espl__spawn_result res;
	espl_error err;
	char pidfile[] = "/tmp/espline-spawn-XXXXXX";
	int fd = mkstemp(pidfile);
	assert_true(fd >= 0);
	close(fd);
	char script[256];
	snprintf(script, sizeof script, "sleep 30 & echo $! > %s; wait", pidfile);
	char *const argv[] = { "sh", "-c", script, NULL };
	assert_int_equal(espl__spawn_run(argv, NULL, 0, 300, &res, &err), ESPL_ETIMEOUT);
	assert_true(res.timed_out);
	assert_true(res.seconds < 3.0);
	assert_non_null(strstr(err.msg, "still running after 300 ms: killed"));
	FILE *f = fopen(pidfile, "r");
	int grandchild = 0;
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%d", &grandchild), 1);
	fclose(f);
	unlink(pidfile);
	usleep(100000);
	/* the sleep it started was in its process group: killed too (or reaped
	 * already by init); never still sleeping */
	char stat_path[64], state_c = 'X';
	snprintf(stat_path, sizeof stat_path, "/proc/%d/stat", grandchild);
	f = fopen(stat_path, "r");
	if (f) {
		assert_int_equal(fscanf(f, "%*d %*s %c", &state_c), 1);
		fclose(f);
	}
	assert_true(state_c == 'X' || state_c == 'Z');
}

static void test_spawn_child_gets_no_descriptor_of_ours(void **state)
{
	(void)state;
	espl__spawn_result res;
	espl_error err;
	int leak = open("/dev/null", O_RDONLY);  /* deliberately without O_CLOEXEC */
	assert_true(leak > 2);
	char script[128];
	snprintf(script, sizeof script, "[ -e /proc/self/fd/%d ] && echo inherited || echo closed", leak);
	char *const argv[] = { "sh", "-c", script, NULL };
	assert_int_equal(espl__spawn_run(argv, NULL, 0, 5000, &res, &err), ESPL_OK);
	close(leak);
	assert_string_equal(res.out, "closed\n");
}

static void test_spawn_child_blocks_no_signal(void **state)
{
	(void)state;
	espl__spawn_result res;
	espl_error err;
	sigset_t block, saved;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	pthread_sigmask(SIG_BLOCK, &block, &saved);  /* as the station's threads do */
	char *const argv[] = { "grep", "^SigBlk", "/proc/self/status", NULL };
	int rc = espl__spawn_run(argv, NULL, 0, 5000, &res, &err);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	assert_int_equal(rc, ESPL_OK);
	assert_string_equal(res.out, "SigBlk:\t0000000000000000\n");
}

static void test_spawn_survives_a_child_that_ignores_stdin(void **state)
{
	(void)state;
	espl__spawn_result res;
	espl_error err;
	size_t len = 1 << 20;  /* more than a pipe holds: the write hits EPIPE */
	char *big = malloc(len);
	assert_non_null(big);
	memset(big, 'x', len);
	char *const argv[] = { "true", NULL };
	assert_int_equal(espl__spawn_run(argv, big, len, 5000, &res, &err), ESPL_OK);
	free(big);
	assert_true(res.exited);
	assert_int_equal(res.status, 0);  /* and no SIGPIPE ended this process */
	sigset_t pending;
	sigpending(&pending);
	assert_false(sigismember(&pending, SIGPIPE));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reads_a_regular_file_whole),
		cmocka_unit_test(test_over_the_bound_names_file_and_limit),
		cmocka_unit_test(test_sparse_20gb_refused_before_reading),
		cmocka_unit_test(test_fifo_device_directory_refused_without_blocking),
		cmocka_unit_test(test_escape_makes_controls_visible),
		cmocka_unit_test(test_escape_truncates_whole_pieces),
		cmocka_unit_test(test_name_check),
		cmocka_unit_test(test_spawn_feeds_stdin_and_reads_stdout),
		cmocka_unit_test(test_spawn_reports_exit_status_and_no_shell),
		cmocka_unit_test(test_spawn_kills_a_hang_and_what_it_started),
		cmocka_unit_test(test_spawn_child_gets_no_descriptor_of_ours),
		cmocka_unit_test(test_spawn_child_blocks_no_signal),
		cmocka_unit_test(test_spawn_survives_a_child_that_ignores_stdin),
	};
	return cmocka_run_group_tests_name("util", tests, setup, teardown);
}
