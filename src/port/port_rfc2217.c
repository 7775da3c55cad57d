/* port_rfc2217.c - network ports: rfc2217://host:port (telnet COM-PORT-OPTION,
 * baud and DTR/RTS in-band) and socket://host:port (raw TCP, bytes only).
 * See src/port/port_backend.h and include/espline/rfc2217.h.
 *
 * Decisions worth knowing:
 *  - Commands travel in the same TCP stream as data, so a baud change or a
 *    DTR/RTS change reaches the server after every byte written before it.
 *    The server must apply it in stream order (after draining those bytes to
 *    its UART); espline-sim does.
 *  - set_baud waits up to ACK_WAIT_MS for the server's SET-BAUDRATE reply and
 *    fails with ESPL_EUNSUPPORTED if the server reports a different rate.  A
 *    missing reply is tolerated (the RFC asks servers to reply, some are
 *    slow); after one missing reply we stop waiting for later ones.
 *  - set_lines sends DTR and RTS as two SET-CONTROL commands in one TCP
 *    write, without waiting for replies.  Order: a line being asserted goes
 *    first if it is DTR, a line being released goes first if it is RTS, so
 *    the pair never passes through "DTR released, RTS asserted" (EN low on the
 *    NodeMCU circuit: an unintended reset) unless that is the target.
 *  - flush_input sends PURGE-DATA (server receive buffer) and discards input
 *    until the server's PURGE-DATA reply, so bytes already in flight are
 *    dropped too; same tolerance for servers that never reply.
 *  - socket:// has no baud rate and no modem lines: set_baud succeeds only for
 *    the rate already recorded (the server's rate is fixed; esptool ignores
 *    baud for socket:// too) and set_lines returns ESPL_EUNSUPPORTED.
 *  - drain waits until the kernel's send queue is empty, i.e. the server has
 *    received every byte; whether its UART has sent them is not visible.
 */
#include "port/port_backend.h"

#include "espline/rfc2217.h"
#include "util/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_MS 3000
#define NEGOTIATE_TIMEOUT_MS 3000
#define ACK_WAIT_MS 1000
#define SEND_TIMEOUT_MS 5000
#define DRAIN_TIMEOUT_MS 5000
#define PENDING_MAX 16384

typedef struct net_port {
	espl_port base;
	int fd;
	int telnet;                  /* 1: rfc2217://, 0: socket:// */
	espl_telnet_decoder dec;
	espl_telnet_options opt;
	/* Received data not yet read: pending[head..len).  Everything from the
	 * socket is decoded into it in big gulps, so small reads stay cheap and
	 * data that arrives while we wait for a reply is kept for read(). */
	uint8_t pending[PENDING_MAX];
	size_t pending_head, pending_len;
	/* Server replies seen since the last request. */
	int baud_acked;
	uint32_t acked_baud;
	int purge_acked;
	size_t purge_cut;            /* pending index just after the PURGE-DATA reply */
	/* Whether the server has ever answered; if not, stop waiting. */
	int baud_replies_missing;
	int purge_replies_missing;
} net_port;

/* --- spec parsing -------------------------------------------------------- */

static int bad_spec(const char *spec, const char *why, espl_error *err)
{
	return espl_fail(err, ESPL_EARG,
	                 "bad port '%s': %s (expected rfc2217://HOST:PORT or socket://HOST:PORT)",
	                 spec, why);
}

