/*
 * sim_server.h - one simulated device on a serial link: the transport
 * between a host program and sim_chip.
 *
 * A device owns a link (a pseudo-terminal, or an RFC 2217 TCP server on
 * 127.0.0.1 serving one client at a time while later ones wait in the
 * backlog), a sim_chip and a thread.  The
 * thread SLIP-decodes host bytes and hands whole frames to the chip once
 * their last byte would have arrived at the current baud rate, SLIP-encodes
 * and paces what the chip emits, drives the chip's EN/GPIO0 pins from
 * RFC 2217 DTR/RTS through the NodeMCU reset circuit, prints the ROM boot log
 * (as garbage unless the host listens at the boot baud), models wrong-baud
 * garbage after a stub baud change, injects byte-level faults, and persists
 * the flash.  It never parses command lines and never prints: everything it
 * has to say goes through the log callback.
 *
 * Pty specifics: a pty has no modem lines, so the chip starts in the boot
 * mode configured (download by default) and only faults reset it.  The host's
 * baud rate is read from the slave's termios (tcgetattr on the master) each
 * time bytes arrive.  Output is discarded while no program has the slave
 * open, as a real UART's bytes are lost when nobody listens.
 *
 * Thread safety: sim_device_open/start/close are called by the main
 * thread; everything else happens on the device's own thread, except
 * sim_device_describe and sim_device_last_activity, which any thread may
 * call at any time.  The callbacks in sim_server_options are called from
 * device threads and must be thread-safe.  Devices share nothing mutable.
 */
#ifndef ESPLINE_SIM_SERVER_H
#define ESPLINE_SIM_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "sim_config.h"

typedef struct sim_server_options {
	double time_scale;        /* multiplies wire time and chip delays; 0 = none */
	const char *link_dir;     /* NULL = no symlinks */
	const char *flash_dir;    /* NULL = no persistence */
	unsigned en_delay_ms;     /* EN capacitor rise time (real ms, never scaled) */
	unsigned line_latency_ms; /* RFC 2217 DTR/RTS changes take effect this late... */
	unsigned line_jitter_ms;  /* ...plus 0..jitter ms (real ms, never scaled) */
	uint64_t seed;            /* device K uses seed + K */
	int verbose;
	int stop_fd;              /* becomes readable when the process should stop */
	void *ctx;
	/* A line of log text (no newline), already prefixed "dev K: ". */
	void (*log)(void *ctx, const char *line);
	/* The device's description line changed (it came back after an unplug). */
	void (*announce)(void *ctx, unsigned index, const char *line);
	/* Optional, for tests: each decoded frame just before the chip gets it. */
	void (*frame_hook)(void *ctx, unsigned index, const uint8_t *frame, size_t len);
} sim_server_options;

typedef struct sim_device sim_device;

/* Create the chip, load its flash, open the link (pty or listening socket).
 * Returns 0, or -1 with a message in err. */
int sim_device_open(const sim_device_config *cfg, const sim_server_options *opt, sim_device **out,
                    char *err, size_t errlen);

/* "device K PORT mac=.. chip_id=.. flash=.. jedec=.. xtal=.. boot=.. [link=..]" */
void sim_device_describe(sim_device *d, char *out, size_t len);

/* Power the chip on and start serving. Returns 0 or -1 (thread creation). */
int sim_device_start(sim_device *d);

/* Monotonic microseconds of the last host activity (bytes, connects). */
uint64_t sim_device_last_activity(const sim_device *d);

/* Wait for the thread (after stop_fd became readable), save the flash, log
 * the fault summary, close the link, free everything. */
void sim_device_close(sim_device *d);

/* Monotonic clock in microseconds, shared with main for idle detection. */
uint64_t sim_mono_us(void);

/* A termios speed_t as a baud rate; 0 if unknown. */
unsigned sim_speed_to_baud(unsigned speed);

/* The host's baud rate on a pty master fd as the kernel reports it
 * (TCGETS2: any rate, BOTHER included); 0 if the kernel cannot tell. */
unsigned sim_pty_host_baud(int fd);

#endif /* ESPLINE_SIM_SERVER_H */
