/* test_port.c - the port layer: the termios backend on a pty pair, the
 * RFC 2217 client against a loopback server built on the codec, raw
 * socket://, spec parsing, error messages and port listing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "espline/port.h"
#include "espline/rfc2217.h"
#include "port/port_backend.h"
#include "util/clock.h"

static int64_t now_ms(void)
{
	return espl__now_ms();
}

/* ======================= termios backend on a pty ======================= */

typedef struct pty_pair {
	int master, slave;
	char path[64];
	espl_port *port;
} pty_pair;

static int pty_setup(void **state)
{
	pty_pair *pp = calloc(1, sizeof *pp);
	espl_error err = { 0 };
	assert_int_equal(openpty(&pp->master, &pp->slave, pp->path, NULL, NULL), 0);
	/* keep our slave fd closed so that the port's view is the only one */
	close(pp->slave);
	pp->slave = -1;
	int rc = espl_port_open(pp->path, 115200, &pp->port, &err);
	if (rc != ESPL_OK)
		fail_msg("open %s: %s", pp->path, err.msg);
	*state = pp;
	return 0;
}

static int pty_teardown(void **state)
{
	pty_pair *pp = *state;
	espl_port_close(pp->port);
	if (pp->master >= 0)
		close(pp->master);
	free(pp);
	return 0;
}

static void master_write(pty_pair *pp, const void *buf, size_t n)
{
	assert_int_equal(write(pp->master, buf, n), (ssize_t)n);
}

static size_t master_read(pty_pair *pp, uint8_t *buf, size_t want, int timeout_ms)
{
	size_t got = 0;
	int64_t deadline = now_ms() + timeout_ms;
	while (got < want && now_ms() < deadline) {
		struct pollfd pfd = { .fd = pp->master, .events = POLLIN };
		if (poll(&pfd, 1, 10) > 0) {
			ssize_t n = read(pp->master, buf + got, want - got);
			if (n > 0)
				got += (size_t)n;
		}
	}
	return got;
}

static void test_tty_backend_is_chosen_for_pty(void **state)
{
	pty_pair *pp = *state;
	assert_string_equal(pp->port->ops->kind, "tty");
	assert_string_equal(pp->port->name, pp->path);
	assert_int_equal(pp->port->baud, 115200);
	assert_true(espl_port_limits(pp->port) & ESPL_PORT_NO_LINES);
	assert_false(espl_port_limits(pp->port) & ESPL_PORT_NO_BAUD);
}

static void test_tty_read_timeout(void **state)
{
	pty_pair *pp = *state;
	uint8_t buf[8];
	espl_error err = { 0 };
	int64_t t0 = now_ms();
	int rc = espl_port_read(pp->port, buf, sizeof buf, 120, &err);
	int64_t took = now_ms() - t0;
	assert_int_equal(rc, ESPL_ETIMEOUT);
	assert_int_equal(err.code, ESPL_ETIMEOUT);
	assert_true(took >= 110);
	assert_true(took < 1000);
}

static void test_tty_read_returns_what_is_there(void **state)
{
	pty_pair *pp = *state;
	const uint8_t data[] = { 'a', 0xFF, 0x00, 0xC0, 'z' };
	uint8_t buf[64];
	espl_error err = { 0 };
	master_write(pp, data, sizeof data);
	int64_t t0 = now_ms();
	size_t got = 0;
	while (got < sizeof data) {
		int rc = espl_port_read(pp->port, buf + got, sizeof buf - got, 1000, &err);
		assert_true(rc > 0);
		got += (size_t)rc;
	}
	/* it did not wait for the buffer to fill or the timeout to pass */
	assert_true(now_ms() - t0 < 500);
	assert_int_equal(got, sizeof data);
	assert_memory_equal(buf, data, sizeof data);
}

typedef struct delayed_write {
	int fd;
	int delay_ms;
	const char *text;
} delayed_write;

static void *delayed_writer(void *arg)
{
	delayed_write *dw = arg;
	struct timespec ts = { 0, (long)dw->delay_ms * 1000000L };
	nanosleep(&ts, NULL);
	ssize_t n = write(dw->fd, dw->text, strlen(dw->text));
	(void)n;
	return NULL;
}

static void test_tty_read_exact(void **state)
{
	pty_pair *pp = *state;
	uint8_t buf[16];
	espl_error err = { 0 };
	/* part now, the rest later: read_exact waits for it */
	master_write(pp, "abc", 3);
	delayed_write dw = { pp->master, 80, "defg" };
	pthread_t th;
	pthread_create(&th, NULL, delayed_writer, &dw);
	int rc = espl_port_read_exact(pp->port, buf, 7, 2000, &err);
	pthread_join(th, NULL);
	assert_int_equal(rc, 7);
	assert_memory_equal(buf, "abcdefg", 7);

	/* not enough within the time: a timeout that says how much came */
	master_write(pp, "xy", 2);
	rc = espl_port_read_exact(pp->port, buf, 5, 150, &err);
	assert_int_equal(rc, ESPL_ETIMEOUT);
	assert_non_null(strstr(err.msg, "2 of 5"));
}

