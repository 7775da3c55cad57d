/* port_tty.c - the termios backend (ptys and anything libserialport refuses)
 * and the fd helpers it shares with port_serial.c; see src/port/port_backend.h.
 *
 * Uses the kernel's termios2 interface directly (not glibc's termios.h, whose
 * struct clashes with it) so that any baud rate can be set with BOTHER. */
#include "port/port_backend.h"
#include "util/clock.h"

#include <asm/termbits.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* How long a write may stall beyond its wire time before we call it stuck. */
#define WRITE_SLACK_MS 2000

typedef struct tty_port {
	espl_port base;
	int fd;
} tty_port;

int espl__port_open_failed(const char *path, espl_error *err)
{
	switch (errno) {
	case ENOENT: case ENODEV: case ENXIO:
		return espl_fail(err, ESPL_ENOTFOUND,
		                 "no serial port %s: is the adapter plugged in? "
		                 "`espline ports` lists the ports present", path);
	case EACCES: case EPERM:
		return espl_fail(err, ESPL_EPERM,
		                 "permission denied opening %s: add the user to the dialout group "
		                 "(sudo usermod -aG dialout $USER, then log in again)", path);
	case EBUSY: case EWOULDBLOCK:
		return espl_fail(err, ESPL_EBUSY,
		                 "%s is busy: another program (or another espline worker) has it open",
		                 path);
	case ENOTTY:
		return espl_fail(err, ESPL_EARG, "%s is not a serial port", path);
	default:
		return espl_fail_errno(err, "cannot open %s", path);
	}
}

int espl__port_fd_lock(int fd, const char *path, espl_error *err)
{
	/* flock stops a second opener even when it is root (TIOCEXCL does not). */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return espl__port_open_failed(path, err);
	if (ioctl(fd, TIOCEXCL) < 0)
		return espl_fail_errno(err, "cannot lock %s for exclusive use", path);
	return ESPL_OK;
}

void espl__port_fd_unlock(int fd)
{
	ioctl(fd, TIOCNXCL);
	flock(fd, LOCK_UN);
}

/* Wait for events on fd for at most timeout_ms; returns revents, 0 on
 * timeout, or -1 with errno set. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - espl__now_ms();
		struct pollfd pfd = { .fd = fd, .events = events };
		int rc = poll(&pfd, 1, left > 0 ? (int)left : 0);
		if (rc > 0)
			return pfd.revents;
		if (rc == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

static int disconnected(const char *name, espl_error *err)
{
	return espl_fail(err, ESPL_EDISCONNECTED,
	                 "%s went away (unplugged, or the other side closed it)", name);
}

int espl__port_fd_read(int fd, const char *name, uint8_t *buf, size_t len, int timeout_ms,
                      espl_error *err)
{
	int64_t deadline = espl__now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	if (len == 0)
		return espl_fail(err, ESPL_EARG, "%s: read of 0 bytes", name);
	for (;;) {
		int rev = wait_fd(fd, POLLIN, deadline);
		if (rev < 0)
			return espl_fail_errno(err, "%s: poll", name);
		if (rev == 0)
			return espl_fail(err, ESPL_ETIMEOUT, "%s: nothing received in %d ms", name,
			                 timeout_ms);
		if (rev & POLLNVAL)
			return espl_fail(err, ESPL_EARG, "%s: port is not open", name);
		/* Read even on POLLHUP: bytes that arrived before the hangup come first. */
		ssize_t n = read(fd, buf, len);
		if (n > 0)
			return (int)n;
		if (n == 0 || errno == EIO)
			return disconnected(name, err);
		if (errno == EAGAIN || errno == EINTR)
			continue;
		return espl_fail_errno(err, "%s: read", name);
	}
}

int espl__port_fd_write(int fd, const char *name, unsigned baud, const uint8_t *buf, size_t len,
                       espl_error *err)
{
	/* Ten bit times per byte on the wire, twice over for safety. */
	int64_t wire_ms = baud ? (int64_t)len * 20000 / baud : 0;
	int64_t deadline = espl__now_ms() + WRITE_SLACK_MS + wire_ms;
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, buf + done, len - done);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return errno == EIO ? disconnected(name, err)
			                    : espl_fail_errno(err, "%s: write", name);
		int rev = wait_fd(fd, POLLOUT, deadline);
		if (rev < 0)
			return espl_fail_errno(err, "%s: poll", name);
		if (rev == 0)
			return espl_fail(err, ESPL_ETIMEOUT,
			                 "%s: write stalled (%zu of %zu bytes sent): flow control "
			                 "or a stuck adapter?", name, done, len);
		if (rev & (POLLERR | POLLHUP))
			return disconnected(name, err);
	}
	return (int)len;
}

