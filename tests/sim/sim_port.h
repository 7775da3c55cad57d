/*
 * sim_port.h - an espl_port wired straight to an in-process sim_chip, for
 * unit tests of the loader and the runner.
 *
 * Bytes the loader writes are SLIP-decoded and handed to the chip at once
 * (synchronously, on the caller's thread); the chip's replies are queued for
 * the loader to read, and a read of an empty queue is an immediate timeout.
 * It models the NodeMCU auto-reset circuit on DTR/RTS with the ROM's boot
 * garbage (or the firmware's banner), what a baud mismatch after
 * CHANGE_BAUDRATE looks like, and a few faults set through the public
 * fields: lost or corrupted requests, lost or corrupted replies, a port
 * without modem lines, a GPIO0 that never goes low, an adapter that refuses
 * fast rates, a cable that garbles them, and firmware that prints without
 * pause.
 *
 * A sim_unit (the chip and its clock) may outlive its ports, so that a
 * second run meets the same module; sim_port_new makes a port that owns its
 * unit.  It does not model timing (the chip's clock is virtual) nor the
 * byte-level wire faults of sim_server.
 *
 * Thread safety: a unit and its port belong to one thread at a time;
 * different units share nothing.
 */
#ifndef ESPLINE_SIM_PORT_H
#define ESPLINE_SIM_PORT_H

#include <stddef.h>
#include <stdint.h>

#include "espline/port.h"
#include "espline/slip.h"
#include "sim_chip.h"

typedef struct sim_unit {
	sim_chip *chip;
	uint64_t now_us;          /* the chip's virtual clock */
	unsigned chip_baud;       /* the rate the chip's UART runs at */
	struct sim_port *port;    /* the port currently attached, NULL = none */
	unsigned op_count[256];   /* requests the chip has seen, by opcode, over
	                           * every port attached (outlives each port) */
} sim_unit;

/* "Do something to the N requests (or replies) with opcode op, after letting
 * skip of them through"; count -1 = every one. */
typedef struct sim_port_fault {
	int op;                   /* -1 = none */
	int skip;
	int count;
} sim_port_fault;

typedef struct sim_port {
	espl_port base;
	sim_unit *unit;
	int owns_unit;            /* closing the port frees the unit */
	uint8_t *rxq;
	size_t rx_head, rx_tail;
	espl_slip_decoder dec;
	uint8_t frame[0x4100];
	int dtr, rts;
	int boots;
	int *boots_out;           /* also counted here: outlives the port */

	/* faults */
	int no_lines;             /* a pty-like port: no DTR/RTS */
	int gpio0_stuck_high;     /* the auto-reset circuit cannot pull GPIO0 low */
	int resets_missed;        /* the next N resets boot from flash anyway (a module
	                           * seated late, a slow EN capacitor) */
	unsigned max_baud;        /* the adapter refuses faster rates (0 = none) */
	int spew;                 /* the firmware prints without pause */
	unsigned garble_above;    /* the cable garbles faster rates (0 = none) */
	sim_port_fault drop;      /* requests lost on the way to the chip */
	sim_port_fault corrupt;   /* requests with their first data byte (offset
	                           * 24, after the data sub-header) flipped */
	sim_port_fault drop_reply;    /* replies lost on the way back */
	sim_port_fault corrupt_reply; /* replies with their value word flipped */
	sim_port_fault hold;      /* requests held on a stalled line: the chip
	                           * gets one only when the next request comes,
	                           * just before it, so its reply is late */
	uint8_t held[0x4100];
	size_t held_len;
} sim_port;

/* A chip with cfg behind no port yet; NULL if the chip cannot be made. */
sim_unit *sim_unit_new(const sim_chip_config *cfg);
void sim_unit_free(sim_unit *u);

/* A port at 115200 baud on u (which it does not own); NULL = out of memory. */
sim_port *sim_port_attach(sim_unit *u);

/* A port with a unit of its own, freed by espl_port_close. */
sim_port *sim_port_new(const sim_chip_config *cfg);

/* Boot the chip as a jig or power-up would (download = GPIO0 low), with
 * the boot output queued for the host. */
void sim_port_boot(sim_port *sp, int download);

#endif
