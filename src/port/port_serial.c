/* port_serial.c - the libserialport backend (real USB-UART adapters) and
 * port enumeration; see src/port/port_backend.h.
 *
 * libserialport opens and configures the port and enumerates adapters with
 * their USB ids.  Reads and writes go straight to its file descriptor through
 * the shared fd helpers, so every fd-based backend reports timeouts and
 * unplugs the same way; DTR and RTS are set with one TIOCMSET for the same
 * reason (libserialport sets them one at a time). */
#include "port/port_backend.h"

#include <errno.h>
#include <libgen.h>
#include <libserialport.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct serial_port {
	espl_port base;
	struct sp_port *sp;
	int fd;
} serial_port;

/* libserialport keeps the OS error in errno (sp_last_error_code). */
static int sp_failed(enum sp_return rc, const char *what, const char *path, espl_error *err)
{
	switch (rc) {
	case SP_ERR_MEM: return espl_fail(err, ESPL_ENOMEM, "%s: %s: out of memory", path, what);
	case SP_ERR_SUPP: return espl_fail(err, ESPL_EUNSUPPORTED, "%s: %s: not supported", path, what);
	case SP_ERR_ARG: return espl_fail(err, ESPL_EARG, "%s: %s: rejected", path, what);
	default: {
		char *msg = sp_last_error_message();
		int code = espl_fail(err, ESPL_ESYS, "%s: %s: %s", path, what, msg ? msg : "failed");
		sp_free_error_message(msg);
		return code;
	}
	}
}

static int serial_read(espl_port *p, uint8_t *buf, size_t len, int timeout_ms, espl_error *err)
{
	return espl__port_fd_read(((serial_port *)p)->fd, p->name, buf, len, timeout_ms, err);
}

static int serial_write(espl_port *p, const uint8_t *buf, size_t len, espl_error *err)
{
	return espl__port_fd_write(((serial_port *)p)->fd, p->name, p->baud, buf, len, err);
}

static int serial_drain(espl_port *p, espl_error *err)
{
	return espl__port_fd_drain(((serial_port *)p)->fd, p->name, err);
}

static int serial_flush_input(espl_port *p, espl_error *err)
{
	return espl__port_fd_flush_input(((serial_port *)p)->fd, p->name, err);
}

static int serial_set_baud(espl_port *p, unsigned baud, espl_error *err)
{
	enum sp_return rc = sp_set_baudrate(((serial_port *)p)->sp, (int)baud);
	if (rc != SP_OK)
		return sp_failed(rc, "set baud rate", p->name, err);
	p->baud = baud;
	return ESPL_OK;
}

static int serial_set_lines(espl_port *p, int dtr, int rts, espl_error *err)
{
	return espl__port_fd_set_lines(((serial_port *)p)->fd, p->name, dtr, rts, err);
}

static void serial_close(espl_port *p)
{
	serial_port *s = (serial_port *)p;
	espl__port_fd_unlock(s->fd);
	sp_close(s->sp);
	sp_free_port(s->sp);
	free(s);
}

static const espl_port_ops serial_ops = {
	.kind = "serial",
	.read = serial_read,
	.write = serial_write,
	.drain = serial_drain,
	.flush_input = serial_flush_input,
	.set_baud = serial_set_baud,
	.set_lines = serial_set_lines,
	.close = serial_close,
};

/* 8N1, no flow control; DTR and RTS left as they are (-1 = unchanged). */
static int configure(struct sp_port *sp, const char *path, unsigned baud, espl_error *err)
{
	struct sp_port_config *cfg;
	enum sp_return rc = sp_new_config(&cfg);
	if (rc != SP_OK)
		return sp_failed(rc, "configure", path, err);
	sp_set_config_baudrate(cfg, (int)baud);
	sp_set_config_bits(cfg, 8);
	sp_set_config_parity(cfg, SP_PARITY_NONE);
	sp_set_config_stopbits(cfg, 1);
	sp_set_config_cts(cfg, SP_CTS_IGNORE);
	sp_set_config_dsr(cfg, SP_DSR_IGNORE);
	sp_set_config_xon_xoff(cfg, SP_XONXOFF_DISABLED);
	rc = sp_set_config(sp, cfg);
	sp_free_config(cfg);
	if (rc != SP_OK)
		return sp_failed(rc, "configure 8N1", path, err);
	return ESPL_OK;
}