/* Split "scheme://host:port[?opts]" into host and port; [v6]:port allowed. */
static int parse_spec(const char *spec, int *telnet, char *host, size_t hn, char *port,
                      size_t pn, espl_error *err)
{
	const char *rest, *colon, *end;
	if (strncmp(spec, "rfc2217://", 10) == 0) {
		*telnet = 1;
		rest = spec + 10;
	} else if (strncmp(spec, "socket://", 9) == 0) {
		*telnet = 0;
		rest = spec + 9;
	} else {
		return bad_spec(spec, "unknown scheme", err);
	}
	end = rest + strcspn(rest, "?/");
	if (*rest == '[') {
		const char *close = memchr(rest, ']', (size_t)(end - rest));
		if (!close || close[1] != ':')
			return bad_spec(spec, "bad [IPv6]:PORT", err);
		snprintf(host, hn, "%.*s", (int)(close - rest - 1), rest + 1);
		colon = close + 1;
	} else {
		colon = memchr(rest, ':', (size_t)(end - rest));
		if (!colon)
			return bad_spec(spec, "no :PORT", err);
		snprintf(host, hn, "%.*s", (int)(colon - rest), rest);
	}
	size_t plen = (size_t)(end - colon - 1);
	if (host[0] == '\0')
		return bad_spec(spec, "no host", err);
	if (plen == 0 || plen >= pn || strspn(colon + 1, "0123456789") < plen)
		return bad_spec(spec, "PORT must be a number", err);
	snprintf(port, pn, "%.*s", (int)plen, colon + 1);
	long num = strtol(port, NULL, 10);
	if (num < 1 || num > 65535)
		return bad_spec(spec, "PORT out of range", err);
	if (*end == '/' && end[1] != '\0' && end[1] != '?')
		return bad_spec(spec, "unexpected path", err);
	const char *q = strchr(end, '?');
	/* esptool's ?ign_set_control: we never wait for SET-CONTROL replies anyway. */
	if (q && (!*telnet || strcmp(q + 1, "ign_set_control") != 0))
		return bad_spec(spec, "unknown option (only rfc2217://...?ign_set_control)", err);
	return ESPL_OK;
}

int espl__port_net_spec_check(const char *spec, espl_error *err)
{
	int telnet;
	char host[256], port[16];
	return parse_spec(spec, &telnet, host, sizeof host, port, sizeof port, err);
}

/* --- socket plumbing ----------------------------------------------------- */

static int connect_one(const struct addrinfo *ai, int *fd_out)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
	                ai->ai_protocol);
	if (fd < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int rc;
	do
		rc = poll(&pfd, 1, CONNECT_TIMEOUT_MS);
	while (rc < 0 && errno == EINTR);
	int soerr = 0;
	socklen_t len = sizeof soerr;
	if (rc == 0)
		soerr = ETIMEDOUT;
	else if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr) {
		close(fd);
		errno = soerr;
		return -1;
	}
	int one = 1;
	/* Small commands (a SLIP frame, a SET-CONTROL) must leave at once. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	*fd_out = fd;
	return 0;
}

static int net_connect(const char *spec, const char *host, const char *port, int *fd,
                       espl_error *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0)
		return espl_fail(err, ESPL_ENOTFOUND, "%s: cannot resolve host '%s': %s", spec, host,
		                 gai_strerror(rc));
	errno = ECONNREFUSED;
	for (ai = res; ai; ai = ai->ai_next)
		if (connect_one(ai, fd) == 0)
			break;
	int e = errno;
	freeaddrinfo(res);
	if (ai)
		return ESPL_OK;
	if (e == ECONNREFUSED)
		return espl_fail(err, ESPL_ENOTFOUND,
		                 "%s: connection refused: is the serial server running on %s port %s?",
		                 spec, host, port);
	if (e == ETIMEDOUT)
		return espl_fail(err, ESPL_ETIMEOUT, "%s: no answer from %s port %s within %d ms",
		                 spec, host, port, CONNECT_TIMEOUT_MS);
	errno = e;
	return espl_fail_errno(err, "%s: cannot connect", spec);
}

static int closed_by_server(net_port *np, espl_error *err)
{
	return espl_fail(err, ESPL_EDISCONNECTED, "%s: connection closed by the server",
	                 np->base.name);
}

static int send_all(net_port *np, const uint8_t *buf, size_t len, espl_error *err)
{
	int64_t deadline = espl__now_ms() + SEND_TIMEOUT_MS;
	size_t done = 0;
	while (done < len) {
		ssize_t n = send(np->fd, buf + done, len - done, MSG_NOSIGNAL);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EPIPE || errno == ECONNRESET)
			return closed_by_server(np, err);
		if (errno != EAGAIN)
			return espl_fail_errno(err, "%s: send", np->base.name);
		int64_t left = deadline - espl__now_ms();
		struct pollfd pfd = { .fd = np->fd, .events = POLLOUT };
		if (left <= 0 || (poll(&pfd, 1, (int)left) == 0))
			return espl_fail(err, ESPL_ETIMEOUT,
			                 "%s: send stalled (%zu of %zu bytes): server not reading?",
			                 np->base.name, done, len);
	}
	return ESPL_OK;
}

/* --- telnet events ------------------------------------------------------- */

