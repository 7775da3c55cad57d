/* test_web.c - station/web.c without a browser: loopback detection, where
 * the token may come from, what start refuses, and the isolation promise
 * (a client that never reads cannot slow espl_web_event; its events are
 * dropped and it gets a snapshot instead). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "espline/ui.h"
#include "espline/web.h"

static char dir[] = "/tmp/espline-test-web.XXXXXX";

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

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_loopback(void **state)
{
	espl_error err;
	(void)state;
	assert_int_equal(espl_web_is_loopback("127.0.0.1:8080", &err), 1);
	assert_int_equal(espl_web_is_loopback("127.9.9.9:0", &err), 1);
	assert_int_equal(espl_web_is_loopback("[::1]:8080", &err), 1);
	assert_int_equal(espl_web_is_loopback("localhost:8080", &err), 1);
	assert_int_equal(espl_web_is_loopback("0.0.0.0:8080", &err), 0);
	assert_int_equal(espl_web_is_loopback("10.1.2.3:80", &err), 0);
	assert_int_equal(espl_web_is_loopback("[::]:80", &err), 0);
	assert_int_equal(espl_web_is_loopback("128.0.0.1:80", &err), 0);
	assert_int_equal(espl_web_is_loopback("nonsense", &err), ESPL_EARG);
	assert_int_equal(espl_web_is_loopback("127.0.0.1:65536", &err), ESPL_EARG);
	assert_int_equal(espl_web_is_loopback("127.0.0.1:", &err), ESPL_EARG);
	assert_int_equal(espl_web_is_loopback("[::1]8080", &err), ESPL_EARG);
}

static const char *write_file(const char *name, const char *text, mode_t mode)
{
	static char p[256];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(p, mode);
	return p;
}

static void test_token_sources(void **state)
{
	espl_error err;
	char *t;
	(void)state;
	/* The program passes $ESPLINE_HTTP_TOKEN's value; the library reads
	 * no environment, so the real variable changes nothing. */
	setenv("ESPLINE_HTTP_TOKEN", "environ-token-0123456789", 1);
	assert_int_equal(espl_web_load_token(NULL, NULL, &t, &err), ESPL_OK);
	assert_null(t);
	assert_int_equal(espl_web_load_token(NULL, "", &t, &err), ESPL_OK);
	assert_null(t);
	unsetenv("ESPLINE_HTTP_TOKEN");
	assert_int_equal(espl_web_load_token(NULL, "  env-token-0123456789\n", &t, &err), ESPL_OK);
	assert_string_equal(t, "env-token-0123456789");
	free(t);
	assert_int_equal(espl_web_load_token(NULL, "short", &t, &err), ESPL_EARG);
	assert_null(t);
	assert_int_equal(espl_web_load_token(NULL, "has a space 0123456789", &t, &err), ESPL_EARG);
	/* A file wins over the environment, and must be private. */
	assert_int_equal(espl_web_load_token(write_file("ok", "file-token-0123456789\n", 0600), "env-token-0123456789",
	                                     &t, &err), ESPL_OK);
	assert_string_equal(t, "file-token-0123456789");
	free(t);
	assert_int_equal(espl_web_load_token(write_file("open", "file-token-0123456789\n", 0644), NULL, &t, &err), ESPL_EPERM);
	assert_non_null(strstr(err.msg, "readable by others"));
	char big[2048];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_int_equal(espl_web_load_token(write_file("big", big, 0600), NULL, &t, &err), ESPL_EARG);
	snprintf(big, sizeof big, "%s/none", dir);
	assert_int_equal(espl_web_load_token(big, NULL, &t, &err), ESPL_ENOTFOUND);
}