static int lines_unsupported(const char *name, espl_error *err)
{
	return espl_fail(err, ESPL_EUNSUPPORTED,
	                 "%s has no DTR/RTS modem lines (a pseudo-terminal?): cannot reset the "
	                 "chip from here; use a real adapter, rfc2217://, or reset by hand", name);
}

int espl__port_fd_set_lines(int fd, const char *name, int dtr, int rts, espl_error *err)
{
	int bits;
	if (dtr == ESPL_LINE_KEEP && rts == ESPL_LINE_KEEP)
		return ESPL_OK;
	if (ioctl(fd, TIOCMGET, &bits) < 0)
		return errno == ENOTTY || errno == EINVAL ? lines_unsupported(name, err)
		                                          : espl_fail_errno(err, "%s: TIOCMGET", name);
	if (dtr != ESPL_LINE_KEEP)
		bits = dtr ? bits | TIOCM_DTR : bits & ~TIOCM_DTR;
	if (rts != ESPL_LINE_KEEP)
		bits = rts ? bits | TIOCM_RTS : bits & ~TIOCM_RTS;
	/* One ioctl sets both lines, so the NodeMCU reset circuit never sees a
	 * half-changed pair. */
	if (ioctl(fd, TIOCMSET, &bits) < 0)
		return errno == ENOTTY || errno == EINVAL ? lines_unsupported(name, err)
		                                          : espl_fail_errno(err, "%s: TIOCMSET", name);
	return ESPL_OK;
}

int espl__port_fd_drain(int fd, const char *name, espl_error *err)
{
	/* TCSBRK with a non-zero argument is tcdrain(). */
	while (ioctl(fd, TCSBRK, 1) < 0) {
		if (errno != EINTR)
			return errno == EIO ? disconnected(name, err)
			                    : espl_fail_errno(err, "%s: drain", name);
	}
	return ESPL_OK;
}

int espl__port_fd_flush_input(int fd, const char *name, espl_error *err)
{
	if (ioctl(fd, TCFLSH, TCIFLUSH) < 0)
		return espl_fail_errno(err, "%s: flush input", name);
	return ESPL_OK;
}

static void set_speed(struct termios2 *t, unsigned baud)
{
	t->c_cflag &= ~(tcflag_t)(CBAUD | (CBAUD << IBSHIFT));
	t->c_cflag |= BOTHER | (BOTHER << IBSHIFT);
	t->c_ispeed = baud;
	t->c_ospeed = baud;
}

int espl__port_fd_set_baud(int fd, const char *name, unsigned baud, espl_error *err)
{
	struct termios2 t;
	if (baud == 0)
		return espl_fail(err, ESPL_EARG, "%s: baud rate 0", name);
	if (ioctl(fd, TCGETS2, &t) < 0)
		return espl_fail_errno(err, "%s: cannot read line settings", name);
	set_speed(&t, baud);
	if (ioctl(fd, TCSETS2, &t) < 0)
		return errno == EINVAL
		       ? espl_fail(err, ESPL_EUNSUPPORTED, "%s: the adapter refuses %u baud", name, baud)
		       : espl_fail_errno(err, "%s: cannot set %u baud", name, baud);
	return ESPL_OK;
}

int espl__port_fd_get_baud(int fd, unsigned *baud)
{
	struct termios2 t;
	if (ioctl(fd, TCGETS2, &t) < 0)
		return -1;
	*baud = t.c_ospeed;
	return 0;
}