static int accept_option(uint8_t option)
{
	/* ECHO is refused: a serial port that echoed would garble every reply. */
	return option == ESPL_TELNET_OPT_BINARY || option == ESPL_TELNET_OPT_SGA ||
	       option == ESPL_TELNET_OPT_COM_PORT;
}

/* data_end: where decoded data stands in the buffer being filled when the
 * event arrived (for PURGE-DATA, the line between stale and fresh input). */
static int handle_event(net_port *np, const espl_telnet_event *ev, const uint8_t *data_end,
                        espl_error *err)
{
	uint8_t out[3];
	if (ev->kind == ESPL_TELNET_EV_NEGOTIATION) {
		size_t n = espl_telnet_answer(&np->opt, ev, accept_option(ev->option), out);
		return n ? send_all(np, out, n, err) : ESPL_OK;
	}
	if (ev->kind != ESPL_TELNET_EV_SUBNEG || !ev->cpo || !ev->cpo_from_server)
		return ESPL_OK; /* NOP, modem-state notifications, ...: nothing to do */
	if (ev->cpo_base == ESPL_RFC2217_SET_BAUDRATE) {
		np->baud_acked = 1;
		np->acked_baud = ev->cpo_value;
	} else if (ev->cpo_base == ESPL_RFC2217_PURGE_DATA) {
		np->purge_acked = 1;
		if (data_end >= np->pending && data_end <= np->pending + PENDING_MAX)
			np->purge_cut = (size_t)(data_end - np->pending);
	}
	return ESPL_OK;
}

/* Wait up to timeout_ms for input, read at most cap bytes' worth and decode
 * them into dst.  Returns the data bytes produced (0 if none came, or only
 * telnet commands), or a negative code. */
static int pump(net_port *np, int timeout_ms, uint8_t *dst, size_t cap, espl_error *err)
{
	uint8_t raw[2048];
	struct pollfd pfd = { .fd = np->fd, .events = POLLIN };
	int rc = poll(&pfd, 1, timeout_ms > 0 ? timeout_ms : 0);
	if (rc < 0)
		return errno == EINTR ? 0 : espl_fail_errno(err, "%s: poll", np->base.name);
	if (rc == 0)
		return 0;
	ssize_t got = recv(np->fd, raw, cap < sizeof raw ? cap : sizeof raw, 0);
	if (got == 0)
		return closed_by_server(np, err);
	if (got < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		if (errno == ECONNRESET)
			return closed_by_server(np, err);
		return espl_fail_errno(err, "%s: recv", np->base.name);
	}
	if (!np->telnet) {
		memcpy(dst, raw, (size_t)got);
		return (int)got;
	}
	size_t off = 0, produced = 0;
	while (off < (size_t)got) {
		size_t dlen;
		espl_telnet_event ev;
		off += espl_telnet_feed(&np->dec, raw + off, (size_t)got - off, dst + produced, &dlen,
		                        &ev);
		produced += dlen;
		ESPL_TRY(handle_event(np, &ev, dst + produced, err));
	}
	return (int)produced;
}

/* Drop unread input (flush_input). */
static void pending_clear(net_port *np)
{
	np->pending_head = 0;
	np->pending_len = 0;
}

/* Wait up to timeout_ms and decode what arrives into the pending buffer.
 * Returns 0 (also when nothing or only telnet commands came) or a negative
 * code. */
static int pump_pending(net_port *np, int timeout_ms, espl_error *err)
{
	if (np->pending_head == np->pending_len)
		pending_clear(np);
	if (PENDING_MAX - np->pending_len < 2048 && np->pending_head > 0) {
		memmove(np->pending, np->pending + np->pending_head,
		        np->pending_len - np->pending_head);
		np->pending_len -= np->pending_head;
		np->pending_head = 0;
	}
	if (PENDING_MAX - np->pending_len < 64)
		pending_clear(np); /* 16 KiB unread while we wait for a reply: stale, drop it */
	int n = pump(np, timeout_ms, np->pending + np->pending_len, PENDING_MAX - np->pending_len,
	             err);
	if (n < 0)
		return n;
	np->pending_len += (size_t)n;
	return ESPL_OK;
}

