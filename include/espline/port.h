/*
 * port.h - a byte pipe to one serial device, whatever carries it.
 *
 * A port moves bytes, sets the baud rate and drives the DTR/RTS modem lines.
 * It knows nothing of SLIP, ESP8266 commands or recipes.  Backends:
 *
 *   /dev/ttyUSB0, /dev/serial/by-id/...  libserialport (port_serial.c)
 *   /dev/pts/N, or anything libserialport refuses   termios (port_tty.c)
 *   rfc2217://host:port   RFC 2217 over TCP: baud and DTR/RTS in-band
 *   socket://host:port    raw TCP: bytes only, no baud, no modem lines
 *
 * A backend that cannot do something (modem lines on a pty or a raw socket)
 * returns ESPL_EUNSUPPORTED with a message saying so; it never pretends.
 *
 * Thread safety: an espl_port belongs to one thread at a time.  Different
 * ports may be used from different threads at once; no backend keeps global
 * mutable state.
 */
#ifndef ESPLINE_PORT_H
#define ESPLINE_PORT_H

#include <stddef.h>
#include <stdint.h>

#include "espline/error.h"

typedef struct espl_port espl_port;

/* Modem line request for espl_port_set_lines: asserted (true) means the
 * physical pin is driven low on a normal USB-UART bridge, as in pyserial. */
enum espl_line { ESPL_LINE_KEEP = -1, ESPL_LINE_RELEASE = 0, ESPL_LINE_ASSERT = 1 };

/* What a backend cannot do, for espl_port_limits (0 = can do everything,
 * so a test double that leaves the field out is a full port). */
enum espl_port_limit {
	ESPL_PORT_NO_BAUD = 1 << 0,  /* set_baud cannot change the rate (socket://) */
	ESPL_PORT_NO_LINES = 1 << 1, /* no DTR/RTS (a pty, socket://) */
};

/* The operations every backend provides; a backend embeds struct espl_port as
 * its first member so that a port can be cast back to its backend. */
typedef struct espl_port_ops {
	const char *kind; /* "serial", "tty", "rfc2217", "socket" */
	/* Read up to len bytes.  Waits at most timeout_ms for the first byte,
	 * then returns what is available without further waiting.  Returns the
	 * count (> 0), ESPL_ETIMEOUT if nothing came, ESPL_EDISCONNECTED if the
	 * device or server went away (unplug, peer closed; bytes that came
	 * before are returned first), or another negative code. */
	int (*read)(espl_port *p, uint8_t *buf, size_t len, int timeout_ms, espl_error *err);
	/* Write all len bytes or fail. */
	int (*write)(espl_port *p, const uint8_t *buf, size_t len, espl_error *err);
	/* Block until everything written has left the host (or the backend's
	 * best approximation of that). */
	int (*drain)(espl_port *p, espl_error *err);
	/* Discard bytes received but not yet read.  (rfc2217: also asks the
	 * server to purge its buffer and drops what was in flight.) */
	int (*flush_input)(espl_port *p, espl_error *err);
	/* Takes effect after every byte already written (rfc2217: in-band, in
	 * stream order).  socket:// accepts only the rate it already has and
	 * returns ESPL_EUNSUPPORTED for any other. */
	int (*set_baud)(espl_port *p, unsigned baud, espl_error *err);
	/* Set DTR and RTS together (one ioctl where the OS allows it); each is
	 * an enum espl_line.  rfc2217 sends two SET-CONTROL commands ordered so
	 * the pair never passes through DTR released + RTS asserted (EN low on a
	 * NodeMCU) unless that is the target: an asserted DTR goes first, a
	 * released RTS goes first. */
	int (*set_lines)(espl_port *p, int dtr, int rts, espl_error *err);
	void (*close)(espl_port *p);
	unsigned limits;  /* enum espl_port_limit bits; last, so positional
	                   * initialisers of older test doubles still compile */
} espl_port_ops;

struct espl_port {
	const espl_port_ops *ops;
	char name[256];   /* the spec the user gave, for messages */
	unsigned baud;    /* current baud rate as last set */
};

/* Open a port from a user's spec (see above).  Globs and usb:VID:PID filters
 * are not ports: expand them with espl_port_list first.  A device path is
 * tried with libserialport, then with termios if libserialport refuses it.
 * The port is locked (flock + TIOCEXCL) so a second opener gets ESPL_EBUSY.
 * Errors name the port and say what to do: ESPL_ENOTFOUND (missing path,
 * refused TCP connection), ESPL_EPERM (dialout group), ESPL_EBUSY,
 * ESPL_EARG (bad spec), ESPL_EUNSUPPORTED / ESPL_ETIMEOUT (a TCP server that
 * does not speak RFC 2217). */
int espl_port_open(const char *spec, unsigned baud, espl_port **out, espl_error *err);

/* Thin wrappers over the ops table, so callers never touch p->ops. */
int espl_port_read(espl_port *p, uint8_t *buf, size_t len, int timeout_ms, espl_error *err);
/* Read exactly len bytes within timeout_ms in total, or fail with ESPL_ETIMEOUT. */
int espl_port_read_exact(espl_port *p, uint8_t *buf, size_t len, int timeout_ms, espl_error *err);
int espl_port_write(espl_port *p, const uint8_t *buf, size_t len, espl_error *err);
int espl_port_drain(espl_port *p, espl_error *err);
int espl_port_flush_input(espl_port *p, espl_error *err);
int espl_port_set_baud(espl_port *p, unsigned baud, espl_error *err);
int espl_port_set_lines(espl_port *p, int dtr, int rts, espl_error *err);
void espl_port_close(espl_port *p);

/* enum espl_port_limit bits of what this port cannot do: check before
 * asking the chip to change baud or before an auto-reset. */
unsigned espl_port_limits(const espl_port *p);

/* One adapter found by enumeration. */
typedef struct espl_port_info {
	char path[256];         /* what espl_port_open takes */
	unsigned vid, pid;      /* 0 when not USB */
	char serial[128];       /* USB serial number, "" if none */
	char description[128];  /* product string */
	char location[64];      /* USB bus/port, e.g. "1-1.3", "" if unknown */
} espl_port_info;

/* Expand a spec into concrete ports: a plain path gives itself, a glob
 * (/dev/ttyUSB*) gives the matching paths, usb:VID:PID (or usb:VID) gives
 * every enumerated adapter with that id, rfc2217:// and socket:// give
 * themselves.  NULL or "" lists every serial adapter the OS knows.
 * *list is malloc'd; free it with free().  Returns the count (>= 0). */
int espl_port_list(const char *spec, espl_port_info **list, espl_error *err);

/* Is spec a port spec a user may give (device path or glob, usb:VID[:PID],
 * rfc2217://HOST:PORT, socket://HOST:PORT)?  Syntax only: nothing is opened
 * or looked up.  ESPL_EARG with a message saying what was expected. */
int espl_port_spec_check(const char *spec, espl_error *err);

#endif /* ESPLINE_PORT_H */
