/*
 * sim_pty_speed.c - the baud rate a host set on a pseudo-terminal.
 *
 * Kept apart from sim_server.c because it needs the kernel's termios2
 * (asm/termbits.h), whose struct clashes with glibc's termios.h.  A host
 * that sets its rate with BOTHER (any rate, as src/port/port_tty.c does) leaves
 * a speed code cfgetospeed() cannot decode; TCGETS2 reports the number
 * itself.  Stateless; safe from any thread.
 */
#include "sim_server.h"

#include <asm/termbits.h>
#include <sys/ioctl.h>

unsigned sim_pty_host_baud(int fd)
{
	struct termios2 t;
	if (ioctl(fd, TCGETS2, &t) < 0)
		return 0;
	if (t.c_ospeed)
		return t.c_ospeed;
	return t.c_ispeed;
}