static void test_tty_write(void **state)
{
	pty_pair *pp = *state;
	uint8_t big[3000], got[3000];
	espl_error err = { 0 };
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i * 7);
	/* a pty echoes nothing in raw mode and translates nothing */
	assert_int_equal(espl_port_write(pp->port, big, sizeof big, &err), (int)sizeof big);
	assert_int_equal(espl_port_drain(pp->port, &err), ESPL_OK);
	assert_int_equal(master_read(pp, got, sizeof got, 2000), sizeof big);
	assert_memory_equal(got, big, sizeof big);
}

static void test_tty_baud(void **state)
{
	pty_pair *pp = *state;
	espl_error err = { 0 };
	unsigned seen = 0;
	static const unsigned rates[] = { 921600, 250000, 74880, 115200 };
	for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
		assert_int_equal(espl_port_set_baud(pp->port, rates[i], &err), ESPL_OK);
		assert_int_equal(pp->port->baud, rates[i]);
		/* the master reports its slave's settings */
		assert_int_equal(espl__port_fd_get_baud(pp->master, &seen), 0);
		assert_int_equal(seen, rates[i]);
	}
	assert_int_equal(espl_port_set_baud(pp->port, 0, &err), ESPL_EARG);
}

static void test_tty_lines_unsupported_on_pty(void **state)
{
	pty_pair *pp = *state;
	espl_error err = { 0 };
	int rc = espl_port_set_lines(pp->port, ESPL_LINE_ASSERT, ESPL_LINE_RELEASE, &err);
	assert_int_equal(rc, ESPL_EUNSUPPORTED);
	assert_non_null(strstr(err.msg, "DTR/RTS"));
	assert_non_null(strstr(err.msg, pp->path));
	/* asking for no change is not a lie: it succeeds */
	assert_int_equal(espl_port_set_lines(pp->port, ESPL_LINE_KEEP, ESPL_LINE_KEEP, &err), ESPL_OK);
	assert_int_equal(espl_port_set_lines(pp->port, 3, 0, &err), ESPL_EARG);
}

static void test_tty_flush_input(void **state)
{
	pty_pair *pp = *state;
	uint8_t buf[16];
	espl_error err = { 0 };
	master_write(pp, "stale", 5);
	struct timespec ts = { 0, 30 * 1000000L };
	nanosleep(&ts, NULL); /* let the pty move it to the slave's queue */
	assert_int_equal(espl_port_flush_input(pp->port, &err), ESPL_OK);
	assert_int_equal(espl_port_read(pp->port, buf, sizeof buf, 50, &err), ESPL_ETIMEOUT);
	master_write(pp, "new", 3);
	assert_int_equal(espl_port_read_exact(pp->port, buf, 3, 1000, &err), 3);
	assert_memory_equal(buf, "new", 3);
}

static void test_tty_busy(void **state)
{
	pty_pair *pp = *state;
	espl_port *second = NULL;
	espl_error err = { 0 };
	int rc = espl_port_open(pp->path, 115200, &second, &err);
	assert_int_equal(rc, ESPL_EBUSY);
	assert_null(second);
	assert_non_null(strstr(err.msg, "another program"));
}

static void test_tty_disconnect(void **state)
{
	pty_pair *pp = *state;
	uint8_t buf[8];
	espl_error err = { 0 };
	master_write(pp, "bye", 3);
	struct timespec ts = { 0, 30 * 1000000L };
	nanosleep(&ts, NULL);
	close(pp->master);
	pp->master = -1;
	/* bytes that came before the hangup are still delivered... */
	int rc = espl_port_read(pp->port, buf, sizeof buf, 500, &err);
	if (rc > 0) {
		assert_int_equal(rc, 3);
		rc = espl_port_read(pp->port, buf, sizeof buf, 500, &err);
	}
	/* ...then the port says it went away, promptly, not as a timeout */
	assert_int_equal(rc, ESPL_EDISCONNECTED);
	assert_int_equal(espl_port_read(pp->port, buf, sizeof buf, 500, &err), ESPL_EDISCONNECTED);
}

/* ======================= loopback RFC 2217 server ======================= */

typedef struct server {
	int listen_fd, fd;
	int port;
	pthread_t thread;
	pthread_mutex_t lock;
	int stop;
	/* behaviour */
	int telnet;        /* 0: raw socket server */
	int echo;          /* send received data back */
	int ack;           /* reply to COM-PORT commands */
	unsigned baud_override; /* reply to SET-BAUDRATE with this rate if non-zero */
	int refuse_com_port;
	int silent;        /* never negotiates */
	const char *after_purge; /* data sent in the same segment as the PURGE reply */
	/* what arrived, in order: "d:41 b:115200 dtr:1 rts:0 purge:1 ..." */
	char log[16384];
	size_t log_len;
	espl_telnet_decoder dec;
	espl_telnet_options opt;
} server;

