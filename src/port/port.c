/* port.c - port specs, backend choice, the espl_port_* wrappers and port
 * listing; see include/espline/port.h. */
#include "espline/port.h"
#include "util/clock.h"

#include "port/port_backend.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int is_net_spec(const char *spec)
{
	return strncmp(spec, "rfc2217://", 10) == 0 || strncmp(spec, "socket://", 9) == 0;
}

static int is_usb_filter(const char *spec)
{
	return strncmp(spec, "usb:", 4) == 0;
}

static int is_glob(const char *spec)
{
	return strpbrk(spec, "*?[") != NULL;
}

static int open_path(const char *path, unsigned baud, espl_port **out, espl_error *err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return espl__port_open_failed(path, err);
	if (!S_ISCHR(st.st_mode))
		return espl_fail(err, ESPL_EARG, "%s is not a serial port (not a character device)",
		                 path);
	int rc = espl__port_serial_open(path, baud, out, err);
	if (rc != ESPL_EUNSUPPORTED)
		return rc;
	/* libserialport refuses what it cannot find in sysfs (ptys): termios. */
	return espl__port_tty_open(path, baud, out, err);
}

int espl_port_open(const char *spec, unsigned baud, espl_port **out, espl_error *err)
{
	*out = NULL;
	if (!spec || !*spec)
		return espl_fail(err, ESPL_EARG, "no port given: `espline ports` lists the ports present");
	if (baud == 0)
		return espl_fail(err, ESPL_EARG, "%s: baud rate 0", spec);
	if (is_net_spec(spec))
		return espl__port_net_open(spec, baud, out, err);
	if (strstr(spec, "://"))
		return espl_fail(err, ESPL_EARG,
		                 "bad port '%s': unknown scheme (expected a device path, "
		                 "rfc2217://HOST:PORT or socket://HOST:PORT)", spec);
	if (is_usb_filter(spec) || is_glob(spec))
		return espl_fail(err, ESPL_EARG,
		                 "'%s' names a set of ports, not one: `espline ports %s` lists them",
		                 spec, spec);
	return open_path(spec, baud, out, err);
}

/* --- wrappers ------------------------------------------------------------ */

static int no_port(espl_error *err)
{
	return espl_fail(err, ESPL_EARG, "port is not open");
}

int espl_port_read(espl_port *p, uint8_t *buf, size_t len, int timeout_ms, espl_error *err)
{
	return p ? p->ops->read(p, buf, len, timeout_ms, err) : no_port(err);
}

int espl_port_read_exact(espl_port *p, uint8_t *buf, size_t len, int timeout_ms, espl_error *err)
{
	int64_t deadline = espl__now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	size_t got = 0;
	if (!p)
		return no_port(err);
	while (got < len) {
		int64_t left = deadline - espl__now_ms();
		int n = p->ops->read(p, buf + got, len - got, left > 0 ? (int)left : 0, err);
		if (n == ESPL_ETIMEOUT)
			return espl_fail(err, ESPL_ETIMEOUT, "%s: got %zu of %zu bytes in %d ms", p->name,
			                 got, len, timeout_ms);
		if (n < 0)
			return n;
		got += (size_t)n;
	}
	return (int)len;
}

int espl_port_write(espl_port *p, const uint8_t *buf, size_t len, espl_error *err)
{
	if (!p)
		return no_port(err);
	return len ? p->ops->write(p, buf, len, err) : 0;
}

int espl_port_drain(espl_port *p, espl_error *err)
{
	return p ? p->ops->drain(p, err) : no_port(err);
}

int espl_port_flush_input(espl_port *p, espl_error *err)
{
	return p ? p->ops->flush_input(p, err) : no_port(err);
}

int espl_port_set_baud(espl_port *p, unsigned baud, espl_error *err)
{
	return p ? p->ops->set_baud(p, baud, err) : no_port(err);
}

int espl_port_set_lines(espl_port *p, int dtr, int rts, espl_error *err)
{
	if (!p)
		return no_port(err);
	if (dtr < ESPL_LINE_KEEP || dtr > ESPL_LINE_ASSERT || rts < ESPL_LINE_KEEP ||
	    rts > ESPL_LINE_ASSERT)
		return espl_fail(err, ESPL_EARG, "%s: bad line request dtr=%d rts=%d", p->name, dtr, rts);
	return p->ops->set_lines(p, dtr, rts, err);
}

unsigned espl_port_limits(const espl_port *p)
{
	return p ? p->ops->limits : ESPL_PORT_NO_BAUD | ESPL_PORT_NO_LINES;
}

void espl_port_close(espl_port *p)
{
	if (p)
		p->ops->close(p);
}

/* --- listing ------------------------------------------------------------- */