/* Pump until *flag is set or timeout_ms passes.  Returns 1 if the flag was
 * set, 0 on timeout, or a negative code. */
static int wait_for(net_port *np, const int *flag, int timeout_ms, espl_error *err)
{
	int64_t deadline = espl__now_ms() + timeout_ms;
	while (!*flag) {
		int64_t left = deadline - espl__now_ms();
		if (left <= 0)
			return 0;
		ESPL_TRY(pump_pending(np, (int)left, err));
	}
	return 1;
}

/* --- the backend --------------------------------------------------------- */

static int net_read(espl_port *p, uint8_t *buf, size_t len, int timeout_ms, espl_error *err)
{
	net_port *np = (net_port *)p;
	if (len == 0)
		return espl_fail(err, ESPL_EARG, "%s: read of 0 bytes", p->name);
	int64_t deadline = espl__now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	while (np->pending_head == np->pending_len) {
		int64_t left = deadline - espl__now_ms();
		ESPL_TRY(pump_pending(np, left > 0 ? (int)left : 0, err));
		if (np->pending_head == np->pending_len && left <= 0)
			return espl_fail(err, ESPL_ETIMEOUT, "%s: nothing received in %d ms", p->name,
			                 timeout_ms);
	}
	size_t avail = np->pending_len - np->pending_head;
	size_t n = avail < len ? avail : len;
	memcpy(buf, np->pending + np->pending_head, n);
	np->pending_head += n;
	return (int)n;
}

static int net_write(espl_port *p, const uint8_t *buf, size_t len, espl_error *err)
{
	net_port *np = (net_port *)p;
	if (!np->telnet) {
		ESPL_TRY(send_all(np, buf, len, err));
		return (int)len;
	}
	uint8_t esc[2 * 1024];
	for (size_t off = 0; off < len; off += 1024) {
		size_t chunk = len - off < 1024 ? len - off : 1024;
		size_t n = espl_telnet_escape(buf + off, chunk, esc);
		ESPL_TRY(send_all(np, esc, n, err));
	}
	return (int)len;
}

static int net_drain(espl_port *p, espl_error *err)
{
	net_port *np = (net_port *)p;
	int64_t deadline = espl__now_ms() + DRAIN_TIMEOUT_MS;
	for (;;) {
		int queued = 0;
		if (ioctl(np->fd, SIOCOUTQ, &queued) < 0)
			return espl_fail_errno(err, "%s: drain", p->name);
		if (queued == 0)
			return ESPL_OK;
		if (espl__now_ms() >= deadline)
			return espl_fail(err, ESPL_ETIMEOUT, "%s: %d bytes still unsent after %d ms",
			                 p->name, queued, DRAIN_TIMEOUT_MS);
		struct pollfd pfd = { .fd = np->fd, .events = 0 };
		poll(&pfd, 1, 1); /* a short nap; also notices a hangup */
		if (pfd.revents & (POLLHUP | POLLERR))
			return closed_by_server(np, err);
	}
}

/* Discard everything the socket already holds, still answering telnet. */
static int discard_available(net_port *np, espl_error *err)
{
	uint8_t junk[2048];
	int avail = 0;
	while (ioctl(np->fd, FIONREAD, &avail) == 0 && avail > 0)
		ESPL_TRY(pump(np, 0, junk, sizeof junk, err));
	return ESPL_OK;
}

static int net_flush_input(espl_port *p, espl_error *err)
{
	net_port *np = (net_port *)p;
	pending_clear(np);
	if (!np->telnet)
		return discard_available(np, err);
	uint8_t cmd[ESPL_RFC2217_CMD_MAX];
	size_t n = espl_rfc2217_build_byte(ESPL_RFC2217_PURGE_DATA, ESPL_RFC2217_PURGE_RX, cmd);
	ESPL_TRY(send_all(np, cmd, n, err));
	np->purge_acked = 0;
	np->purge_cut = 0;
	if (!np->purge_replies_missing) {
		int rc = wait_for(np, &np->purge_acked, ACK_WAIT_MS, err);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			/* Before the reply: stale.  After it: the device's new output. */
			np->pending_head = np->purge_cut;
			if (np->pending_head > np->pending_len)
				np->pending_head = np->pending_len;
			return ESPL_OK;
		}
		np->purge_replies_missing = 1;
	}
	pending_clear(np);
	return discard_available(np, err);
}