static void srv_log(server *s, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&s->lock);
	va_start(ap, fmt);
	int n = vsnprintf(s->log + s->log_len, sizeof s->log - s->log_len, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof s->log - s->log_len)
		s->log_len += (size_t)n;
	pthread_mutex_unlock(&s->lock);
}

static void srv_send(server *s, const uint8_t *buf, size_t n)
{
	pthread_mutex_lock(&s->lock);
	ssize_t w = send(s->fd, buf, n, MSG_NOSIGNAL);
	pthread_mutex_unlock(&s->lock);
	(void)w;
}

/* Send data to the client as the device would (escaped under telnet). */
static void srv_send_data(server *s, const void *data, size_t n)
{
	uint8_t esc[4096];
	if (!s->telnet) {
		srv_send(s, data, n);
		return;
	}
	srv_send(s, esc, espl_telnet_escape(data, n, esc));
}

static void srv_com_port(server *s, const espl_telnet_event *ev)
{
	uint8_t out[ESPL_RFC2217_BUILD_MAX(ESPL_TELNET_SB_MAX) + 64];
	size_t n;
	switch (ev->cpo_base) {
	case ESPL_RFC2217_SET_BAUDRATE: {
		unsigned override = __atomic_load_n(&s->baud_override, __ATOMIC_ACQUIRE);
		srv_log(s, "b:%u ", (unsigned)ev->cpo_value);
		n = espl_rfc2217_build_baud(ESPL_RFC2217_SERVER(ESPL_RFC2217_SET_BAUDRATE),
		                            override ? override : ev->cpo_value, out);
		break;
	}
	case ESPL_RFC2217_SET_CONTROL:
		switch (ev->cpo_value) {
		case ESPL_RFC2217_DTR_ON: srv_log(s, "dtr:1 "); break;
		case ESPL_RFC2217_DTR_OFF: srv_log(s, "dtr:0 "); break;
		case ESPL_RFC2217_RTS_ON: srv_log(s, "rts:1 "); break;
		case ESPL_RFC2217_RTS_OFF: srv_log(s, "rts:0 "); break;
		default: srv_log(s, "ctl:%u ", (unsigned)ev->cpo_value); break;
		}
		n = espl_rfc2217_build_reply(ev, out);
		break;
	case ESPL_RFC2217_PURGE_DATA:
		srv_log(s, "purge:%u ", (unsigned)ev->cpo_value);
		n = espl_rfc2217_build_reply(ev, out);
		if (s->after_purge) {
			memcpy(out + n, s->after_purge, strlen(s->after_purge));
			n += strlen(s->after_purge);
		}
		break;
	default:
		srv_log(s, "cpo%u:%u ", (unsigned)ev->cpo_base, (unsigned)ev->cpo_value);
		n = espl_rfc2217_build_reply(ev, out);
		break;
	}
	if (s->ack)
		srv_send(s, out, n);
}

static void srv_handle(server *s, const uint8_t *in, size_t len)
{
	size_t off = 0;
	while (off < len) {
		uint8_t data[4096], out[3];
		size_t dlen = len - off;
		espl_telnet_event ev = { 0 };
		if (s->telnet) {
			off += espl_telnet_feed(&s->dec, in + off, len - off, data, &dlen, &ev);
		} else {
			memcpy(data, in + off, dlen);
			off += dlen;
		}
		for (size_t i = 0; i < dlen; i++)
			srv_log(s, "d:%02x ", data[i]);
		if (s->echo && dlen)
			srv_send_data(s, data, dlen);
		if (ev.kind == ESPL_TELNET_EV_NEGOTIATION && !s->silent) {
			int accept = ev.option == ESPL_TELNET_OPT_BINARY || ev.option == ESPL_TELNET_OPT_SGA ||
			             (ev.option == ESPL_TELNET_OPT_COM_PORT && !s->refuse_com_port);
			size_t n = espl_telnet_answer(&s->opt, &ev, accept, out);
			if (n)
				srv_send(s, out, n);
		} else if (ev.kind == ESPL_TELNET_EV_SUBNEG && ev.cpo && !ev.cpo_from_server) {
			srv_com_port(s, &ev);
		}
	}
}

static void *server_main(void *arg)
{
	server *s = arg;
	int fd = accept(s->listen_fd, NULL, NULL);
	if (fd < 0)
		return NULL;
	pthread_mutex_lock(&s->lock);
	s->fd = fd; /* the test thread reads it too (srv_send, server_stop) */
	pthread_mutex_unlock(&s->lock);
	if (s->telnet && !s->silent) {
		/* ask like pyserial's server does; crosses the client's own requests */
		uint8_t out[3];
		size_t n;
		if (!s->refuse_com_port) {
			n = espl_telnet_request(&s->opt, ESPL_TELNET_DO, ESPL_TELNET_OPT_COM_PORT, out);
			srv_send(s, out, n);
		}
		n = espl_telnet_request(&s->opt, ESPL_TELNET_WILL, ESPL_TELNET_OPT_BINARY, out);
		srv_send(s, out, n);
	}
	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, 20) <= 0)
			continue;
		uint8_t buf[4096];
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n <= 0)
			break;
		srv_handle(s, buf, (size_t)n);
	}
	return NULL;
}