/* "usb:10c4" or "usb:10c4:ea60" (hex, optional 0x). */
static int parse_usb_filter(const char *spec, unsigned *vid, unsigned *pid, int *has_pid,
                            espl_error *err)
{
	const char *s = spec + 4;
	char *end;
	unsigned long v = strtoul(s, &end, 16), p = 0;
	*has_pid = 0;
	if (end == s || v > 0xFFFF || (*end != '\0' && *end != ':'))
		goto bad;
	if (*end == ':') {
		s = end + 1;
		p = strtoul(s, &end, 16);
		if (end == s || p > 0xFFFF || *end != '\0')
			goto bad;
		*has_pid = 1;
	}
	*vid = (unsigned)v;
	*pid = (unsigned)p;
	return ESPL_OK;
bad:
	return espl_fail(err, ESPL_EARG,
	                 "bad USB filter '%s': expected usb:VID or usb:VID:PID in hex, "
	                 "e.g. usb:10c4:ea60", spec);
}

static int same_device(const char *a, const char *b)
{
	char ra[PATH_MAX], rb[PATH_MAX];
	if (strcmp(a, b) == 0)
		return 1;
	return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

/* info for path: the enumerated record when there is one (path kept as
 * given, so a /dev/serial/by-id link stays a link), else the bare path. */
static void describe(const char *path, const espl_port_info *known, int nknown,
                     espl_port_info *info)
{
	memset(info, 0, sizeof *info);
	for (int i = 0; i < nknown; i++) {
		if (same_device(path, known[i].path)) {
			*info = known[i];
			break;
		}
	}
	snprintf(info->path, sizeof info->path, "%s", path);
}

static int list_one(const char *spec, espl_port_info **list, espl_error *err)
{
	espl_port_info *known = NULL;
	int nknown = is_net_spec(spec) ? 0 : espl__port_serial_enumerate(&known, NULL);
	espl_port_info *out = calloc(1, sizeof *out);
	if (!out) {
		free(known);
		return espl_fail(err, ESPL_ENOMEM, "listing ports: out of memory");
	}
	describe(spec, known, nknown > 0 ? nknown : 0, out);
	free(known);
	*list = out;
	return 1;
}

static int list_glob(const char *spec, espl_port_info **list, espl_error *err)
{
	glob_t g;
	int rc = glob(spec, 0, NULL, &g);
	if (rc == GLOB_NOMATCH) {
		*list = calloc(1, sizeof **list);
		return *list ? 0 : espl_fail(err, ESPL_ENOMEM, "listing ports: out of memory");
	}
	if (rc != 0)
		return espl_fail(err, ESPL_ESYS, "cannot expand '%s'", spec);
	espl_port_info *known = NULL;
	int nknown = espl__port_serial_enumerate(&known, NULL);
	espl_port_info *out = calloc(g.gl_pathc ? g.gl_pathc : 1, sizeof *out);
	if (!out) {
		globfree(&g);
		free(known);
		return espl_fail(err, ESPL_ENOMEM, "listing ports: out of memory");
	}
	for (size_t i = 0; i < g.gl_pathc; i++)
		describe(g.gl_pathv[i], known, nknown > 0 ? nknown : 0, &out[i]);
	int count = (int)g.gl_pathc;
	globfree(&g);
	free(known);
	*list = out;
	return count;
}

static int list_usb(const char *spec, espl_port_info **list, espl_error *err)
{
	unsigned vid = 0, pid = 0;
	int has_pid = 0, kept = 0;
	ESPL_TRY(parse_usb_filter(spec, &vid, &pid, &has_pid, err));
	int n = espl__port_serial_enumerate(list, err);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		espl_port_info *info = &(*list)[i];
		if (info->vid == vid && (!has_pid || info->pid == pid) && (info->vid || info->pid))
			(*list)[kept++] = *info;
	}
	return kept;
}

int espl_port_spec_check(const char *spec, espl_error *err)
{
	unsigned vid, pid;
	int has_pid;
	if (!spec || !*spec)
		return espl_fail(err, ESPL_EARG, "empty port");
	if (is_net_spec(spec))
		return espl__port_net_spec_check(spec, err);
	if (strstr(spec, "://"))
		return espl_fail(err, ESPL_EARG,
		                 "bad port '%s': unknown scheme (expected a device path, "
		                 "rfc2217://HOST:PORT or socket://HOST:PORT)", spec);
	if (is_usb_filter(spec))
		return parse_usb_filter(spec, &vid, &pid, &has_pid, err);
	if (spec[0] != '/')
		return espl_fail(err, ESPL_EARG, "bad port '%s': expected a device path such as "
		                 "/dev/ttyUSB0 or /dev/espline/by-path/..., a glob, usb:VID:PID, "
		                 "rfc2217://HOST:PORT or socket://HOST:PORT", spec);
	return ESPL_OK;
}

int espl_port_list(const char *spec, espl_port_info **list, espl_error *err)
{
	*list = NULL;
	if (!spec || !*spec)
		return espl__port_serial_enumerate(list, err);
	if (is_usb_filter(spec))
		return list_usb(spec, list, err);
	if (!is_net_spec(spec) && strstr(spec, "://"))
		return espl_fail(err, ESPL_EARG,
		                 "bad port '%s': unknown scheme (expected a device path, "
		                 "rfc2217://HOST:PORT or socket://HOST:PORT)", spec);
	if (!is_net_spec(spec) && is_glob(spec))
		return list_glob(spec, list, err);
	return list_one(spec, list, err);
}