static int net_set_baud(espl_port *p, unsigned baud, espl_error *err)
{
	net_port *np = (net_port *)p;
	if (baud == 0)
		return espl_fail(err, ESPL_EARG, "%s: baud rate 0", p->name);
	if (!np->telnet) {
		if (baud == p->baud)
			return ESPL_OK;
		return espl_fail(err, ESPL_EUNSUPPORTED,
		                 "%s: a raw socket cannot change the baud rate (fixed by the server "
		                 "at what it was set to; %u requested): use rfc2217://", p->name, baud);
	}
	uint8_t cmd[ESPL_RFC2217_CMD_MAX];
	size_t n = espl_rfc2217_build_baud(ESPL_RFC2217_SET_BAUDRATE, baud, cmd);
	np->baud_acked = 0;
	ESPL_TRY(send_all(np, cmd, n, err));
	p->baud = baud;
	if (np->baud_replies_missing)
		return ESPL_OK;
	int rc = wait_for(np, &np->baud_acked, ACK_WAIT_MS, err);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		np->baud_replies_missing = 1;
		return ESPL_OK;
	}
	if (np->acked_baud != baud) {
		p->baud = np->acked_baud;
		return espl_fail(err, ESPL_EUNSUPPORTED, "%s: server set %u baud instead of %u",
		                 p->name, (unsigned)np->acked_baud, baud);
	}
	return ESPL_OK;
}

static size_t control(uint8_t value, uint8_t *out)
{
	return espl_rfc2217_build_byte(ESPL_RFC2217_SET_CONTROL, value, out);
}

static int net_set_lines(espl_port *p, int dtr, int rts, espl_error *err)
{
	net_port *np = (net_port *)p;
	if (!np->telnet) {
		if (dtr == ESPL_LINE_KEEP && rts == ESPL_LINE_KEEP)
			return ESPL_OK;
		return espl_fail(err, ESPL_EUNSUPPORTED,
		                 "%s: a raw socket has no DTR/RTS lines: cannot reset the chip; use "
		                 "rfc2217:// or reset by hand", p->name);
	}
	uint8_t buf[2 * ESPL_RFC2217_CMD_MAX];
	size_t n = 0;
	int rts_first = rts == ESPL_LINE_RELEASE;
	if (rts_first)
		n += control(ESPL_RFC2217_RTS_OFF, buf + n);
	if (dtr != ESPL_LINE_KEEP)
		n += control(dtr ? ESPL_RFC2217_DTR_ON : ESPL_RFC2217_DTR_OFF, buf + n);
	if (!rts_first && rts != ESPL_LINE_KEEP)
		n += control(rts ? ESPL_RFC2217_RTS_ON : ESPL_RFC2217_RTS_OFF, buf + n);
	return n ? send_all(np, buf, n, err) : ESPL_OK;
}

static void net_close(espl_port *p)
{
	net_port *np = (net_port *)p;
	close(np->fd);
	free(np);
}

static const espl_port_ops rfc2217_ops = {
	.kind = "rfc2217",
	.read = net_read,
	.write = net_write,
	.drain = net_drain,
	.flush_input = net_flush_input,
	.set_baud = net_set_baud,
	.set_lines = net_set_lines,
	.close = net_close,
};

static const espl_port_ops socket_ops = {
	.kind = "socket",
	.limits = ESPL_PORT_NO_BAUD | ESPL_PORT_NO_LINES,
	.read = net_read,
	.write = net_write,
	.drain = net_drain,
	.flush_input = net_flush_input,
	.set_baud = net_set_baud,
	.set_lines = net_set_lines,
	.close = net_close,
};

/* Offer BINARY and SGA both ways and COM-PORT-OPTION on our side, then wait
 * until the server agrees to COM-PORT-OPTION. */