static server *server_start(int telnet)
{
	server *s = calloc(1, sizeof *s);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof a;
	s->telnet = telnet;
	s->echo = 1;
	s->ack = 1;
	s->fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	espl_telnet_decoder_init(&s->dec);
	espl_telnet_options_init(&s->opt);
	s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->listen_fd >= 0);
	assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(s->listen_fd, 1), 0);
	getsockname(s->listen_fd, (struct sockaddr *)&a, &alen);
	s->port = ntohs(a.sin_port);
	return s;
}

static void server_run(server *s)
{
	pthread_create(&s->thread, NULL, server_main, s);
}

static int server_fd(server *s)
{
	pthread_mutex_lock(&s->lock);
	int fd = s->fd;
	pthread_mutex_unlock(&s->lock);
	return fd;
}

static void server_stop(server *s)
{
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	shutdown(s->listen_fd, SHUT_RDWR);
	if (server_fd(s) >= 0)
		shutdown(server_fd(s), SHUT_RDWR);
	pthread_join(s->thread, NULL);
	if (s->fd >= 0)
		close(s->fd);
	close(s->listen_fd);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Wait until the server's log contains want; returns the log. */
static const char *server_wait_log(server *s, const char *want, int timeout_ms)
{
	static char copy[sizeof ((server *)0)->log];
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		pthread_mutex_lock(&s->lock);
		memcpy(copy, s->log, s->log_len);
		copy[s->log_len] = '\0';
		pthread_mutex_unlock(&s->lock);
		if (strstr(copy, want) || now_ms() > deadline)
			return copy;
		struct timespec ts = { 0, 2 * 1000000L };
		nanosleep(&ts, NULL);
	}
}

static void server_clear_log(server *s)
{
	pthread_mutex_lock(&s->lock);
	s->log_len = 0;
	pthread_mutex_unlock(&s->lock);
}

static char *spec_for(const char *scheme, int port)
{
	static char spec[64];
	snprintf(spec, sizeof spec, "%s://127.0.0.1:%d", scheme, port);
	return spec;
}

static espl_port *open_ok(const char *spec, unsigned baud)
{
	espl_port *p = NULL;
	espl_error err = { 0 };
	int rc = espl_port_open(spec, baud, &p, &err);
	if (rc != ESPL_OK)
		fail_msg("open %s: %s (%d)", spec, err.msg, rc);
	return p;
}

static void test_rfc2217_open_sets_line(void **state)
{
	(void)state;
	server *s = server_start(1);
	server_run(s);
	espl_port *p = open_ok(spec_for("rfc2217", s->port), 115200);
	assert_string_equal(p->ops->kind, "rfc2217");
	assert_int_equal(espl_port_limits(p), 0);
	const char *log = server_wait_log(s, "b:115200", 1000);
	/* 8 data bits, no parity, one stop bit, no flow control, then the rate */
	assert_string_equal(log, "cpo2:8 cpo3:1 cpo4:1 ctl:1 b:115200 ");
	espl_port_close(p);
	server_stop(s);
}

static void test_rfc2217_baud_in_band_and_in_order(void **state)
{
	(void)state;
	espl_error err = { 0 };
	server *s = server_start(1);
	s->echo = 0;
	server_run(s);
	espl_port *p = open_ok(spec_for("rfc2217", s->port), 115200);
	server_wait_log(s, "b:115200", 1000);
	server_clear_log(s);
	assert_int_equal(espl_port_write(p, (const uint8_t *)"AB", 2, &err), 2);
	assert_int_equal(espl_port_set_baud(p, 460800, &err), ESPL_OK);
	assert_int_equal(p->baud, 460800);
	assert_int_equal(espl_port_write(p, (const uint8_t *)"C", 1, &err), 1);
	assert_int_equal(espl_port_set_baud(p, 74880, &err), ESPL_OK);
	const char *log = server_wait_log(s, "b:74880", 1000);
	assert_string_equal(log, "d:41 d:42 b:460800 d:43 b:74880 ");
	espl_port_close(p);
	server_stop(s);
}

