/*
 * loader_int.h - the loader's state and the protocol helpers that the
 * connect sequence (connect.c) and the baud ladder (baud.c) share with the
 * command protocol (proto.c).
 * Internal to the device layer: not part of the public API.
 *
 * Same threading rule as loader.h: one thread uses a loader at a time.
 */
#ifndef ESPLINE_DEVICE_LOADER_INT_H
#define ESPLINE_DEVICE_LOADER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "device/dev_bytes.h"
#include "espline/loader.h"
#include "espline/slip.h"

#define FRAME_CAP (ESPL_STUB_WRITE_BLOCK + 64)
#define HEADER_LEN 8
#define DATA_HEADER_LEN 16
/* Largest command: a 16 KiB data block with its two headers. */
#define TX_CAP ESPL_SLIP_ENCODED_MAX(HEADER_LEN + DATA_HEADER_LEN + ESPL_STUB_WRITE_BLOCK)
#define MAX_SKIPPED_REPLIES 100
#define SYNC_TRIES_PER_RESET 5
#define SYNC_REPLY_MS 100
/* Connect rounds given to a ROM rate above 115200 before falling back. */
/* The first SYNC round at a ROM rate above 115200 tries it this long after
 * the reset, then goes on at 115200 without a new reset: the loss when the
 * fast rate fails (issue 17: at most 0.3 s, with one FAST_SYNC_REPLY_MS). */
#define FAST_SYNC_BUDGET_MS 250
#define FAST_SYNC_REPLY_MS 40   /* SYNC reply timeout above 115200 */
#define SYNC_EXTRA_REPLIES 7
/* A rate just switched to is proved by a READ_REG with this timeout (sent
 * up to IDEMPOTENT_ATTEMPTS times): a rate the line cannot carry costs at
 * most ~1.5 s, not three default timeouts, and a loaded host still
 * answers well within it (a false "dead" would be remembered). */
#define BAUD_PROBE_MS 500
/* CHANGE_BAUDRATE tries when stepping down during a write (the command
 * itself may be garbled on the marginal line; it has no checksum). */
#define STEP_DOWN_TRIES 3
#define MEM_END_ROM_MS 500
#define OHAI_MS 3000
/* Tries of a command that may safely be sent twice (a lost or corrupted
 * reply, or a corrupted command the chip rejected). */
#define IDEMPOTENT_ATTEMPTS 3
/* The word a fence after a resent command writes and reads back: the last
 * word of the RTC user memory (0x60001100-0x600012FF on the ESP8266), which
 * nothing uses while the chip is in download mode. */
#define FENCE_REG 0x600012FCu

/* WRITE_REG's payload: address, value, mask, delay (µs), little-endian. */
static inline void espl__put_write_reg(uint8_t p[16], uint32_t addr, uint32_t value,
				       uint32_t mask, uint32_t delay_us)
{
	espl__put_le32(p, addr);
	espl__put_le32(p + 4, value);
	espl__put_le32(p + 8, mask);
	espl__put_le32(p + 12, delay_us);
}
/* Uploads of the flasher stub before connect gives up. */
#define STUB_UPLOAD_ATTEMPTS 3
/* SYNC tries at the current rate before a reconnect resets the chip. */
#define RESYNC_TRIES 3

struct espl_loader {
	espl_port *port;
	espl_loader_options opt;
	char *stub_path;          /* owned copy of opt.stub_path */
	enum espl_loader_mode mode;
	size_t flash_size;
	unsigned last_status;

	/* receive side: raw bytes read but not yet decoded, and the decoder */
	uint8_t rx[4096];
	size_t rx_pos, rx_len;
	uint8_t frame[FRAME_CAP];
	espl_slip_decoder dec;
	size_t noise;             /* bytes outside frames since the last reset */
	char noise_text[72];      /* the first of them, to show the operator */
	size_t noise_len;

	int synced;               /* a SYNC was answered since the loader was made */
	unsigned rom_baud;        /* rate the ROM syncs at: opt.baud, or 115200 after a fallback */
	unsigned connects;        /* full connects (reset, sync, stub) so far */
	int rung;                 /* the baud ladder's rung the stub should run at:
	                           * 0 = opt.flash_baud, k = opt.lower_bauds[k - 1] */
	unsigned stub_baud;       /* the rate the stub last answered at (0 = none yet) */
	/* where the connect's time went (ms since the loader was made, all
	 * rounds): reset pulses, SYNC, chip check, stub upload, baud switch */
	double ms_reset, ms_sync, ms_identify, ms_stub, ms_baud;

	uint8_t tx[TX_CAP];
};

/* Drop bytes already read and not yet decoded, and the port's input queue. */
int espl__loader_flush_input(espl_loader *l, espl_error *err);
/* Read and drop whatever is waiting, noting non-frame bytes as noise. */
int espl__loader_discard_input(espl_loader *l, espl_error *err);
/* Forget the noise seen so far (after a reset). */
void espl__loader_clear_noise(espl_loader *l);
/* Whether rc is a link error (timeout, garbled frame) worth a retry. */
int espl__loader_link_error(int rc);

/* The caller asked to stop (options.cancel): ESPL_EINTERRUPTED, and the
 * command or frame about to go is not sent; else 0. */
static inline int espl__loader_cancelled(const espl_loader *l, espl_error *err)
{
	if (l->opt.cancel && *l->opt.cancel)
		return espl_fail(err, ESPL_EINTERRUPTED, "stopped on request");
	return 0;
}
/* Send one command without waiting for its reply. */
int espl__loader_send_command(espl_loader *l, uint8_t op, const uint8_t *a, size_t alen,
			      const uint8_t *b, size_t blen, uint32_t chk, espl_error *err);
/* baud.c: the baud ladder.  The rate of the current rung. */
unsigned espl__loader_target_baud(const espl_loader *l);
/* Go one rung down (returns 1), or 0 when on the last one. */
int espl__loader_next_rung(espl_loader *l);
/* With the stub running: switch it to the current rung, or the highest
 * lower one that works.  A rate the adapter refuses, or that the chip does
 * not take up, is skipped at no cost.  Returns 0 (at some rate that
 * works, possibly still the old one) or a negative error when the chip
 * switched to a rate that does not work (it can only be reset then;
 * l->rung already names the failed rate). */
int espl__loader_climb(espl_loader *l, espl_error *err);

/* ESPL_EUNSUPPORTED naming `what` unless the flasher stub is running. */
int espl__loader_require_stub(espl_loader *l, const char *what, espl_error *err);

#endif /* ESPLINE_DEVICE_LOADER_INT_H */
