/*
 * sim_server.c - one simulated device: link, timing, reset circuit, faults.
 *
 * Control flow on the device thread: the run loop pops host bytes from the
 * input queue, feeds the SLIP decoder and, when a frame is complete, waits
 * until its last byte would have arrived and calls sim_chip_handle_frame.
 * Whenever the thread waits (wire time, chip delays, output pacing) it keeps
 * serving the link in dev_wait(): host bytes are queued with the time they
 * were read, RFC 2217 commands (baud, DTR/RTS) take effect at once.  If EN
 * falls while the chip is inside a call, the device is "halted": the chip's
 * further output is dropped and its sleeps return at once, and the boot
 * happens after the call returns.
 */
#include "sim_server.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "espline/rfc2217.h"
#include "espline/slip.h"
#include "sim_boot.h"
#include "sim_chip.h"
#include "sim_reset.h"
#include "sim_saver.h"
#include "sim_wire.h"

#define IN_CAP (64 * 1024)          /* host bytes not yet processed by the chip */
#define FRAME_CAP (0x8000)          /* larger than any frame the stub accepts */
#define HOST_RECHECK_US 20000       /* pty: how often to look for a host reopening */
#define WRITE_STALL_US 2000000      /* a host that reads nothing for this long loses bytes */
#define RANDOM_FAULT_LOG_MAX 5      /* log this many random hits per kind, then only count */
#define SELF_RESET_MIN_US 10000    /* real time between self-resets, whatever the time scale */
/* Real time before the chip's UART output changes rate (the ROM's rate,
 * then the firmware's), whatever the time scale: a host reading the boot
 * needs a gap to switch its own rate, as it has on a real chip (250 ms
 * from the ROM's last line to NodeMCU's banner); at --time-scale 0 there
 * would be none. */
#define RATE_SWITCH_MIN_US 150000

enum { OP_FLASH_END = 0x04, OP_FLASH_DEFL_END = 0x12 };

/* SET-CONTROL changes in flight at once; a reset sequence needs 6. */
#define LINE_Q_MAX 16
/* Changes arriving closer than this came in one TCP segment. */
#define LINE_BURST_US 1000

struct sim_device {
	sim_device_config cfg;
	sim_server_options opt;
	sim_chip *chip;
	pthread_t thread;
	int started;
	int stopping;

	/* link */
	pthread_mutex_t desc_lock; /* pty_path and port: read by describe from any thread */
	int fd;                  /* pty master or connected client; -1 = none */
	int listen_fd;           /* rfc2217 only */
	unsigned port;           /* bound TCP port */
	char pty_path[128];
	char link_path[512];
	char flash_path[512];
	int host_present;        /* pty: a program has the slave open */
	uint64_t host_check_at;
	int powered;             /* 0 while unplugged */
	uint64_t replug_at;
	espl_telnet_decoder tdec;
	espl_telnet_options topt;

	/* line and pins */
	unsigned host_baud;      /* what the host's UART runs at */
	unsigned chip_baud;      /* what the chip's UART runs at; 0 = auto-baud (ROM) */
	sim_reset rst;
	int held;                /* EN low: the chip does nothing */
	/* RFC 2217 DTR/RTS changes waiting out --line-latency, oldest first */
	struct { uint64_t at; uint8_t value; } line_q[LINE_Q_MAX];
	unsigned line_q_head, line_q_len;
	uint64_t line_rng;
	uint64_t line_arrived, line_delay; /* the last change's arrival and delay (us) */
	int latched_download;    /* GPIO0 at the last boot */

	/* host -> chip */
	uint8_t *in;
	uint64_t *in_t;          /* when each byte was read (real us) */
	size_t in_head, in_tail;
	unsigned epoch;          /* bumped when the queue is flushed */
	uint64_t rx_free_at;
	espl_slip_decoder slip;
	uint8_t *frame;

	/* chip -> host */
	uint64_t tx_free_at;
	unsigned tx_purges;       /* RFC 2217 PURGE-DATA (receive side) requests so far */
	uint8_t *enc;
	size_t enc_cap;

	sim_fault_engine fe;
	uint64_t noise_rng;
	uint64_t adapter_rng;     /* the adapter's marginal-rate bit flips */
	unsigned long adapter_hits; /* bytes the adapter changed, both ways */

	/* calls into the chip (or a boot in progress) */
	int busy;
	int halted;
	int pending_boot, pending_download, pending_app, pending_unplug;
	unsigned pending_unplug_ms;
	int save_pending;
	sim_saver *saver;        /* writes flash_path in the background (--flash-dir) */

	/* the boot path (sim_boot.h) */
	sim_boot_plan *plan;     /* what the last boot printed */
	uint64_t self_reset_at;  /* the chip resets itself then (real us); 0 = no */
	int self_reset_cause;

	uint64_t start_us;
	uint64_t virtual_us;     /* chip time slept with time_scale 0 */
	_Atomic uint64_t last_activity;
	unsigned long frames, boots;
};

/* --- small helpers ------------------------------------------------------ */