static void test_rfc2217_lines_in_band_in_safe_order(void **state)
{
	(void)state;
	espl_error err = { 0 };
	server *s = server_start(1);
	server_run(s);
	espl_port *p = open_ok(spec_for("rfc2217", s->port), 115200);
	server_wait_log(s, "b:115200", 1000);
	server_clear_log(s);
	/* both asserted: DTR first (RTS first would pass through EN low) */
	assert_int_equal(espl_port_set_lines(p, ESPL_LINE_ASSERT, ESPL_LINE_ASSERT, &err), ESPL_OK);
	/* both released: RTS first (DTR first would pass through EN low) */
	assert_int_equal(espl_port_set_lines(p, ESPL_LINE_RELEASE, ESPL_LINE_RELEASE, &err), ESPL_OK);
	/* EN low on purpose, then IO0 low with EN released: esptool's classic reset */
	assert_int_equal(espl_port_set_lines(p, ESPL_LINE_RELEASE, ESPL_LINE_ASSERT, &err), ESPL_OK);
	assert_int_equal(espl_port_set_lines(p, ESPL_LINE_ASSERT, ESPL_LINE_RELEASE, &err), ESPL_OK);
	/* one line only */
	assert_int_equal(espl_port_set_lines(p, ESPL_LINE_KEEP, ESPL_LINE_ASSERT, &err), ESPL_OK);
	assert_int_equal(espl_port_set_lines(p, ESPL_LINE_RELEASE, ESPL_LINE_KEEP, &err), ESPL_OK);
	const char *log = server_wait_log(s, "rts:1 dtr:0 ", 1000);
	assert_string_equal(log, "dtr:1 rts:1 rts:0 dtr:0 dtr:0 rts:1 rts:0 dtr:1 rts:1 dtr:0 ");
	espl_port_close(p);
	server_stop(s);
}

static void test_rfc2217_data_with_iac_round_trips(void **state)
{
	(void)state;
	espl_error err = { 0 };
	uint8_t out[600], back[600];
	server *s = server_start(1);
	server_run(s);
	espl_port *p = open_ok(spec_for("rfc2217", s->port), 115200);
	for (size_t i = 0; i < sizeof out; i++)
		out[i] = (uint8_t)(i % 3 == 0 ? 0xFF : i); /* plenty of IAC bytes */
	assert_int_equal(espl_port_write(p, out, sizeof out, &err), (int)sizeof out);
	assert_int_equal(espl_port_drain(p, &err), ESPL_OK);
	int rc = espl_port_read_exact(p, back, sizeof back, 2000, &err);
	if (rc < 0)
		fail_msg("read_exact: %s", err.msg);
	assert_memory_equal(back, out, sizeof out);
	/* the server saw single 0xFF data bytes, never an escaped pair */
	const char *log = server_wait_log(s, "d:ff d:01 d:02 d:ff ", 1000);
	assert_non_null(strstr(log, "d:ff d:01 d:02 d:ff "));
	espl_port_close(p);
	server_stop(s);
}

static void test_rfc2217_large_transfer_small_reads(void **state)
{
	(void)state;
	espl_error err = { 0 };
	enum { SIZE = 24000 }; /* more than the client buffers (16 KiB) */
	static uint8_t sent[SIZE], got[SIZE];
	server *s = server_start(1);
	server_run(s);
	espl_port *p = open_ok(spec_for("rfc2217", s->port), 115200);
	for (size_t i = 0; i < SIZE; i++)
		sent[i] = (uint8_t)(i % 5 == 0 ? 0xFF : i * 13);
	for (size_t off = 0; off < SIZE; off += 1000)
		srv_send_data(s, sent + off, 1000);
	size_t have = 0;
	while (have < SIZE) {
		size_t want = SIZE - have < 7 ? SIZE - have : 7;
		int n = espl_port_read(p, got + have, want, 1000, &err);
		if (n <= 0)
			fail_msg("read at %zu: %s", have, err.msg);
		assert_true((size_t)n <= want);
		have += (size_t)n;
	}
	assert_memory_equal(got, sent, SIZE);
	espl_port_close(p);
	server_stop(s);
}

static void test_rfc2217_flush_input_purges(void **state)
{
	(void)state;
	espl_error err = { 0 };
	uint8_t buf[32];
	server *s = server_start(1);
	server_run(s);
	espl_port *p = open_ok(spec_for("rfc2217", s->port), 115200);
	server_wait_log(s, "b:115200", 1000);
	srv_send_data(s, "stale\xff", 6);
	assert_int_equal(espl_port_flush_input(p, &err), ESPL_OK);
	assert_non_null(strstr(server_wait_log(s, "purge:1", 1000), "purge:1"));
	/* what the server sent before the purge is gone, even if in flight */
	assert_int_equal(espl_port_read(p, buf, sizeof buf, 50, &err), ESPL_ETIMEOUT);
	srv_send_data(s, "fresh", 5);
	assert_int_equal(espl_port_read_exact(p, buf, 5, 1000, &err), 5);
	assert_memory_equal(buf, "fresh", 5);
	espl_port_close(p);
	server_stop(s);
}

static void test_rfc2217_flush_keeps_what_follows_the_reply(void **state)
{
	(void)state;
	espl_error err = { 0 };
	uint8_t buf[32];
	server *s = server_start(1);
	s->after_purge = "new"; /* same TCP segment as the reply: must survive */
	server_run(s);
	espl_port *p = open_ok(spec_for("rfc2217", s->port), 115200);
	srv_send_data(s, "old", 3);
	assert_int_equal(espl_port_flush_input(p, &err), ESPL_OK);
	assert_int_equal(espl_port_read_exact(p, buf, 3, 1000, &err), 3);
	assert_memory_equal(buf, "new", 3);
	assert_int_equal(espl_port_read(p, buf, sizeof buf, 50, &err), ESPL_ETIMEOUT);
	espl_port_close(p);
	server_stop(s);
}