int espl__port_serial_open(const char *path, unsigned baud, espl_port **out, espl_error *err)
{
	struct sp_port *sp;
	enum sp_return rc;
	int fd = -1, code;

	if (sp_get_port_by_name(path, &sp) != SP_OK)
		return espl_fail(err, ESPL_EUNSUPPORTED, "%s: libserialport does not know it", path);
	rc = sp_open(sp, SP_MODE_READ_WRITE);
	if (rc != SP_OK) {
		errno = sp_last_error_code();
		code = rc == SP_ERR_FAIL ? espl__port_open_failed(path, err)
		                         : sp_failed(rc, "open", path, err);
		sp_free_port(sp);
		return code;
	}
	sp_get_port_handle(sp, &fd);
	code = espl__port_fd_lock(fd, path, err);
	if (code != ESPL_OK) {
		sp_close(sp); /* someone else's lock: leave their TIOCEXCL alone */
		sp_free_port(sp);
		return code;
	}
	code = configure(sp, path, baud, err);
	if (code == ESPL_OK)
		code = espl__port_fd_flush_input(fd, path, err);
	serial_port *s = code == ESPL_OK ? calloc(1, sizeof *s) : NULL;
	if (code == ESPL_OK && !s)
		code = espl_fail(err, ESPL_ENOMEM, "%s: out of memory", path);
	if (code != ESPL_OK) {
		espl__port_fd_unlock(fd);
		sp_close(sp);
		sp_free_port(sp);
		return code;
	}
	s->base.ops = &serial_ops;
	snprintf(s->base.name, sizeof s->base.name, "%s", path);
	s->base.baud = baud;
	s->sp = sp;
	s->fd = fd;
	*out = &s->base;
	return ESPL_OK;
}

/* --- enumeration --------------------------------------------------------- */

/* "1-1.3" but not "1-1.3:1.0" (an interface) nor "usb1" (a bus). */
static int is_usb_port_name(const char *s, size_t n)
{
	size_t i = 0, dash = 0;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++;
	if (i == 0 || i >= n || s[i] != '-')
		return 0;
	dash = ++i;
	while (i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.'))
		i++;
	return i == n && i > dash;
}

int espl__port_usb_location(const char *sysfs_path, char *out, size_t n)
{
	const char *best = NULL, *p = sysfs_path;
	size_t best_len = 0;
	if (n)
		out[0] = '\0';
	while (p && *p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (is_usb_port_name(p, len)) {
			best = p; /* the deepest one is the port the adapter sits in */
			best_len = len;
		}
		p = slash ? slash + 1 : NULL;
	}
	if (!best || n == 0)
		return 0;
	snprintf(out, n, "%.*s", (int)best_len, best);
	return 1;
}

static void usb_location(struct sp_port *sp, const char *path, char *out, size_t n)
{
	char link[PATH_MAX], real[PATH_MAX], copy[PATH_MAX];
	int bus, addr;
	snprintf(copy, sizeof copy, "%s", path);
	snprintf(link, sizeof link, "/sys/class/tty/%s/device", basename(copy));
	/* The physical port path names a jig slot; the bus address changes on
	 * every replug, so it is only the fallback. */
	if (realpath(link, real) && espl__port_usb_location(real, out, n))
		return;
	if (sp_get_port_usb_bus_address(sp, &bus, &addr) == SP_OK)
		snprintf(out, n, "bus%d-dev%d", bus, addr);
}

static void fill_info(struct sp_port *sp, espl_port_info *info)
{
	const char *s;
	int vid, pid;
	memset(info, 0, sizeof *info);
	snprintf(info->path, sizeof info->path, "%s", sp_get_port_name(sp));
	if ((s = sp_get_port_description(sp)))
		snprintf(info->description, sizeof info->description, "%s", s);
	if (sp_get_port_transport(sp) != SP_TRANSPORT_USB)
		return;
	if (sp_get_port_usb_vid_pid(sp, &vid, &pid) == SP_OK) {
		info->vid = (unsigned)vid;
		info->pid = (unsigned)pid;
	}
	if ((s = sp_get_port_usb_serial(sp)))
		snprintf(info->serial, sizeof info->serial, "%s", s);
	usb_location(sp, info->path, info->location, sizeof info->location);
}

static int by_path(const void *a, const void *b)
{
	return strcmp(((const espl_port_info *)a)->path, ((const espl_port_info *)b)->path);
}

int espl__port_serial_enumerate(espl_port_info **list, espl_error *err)
{
	struct sp_port **ports;
	size_t count = 0;
	enum sp_return rc = sp_list_ports(&ports);
	*list = NULL;
	if (rc != SP_OK)
		return sp_failed(rc, "list ports", "libserialport", err);
	while (ports[count])
		count++;
	espl_port_info *out = calloc(count ? count : 1, sizeof *out);
	if (!out) {
		sp_free_port_list(ports);
		return espl_fail(err, ESPL_ENOMEM, "listing ports: out of memory");
	}
	for (size_t i = 0; i < count; i++)
		fill_info(ports[i], &out[i]);
	sp_free_port_list(ports);
	qsort(out, count, sizeof *out, by_path);
	*list = out;
	return (int)count;
}