static void test_start_refuses(void **state)
{
	espl_error err;
	espl_web *w;
	(void)state;
	espl_web_options o = { .listen = "0.0.0.0:0" };
	assert_int_equal(espl_web_start(&o, &w, &err), ESPL_EARG);
	assert_null(w);
	assert_non_null(strstr(err.msg, "token is needed"));
	o.listen = "127.0.0.1:0";
	o.control = (espl_web_control_fn)1;  /* never called: start refuses first */
	assert_int_equal(espl_web_start(&o, &w, &err), ESPL_EARG);
	assert_non_null(strstr(err.msg, "--http-control needs a token"));
	o.control = NULL;
	o.token = "too-short";
	assert_int_equal(espl_web_start(&o, &w, &err), ESPL_EARG);
	o.token = "a-long-enough-token-123";
	o.listen = "0.0.0.0:0";
	assert_int_equal(espl_web_start(&o, &w, &err), ESPL_OK);
	assert_true(espl_web_port(w) > 0);
	espl_web_stop(w);
}

static int connect_events(unsigned port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int small = 2048;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	const char req[] = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
	assert_int_equal(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
	return fd;
}

static int count_of(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* Read until text shows up times times (or 5 s pass); whether it did. */
static int read_until_n(int fd, const char *text, int times)
{
	static char buf[1 << 20];
	size_t len = 0;
	struct timeval tv = { 0, 200000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	double until = now_s() + 5;
	while (now_s() < until && len < sizeof buf - 1) {
		ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
		if (n > 0)
			len += (size_t)n;
		buf[len] = '\0';
		if (count_of(buf, text) >= times)
			return 1;
		if (n == 0)
			break;
	}
	return 0;
}

static int read_until(int fd, const char *text)
{
	return read_until_n(fd, text, 1);
}

static void test_hung_client_never_slows_events(void **state)
{
	espl_error err;
	espl_ui *ui;
	espl_web *w;
	(void)state;
	FILE *sink = fopen("/dev/null", "w");
	espl_ui_options uo = { .out = sink, .mode = ESPL_UI_PLAIN, .color = 0, .recipe = "r", .db_path = "d" };
	assert_int_equal(espl_ui_new(&uo, &ui, &err), ESPL_OK);
	espl_web_options o = { .listen = "127.0.0.1:0", .ui = ui, .stream_buffer = 4096 };
	assert_int_equal(espl_web_start(&o, &w, &err), ESPL_OK);
	int hung = connect_events(espl_web_port(w));
	int reader = connect_events(espl_web_port(w));
	assert_true(read_until(reader, "\"event\":\"snapshot\""));
	unsigned long long streams = 0, overflows = 0;
	for (int i = 0; i < 200 && streams < 2; i++) {  /* both streams registered */
		espl_web_stats(w, &streams, &overflows);
		usleep(10000);
	}
	assert_int_equal(streams, 2);

	char msg[200];
	espl_station_event ev = { .kind = ESPL_EV_LOG, .port = "p0", .level = "warn", .message = msg };
	double start = now_s(), worst = 0;
	for (int i = 0; i < 20000; i++) {
		snprintf(msg, sizeof msg, "event %d with some padding to fill the buffers faster ........", i);
		double t = now_s();
		espl_web_event(w, &ev);
		if (now_s() - t > worst)
			worst = now_s() - t;
	}
	double took = now_s() - start;
	espl_web_stats(w, &streams, &overflows);
	print_message("# 20000 events in %.3f s, slowest %.3f ms, %llu overflows\n", took, worst * 1e3, overflows);
	assert_true(overflows >= 1);      /* the hung one fell behind... */
	assert_true(worst < 0.5);         /* ...and no event waited for it */
	/* The reader (which fell behind too: 20000 events in a blink, a 4 KB
	 * buffer) catches up from a snapshot and gets what comes next; the
	 * hung one, once it reads, starts again from a snapshot too. */
	usleep(300000);
	snprintf(msg, sizeof msg, "%s", "the last event");
	espl_web_event(w, &ev);
	assert_true(read_until(reader, "the last event"));
	assert_true(read_until_n(hung, "\"event\":\"snapshot\"", 2));
	close(hung);
	close(reader);
	espl_web_stop(w);
	espl_ui_free(ui);
	fclose(sink);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loopback),
		cmocka_unit_test(test_token_sources),
		cmocka_unit_test(test_start_refuses),
		cmocka_unit_test(test_hung_client_never_slows_events),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
