/*
 * scanner.h - the operator's barcode scanner, and which slot each scanned
 * code belongs to (internal to src/station; names start with espl__).
 *
 * A scanner is a keyboard-wedge (it types a line on the terminal: the
 * caller hands over the terminal's descriptor) or a serial scanner (a port
 * spec, opened with port.h at 9600 baud).  One thread reads its lines
 * (CR or LF ends a code; at most ESPL_SCAN_CODE_MAX - 1 bytes; control
 * characters end nothing and are dropped) and hands each code out:
 *
 *   ESPL_SCAN_SLOT_LABEL   a line that is a slot's name (its label on the
 *                          fixture) selects that slot; the next code is that
 *                          slot's, kept until its unit asks for it (a newer
 *                          code for the same slot replaces it, said);
 *   ESPL_SCAN_NEXT_WAITING a code goes to the slot that has waited longest;
 *                          a code scanned while none waits is kept for the
 *                          next one to ask (at most 16).
 *
 * What the operator should know (a slot selected, a code with no slot, a
 * code replaced) comes through the log callback, from the reader thread.
 * Thread safety: espl__scanner_wait may be called by every worker at once;
 * start and stop by the supervisor thread.
 */
#ifndef ESPLINE_STATION_SCANNER_H
#define ESPLINE_STATION_SCANNER_H

#include <stddef.h>

#include "espline/error.h"
#include "espline/station_file.h"

#define ESPL_SCAN_CODE_MAX 128

typedef struct espl__scanner espl__scanner;

typedef void (*espl__scanner_log_fn)(void *ctx, const char *level, const char *message);

/* fd >= 0: read lines from it (not closed by stop); else open port_spec. */
int espl__scanner_start(int fd, const char *port_spec, enum espl_scan_map map,
                        const espl_station_slot *slots, size_t n_slots, espl__scanner_log_fn log,
                        void *log_ctx, espl__scanner **out, espl_error *err);

/* Wait for the code of slot (its name; NULL or "" under NEXT_WAITING only).
 * Returns ESPL_OK with the code in code[ESPL_SCAN_CODE_MAX], ESPL_EDISCONNECTED
 * once the scanner is gone (its source ended), ESPL_ETIMEOUT
 * after timeout_ms (0: no limit), ESPL_EINTERRUPTED as soon as
 * leave(leave_ctx) returns non-zero (checked every 50 ms), ESPL_EARG when
 * the mapping needs a slot name and there is none. */
int espl__scanner_wait(espl__scanner *sc, const char *slot, unsigned timeout_ms,
                       int (*leave)(void *ctx), void *leave_ctx, char code[ESPL_SCAN_CODE_MAX],
                       espl_error *err);

/* End the reader thread and free; NULL is fine. */
void espl__scanner_stop(espl__scanner *sc);

#endif /* ESPLINE_STATION_SCANNER_H */
