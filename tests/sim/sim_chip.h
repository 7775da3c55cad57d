/*
 * sim_chip.h - the simulated ESP8266 itself: ROM loader, flasher stub,
 * registers, eFuse MAC, SPI NOR flash.  No I/O and no threads: the transport
 * (sim_server.c) decodes SLIP frames from the host and hands each one to
 * sim_chip_handle_frame(); the chip answers through the callbacks in
 * sim_chip_io.  Time passes only through io->sleep_us(), so a unit test can
 * drive the chip with a virtual clock and assert how long an erase took.
 *
 * Timing figures are the real part's (unscaled microseconds); the transport
 * applies --time-scale.
 */
#ifndef ESPLINE_SIM_CHIP_H
#define ESPLINE_SIM_CHIP_H

#include <stddef.h>
#include <stdint.h>

/* Chip-side faults (the transport owns byte-level ones: drop, corrupt, stall). */
typedef struct sim_chip_faults {
	int silent;                 /* never answers anything */
	uint32_t chip_magic;        /* 0 = ESP8266's 0xFFF0C101; else e.g. ESP32's 0x00F01D83 */
	long stuck_sector;          /* -1 = none; else writes to this 4 KiB sector leave bit 0 stuck at 1
	                               (ROM: error 0x08 from its read-back; stub: silently, as the real
	                               stub never reads back, so only an MD5 verify finds it) */
	long unplug_at_flash_offset;/* -1 = none; else request an unplug when a write covers it: the bytes
	                               before it are written, the frame gets no reply.  Fires once. */
	long reset_at_flash_offset; /* -1 = none; likewise, requesting a reset */
} sim_chip_faults;

#define SIM_DIRTY_MAX 32

typedef struct sim_chip_config {
	uint8_t mac[6];             /* OUI must follow esptool's rule (see protocol notes 4.2) */
	uint32_t jedec_id;          /* e.g. 0x1640EF: Winbond, 4 MB (capacity byte 0x16) */
	size_t flash_size;          /* bytes; normally 1 << capacity byte */
	unsigned xtal_mhz;          /* 26 or 40 */
	sim_chip_faults faults;
	int flash_random;           /* 1 = start with pseudo-random bytes, not 0xFF (catches missing erases) */
	uint32_t flash_seed;        /* seed for flash_random and dirty_pct */
	/* A used module (dirty=): besides these, the flash starts all 0xFF, as
	 * from the factory.  Each 4 KiB sector is dirty (pseudo-random bytes)
	 * with probability dirty_pct %, and so is every sector holding one of
	 * dirty_at[0..n_dirty_at). */
	unsigned dirty_pct;
	uint32_t dirty_at[SIM_DIRTY_MAX];
	size_t n_dirty_at;
	/* Tests only: once a stub starts, answer as this one ("legacy",
	 * "legacy-old", "esp-flasher-stub") whatever was uploaded; NULL (the
	 * default) recognises the upload (sim_ram.c). */
	const char *stub_as;
} sim_chip_config;

/* Fill *cfg with a healthy 4 MB ESP8266: MAC 18:FE:34:00:00:01, jedec_id
 * 0x1640EF, 4 MiB, 26 MHz, no faults (sector/offset faults = -1), 0xFF flash.
 * Start from this and override fields.  sim_chip_new() also fills zero
 * jedec_id / flash_size (1 << capacity byte) / xtal_mhz / all-zero MAC. */
void sim_chip_config_defaults(sim_chip_config *cfg);

/* What the chip needs from its transport.  ctx is passed back unchanged. */
typedef struct sim_chip_io {
	void *ctx;
	/* Send one frame (unencoded; the transport SLIP-encodes it). */
	void (*emit)(void *ctx, const uint8_t *frame, size_t len);
	/* Let simulated time pass (erase, program, reboot delays). */
	void (*sleep_us)(void *ctx, uint64_t us);
	/* Current time in unscaled microseconds (monotonic). */
	uint64_t (*now_us)(void *ctx);
	/* The stub changed the UART divider: switch the line to this baud
	 * after the reply already emitted has gone out at the old one. */
	void (*set_baud)(void *ctx, unsigned baud);
	/* The chip left download mode (FLASH_END/MEM_END/RUN_USER_CODE):
	 * to_app = 1 runs firmware, 0 reboots into the strapped boot mode.
	 * The chip has already switched its own mode (sim_chip_mode()): a
	 * software reset re-enters the mode latched by the last sim_chip_boot(),
	 * so calling sim_chip_boot() again is allowed but not needed. */
	void (*reboot)(void *ctx, int to_app);
	/* A chip-side fault fired: "unplug" or "reset". */
	void (*fault)(void *ctx, const char *what);
	/* Optional: something worth a log line (an unrecognised stub).  No newline. */
	void (*log)(void *ctx, const char *line);
} sim_chip_io;

typedef struct sim_chip sim_chip;

enum sim_chip_mode { SIM_MODE_OFF, SIM_MODE_APP, SIM_MODE_ROM, SIM_MODE_STUB };

sim_chip *sim_chip_new(const sim_chip_config *cfg, const sim_chip_io *io);
void sim_chip_free(sim_chip *chip);

/* EN rose: boot into the ROM loader if download is set (GPIO0 was low), else
 * into the application.  Clears stub state, keeps flash. */
void sim_chip_boot(sim_chip *chip, int download);

enum sim_chip_mode sim_chip_mode(const sim_chip *chip);

/* Which flasher stub the chip answers as, in stub mode: "legacy",
 * "legacy-old" (rejects a 20-byte FLASH_BEGIN) or "esp-flasher-stub";
 * NULL in any other mode.  See sim_ram.c for how it is recognised. */
const char *sim_chip_stub_name(const sim_chip *chip);

/* The host's current baud rate, for the UART clock divider register
 * (0x60000014) that clients read to guess the crystal.  The ROM auto-bauds,
 * so this is its rate; once the stub runs, only CHANGE_BAUDRATE moves the
 * chip's rate (reported through io->set_baud) and this call is ignored. */
void sim_chip_set_host_baud(sim_chip *chip, unsigned baud);

/* One decoded SLIP frame from the host. */
void sim_chip_handle_frame(sim_chip *chip, const uint8_t *frame, size_t len);

/* Direct flash access for tests and persistence. */
uint8_t *sim_chip_flash(sim_chip *chip, size_t *size);
int sim_chip_load_flash(sim_chip *chip, const char *path);  /* 0 or -errno */
int sim_chip_save_flash(const sim_chip *chip, const char *path);

#endif /* ESPLINE_SIM_CHIP_H */