static int negotiate(net_port *np, espl_error *err)
{
	static const struct { uint8_t verb, option; } asks[] = {
		{ ESPL_TELNET_WILL, ESPL_TELNET_OPT_COM_PORT },
		{ ESPL_TELNET_WILL, ESPL_TELNET_OPT_BINARY },
		{ ESPL_TELNET_DO, ESPL_TELNET_OPT_BINARY },
		{ ESPL_TELNET_WILL, ESPL_TELNET_OPT_SGA },
		{ ESPL_TELNET_DO, ESPL_TELNET_OPT_SGA },
	};
	uint8_t buf[3 * sizeof asks / sizeof asks[0]];
	size_t n = 0;
	for (size_t i = 0; i < sizeof asks / sizeof asks[0]; i++)
		n += espl_telnet_request(&np->opt, asks[i].verb, asks[i].option, buf + n);
	ESPL_TRY(send_all(np, buf, n, err));

	int64_t deadline = espl__now_ms() + NEGOTIATE_TIMEOUT_MS;
	while (!espl_telnet_us_enabled(&np->opt, ESPL_TELNET_OPT_COM_PORT)) {
		int64_t left = deadline - espl__now_ms();
		if (espl_telnet_us_refused(&np->opt, ESPL_TELNET_OPT_COM_PORT))
			return espl_fail(err, ESPL_EUNSUPPORTED,
			                 "%s: the telnet server refuses RFC 2217 (COM-PORT-OPTION): it "
			                 "cannot set baud or DTR/RTS; use socket:// if the rate is fixed",
			                 np->base.name);
		if (left <= 0)
			return espl_fail(err, ESPL_ETIMEOUT,
			                 "%s: the server did not negotiate RFC 2217 within %d ms: "
			                 "is it a raw TCP port? then use socket://", np->base.name,
			                 NEGOTIATE_TIMEOUT_MS);
		ESPL_TRY(pump_pending(np, (int)left, err));
	}
	return ESPL_OK;
}

/* 8N1, no flow control, then the baud rate (which waits for its reply). */
static int configure_line(net_port *np, unsigned baud, espl_error *err)
{
	uint8_t buf[4 * ESPL_RFC2217_CMD_MAX];
	size_t n = 0;
	n += espl_rfc2217_build_byte(ESPL_RFC2217_SET_DATASIZE, 8, buf + n);
	n += espl_rfc2217_build_byte(ESPL_RFC2217_SET_PARITY, 1, buf + n);    /* none */
	n += espl_rfc2217_build_byte(ESPL_RFC2217_SET_STOPSIZE, 1, buf + n);  /* one */
	n += espl_rfc2217_build_byte(ESPL_RFC2217_SET_CONTROL, ESPL_RFC2217_FLOW_NONE, buf + n);
	ESPL_TRY(send_all(np, buf, n, err));
	return net_set_baud(&np->base, baud, err);
}

int espl__port_net_open(const char *spec, unsigned baud, espl_port **out, espl_error *err)
{
	char host[256], port[16];
	int telnet = 0, fd = -1;
	ESPL_TRY(parse_spec(spec, &telnet, host, sizeof host, port, sizeof port, err));
	if (baud == 0)
		return espl_fail(err, ESPL_EARG, "%s: baud rate 0", spec);
	ESPL_TRY(net_connect(spec, host, port, &fd, err));
	net_port *np = calloc(1, sizeof *np);
	if (!np) {
		close(fd);
		return espl_fail(err, ESPL_ENOMEM, "%s: out of memory", spec);
	}
	np->base.ops = telnet ? &rfc2217_ops : &socket_ops;
	snprintf(np->base.name, sizeof np->base.name, "%s", spec);
	np->base.baud = baud;
	np->fd = fd;
	np->telnet = telnet;
	espl_telnet_decoder_init(&np->dec);
	espl_telnet_options_init(&np->opt);
	if (telnet) {
		int rc = negotiate(np, err);
		if (rc == ESPL_OK)
			rc = configure_line(np, baud, err);
		if (rc != ESPL_OK) {
			net_close(&np->base);
			return rc;
		}
	}
	*out = &np->base;
	return ESPL_OK;
}
