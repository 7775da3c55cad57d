/*
 * reset.h - DTR/RTS reset sequences for ESP8266 boards and jigs.
 *
 * Drives the modem lines of an espl_port through the NodeMCU-style
 * auto-reset circuit (EN low iff RTS asserted and DTR released; GPIO0 low iff
 * DTR asserted and RTS released) to boot the chip into its UART download mode
 * or into the application.  It does not sync or talk to the chip.
 *
 * A port without modem lines (a pty, socket://) makes every sequence here fail
 * with ESPL_EUNSUPPORTED and a message that tells the operator to reset the
 * chip by hand and use --reset none.
 *
 * Thread safety: stateless; each call uses only the port it is given, which
 * must belong to the calling thread.
 */
#ifndef ESPLINE_RESET_H
#define ESPLINE_RESET_H

#include "espline/error.h"
#include "espline/port.h"

/* How the loader gets the chip into download mode. */
enum espl_reset_mode {
	ESPL_RESET_AUTO = 0, /* DTR/RTS auto-reset circuit (NodeMCU, Wemos, DevKit) */
	ESPL_RESET_NONE = 1, /* the jig holds GPIO0 low and resets the chip itself */
};

/* esptool's timings: EN held low for 100 ms; GPIO0 held low this long after
 * EN rises.  The long variant is for boards with a big EN capacitor. */
#define ESPL_RESET_DELAY_MS 50
#define ESPL_RESET_LONG_DELAY_MS 550
#define ESPL_RESET_HOLD_MS 100

/* Parse "auto" / "none" (also "no_reset", "no-reset"). */
int espl_reset_mode_parse(const char *s, enum espl_reset_mode *mode, espl_error *err);
const char *espl_reset_mode_name(enum espl_reset_mode mode);

/* Classic sequence: EN low with GPIO0 high, wait 100 ms, GPIO0 low and EN
 * high (the chip samples GPIO0 low), wait delay_ms, release GPIO0. */
int espl_reset_to_bootloader(espl_port *p, unsigned delay_ms, espl_error *err);

/* Hard reset into the application: pulse EN low for 100 ms with GPIO0
 * released, so the chip boots from flash. */
int espl_reset_to_app(espl_port *p, espl_error *err);

#endif /* ESPLINE_RESET_H */