static void test_rfc2217_timeout_and_disconnect(void **state)
{
	(void)state;
	espl_error err = { 0 };
	uint8_t buf[8];
	server *s = server_start(1);
	server_run(s);
	espl_port *p = open_ok(spec_for("rfc2217", s->port), 115200);
	int64_t t0 = now_ms();
	assert_int_equal(espl_port_read(p, buf, sizeof buf, 100, &err), ESPL_ETIMEOUT);
	assert_true(now_ms() - t0 >= 90);
	/* telnet chatter alone is not data: still a timeout */
	const uint8_t nop[] = { ESPL_TELNET_IAC, ESPL_TELNET_NOP };
	srv_send(s, nop, sizeof nop);
	assert_int_equal(espl_port_read(p, buf, sizeof buf, 100, &err), ESPL_ETIMEOUT);
	shutdown(server_fd(s), SHUT_RDWR);
	assert_int_equal(espl_port_read(p, buf, sizeof buf, 1000, &err), ESPL_EDISCONNECTED);
	assert_non_null(strstr(err.msg, "closed"));
	espl_port_close(p);
	server_stop(s);
}

static void test_rfc2217_server_sets_other_baud(void **state)
{
	(void)state;
	espl_error err = { 0 };
	server *s = server_start(1);
	server_run(s);
	espl_port *p = open_ok(spec_for("rfc2217", s->port), 115200);
	__atomic_store_n(&s->baud_override, 115200, __ATOMIC_RELEASE); /* "I can't do that" */
	int rc = espl_port_set_baud(p, 3000000, &err);
	assert_int_equal(rc, ESPL_EUNSUPPORTED);
	assert_non_null(strstr(err.msg, "115200"));
	assert_int_equal(p->baud, 115200);
	espl_port_close(p);
	server_stop(s);
}

static void test_rfc2217_server_without_replies(void **state)
{
	(void)state;
	espl_error err = { 0 };
	uint8_t buf[4];
	server *s = server_start(1);
	s->ack = 0;
	server_run(s);
	/* open waits once for a reply that never comes, then carries on */
	espl_port *p = open_ok(spec_for("rfc2217", s->port), 115200);
	int64_t t0 = now_ms();
	assert_int_equal(espl_port_set_baud(p, 230400, &err), ESPL_OK);
	assert_true(now_ms() - t0 < 500); /* no second wait */
	assert_non_null(strstr(server_wait_log(s, "b:230400", 1000), "b:230400"));
	assert_int_equal(espl_port_write(p, (const uint8_t *)"e", 1, &err), 1);
	assert_int_equal(espl_port_read_exact(p, buf, 1, 1000, &err), 1);
	assert_int_equal(buf[0], 'e');
	espl_port_close(p);
	server_stop(s);
}

static void test_rfc2217_refused_and_silent_servers(void **state)
{
	(void)state;
	espl_port *p = NULL;
	espl_error err = { 0 };
	server *s = server_start(1);
	s->refuse_com_port = 1;
	server_run(s);
	int rc = espl_port_open(spec_for("rfc2217", s->port), 115200, &p, &err);
	assert_int_equal(rc, ESPL_EUNSUPPORTED);
	assert_null(p);
	assert_non_null(strstr(err.msg, "socket://"));
	server_stop(s);

	s = server_start(1);
	s->silent = 1; /* a raw TCP server: never answers telnet */
	server_run(s);
	rc = espl_port_open(spec_for("rfc2217", s->port), 115200, &p, &err);
	assert_int_equal(rc, ESPL_ETIMEOUT);
	assert_non_null(strstr(err.msg, "socket://"));
	server_stop(s);
}

/* ============================== socket:// =============================== */

static void test_socket_raw_bytes(void **state)
{
	(void)state;
	espl_error err = { 0 };
	const uint8_t out[] = { 0xFF, 0xFF, 0xFA, 0x2C, 0x01, 0xF0, 'x' };
	uint8_t back[sizeof out];
	server *s = server_start(0);
	server_run(s);
	espl_port *p = open_ok(spec_for("socket", s->port), 115200);
	assert_string_equal(p->ops->kind, "socket");
	assert_int_equal(espl_port_limits(p), ESPL_PORT_NO_BAUD | ESPL_PORT_NO_LINES);
	assert_int_equal(espl_port_write(p, out, sizeof out, &err), (int)sizeof out);
	assert_int_equal(espl_port_read_exact(p, back, sizeof back, 1000, &err), (int)sizeof back);
	assert_memory_equal(back, out, sizeof out);
	/* no telnet: bytes arrive exactly as written */
	assert_string_equal(server_wait_log(s, "d:78", 1000), "d:ff d:ff d:fa d:2c d:01 d:f0 d:78 ");

	assert_int_equal(espl_port_set_baud(p, 115200, &err), ESPL_OK);
	assert_int_equal(espl_port_set_baud(p, 921600, &err), ESPL_EUNSUPPORTED);
	assert_int_equal(p->baud, 115200);
	assert_int_equal(espl_port_set_lines(p, ESPL_LINE_ASSERT, ESPL_LINE_KEEP, &err),
	                 ESPL_EUNSUPPORTED);
	assert_non_null(strstr(err.msg, "DTR/RTS"));
	assert_int_equal(espl_port_flush_input(p, &err), ESPL_OK);
	assert_int_equal(espl_port_read(p, back, sizeof back, 50, &err), ESPL_ETIMEOUT);
	espl_port_close(p);
	server_stop(s);
}