int espl__port_fd_configure(int fd, const char *name, unsigned baud, espl_error *err)
{
	struct termios2 t;
	if (ioctl(fd, TCGETS2, &t) < 0)
		return errno == ENOTTY ? espl_fail(err, ESPL_EARG, "%s is not a serial port", name)
		                       : espl_fail_errno(err, "%s: cannot read line settings", name);
	/* Raw 8N1 with no flow control and no byte translation (cfmakeraw). */
	t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL |
	                         IXON | IXOFF | IXANY);
	t.c_oflag &= ~(tcflag_t)OPOST;
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | CSTOPB | CRTSCTS);
	t.c_cflag |= CS8 | CLOCAL | CREAD;
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	set_speed(&t, baud);
	if (ioctl(fd, TCSETS2, &t) < 0)
		return espl_fail_errno(err, "%s: cannot set raw mode at %u baud", name, baud);
	return ESPL_OK;
}

/* --- the backend --------------------------------------------------------- */

static int tty_read(espl_port *p, uint8_t *buf, size_t len, int timeout_ms, espl_error *err)
{
	return espl__port_fd_read(((tty_port *)p)->fd, p->name, buf, len, timeout_ms, err);
}

static int tty_write(espl_port *p, const uint8_t *buf, size_t len, espl_error *err)
{
	return espl__port_fd_write(((tty_port *)p)->fd, p->name, p->baud, buf, len, err);
}

static int tty_drain(espl_port *p, espl_error *err)
{
	return espl__port_fd_drain(((tty_port *)p)->fd, p->name, err);
}

static int tty_flush_input(espl_port *p, espl_error *err)
{
	return espl__port_fd_flush_input(((tty_port *)p)->fd, p->name, err);
}

static int tty_set_baud(espl_port *p, unsigned baud, espl_error *err)
{
	ESPL_TRY(espl__port_fd_set_baud(((tty_port *)p)->fd, p->name, baud, err));
	p->baud = baud;
	return ESPL_OK;
}

static int tty_set_lines(espl_port *p, int dtr, int rts, espl_error *err)
{
	return espl__port_fd_set_lines(((tty_port *)p)->fd, p->name, dtr, rts, err);
}

static void tty_close(espl_port *p)
{
	tty_port *t = (tty_port *)p;
	espl__port_fd_unlock(t->fd);
	close(t->fd);
	free(t);
}

static const espl_port_ops tty_ops = {
	.kind = "tty",
	.read = tty_read,
	.write = tty_write,
	.drain = tty_drain,
	.flush_input = tty_flush_input,
	.set_baud = tty_set_baud,
	.set_lines = tty_set_lines,
	.close = tty_close,
};

/* A tty without modem lines (a pty): the same, but says so up front. */
static const espl_port_ops tty_nolines_ops = {
	.kind = "tty",
	.limits = ESPL_PORT_NO_LINES,
	.read = tty_read,
	.write = tty_write,
	.drain = tty_drain,
	.flush_input = tty_flush_input,
	.set_baud = tty_set_baud,
	.set_lines = tty_set_lines,
	.close = tty_close,
};

static int has_modem_lines(int fd)
{
	int bits;
	return ioctl(fd, TIOCMGET, &bits) == 0;
}

int espl__port_tty_open(const char *path, unsigned baud, espl_port **out, espl_error *err)
{
	int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	int rc;
	if (fd < 0)
		return espl__port_open_failed(path, err);
	if (!isatty(fd)) {
		close(fd);
		return espl_fail(err, ESPL_EARG, "%s is not a serial port", path);
	}
	rc = espl__port_fd_lock(fd, path, err);
	if (rc != ESPL_OK) {
		close(fd); /* the lock is someone else's: leave their TIOCEXCL alone */
		return rc;
	}
	rc = espl__port_fd_configure(fd, path, baud, err);
	if (rc == ESPL_OK)
		rc = espl__port_fd_flush_input(fd, path, err);
	tty_port *t = rc == ESPL_OK ? calloc(1, sizeof *t) : NULL;
	if (rc == ESPL_OK && !t)
		rc = espl_fail(err, ESPL_ENOMEM, "%s: out of memory", path);
	if (rc != ESPL_OK) {
		espl__port_fd_unlock(fd);
		close(fd);
		return rc;
	}
	t->base.ops = has_modem_lines(fd) ? &tty_ops : &tty_nolines_ops;
	snprintf(t->base.name, sizeof t->base.name, "%s", path);
	t->base.baud = baud;
	t->fd = fd;
	*out = &t->base;
	return ESPL_OK;
}