uint64_t sim_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void dev_log(sim_device *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void dev_log(sim_device *d, const char *fmt, ...)
{
	if (!d->opt.log)
		return;
	char line[600];
	int n = snprintf(line, sizeof line, "dev %u: ", d->cfg.index);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	va_end(ap);
	d->opt.log(d->opt.ctx, line);
}

#define VLOG(d, ...) do { if ((d)->opt.verbose) dev_log((d), __VA_ARGS__); } while (0)

unsigned sim_speed_to_baud(unsigned speed)
{
	static const struct { speed_t s; unsigned baud; } map[] = {
		{ B50, 50 }, { B75, 75 }, { B110, 110 }, { B134, 134 }, { B150, 150 },
		{ B200, 200 }, { B300, 300 }, { B600, 600 }, { B1200, 1200 }, { B1800, 1800 },
		{ B2400, 2400 }, { B4800, 4800 }, { B9600, 9600 }, { B19200, 19200 },
		{ B38400, 38400 }, { B57600, 57600 }, { B115200, 115200 }, { B230400, 230400 },
		{ B460800, 460800 }, { B500000, 500000 }, { B576000, 576000 }, { B921600, 921600 },
		{ B1000000, 1000000 }, { B1152000, 1152000 }, { B1500000, 1500000 },
		{ B2000000, 2000000 }, { B2500000, 2500000 }, { B3000000, 3000000 },
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (map[i].s == (speed_t)speed)
			return map[i].baud;
	return 0;
}

static size_t queue_len(const sim_device *d) { return d->in_tail - d->in_head; }

static void queue_flush(sim_device *d)
{
	d->in_head = d->in_tail = 0;
	d->epoch++;
	espl_slip_decoder_reset(&d->slip);
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int stop_requested(sim_device *d)
{
	if (d->stopping)
		return 1;
	struct pollfd p = { .fd = d->opt.stop_fd, .events = POLLIN };
	if (d->opt.stop_fd >= 0 && poll(&p, 1, 0) > 0)
		d->stopping = 1;
	return d->stopping;
}

/* --- flash persistence -------------------------------------------------- */

static void flash_saved(void *ctx, const char *path, int errnum)
{
	sim_device *d = ctx;
	if (errnum)
		dev_log(d, "cannot save flash to %s: %s", path, strerror(errnum));
	else
		VLOG(d, "flash saved to %s", path);
}

/* Hand a copy of the flash to the saver: the device thread never waits for
 * the disk (sim_saver.h says why that matters for the reset timing). */
static void save_flash(sim_device *d)
{
	d->save_pending = 0;
	if (!d->saver)
		return;
	size_t size;
	sim_saver_post(d->saver, sim_chip_flash(d->chip, &size));
}

/* --- the link ----------------------------------------------------------- */

static void update_symlink(sim_device *d)
{
	if (!d->link_path[0])
		return;
	char tmp[600];
	snprintf(tmp, sizeof tmp, "%s.tmp", d->link_path);
	unlink(tmp);
	if (symlink(d->pty_path, tmp) < 0 || rename(tmp, d->link_path) < 0)
		dev_log(d, "cannot link %s -> %s: %s", d->link_path, d->pty_path, strerror(errno));
}

static int open_pty(sim_device *d, char *err, size_t errlen)
{
	char path[sizeof d->pty_path];
	int fd = posix_openpt(O_RDWR | O_NOCTTY);
	if (fd < 0 || grantpt(fd) < 0 || unlockpt(fd) < 0 || ptsname_r(fd, path, sizeof path) != 0) {
		snprintf(err, errlen, "cannot create a pseudo-terminal: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	pthread_mutex_lock(&d->desc_lock);
	memcpy(d->pty_path, path, sizeof path);
	pthread_mutex_unlock(&d->desc_lock);
	/* Raw 8N1 at 115200 on the slave side (tcsetattr on the master sets
	 * the slave's termios): a host that configures nothing must not get
	 * echo or CR/LF translation mixed into a binary protocol. */
	struct termios tio;
	if (tcgetattr(fd, &tio) == 0) {
		cfmakeraw(&tio);
		cfsetispeed(&tio, B115200);
		cfsetospeed(&tio, B115200);
		tcsetattr(fd, TCSANOW, &tio);
	}
	set_nonblock(fd);
	d->fd = fd;
	d->host_baud = 115200;
	/* Nobody has the slave open yet. */
	d->host_present = 0;
	d->host_check_at = 0;
	update_symlink(d);
	return 0;
}

static int open_listener(sim_device *d, char *err, size_t errlen)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)d->port),
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sa;
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		snprintf(err, errlen, "cannot listen on 127.0.0.1:%u: %s", d->port, strerror(errno));
		close(fd);
		return -1;
	}
	pthread_mutex_lock(&d->desc_lock);
	d->port = ntohs(sa.sin_port);
	pthread_mutex_unlock(&d->desc_lock);
	set_nonblock(fd);
	d->listen_fd = fd;
	return 0;
}

static int open_link(sim_device *d, char *err, size_t errlen)
{
	if (d->cfg.link == SIM_LINK_PTY)
		return open_pty(d, err, errlen);
	return open_listener(d, err, errlen);
}

static void close_client(sim_device *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	d->host_present = 0;
}

static void close_link(sim_device *d)
{
	close_client(d);
	if (d->listen_fd >= 0)
		close(d->listen_fd);
	d->listen_fd = -1;
	if (d->link_path[0] && d->cfg.link == SIM_LINK_PTY)
		unlink(d->link_path);
}

/* Write all of buf to the host, or give up after a host that reads nothing
 * for WRITE_STALL_US (a UART without flow control loses the bytes). */
static void link_write(sim_device *d, const uint8_t *buf, size_t n)
{
	uint64_t give_up = sim_mono_us() + WRITE_STALL_US;
	while (n > 0 && d->fd >= 0 && d->host_present) {
		ssize_t w = d->cfg.link == SIM_LINK_PTY ? write(d->fd, buf, n)
		                                        : send(d->fd, buf, n, MSG_NOSIGNAL);
		if (w > 0) {
			buf += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN && sim_mono_us() < give_up) {
			struct pollfd p = { .fd = d->fd, .events = POLLOUT };
			poll(&p, 1, 10);
			continue;
		}
		if (w < 0 && errno == EAGAIN) {
			VLOG(d, "host is not reading: %zu bytes lost", n);
			return;
		}
		/* EIO on a pty: the host closed the slave; a socket error: the
		 * client went away. */
		if (d->cfg.link == SIM_LINK_PTY) {
			d->host_present = 0;
			d->host_check_at = sim_mono_us() + HOST_RECHECK_US;
		} else {
			VLOG(d, "client gone (%s)", strerror(errno));
			close_client(d);
		}
		return;
	}
}

/* Telnet negotiation and RFC 2217 replies: not paced, not faulted. */
static void link_control(sim_device *d, const uint8_t *buf, size_t n)
{
	if (n)
		link_write(d, buf, n);
}

/* --- forward declarations of the state machine -------------------------- */

static void dev_wait(sim_device *d, uint64_t deadline);
static void dev_boot(sim_device *d, int download, int rst_cause);
static void dev_unplug(sim_device *d, unsigned ms);
static void dev_hold(sim_device *d);
static void poll_en_rise(sim_device *d, uint64_t now);

/* --- host -> chip ------------------------------------------------------- */

static void log_fault(sim_device *d, enum sim_dir dir, const sim_byte_verdict *v, uint8_t byte,
                      uint64_t index)
{
	const char *dname = dir == SIM_RX ? "rx" : "tx";
	if (v->fault_index >= 0) {
		const sim_fault *f = &d->fe.faults[v->fault_index];
		dev_log(d, "fault %s %s@%llu fired (byte 0x%02x)", dname, sim_fault_kind_name(f->kind),
		        (unsigned long long)index, byte);
		return;
	}
	enum sim_fault_kind k = v->dropped ? SIM_FAULT_DROP : SIM_FAULT_CORRUPT;
	unsigned long hits = d->fe.injected[dir][k];
	if (hits <= RANDOM_FAULT_LOG_MAX)
		dev_log(d, "fault %s %s~ hit byte %llu (0x%02x)%s", dname, sim_fault_kind_name(k),
		        (unsigned long long)index, byte,
		        hits == RANDOM_FAULT_LOG_MAX ? "; further hits only counted" : "");
}

/* rom_max_baud: the ROM's auto-baud (or the adapter) fails above it, so
 * the ROM hears the host's bytes as noise until the host slows down. */
static int rom_cannot_sync(const sim_device *d)
{
	return d->cfg.rom_max_baud && !d->chip_baud && sim_chip_mode(d->chip) == SIM_MODE_ROM &&
	       d->host_baud > d->cfg.rom_max_baud;
}

/* A byte through the USB-serial adapter at the host's rate (its limits:
 * adapter_max_baud=, marginal=). */
static uint8_t through_adapter(sim_device *d, uint8_t b)
{
	int hit;
	uint8_t out = sim_wire_through_adapter(&d->cfg.adapter, d->host_baud, b, &d->adapter_rng, &hit);
	if (hit && ++d->adapter_hits <= RANDOM_FAULT_LOG_MAX)
		VLOG(d, "adapter at %u baud changed a byte (0x%02x -> 0x%02x)", d->host_baud, b, out);
	return out;
}

/* One byte from the host, as read at time now. */
static void rx_byte(sim_device *d, uint8_t b, uint64_t now)
{
	sim_byte_verdict v;
	uint64_t index = d->fe.count[SIM_RX];
	sim_fault_byte(&d->fe, SIM_RX, b, &v);
	if (v.fault_index >= 0 || v.dropped || v.corrupted)
		log_fault(d, SIM_RX, &v, b, index);
	if (v.stall_ms) {
		uint64_t until = now + (uint64_t)v.stall_ms * 1000u;
		if (until > d->rx_free_at)
			d->rx_free_at = until;
	}
	if (v.unplug) {
		dev_unplug(d, v.unplug_ms);
		return;
	}
	if (v.reset) {
		dev_hold(d);
		sim_reset_pulse(&d->rst, now);
		return;
	}
	if (!v.pass || !d->powered || d->held)
		return;
	if (sim_chip_mode(d->chip) == SIM_MODE_APP || sim_chip_mode(d->chip) == SIM_MODE_OFF)
		return; /* the application ignores SLIP */
	b = v.byte;
	if (!sim_wire_compatible(d->host_baud, d->chip_baud) || rom_cannot_sync(d))
		b = sim_wire_noise(&d->noise_rng);
	b = through_adapter(d, b);
	if (queue_len(d) >= IN_CAP)
		return; /* overrun: cannot happen, reads are limited to the free space */
	if (d->in_tail == IN_CAP) {
		memmove(d->in, d->in + d->in_head, queue_len(d));
		memmove(d->in_t, d->in_t + d->in_head, queue_len(d) * sizeof *d->in_t);
		d->in_tail -= d->in_head;
		d->in_head = 0;
	}
	d->in[d->in_tail] = b;
	d->in_t[d->in_tail++] = now;
}

static void set_host_baud(sim_device *d, unsigned baud)
{
	if (!baud || baud == d->host_baud)
		return;
	VLOG(d, "host baud %u -> %u", d->host_baud, baud);
	d->host_baud = baud;
	sim_chip_set_host_baud(d->chip, baud);
}

/* A pty carries the host's baud rate in the slave's termios (read with
 * TCGETS2 so that BOTHER rates decode; cfgetospeed only as a fallback). */
static void refresh_pty_baud(sim_device *d)
{
	if (d->cfg.link != SIM_LINK_PTY || d->fd < 0)
		return;
	unsigned baud = sim_pty_host_baud(d->fd);
	struct termios tio;
	if (!baud && tcgetattr(d->fd, &tio) == 0)
		baud = sim_speed_to_baud((unsigned)cfgetospeed(&tio));
	set_host_baud(d, baud);
}

/* The lines change at time `at` (real us; a queued change may be applied
 * late, but counts from when it was due). */
static void set_lines_at(sim_device *d, int dtr, int rts, uint64_t at)
{
	if (dtr == d->rst.dtr && rts == d->rst.rts)
		return;
	VLOG(d, "DTR=%d RTS=%d", dtr, rts);
	if (sim_reset_set_lines(&d->rst, dtr, rts, at) == SIM_RESET_HOLD)
		dev_hold(d);
}

static void set_lines(sim_device *d, int dtr, int rts)
{
	set_lines_at(d, dtr, rts, sim_mono_us());
}

static uint8_t control_state(sim_device *d, uint8_t request)
{
	switch (request) {
	case ESPL_RFC2217_DTR_REQUEST: return d->rst.dtr ? ESPL_RFC2217_DTR_ON : ESPL_RFC2217_DTR_OFF;
	case ESPL_RFC2217_RTS_REQUEST: return d->rst.rts ? ESPL_RFC2217_RTS_ON : ESPL_RFC2217_RTS_OFF;
	case ESPL_RFC2217_BREAK_REQUEST: return ESPL_RFC2217_BREAK_OFF;
	case ESPL_RFC2217_INFLOW_REQUEST: return ESPL_RFC2217_INFLOW_NONE;
	default: return ESPL_RFC2217_FLOW_NONE;
	}
}

/* One DTR/RTS SET-CONTROL: acknowledged when it takes effect, as a server
 * that answers after setting the line does. */
static void apply_line_change(sim_device *d, uint8_t v, uint64_t at)
{
	uint8_t out[ESPL_RFC2217_BUILD_MAX(1)];
	int dtr = d->rst.dtr, rts = d->rst.rts;
	if (v == ESPL_RFC2217_DTR_ON || v == ESPL_RFC2217_DTR_OFF)
		dtr = v == ESPL_RFC2217_DTR_ON;
	else
		rts = v == ESPL_RFC2217_RTS_ON;
	link_control(d, out, espl_rfc2217_build_byte(ESPL_RFC2217_SERVER(ESPL_RFC2217_SET_CONTROL), v, out));
	set_lines_at(d, dtr, rts, at);
}

/* --line-latency: a serial server on a slow network.  Each change takes
 * effect latency + 0..jitter ms after it arrived, never before the change
 * sent ahead of it (one TCP stream keeps order).  Changes that arrive
 * together (within LINE_BURST_US: one TCP segment) share one delay, as the
 * server then sets the lines back to back.  So changes sent apart (a client
 * that waits for each acknowledgement, like pyserial's) reach the pins
 * apart, and changes sent in one write reach them together. */
static void queue_line_change(sim_device *d, uint8_t v)
{
	if (d->line_q_len == LINE_Q_MAX) {
		/* A client flooding changes: the oldest takes effect now. */
		apply_line_change(d, d->line_q[d->line_q_head].value, sim_mono_us());
		d->line_q_head = (d->line_q_head + 1) % LINE_Q_MAX;
		d->line_q_len--;
	}
	uint64_t now = sim_mono_us();
	if (!d->line_arrived || now - d->line_arrived > LINE_BURST_US) {
		uint64_t jitter = d->opt.line_jitter_ms ? sim_rng_next(&d->line_rng) % (d->opt.line_jitter_ms * 1000ull + 1) : 0;
		d->line_delay = d->opt.line_latency_ms * 1000ull + jitter;
	}
	d->line_arrived = now;
	uint64_t at = now + d->line_delay;
	if (d->line_q_len) {
		uint64_t prev = d->line_q[(d->line_q_head + d->line_q_len - 1) % LINE_Q_MAX].at;
		if (at < prev)
			at = prev;
	}
	unsigned tail = (d->line_q_head + d->line_q_len) % LINE_Q_MAX;
	d->line_q[tail].at = at;
	d->line_q[tail].value = v;
	d->line_q_len++;
}

/* Due changes in the order of their times, each after the EN rise that came
 * before it: a device thread that wakes late (a loaded machine) must not let
 * a later change overtake the boot it should have followed. */
static void apply_due_line_changes(sim_device *d, uint64_t now)
{
	while (d->line_q_len && d->line_q[d->line_q_head].at <= now) {
		uint8_t v = d->line_q[d->line_q_head].value;
		uint64_t at = d->line_q[d->line_q_head].at;
		d->line_q_head = (d->line_q_head + 1) % LINE_Q_MAX;
		d->line_q_len--;
		poll_en_rise(d, at);
		apply_line_change(d, v, at);
	}
}

static uint64_t next_line_change(const sim_device *d)
{
	return d->line_q_len ? d->line_q[d->line_q_head].at : 0;
}

static void handle_com_port(sim_device *d, const espl_telnet_event *ev)
{
	uint8_t out[ESPL_RFC2217_BUILD_MAX(ESPL_TELNET_SB_MAX)];
	switch (ev->cpo_base) {
	case ESPL_RFC2217_SET_BAUDRATE:
		set_host_baud(d, ev->cpo_value);
		link_control(d, out, espl_rfc2217_build_baud(ESPL_RFC2217_SERVER(ESPL_RFC2217_SET_BAUDRATE),
		                                             d->host_baud, out));
		return;
	case ESPL_RFC2217_SET_CONTROL: {
		uint8_t v = (uint8_t)ev->cpo_value;
		switch (v) {
		case ESPL_RFC2217_DTR_ON: case ESPL_RFC2217_DTR_OFF:
		case ESPL_RFC2217_RTS_ON: case ESPL_RFC2217_RTS_OFF:
			if (d->opt.line_latency_ms || d->opt.line_jitter_ms)
				queue_line_change(d, v);
			else
				apply_line_change(d, v, sim_mono_us());
			return;
		case ESPL_RFC2217_FLOW_REQUEST: case ESPL_RFC2217_BREAK_REQUEST:
		case ESPL_RFC2217_DTR_REQUEST: case ESPL_RFC2217_RTS_REQUEST:
		case ESPL_RFC2217_INFLOW_REQUEST:
			link_control(d, out, espl_rfc2217_build_byte(ESPL_RFC2217_SERVER(ESPL_RFC2217_SET_CONTROL),
			                                             control_state(d, v), out));
			return;
		default:
			link_control(d, out, espl_rfc2217_build_reply(ev, out));
			return;
		}
	}
	case ESPL_RFC2217_PURGE_DATA:
		/* The client empties the server's receive buffer: chip bytes
		 * queued for it but not yet on the wire are dropped (dev_tx
		 * notices the count change), as a real server's buffer is. */
		if (ev->cpo_value == ESPL_RFC2217_PURGE_RX || ev->cpo_value == ESPL_RFC2217_PURGE_BOTH) {
			d->tx_purges++;
			d->tx_free_at = sim_mono_us();
			VLOG(d, "purge: dropping chip output not yet sent");
		}
		link_control(d, out, espl_rfc2217_build_reply(ev, out));
		return;
	case ESPL_RFC2217_SIGNATURE: {
		static const char sig[] = "espline-sim";
		link_control(d, out, espl_rfc2217_build(ESPL_RFC2217_SERVER(ESPL_RFC2217_SIGNATURE),
		                                        (const uint8_t *)sig, sizeof sig - 1, out));
		return;
	}
	default:
		/* Data size, parity, stop bits, masks, purge, flow control:
		 * accepted as asked (the simulated UART is always 8N1). */
		link_control(d, out, espl_rfc2217_build_reply(ev, out));
		return;
	}
}

static void handle_telnet_event(sim_device *d, const espl_telnet_event *ev)
{
	uint8_t out[3];
	if (ev->kind == ESPL_TELNET_EV_NEGOTIATION) {
		int accept = ev->option == ESPL_TELNET_OPT_BINARY || ev->option == ESPL_TELNET_OPT_SGA ||
		             ev->option == ESPL_TELNET_OPT_COM_PORT;
		link_control(d, out, espl_telnet_answer(&d->topt, ev, accept, out));
	} else if (ev->kind == ESPL_TELNET_EV_SUBNEG && ev->cpo && !ev->cpo_from_server) {
		handle_com_port(d, ev);
	}
}

static void accept_client(sim_device *d)
{
	int fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	if (d->fd >= 0 || !d->powered) {
		close(fd);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	d->fd = fd;
	d->host_present = 1;
	atomic_store(&d->last_activity, sim_mono_us());
	espl_telnet_decoder_init(&d->tdec);
	espl_telnet_options_init(&d->topt);
	uint8_t out[16];
	size_t n = 0;
	n += espl_telnet_request(&d->topt, ESPL_TELNET_WILL, ESPL_TELNET_OPT_BINARY, out + n);
	n += espl_telnet_request(&d->topt, ESPL_TELNET_DO, ESPL_TELNET_OPT_BINARY, out + n);
	n += espl_telnet_request(&d->topt, ESPL_TELNET_WILL, ESPL_TELNET_OPT_SGA, out + n);
	n += espl_telnet_request(&d->topt, ESPL_TELNET_DO, ESPL_TELNET_OPT_SGA, out + n);
	n += espl_telnet_request(&d->topt, ESPL_TELNET_DO, ESPL_TELNET_OPT_COM_PORT, out + n);
	link_control(d, out, n);
	VLOG(d, "client connected");
}

static void client_gone(sim_device *d)
{
	VLOG(d, "client disconnected");
	close_client(d);
	d->line_q_len = 0; /* changes still in flight die with the connection */
	/* Closing a USB-UART drops DTR and RTS (HUPCL). */
	set_lines(d, 0, 0);
}

static void read_link(sim_device *d)
{
	uint8_t buf[4096];
	size_t room = IN_CAP - queue_len(d);
	if (room == 0)
		return;
	if (room > sizeof buf)
		room = sizeof buf;
	ssize_t n = read(d->fd, buf, room);
	uint64_t now = sim_mono_us();
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (d->cfg.link == SIM_LINK_PTY) {
		if (n <= 0) {
			/* EIO: every program closed the slave. */
			d->host_present = 0;
			d->host_check_at = now + HOST_RECHECK_US;
			return;
		}
		refresh_pty_baud(d);
		atomic_store(&d->last_activity, now);
		for (ssize_t i = 0; i < n && d->fd >= 0; i++)
			rx_byte(d, buf[i], now);
		return;
	}
	if (n <= 0) {
		client_gone(d);
		return;
	}
	atomic_store(&d->last_activity, now);
	size_t off = 0;
	while (off < (size_t)n && d->fd >= 0) {
		uint8_t data[sizeof buf];
		size_t dlen;
		espl_telnet_event ev;
		off += espl_telnet_feed(&d->tdec, buf + off, (size_t)n - off, data, &dlen, &ev);
		for (size_t i = 0; i < dlen && d->fd >= 0; i++)
			rx_byte(d, data[i], now);
		if (d->fd >= 0)
			handle_telnet_event(d, &ev);
	}
}

/* --- power, reset and boot ---------------------------------------------- */

/* EN went low: the chip stops where it is. */
static void dev_hold(sim_device *d)
{
	VLOG(d, "EN low: chip held in reset");
	d->held = 1;
	d->self_reset_at = 0;
	if (d->busy)
		d->halted = 1;
	queue_flush(d);
	d->save_pending = 1;
}

static void emit_boot_log(sim_device *d, int download, int rst_cause);

static void dev_boot(sim_device *d, int download, int rst_cause)
{
	d->held = 0;
	d->halted = 0; /* a reset that cut the previous boot short halted it (no chip call runs now) */
	d->self_reset_at = 0;
	d->latched_download = download;
	d->boots++;
	queue_flush(d);
	d->chip_baud = 0;
	sim_chip_boot(d->chip, download);
	VLOG(d, "boot (%s), rst cause %d", download ? "download mode" : "from flash", rst_cause);
	d->busy++;
	emit_boot_log(d, download, rst_cause);
	d->busy--;
	/* Whatever arrived while the ROM was printing was not for it. */
	queue_flush(d);
}

/* Pull the cable: power off, link gone for ms milliseconds. */
static void dev_unplug(sim_device *d, unsigned ms)
{
	dev_log(d, "unplugged for %u ms", ms);
	d->powered = 0;
	d->held = 1;
	d->self_reset_at = 0;
	if (d->busy)
		d->halted = 1;
	queue_flush(d);
	close_link(d);
	d->replug_at = sim_mono_us() + (uint64_t)ms * 1000u;
	d->save_pending = 1;
}

static void power_on(sim_device *d)
{
	sim_reset_init(&d->rst, (uint64_t)d->opt.en_delay_ms * 1000u);
	d->powered = 1;
	dev_boot(d, d->cfg.boot == SIM_BOOT_DOWNLOAD, SIM_RST_POWER_ON);
}

static void dev_plug_in(sim_device *d)
{
	char err[256];
	d->replug_at = 0;
	if (open_link(d, err, sizeof err) < 0) {
		dev_log(d, "cannot come back after unplug: %s; retrying in 1 s", err);
		d->replug_at = sim_mono_us() + 1000000u;
		return;
	}
	char line[512];
	sim_device_describe(d, line, sizeof line);
	dev_log(d, "plugged in again: %s", line);
	if (d->opt.announce)
		d->opt.announce(d->opt.ctx, d->cfg.index, line);
	power_on(d);
}

/* Timers: EN rising, re-plug, a pty host coming back. */
static void poll_en_rise(sim_device *d, uint64_t now)
{
	int download;
	/* A pty has no lines: its GPIO0 is strapped by --boot; on RFC 2217,
	 * boot=download means a jig holding GPIO0 low. */
	if (!d->busy && d->powered && sim_reset_poll(&d->rst, now, &download) == SIM_RESET_BOOT)
		dev_boot(d, download || d->cfg.boot == SIM_BOOT_DOWNLOAD, SIM_RST_EXTERNAL);
}

static void dev_timers(sim_device *d, uint64_t now)
{
	apply_due_line_changes(d, now);
	poll_en_rise(d, now);
	if (!d->busy) {
		int download;
		if (d->powered && !d->held && d->self_reset_at && now >= d->self_reset_at) {
			/* watchdog, restart or brown-out: the straps are sampled again */
			d->self_reset_at = 0;
			download = sim_reset_gpio0_pulled_low(d->rst.dtr, d->rst.rts);
			dev_boot(d, download || d->cfg.boot == SIM_BOOT_DOWNLOAD, d->self_reset_cause);
		}
		if (!d->powered && d->replug_at && now >= d->replug_at)
			dev_plug_in(d);
		if (d->save_pending)
			save_flash(d);
	}
	if (d->cfg.link == SIM_LINK_PTY && d->fd >= 0 && !d->host_present && now >= d->host_check_at) {
		struct pollfd p = { .fd = d->fd, .events = POLLIN };
		if (poll(&p, 1, 0) >= 0 && !(p.revents & POLLHUP)) {
			d->host_present = 1;
			VLOG(d, "host opened the pty");
		} else {
			d->host_check_at = now + HOST_RECHECK_US;
		}
	}
}

static uint64_t min_deadline(uint64_t a, uint64_t b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	return a < b ? a : b;
}

/* Serve the link until `deadline` (real us) passes, or, with until_input,
 * until the input queue holds something.  deadline 0 = no time limit. */
static void dev_serve(sim_device *d, uint64_t deadline, int until_input)
{
	for (;;) {
		uint64_t now = sim_mono_us();
		dev_timers(d, now);
		if (stop_requested(d))
			return;
		if (until_input && queue_len(d) > 0)
			return;
		if (deadline && now >= deadline)
			return;
		uint64_t wake = deadline;
		if (!d->busy) {
			wake = min_deadline(wake, sim_reset_deadline(&d->rst));
			wake = min_deadline(wake, d->self_reset_at);
			wake = min_deadline(wake, d->powered ? 0 : d->replug_at);
		}
		if (d->cfg.link == SIM_LINK_PTY && d->fd >= 0 && !d->host_present)
			wake = min_deadline(wake, d->host_check_at);
		wake = min_deadline(wake, next_line_change(d));
		int timeout = -1;
		if (wake) {
			uint64_t us = wake > now ? wake - now : 0;
			timeout = (int)((us + 999) / 1000);
			if (timeout > 1000)
				timeout = 1000;
		}
		struct pollfd p[3];
		int np = 0, i_link = -1, i_listen = -1;
		p[np++] = (struct pollfd){ .fd = d->opt.stop_fd, .events = POLLIN };
		/* One client at a time, as a serial port: later ones wait in
		 * the backlog until the current one leaves (like pyserial's
		 * RFC 2217 server), so a quick reconnect is never refused. */
		if (d->listen_fd >= 0 && d->fd < 0) {
			i_listen = np;
			p[np++] = (struct pollfd){ .fd = d->listen_fd, .events = POLLIN };
		}
		if (d->fd >= 0 && (d->cfg.link != SIM_LINK_PTY || d->host_present) && queue_len(d) < IN_CAP) {
			i_link = np;
			p[np++] = (struct pollfd){ .fd = d->fd, .events = POLLIN };
		}
		int r = poll(p, (nfds_t)np, timeout);
		if (r <= 0)
			continue;
		if (p[0].revents)
			d->stopping = 1;
		if (i_link >= 0 && p[i_link].revents && d->fd >= 0)
			read_link(d);
		if (i_listen >= 0 && (p[i_listen].revents & POLLIN))
			accept_client(d);
	}
}

static void dev_wait(sim_device *d, uint64_t deadline)
{
	if (deadline > sim_mono_us())
		dev_serve(d, deadline, 0);
	else
		dev_timers(d, sim_mono_us());
}

/* --- chip -> host ------------------------------------------------------- */

static int tx_stopped(sim_device *d)
{
	return d->halted || d->held || !d->powered || d->stopping;
}

/* Put bytes on the line, paced at line_baud: each chunk is written when
 * its last byte would have been received. */
static void tx_flush(sim_device *d, const uint8_t *chunk, size_t n, unsigned line_baud)
{
	if (n == 0)
		return;
	unsigned purges = d->tx_purges;
	uint64_t now = sim_mono_us();
	uint64_t start = d->tx_free_at > now ? d->tx_free_at : now;
	d->tx_free_at = start + sim_wire_us(n, line_baud, d->opt.time_scale);
	dev_wait(d, d->tx_free_at);
	if (tx_stopped(d) || d->tx_purges != purges)
		return; /* purged while it waited for the line */
	if (d->cfg.link == SIM_LINK_RFC2217) {
		uint8_t esc[2 * 256];
		link_write(d, esc, espl_telnet_escape(chunk, n, esc)); /* 0xFF -> FF FF */
		return;
	}
	link_write(d, chunk, n);
}

/* Send bytes the chip transmits at line_baud; a host at a different rate
 * gets noise, garble_len bytes of it per byte sent. */
static void dev_tx(sim_device *d, const uint8_t *bytes, size_t n, unsigned line_baud)
{
	uint8_t chunk[256];
	size_t m = 0;
	double scale = d->opt.time_scale;
	/* About a millisecond of line time per write, so that big frames
	 * trickle out as they would from a UART. */
	size_t chunk_max = scale > 0.0 ? line_baud / SIM_WIRE_BITS_PER_BYTE / 1000 : sizeof chunk;
	if (chunk_max < 1)
		chunk_max = 1;
	if (chunk_max > sizeof chunk)
		chunk_max = sizeof chunk;
	refresh_pty_baud(d); /* the host may have changed speed and only listens */
	int garble = !sim_wire_compatible(line_baud, d->host_baud);
	unsigned purges = d->tx_purges;
	for (size_t i = 0; i < n && !tx_stopped(d) && d->tx_purges == purges; i++) {
		sim_byte_verdict v;
		uint64_t index = d->fe.count[SIM_TX];
		sim_fault_byte(&d->fe, SIM_TX, bytes[i], &v);
		if (v.fault_index >= 0 || v.dropped || v.corrupted)
			log_fault(d, SIM_TX, &v, bytes[i], index);
		if (v.stall_ms) {
			tx_flush(d, chunk, m, line_baud);
			m = 0;
			dev_wait(d, sim_mono_us() + (uint64_t)v.stall_ms * 1000u);
		}
		if (v.unplug) {
			tx_flush(d, chunk, m, line_baud);
			dev_unplug(d, v.unplug_ms);
			return;
		}
		if (v.reset) {
			tx_flush(d, chunk, m, line_baud);
			dev_hold(d);
			sim_reset_pulse(&d->rst, sim_mono_us());
			return;
		}
		if (!v.pass)
			continue;
		size_t copies = garble ? sim_wire_garbled_len(1, line_baud, d->host_baud) : 1;
		for (size_t c = 0; c < copies; c++) {
			chunk[m++] = through_adapter(d, garble ? sim_wire_noise(&d->noise_rng) : v.byte);
			if (m >= chunk_max) {
				tx_flush(d, chunk, m, line_baud);
				m = 0;
			}
		}
	}
	if (!tx_stopped(d) && d->tx_purges == purges)
		tx_flush(d, chunk, m, line_baud);
}

/* The flash as the boot path reads it: the chip's bytes, and the part's
 * address wrap when its JEDEC id claims more than the die. */
static void flash_view(sim_device *d, sim_flash *view)
{
	size_t size;
	view->data = sim_chip_flash(d->chip, &size);
	view->size = size;
	view->stuck_sector = -1;
	view->wrap = sim_flash_claims_more(d->cfg.chip.jedec_id, size);
}

static uint64_t scaled_us(const sim_device *d, uint64_t us)
{
	return (uint64_t)((double)us * d->opt.time_scale);
}

/* Wait like dev_wait, but stop as soon as EN falls or the device goes
 * away: a reset cuts a boot's quiet time short as it cuts its output. */
static void boot_wait(sim_device *d, uint64_t deadline)
{
	const uint64_t slice = 5000;
	while (!tx_stopped(d)) {
		uint64_t now = sim_mono_us();
		if (now >= deadline) {
			dev_wait(d, now); /* timers and input even without a quiet time */
			return;
		}
		dev_wait(d, deadline - now > slice ? now + slice : deadline);
	}
}

/* Play what the chip prints after EN rose (rst_cause SIM_RST_NONE: the
 * loader jumped into the flash boot): each text at its own rate after its
 * quiet time, then the self-reset the boot ends with, if any. */
static void emit_boot_log(sim_device *d, int download, int rst_cause)
{
	sim_boot_plan *plan = d->plan;
	sim_flash view;
	flash_view(d, &view);
	sim_boot_run(&d->cfg.boot_model, &view, rst_cause, download, plan);
	if (!download)
		VLOG(d, "boot: %s%s%s", plan->outcome, plan->banner[0] ? ": " : "", plan->banner);
	for (size_t i = 0; i < plan->nsteps && !tx_stopped(d); i++) {
		const sim_boot_step *st = &plan->step[i];
		uint64_t wait = scaled_us(d, st->delay_us);
		if (i > 0 && st->baud != plan->step[i - 1].baud && wait < RATE_SWITCH_MIN_US)
			wait = RATE_SWITCH_MIN_US;
		boot_wait(d, sim_mono_us() + wait);
		if (tx_stopped(d))
			return;
		/* the UART runs at st->baud however the host is set */
		dev_tx(d, (const uint8_t *)plan->text + st->off, st->len, st->baud);
	}
	if (plan->end == SIM_BOOT_END_RESET && !tx_stopped(d)) {
		uint64_t wait = scaled_us(d, plan->reset_after_us);
		d->self_reset_at = sim_mono_us() + (wait > SELF_RESET_MIN_US ? wait : SELF_RESET_MIN_US);
		d->self_reset_cause = plan->reset_cause;
	}
}

/* --- the chip's callbacks ----------------------------------------------- */

static void io_emit(void *ctx, const uint8_t *frame, size_t len)
{
	sim_device *d = ctx;
	if (tx_stopped(d))
		return;
	size_t need = ESPL_SLIP_ENCODED_MAX(len);
	if (need > d->enc_cap) {
		uint8_t *p = realloc(d->enc, need);
		if (!p)
			return;
		d->enc = p;
		d->enc_cap = need;
	}
	size_t n = espl_slip_encode(frame, len, d->enc);
	dev_tx(d, d->enc, n, d->chip_baud ? d->chip_baud : d->host_baud);
}

static void io_sleep_us(void *ctx, uint64_t us)
{
	sim_device *d = ctx;
	if (tx_stopped(d))
		return;
	d->virtual_us += us;
	uint64_t real = (uint64_t)((double)us * d->opt.time_scale);
	dev_wait(d, sim_mono_us() + real);
}

static uint64_t io_now_us(void *ctx)
{
	sim_device *d = ctx;
	uint64_t elapsed = sim_mono_us() - d->start_us;
	if (d->opt.time_scale > 0.0)
		return (uint64_t)((double)elapsed / d->opt.time_scale);
	return elapsed + d->virtual_us;
}

static void io_set_baud(void *ctx, unsigned baud)
{
	sim_device *d = ctx;
	VLOG(d, "chip baud %u -> %u", d->chip_baud ? d->chip_baud : d->host_baud, baud);
	d->chip_baud = baud;
}

static void io_reboot(void *ctx, int to_app)
{
	sim_device *d = ctx;
	VLOG(d, "chip leaves the loader (%s)", to_app ? "runs the application" : "reboots");
	d->pending_boot = 1;
	d->pending_app = to_app;
	d->pending_download = d->latched_download;
	d->halted = 1;
}

static void io_fault(void *ctx, const char *what)
{
	sim_device *d = ctx;
	dev_log(d, "chip-side fault fired: %s", what);
	if (!strcmp(what, "unplug")) {
		d->pending_unplug = 1;
		d->pending_unplug_ms = 1000;
		for (size_t i = 0; i < d->cfg.nfaults; i++)
			if (d->cfg.faults[i].kind == SIM_FAULT_FLASH_UNPLUG)
				d->pending_unplug_ms = d->cfg.faults[i].ms;
		d->halted = 1;
	} else {
		dev_hold(d);
		sim_reset_pulse(&d->rst, sim_mono_us());
	}
}

/* --- the run loop ------------------------------------------------------- */

static void after_chip_call(sim_device *d)
{
	d->halted = 0;
	if (d->pending_unplug) {
		d->pending_unplug = d->pending_boot = 0;
		if (d->powered)
			dev_unplug(d, d->pending_unplug_ms);
		return;
	}
	if (d->pending_boot) {
		d->pending_boot = 0;
		if (!d->powered || d->held)
			return;
		if (d->pending_app) {
			/* RUN_USER_CODE / FLASH_END(1) from the ROM: it jumps into
			 * its flash boot, no reset, so no ROM banner. */
			sim_chip_boot(d->chip, 0);
			d->chip_baud = 0;
			queue_flush(d);
			d->busy++;
			emit_boot_log(d, 0, SIM_RST_NONE);
			d->busy--;
		} else {
			dev_boot(d, d->pending_download, SIM_RST_EXTERNAL);
		}
	}
}

static void io_log(void *ctx, const char *line)
{
	dev_log(ctx, "%s", line);
}

static void deliver_frame(sim_device *d, const uint8_t *frame, size_t len)
{
	enum sim_chip_mode before = sim_chip_mode(d->chip);
	uint8_t op = len >= 2 ? frame[1] : 0;
	d->frames++;
	if (d->opt.frame_hook)
		d->opt.frame_hook(d->opt.ctx, d->cfg.index, frame, len);
	d->busy++;
	sim_chip_handle_frame(d->chip, frame, len);
	d->busy--;
	enum sim_chip_mode after = sim_chip_mode(d->chip);
	if (before == SIM_MODE_ROM && after == SIM_MODE_STUB && !d->chip_baud) {
		/* The stub inherits the divider the ROM auto-bauded to. */
		d->chip_baud = d->host_baud;
		VLOG(d, "stub running at %u baud", d->chip_baud);
	}
	if (frame[0] == 0x00 && (op == OP_FLASH_END || op == OP_FLASH_DEFL_END))
		d->save_pending = 1;
	after_chip_call(d);
	if (d->save_pending)
		save_flash(d);
}

static void run(sim_device *d)
{
	while (!d->stopping) {
		if (queue_len(d) == 0) {
			d->in_head = d->in_tail = 0;
			dev_serve(d, 0, 1);
			continue;
		}
		uint8_t b = d->in[d->in_head];
		uint64_t t = d->in_t[d->in_head++];
		d->rx_free_at = sim_wire_arrival(d->rx_free_at, t, d->host_baud, d->opt.time_scale);
		if (espl_slip_feed(&d->slip, b) != ESPL_SLIP_FRAME)
			continue;
		if (stop_requested(d))
			break;
		unsigned epoch = d->epoch;
		dev_wait(d, d->rx_free_at);
		if (epoch != d->epoch || d->held || !d->powered)
			continue; /* reset or unplugged while the frame was arriving */
		deliver_frame(d, d->slip.frame, d->slip.len);
	}
}

static void *thread_main(void *arg)
{
	sim_device *d = arg;
	d->start_us = sim_mono_us();
	power_on(d);
	run(d);
	return NULL;
}

/* --- public ------------------------------------------------------------- */

int sim_device_open(const sim_device_config *cfg, const sim_server_options *opt, sim_device **out,
                    char *err, size_t errlen)
{
	sim_device *d = calloc(1, sizeof *d);
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	d->cfg = *cfg;
	d->opt = *opt;
	pthread_mutex_init(&d->desc_lock, NULL);
	d->fd = d->listen_fd = -1;
	d->port = cfg->port;
	d->host_baud = 115200;
	d->in = malloc(IN_CAP);
	d->in_t = malloc(IN_CAP * sizeof *d->in_t);
	d->frame = malloc(FRAME_CAP);
	d->plan = malloc(sizeof *d->plan);
	if (!d->in || !d->in_t || !d->frame || !d->plan) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	espl_slip_decoder_init(&d->slip, d->frame, FRAME_CAP);
	uint64_t seed = opt->seed + cfg->index;
	sim_fault_engine_init(&d->fe, cfg->faults, cfg->nfaults, seed);
	d->noise_rng = seed ^ 0x5DEECE66Dull;
	d->line_rng = seed ^ 0x9E3779B97F4A7C15ull;
	d->adapter_rng = seed ^ 0xA5A5A5A5DEADBEEFull;
	sim_reset_init(&d->rst, (uint64_t)opt->en_delay_ms * 1000u);
	atomic_store(&d->last_activity, sim_mono_us());

	sim_chip_io io = {
		.ctx = d, .emit = io_emit, .sleep_us = io_sleep_us, .now_us = io_now_us,
		.set_baud = io_set_baud, .reboot = io_reboot, .fault = io_fault, .log = io_log,
	};
	d->chip = sim_chip_new(&cfg->chip, &io);
	if (!d->chip) {
		snprintf(err, errlen, "device %u: cannot create the chip (out of memory?)", cfg->index);
		goto fail;
	}
	sim_chip_set_host_baud(d->chip, d->host_baud);
	if (opt->flash_dir) {
		snprintf(d->flash_path, sizeof d->flash_path, "%s/dev%u.bin", opt->flash_dir, cfg->index);
		int rc = sim_chip_load_flash(d->chip, d->flash_path);
		if (rc < 0 && rc != -ENOENT) {
			snprintf(err, errlen, "device %u: cannot load %s: %s", cfg->index, d->flash_path,
			         strerror(-rc));
			goto fail;
		}
		size_t size;
		const uint8_t *flash = sim_chip_flash(d->chip, &size);
		rc = sim_saver_new(d->flash_path, flash, size, flash_saved, d, &d->saver);
		if (rc < 0) {
			snprintf(err, errlen, "device %u: cannot start saving %s: %s", cfg->index,
			         d->flash_path, strerror(-rc));
			goto fail;
		}
	}
	if (opt->link_dir && cfg->link == SIM_LINK_PTY)
		snprintf(d->link_path, sizeof d->link_path, "%s/dev%u", opt->link_dir, cfg->index);
	if (open_link(d, err, errlen) < 0)
		goto fail;
	*out = d;
	return 0;
fail:
	sim_saver_close(d->saver);
	sim_chip_free(d->chip);
	free(d->in);
	free(d->in_t);
	free(d->frame);
	free(d->plan);
	pthread_mutex_destroy(&d->desc_lock);
	free(d);
	return -1;
}

void sim_device_describe(sim_device *d, char *out, size_t len)
{
	const sim_chip_config *c = &d->cfg.chip;
	char size[16], port[160], link[560] = "";
	sim_format_flash_size(c->flash_size, size, sizeof size);
	pthread_mutex_lock(&d->desc_lock);
	if (d->cfg.link == SIM_LINK_PTY)
		snprintf(port, sizeof port, "%s", d->pty_path);
	else
		snprintf(port, sizeof port, "rfc2217://127.0.0.1:%u", d->port);
	pthread_mutex_unlock(&d->desc_lock);
	if (d->link_path[0])
		snprintf(link, sizeof link, " link=%s", d->link_path);
	snprintf(out, len,
	         "device %u %s mac=%02x:%02x:%02x:%02x:%02x:%02x chip_id=0x%06x flash=%s jedec=0x%06x "
	         "xtal=%u boot=%s%s",
	         d->cfg.index, port, c->mac[0], c->mac[1], c->mac[2], c->mac[3], c->mac[4], c->mac[5],
	         sim_chip_id(c->mac), size, c->jedec_id, c->xtal_mhz,
	         d->cfg.boot == SIM_BOOT_DOWNLOAD ? "download" : "app", link);
}

int sim_device_start(sim_device *d)
{
	if (pthread_create(&d->thread, NULL, thread_main, d) != 0)
		return -1;
	d->started = 1;
	return 0;
}

uint64_t sim_device_last_activity(const sim_device *d)
{
	return atomic_load(&((sim_device *)d)->last_activity);
}

void sim_device_close(sim_device *d)
{
	if (!d)
		return;
	if (d->started)
		pthread_join(d->thread, NULL);
	save_flash(d);
	sim_saver_close(d->saver); /* the last snapshot is on disk after this */
	d->saver = NULL;
	char summary[400];
	int n = snprintf(summary, sizeof summary, "faults:");
	unsigned long total = 0;
	for (int dir = 0; dir < 2; dir++)
		for (int k = 0; k <= SIM_FAULT_RESET; k++) {
			unsigned long c = d->fe.injected[dir][k];
			total += c;
			if (c && n < (int)sizeof summary)
				n += snprintf(summary + n, sizeof summary - (size_t)n, " %s.%s=%lu",
				              dir == SIM_RX ? "rx" : "tx", sim_fault_kind_name(k), c);
		}
	if (!total)
		snprintf(summary + n, sizeof summary - (size_t)n, " none");
	dev_log(d, "%s; %lu frames, %lu boots, %llu bytes in, %llu bytes out", summary, d->frames,
	        d->boots, (unsigned long long)d->fe.count[SIM_RX], (unsigned long long)d->fe.count[SIM_TX]);
	close_link(d);
	sim_chip_free(d->chip);
	free(d->in);
	free(d->in_t);
	free(d->frame);
	free(d->enc);
	free(d->plan);
	pthread_mutex_destroy(&d->desc_lock);
	free(d);
}
