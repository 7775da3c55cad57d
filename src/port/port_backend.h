/*
 * port_backend.h - private glue between port.c and the port backends.
 *
 * port.c parses specs and dispatches; each backend file opens one kind of
 * port.  The fd helpers here are shared by the two backends that end in a
 * Linux tty file descriptor (libserialport and termios).  Nothing here is
 * public API: only port.c, the backends and their unit tests include it.
 *
 * Thread safety: as port.h; no function keeps state between calls.
 */
#ifndef ESPLINE_PORT_BACKEND_H
#define ESPLINE_PORT_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "espline/port.h"

/* --- openers: each returns 0 and a new port, or a negative code --------- */

/* libserialport.  Returns ESPL_EUNSUPPORTED, with nothing opened, when
 * libserialport does not know the path as a serial port (it refuses
 * /dev/pts/N, which it cannot find in sysfs): port.c then tries termios. */
int espl__port_serial_open(const char *path, unsigned baud, espl_port **out, espl_error *err);
/* Plain termios on any tty (ptys included). */
int espl__port_tty_open(const char *path, unsigned baud, espl_port **out, espl_error *err);
/* rfc2217://host:port[?ign_set_control] or socket://host:port. */
int espl__port_net_open(const char *spec, unsigned baud, espl_port **out, espl_error *err);
/* The syntax of an rfc2217:// or socket:// spec, without connecting. */
int espl__port_net_spec_check(const char *spec, espl_error *err);

/* Every serial port libserialport enumerates, sorted by path; *list is
 * malloc'd.  Returns the count or a negative code. */
int espl__port_serial_enumerate(espl_port_info **list, espl_error *err);

/* --- helpers shared by the fd-based backends (port_tty.c) -------------- */

/* Explain a failed open(2) of a serial device path (errno is the cause):
 * missing -> ESPL_ENOTFOUND suggesting `espline ports`, EACCES -> ESPL_EPERM
 * suggesting the dialout group, EBUSY -> ESPL_EBUSY naming another program. */
int espl__port_open_failed(const char *path, espl_error *err);

/* Take an exclusive flock and set TIOCEXCL so a second opener (another
 * program or another worker of ours) is refused with ESPL_EBUSY. */
int espl__port_fd_lock(int fd, const char *path, espl_error *err);
/* Undo TIOCEXCL before close, so the device is usable by the next program. */
void espl__port_fd_unlock(int fd);

/* read/write/lines/drain/flush on a tty fd with port.h semantics; name is
 * used in messages. */
int espl__port_fd_read(int fd, const char *name, uint8_t *buf, size_t len, int timeout_ms,
                      espl_error *err);
int espl__port_fd_write(int fd, const char *name, unsigned baud, const uint8_t *buf, size_t len,
                       espl_error *err);
int espl__port_fd_set_lines(int fd, const char *name, int dtr, int rts, espl_error *err);
int espl__port_fd_drain(int fd, const char *name, espl_error *err);
int espl__port_fd_flush_input(int fd, const char *name, espl_error *err);

/* Set raw 8N1, no flow control, and any baud rate (termios2 BOTHER). */
int espl__port_fd_configure(int fd, const char *name, unsigned baud, espl_error *err);
int espl__port_fd_set_baud(int fd, const char *name, unsigned baud, espl_error *err);
/* The output baud rate set on a tty (on a pty master: its slave's). */
int espl__port_fd_get_baud(int fd, unsigned *baud);

/* --- enumeration helpers (port_serial.c) --------------------------------- */

/* The USB port path ("1-1.3") from a sysfs device path such as
 * /sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.3/1-1.3:1.0/ttyUSB0.
 * Writes "" and returns 0 when there is none, else returns 1. */
int espl__port_usb_location(const char *sysfs_path, char *out, size_t n);

#endif /* ESPLINE_PORT_BACKEND_H */