/* ======================== specs and their errors ======================== */

static void test_missing_path(void **state)
{
	(void)state;
	espl_port *p = NULL;
	espl_error err = { 0 };
	int rc = espl_port_open("/dev/ttyESPLINE_NOPE", 115200, &p, &err);
	assert_int_equal(rc, ESPL_ENOTFOUND);
	assert_null(p);
	assert_non_null(strstr(err.msg, "/dev/ttyESPLINE_NOPE"));
	assert_non_null(strstr(err.msg, "espline ports"));
}

static void test_refused_tcp_port(void **state)
{
	(void)state;
	espl_port *p = NULL;
	espl_error err = { 0 };
	/* bound but not listening: the kernel refuses connections to it */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof a;
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	getsockname(fd, (struct sockaddr *)&a, &alen);
	const char *spec = spec_for("rfc2217", ntohs(a.sin_port));
	int rc = espl_port_open(spec, 115200, &p, &err);
	assert_int_equal(rc, ESPL_ENOTFOUND);
	assert_non_null(strstr(err.msg, "refused"));
	assert_non_null(strstr(err.msg, spec));
	rc = espl_port_open(spec_for("socket", ntohs(a.sin_port)), 115200, &p, &err);
	assert_int_equal(rc, ESPL_ENOTFOUND);
	close(fd);
}

static void test_bad_specs(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"rfc2217://host", "rfc2217://:4000", "rfc2217://host:", "rfc2217://host:99999",
		"rfc2217://host:40x0", "socket://host:4000?ign_set_control", "rfc2217://h:1?bogus",
		"telnet://host:23", "rfc2217://[::1", "",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		espl_port *p = NULL;
		espl_error err = { 0 };
		int rc = espl_port_open(bad[i], 115200, &p, &err);
		if (rc != ESPL_EARG)
			fail_msg("'%s' gave %d (%s), expected ESPL_EARG", bad[i], rc, err.msg);
		assert_null(p);
		assert_true(strlen(err.msg) > 0);
	}
	espl_port *p = NULL;
	espl_error err = { 0 };
	assert_int_equal(espl_port_open("usb:10c4:ea60", 115200, &p, &err), ESPL_EARG);
	assert_non_null(strstr(err.msg, "espline ports"));
	assert_int_equal(espl_port_open("/dev/ttyUSB*", 115200, &p, &err), ESPL_EARG);
	assert_int_equal(espl_port_open("/etc/hostname", 115200, &p, &err), ESPL_EARG);
	assert_non_null(strstr(err.msg, "not a serial port"));
	assert_int_equal(espl_port_open("/dev/null", 115200, &p, &err), ESPL_EARG);
}

static void test_ipv6_and_option_specs(void **state)
{
	(void)state;
	server *s = server_start(1);
	server_run(s);
	char spec[64];
	snprintf(spec, sizeof spec, "rfc2217://localhost:%d?ign_set_control", s->port);
	espl_port *p = open_ok(spec, 115200);
	assert_string_equal(p->name, spec);
	espl_port_close(p);
	server_stop(s);
	/* [::1] parses; whether anything listens there does not matter */
	espl_port *q = NULL;
	espl_error err = { 0 };
	int rc = espl_port_open("socket://[::1]:1", 115200, &q, &err);
	assert_int_not_equal(rc, ESPL_EARG);
	assert_int_not_equal(rc, ESPL_OK);
}

static void test_open_error_messages(void **state)
{
	(void)state;
	espl_error err = { 0 };
	errno = EACCES;
	assert_int_equal(espl__port_open_failed("/dev/ttyUSB0", &err), ESPL_EPERM);
	assert_non_null(strstr(err.msg, "dialout"));
	errno = EBUSY;
	assert_int_equal(espl__port_open_failed("/dev/ttyUSB0", &err), ESPL_EBUSY);
	assert_non_null(strstr(err.msg, "another program"));
	errno = ENOENT;
	assert_int_equal(espl__port_open_failed("/dev/ttyUSB7", &err), ESPL_ENOTFOUND);
	assert_non_null(strstr(err.msg, "/dev/ttyUSB7"));
}

/* ================================ listing ================================ */

static void test_list_glob(void **state)
{
	(void)state;
	char dir[] = "/tmp/espline-port-XXXXXX", path[128];
	espl_port_info *list = NULL;
	espl_error err = { 0 };
	assert_non_null(mkdtemp(dir));
	static const char *const names[] = { "ttyFAKE1", "ttyFAKE0", "other" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		fclose(fopen(path, "w"));
	}
	snprintf(path, sizeof path, "%s/ttyFAKE*", dir);
	int n = espl_port_list(path, &list, &err);
	assert_int_equal(n, 2);
	snprintf(path, sizeof path, "%s/ttyFAKE0", dir);
	assert_string_equal(list[0].path, path);
	snprintf(path, sizeof path, "%s/ttyFAKE1", dir);
	assert_string_equal(list[1].path, path);
	assert_int_equal(list[0].vid, 0);
	free(list);

	snprintf(path, sizeof path, "%s/ttyNONE*", dir);
	assert_int_equal(espl_port_list(path, &list, &err), 0);
	free(list);
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

static void test_list_specs(void **state)
{
	(void)state;
	espl_port_info *list = NULL;
	espl_error err = { 0 };
	assert_int_equal(espl_port_list("rfc2217://10.0.0.5:4000", &list, &err), 1);
	assert_string_equal(list[0].path, "rfc2217://10.0.0.5:4000");
	free(list);
	assert_int_equal(espl_port_list("/dev/ttyUSB3", &list, &err), 1);
	assert_string_equal(list[0].path, "/dev/ttyUSB3");
	free(list);
	assert_int_equal(espl_port_list("usb:xyz", &list, &err), ESPL_EARG);
	assert_int_equal(espl_port_list("usb:10c4:", &list, &err), ESPL_EARG);
	assert_int_equal(espl_port_list("usb:123456", &list, &err), ESPL_EARG);
	/* whatever adapters this machine has, a filter keeps only matches */
	int n = espl_port_list("usb:10c4:ea60", &list, &err);
	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		assert_int_equal(list[i].vid, 0x10c4);
		assert_int_equal(list[i].pid, 0xea60);
	}
	free(list);
	n = espl_port_list(NULL, &list, &err);
	assert_true(n >= 0);
	for (int i = 1; i < n; i++)
		assert_true(strcmp(list[i - 1].path, list[i].path) < 0);
	free(list);
}

static void test_usb_location(void **state)
{
	(void)state;
	char out[64];
	assert_int_equal(espl__port_usb_location(
		"/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.3/1-1.3:1.0/ttyUSB0/tty/ttyUSB0",
		out, sizeof out), 1);
	assert_string_equal(out, "1-1.3");
	assert_int_equal(espl__port_usb_location(
		"/sys/devices/pci0000:00/0000:00:14.0/usb3/3-2/3-2:1.0", out, sizeof out), 1);
	assert_string_equal(out, "3-2");
	assert_int_equal(espl__port_usb_location("/sys/devices/pnp0/00:05/tty/ttyS0", out,
	                                        sizeof out), 0);
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tty_backend_is_chosen_for_pty, pty_setup, pty_teardown),
		cmocka_unit_test_setup_teardown(test_tty_read_timeout, pty_setup, pty_teardown),
		cmocka_unit_test_setup_teardown(test_tty_read_returns_what_is_there, pty_setup, pty_teardown),
		cmocka_unit_test_setup_teardown(test_tty_read_exact, pty_setup, pty_teardown),
		cmocka_unit_test_setup_teardown(test_tty_write, pty_setup, pty_teardown),
		cmocka_unit_test_setup_teardown(test_tty_baud, pty_setup, pty_teardown),
		cmocka_unit_test_setup_teardown(test_tty_lines_unsupported_on_pty, pty_setup, pty_teardown),
		cmocka_unit_test_setup_teardown(test_tty_flush_input, pty_setup, pty_teardown),
		cmocka_unit_test_setup_teardown(test_tty_busy, pty_setup, pty_teardown),
		cmocka_unit_test_setup_teardown(test_tty_disconnect, pty_setup, pty_teardown),
		cmocka_unit_test(test_rfc2217_open_sets_line),
		cmocka_unit_test(test_rfc2217_baud_in_band_and_in_order),
		cmocka_unit_test(test_rfc2217_lines_in_band_in_safe_order),
		cmocka_unit_test(test_rfc2217_data_with_iac_round_trips),
		cmocka_unit_test(test_rfc2217_large_transfer_small_reads),
		cmocka_unit_test(test_rfc2217_flush_input_purges),
		cmocka_unit_test(test_rfc2217_flush_keeps_what_follows_the_reply),
		cmocka_unit_test(test_rfc2217_timeout_and_disconnect),
		cmocka_unit_test(test_rfc2217_server_sets_other_baud),
		cmocka_unit_test(test_rfc2217_server_without_replies),
		cmocka_unit_test(test_rfc2217_refused_and_silent_servers),
		cmocka_unit_test(test_socket_raw_bytes),
		cmocka_unit_test(test_missing_path),
		cmocka_unit_test(test_refused_tcp_port),
		cmocka_unit_test(test_bad_specs),
		cmocka_unit_test(test_ipv6_and_option_specs),
		cmocka_unit_test(test_open_error_messages),
		cmocka_unit_test(test_list_glob),
		cmocka_unit_test(test_list_specs),
		cmocka_unit_test(test_usb_location),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
