/*
 * loader.h - one conversation with one ESP8266 serial bootloader.
 *
 * An espl_loader owns a port and everything known about the chip behind it:
 * whether the mask-ROM loader or the flasher stub is answering, the current
 * baud rate, timeouts, and the flash size once it is known.  It speaks the
 * command protocol (SLIP frames, opcodes, status bytes, checksums) and hides
 * the ROM/stub differences behind one set of functions.
 *
 * What sits where (the device API the runner uses):
 *   loader.h    connect (reset, sync, chip check, stub, baud switch), close,
 *               hard reset, low-level commands
 *   esp8266.h   identify: MAC, chip id, crystal, flash JEDEC id and size
 *   image.h     prepared images: read once, patch, pad, deflate and hash once,
 *               shared read-only by every worker
 *   flash.h     erase chip/region, write a prepared image, verify by MD5,
 *               read flash
 *   flashmap.h  init-data / RF-cal / blank sector addresses from flash size
 *   stub.h      finding and parsing the flasher stub JSON
 *   reset.h     DTR/RTS sequences
 *
 * Typical use by one worker:
 *
 *   espl_loader_options o;  espl_loader_options_init(&o);
 *   o.flash_baud = 921600;  o.events = my_callbacks;
 *   espl_loader *l;
 *   if (espl_loader_open("/dev/ttyUSB0", &o, &l, &err) < 0) ...
 *   espl_chip_info chip;  espl_esp8266_identify(l, &chip, &err);
 *   espl_flash_erase_chip(l, &err);
 *   const espl_image *img;  espl_image_source_get(src, chip.flash_size, &img, &err);
 *   espl_flash_write(l, img, ESPL_WRITE_COMPRESS, &err);
 *   espl_flash_verify(l, img, &err);
 *   espl_loader_hard_reset(l, &err);
 *   espl_loader_close(l);
 *
 * The library never prints: log lines and progress go to the callbacks in
 * espl_loader_events, called synchronously on the caller's thread.
 *
 * Thread safety: an espl_loader belongs to one thread at a time; different
 * loaders may run in different threads at once (no global mutable state).
 */
#ifndef ESPLINE_LOADER_H
#define ESPLINE_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "espline/error.h"
#include "espline/port.h"
#include "espline/reset.h"

typedef struct espl_loader espl_loader;

/* Who answers commands. */
enum espl_loader_mode {
	ESPL_MODE_ROM = 0,  /* ESP8266 mask ROM: 1 KiB writes, no compression/MD5/read/erase */
	ESPL_MODE_STUB = 1, /* flasher stub in RAM: everything, 16 KiB blocks */
};

enum espl_log_level { ESPL_LOG_DEBUG = 0, ESPL_LOG_INFO = 1, ESPL_LOG_WARN = 2 };

/* One progress report.  For writes, done/total count image bytes
 * (uncompressed) so that compressed and plain writes read the same. */
typedef struct espl_progress {
	const char *step;      /* "connect", "stub", "erase", "write", "verify", "read" */
	uint32_t address;      /* flash address of the operation, 0 if none */
	size_t done, total;    /* bytes; total 0 = unknown (e.g. chip erase) */
	double elapsed_s;      /* seconds since the step started */
	double rate;           /* bytes per second so far, 0 if unknown */
} espl_progress;

typedef struct espl_loader_events {
	void *ctx;
	/* A log line without trailing newline; may be NULL. */
	void (*log)(void *ctx, int level, const char *msg);
	/* Called at the start (done = 0), after every block and at the end
	 * (done == total) of a step; may be NULL. */
	void (*progress)(void *ctx, const espl_progress *p);
} espl_loader_events;

/* The loader's defaults, named once: the recipe (recipe.h), the CLI's
 * options and their help text use these, and espl_loader_connect fills in
 * the same for a zero field. */
#define ESPL_DEFAULT_BAUD 115200
/* esptool's usual fast rate; recipes may ask for 921600. */
#define ESPL_DEFAULT_FLASH_BAUD 460800
#define ESPL_DEFAULT_CONNECT_ATTEMPTS 7        /* esptool's default */
#define ESPL_DEFAULT_CONNECT_TIMEOUT_MS 20000
#define ESPL_DEFAULT_WRITE_BLOCK_ATTEMPTS 3
/* The baud rates a recipe (connect.baud, connect.flash_baud) and the
 * command line (--baud, --flash-baud) accept. */
#define ESPL_BAUD_MIN 9600
#define ESPL_BAUD_MAX 4000000
/* Rates in a baud ladder (connect.flash_baud as a list) at most. */
#define ESPL_BAUD_LADDER_MAX 8

typedef struct espl_loader_options {
	unsigned baud;            /* rate for reset/sync/ROM; 0 = flash_baud (115200 with
	                           * no_stub).  The ROM auto-bauds on SYNC, so a faster
	                           * rate uploads the stub faster and needs no switch;
	                           * if the ROM does not answer there within one short
	                           * round (0.2 s) the loader falls back to 115200
	                           * (logged as a warning) */
	unsigned flash_baud;      /* rate once the stub runs; 0 = ESPL_DEFAULT_FLASH_BAUD;
	                           * equal to baud = never switch.  The top of the
	                           * baud ladder when lower_bauds are given */
	/* The rest of the baud ladder: lower rates, highest first.  When the
	 * switch to a rate fails, the loader tries the next one (resetting the
	 * chip when the stub had switched to a rate the line cannot carry);
	 * espl_loader_step_down goes one rung down during a write.  With a
	 * ladder, baud 0 means its last rate.  n_lower_bauds 0 = no ladder. */
	unsigned lower_bauds[ESPL_BAUD_LADDER_MAX - 1];
	int n_lower_bauds;
	enum espl_reset_mode reset; /* reset.h; default AUTO */
	int no_stub;              /* 1 = stay with the ROM loader */
	const char *stub_path;    /* --stub; NULL = search (stub.h) */
	/* The search places from the environment (stub.h); NULL = none.  Must
	 * outlive the loader. */
	const struct espl_stub_env *stub_env;
	int connect_attempts;     /* resets to try; 0 = ESPL_DEFAULT_CONNECT_ATTEMPTS */
	int connect_timeout_ms;   /* total budget for reset + sync;
	                           * 0 = ESPL_DEFAULT_CONNECT_TIMEOUT_MS */
	int write_block_attempts; /* tries per data block on timeout/checksum;
	                           * 0 = ESPL_DEFAULT_WRITE_BLOCK_ATTEMPTS */
	/* A stub loaded once by the caller (stub.h) and shared read-only by
	 * many loaders; NULL = find and load one per connect. */
	const struct espl_stub *stub;
	espl_loader_events events;
	/* Checked before every command and frame the loader sends: non-zero
	 * fails it with ESPL_EINTERRUPTED ("stopped") instead, so a long write,
	 * erase check or read stops within one block.  Read on the loader's
	 * thread only (set it from that thread, e.g. in a progress callback);
	 * the chip is left where it was.  NULL = never. */
	const volatile int *cancel;
} espl_loader_options;

/* Fill o with the defaults above (every field zero/NULL except reset). */
void espl_loader_options_init(espl_loader_options *o);

/* How a caller above the device layer wants a chip reached: a job's
 * connect settings (the runner) or a presence probe (the station).  The
 * device layer alone turns these into loader options
 * (espl_loader_options_for), so the defaults and the ladder rules live in
 * one place.  Zero fields take the loader's defaults. */
typedef struct espl_connect_settings {
	enum espl_reset_mode reset;
	unsigned rom_baud;            /* options.baud; 0 = the loader's choice */
	unsigned flash_baud;          /* the ladder's top; 0 = ESPL_DEFAULT_FLASH_BAUD */
	const unsigned *lower_bauds;  /* the rest of the ladder, highest first; */
	size_t n_lower_bauds;         /* at most ESPL_BAUD_LADDER_MAX - 1 are used */
	/* Start the ladder at its highest rate not above this one (a rate that
	 * worked on this adapter before); 0 = at the top. */
	unsigned flash_baud_start;
	int no_stub;                  /* 1 = stay with the ROM loader */
	const struct espl_stub *stub; /* loaded once by the caller; NULL = search */
	int connect_attempts;         /* 0 = ESPL_DEFAULT_CONNECT_ATTEMPTS */
	int connect_timeout_ms;       /* 0 = ESPL_DEFAULT_CONNECT_TIMEOUT_MS */
	espl_loader_events events;
	const volatile int *cancel;   /* options.cancel; NULL = never */
} espl_connect_settings;

/* Loader options from connect settings: espl_loader_options_init, then the
 * settings, the baud ladder cut at flash_baud_start.  s and o non-NULL. */
void espl_loader_options_for(const espl_connect_settings *s, espl_loader_options *o);

/* Does a chip answer a bare SYNC on port_spec at baud (one reset round
 * with the given reset mode, no stub, within timeout_ms)?  Opens and closes
 * the port.  Returns ESPL_OK when an ESP8266 answered, else the error of
 * the connect (ESPL_ECHIP: another chip answered), with err filled. */
int espl_loader_probe(const char *port_spec, unsigned baud, enum espl_reset_mode reset,
		      int timeout_ms, espl_error *err);

/* Open port_spec (any form espl_port_open takes) at opt->baud and connect:
 * reset (unless ESPL_RESET_NONE), sync (falling back from a fast opt->baud
 * to 115200 if the ROM does not answer), check the chip is an ESP8266
 * (another Espressif chip fails with ESPL_ECHIP "found ESP32-C3, this recipe
 * is for ESP8266"), upload the stub (unless no_stub) and switch to
 * flash_baud (falling back to baud, by reconnecting, if the fast rate does
 * not work).  On success *out owns the port. */
int espl_loader_open(const char *port_spec, const espl_loader_options *opt,
		     espl_loader **out, espl_error *err);

/* The same on a port the caller already opened; the loader takes ownership
 * of it (it is closed by espl_loader_close, also when this fails). */
int espl_loader_connect(espl_port *port, const espl_loader_options *opt,
			espl_loader **out, espl_error *err);

/* Get back in touch after a link error: SYNC at the current rate (the stub
 * may still be running there), else connect again from the start (reset,
 * sync, chip check, stub, baud) as espl_loader_connect does. */
int espl_loader_reconnect(espl_loader *l, espl_error *err);

/* Close the port and free the loader.  Does not reset the chip.  NULL ok. */
void espl_loader_close(espl_loader *l);

/* Hard reset into the application (RTS pulse).  With reset mode NONE or a
 * port without modem lines, asks the stub to run the firmware instead
 * (RUN_USER_CODE) or returns ESPL_EUNSUPPORTED in ROM mode. */
int espl_loader_hard_reset(espl_loader *l, espl_error *err);

/* --- state --------------------------------------------------------------- */

enum espl_loader_mode espl_loader_mode(const espl_loader *l);
unsigned espl_loader_baud(const espl_loader *l);   /* current host baud */
/* The rate the ROM answered SYNC at: options.baud, or 115200 after a fallback. */
unsigned espl_loader_rom_baud(const espl_loader *l);
/* The rate the flasher stub was last proven to work at (after connect, or
 * after espl_loader_step_down); 0 = the stub never ran. */
unsigned espl_loader_flash_baud(const espl_loader *l);
/* How many times the loader connected from the start (reset, sync, chip
 * check, stub): 1 after a first connect; more when espl_loader_reconnect
 * found the stub gone (the chip had reset) or the fast rate failed. */
unsigned espl_loader_connects(const espl_loader *l);
espl_port *espl_loader_port(espl_loader *l);
const espl_loader_options *espl_loader_opts(const espl_loader *l);
/* Flash size in bytes once identify (or the caller) set it; 0 = unknown. */
size_t espl_loader_flash_size(const espl_loader *l);
void espl_loader_set_flash_size(espl_loader *l, size_t bytes);

/* Report through the events (printf-style); used by the device modules. */
void espl_loader_log(espl_loader *l, int level, const char *fmt, ...) ESPL_PRINTF(3, 4);
void espl_loader_progress(espl_loader *l, const espl_progress *p);

/* --- low level: one command, one reply ----------------------------------- */

/* Opcodes (protocol notes §2.1). */
enum espl_op {
	ESPL_OP_FLASH_BEGIN = 0x02, ESPL_OP_FLASH_DATA = 0x03, ESPL_OP_FLASH_END = 0x04,
	ESPL_OP_MEM_BEGIN = 0x05, ESPL_OP_MEM_END = 0x06, ESPL_OP_MEM_DATA = 0x07,
	ESPL_OP_SYNC = 0x08, ESPL_OP_WRITE_REG = 0x09, ESPL_OP_READ_REG = 0x0A,
	ESPL_OP_SPI_SET_PARAMS = 0x0B, ESPL_OP_SPI_ATTACH = 0x0D,
	ESPL_OP_CHANGE_BAUDRATE = 0x0F, ESPL_OP_FLASH_DEFL_BEGIN = 0x10,
	ESPL_OP_FLASH_DEFL_DATA = 0x11, ESPL_OP_FLASH_DEFL_END = 0x12,
	ESPL_OP_SPI_FLASH_MD5 = 0x13, ESPL_OP_ERASE_FLASH = 0xD0,
	ESPL_OP_ERASE_REGION = 0xD1, ESPL_OP_READ_FLASH = 0xD2, ESPL_OP_RUN_USER_CODE = 0xD3,
};

/* Block sizes and the timeouts esptool uses ("MB" = 1e6 bytes). */
#define ESPL_ROM_WRITE_BLOCK 0x400
#define ESPL_STUB_WRITE_BLOCK 0x4000
#define ESPL_RAM_BLOCK 0x1800
#define ESPL_SECTOR_SIZE 0x1000
#define ESPL_TIMEOUT_DEFAULT_MS 3000
#define ESPL_TIMEOUT_MAX_MS 240000
#define ESPL_TIMEOUT_CHIP_ERASE_MS 120000
#define ESPL_ERASE_MS_PER_MB 30000
#define ESPL_WRITE_MS_PER_MB 40000
#define ESPL_MD5_MS_PER_MB 8000
#define ESPL_CHIP_MAGIC_REG 0x40001000u
#define ESPL_ESP8266_MAGIC 0xFFF0C101u

/* max(3 s, ms_per_mb * bytes / 1e6), capped at 240 s. */
int espl_timeout_for(unsigned ms_per_mb, size_t bytes);

/* Send op with payload data[0..len) and checksum chk (0 for commands that
 * carry none), wait up to timeout_ms for the reply with the same opcode
 * (skipping stale replies), and check its status bytes.  On success *value
 * (if non-NULL) gets the reply's value word and out[0..*out_len) the reply
 * data before the status bytes (truncated to out_cap).  A device error
 * returns ESPL_EDEVICE with the status decoded ("bad data checksum (0xC1)"). */
int espl_loader_command(espl_loader *l, uint8_t op, const uint8_t *data, size_t len,
			uint32_t chk, int timeout_ms, uint32_t *value,
			uint8_t *out, size_t out_cap, size_t *out_len, espl_error *err);

/* One decoded frame checked against the command op it should answer, as
 * the loader itself does (pure: no loader, no I/O; for fuzzing too).  mode
 * is enum espl_loader_mode (who should be answering).  Returns 0 for a good
 * reply (outputs as for espl_loader_command; *status gets its two status
 * bytes), 1 if the frame is no reply to op (noise, a stale or surplus reply:
 * keep waiting), or a negative error: ESPL_EDEVICE (error status, decoded in
 * err), ESPL_EPROTO (malformed), ESPL_EUNSUPPORTED (the ROM rejected the
 * command).  Any output pointer may be NULL. */
int espl_loader_parse_reply(enum espl_loader_mode mode, uint8_t op, const uint8_t *frame, size_t len,
			    uint32_t *value, uint8_t *out, size_t out_cap, size_t *out_len,
			    unsigned *status, espl_error *err);

/* The same for a command that may safely be sent twice (READ_REG,
 * WRITE_REG, SPI_SET_PARAMS, SPI_FLASH_MD5, ...): on a timeout, a garbled
 * reply or a device error it flushes the input and sends the command again,
 * up to 3 times in all. */
int espl_loader_command_idempotent(espl_loader *l, uint8_t op, const uint8_t *data, size_t len,
				   uint32_t chk, int timeout_ms, uint32_t *value, uint8_t *out,
				   size_t out_cap, size_t *out_len, espl_error *err);

/* The two status bytes of the last reply (byte[-2] << 8 | byte[-1]), for
 * deciding whether a failure is worth a retry. */
unsigned espl_loader_last_status(const espl_loader *l);
/* Did the chip refuse the last data block as it arrived, before using any
 * of it (stub 0xC0 bad length or 0xC1 bad checksum, ROM 0x07)?  Then the
 * same block may be sent again. */
int espl_loader_last_was_rejected_block(const espl_loader *l);

/* XOR-with-0xEF checksum of data-command payloads and image segments. */
uint8_t espl_checksum(const uint8_t *data, size_t len, uint8_t seed);

int espl_loader_sync(espl_loader *l, int *stub_running, espl_error *err);
int espl_loader_read_reg(espl_loader *l, uint32_t addr, uint32_t *value, espl_error *err);
int espl_loader_write_reg(espl_loader *l, uint32_t addr, uint32_t value, uint32_t mask,
			  uint32_t delay_us, espl_error *err);

/* RAM download (stub upload). */
int espl_loader_mem_begin(espl_loader *l, uint32_t size, uint32_t blocks, uint32_t block_size,
			  uint32_t addr, espl_error *err);
int espl_loader_mem_data(espl_loader *l, const uint8_t *data, size_t len, uint32_t seq,
			 espl_error *err);
/* entry != 0: jump there.  To the ROM the reply is optional (the jump may
 * beat it), so a missing reply is not an error then. */
int espl_loader_mem_end(espl_loader *l, uint32_t entry, espl_error *err);

/* Flash data path.  compressed selects the FLASH_DEFL_* opcodes (stub only).
 * For FLASH_BEGIN in ROM mode, size is corrected for the ROM erase bug here;
 * pass the real byte count. */
int espl_loader_flash_begin(espl_loader *l, int compressed, uint32_t size, uint32_t blocks,
			    uint32_t block_size, uint32_t offset, espl_error *err);
int espl_loader_flash_data(espl_loader *l, int compressed, const uint8_t *data, size_t len,
			   uint32_t seq, int timeout_ms, espl_error *err);
/* run_app = 0: stay in the loader (esptool's "1"); 1: reboot. */
int espl_loader_flash_end(espl_loader *l, int compressed, int run_app, int timeout_ms,
			  espl_error *err);

/* The ESP8266 ROM erases more than asked (protocol notes §5.4): the size
 * esptool sends so that the ROM erases just enough. */
uint32_t espl_rom_erase_size(uint32_t offset, uint32_t size);

/* Stub-only commands: fail with ESPL_EUNSUPPORTED in ROM mode. */
int espl_loader_change_baud(espl_loader *l, unsigned baud, espl_error *err);

/* During a write that keeps failing (blocks lost or garbled): switch the
 * stub one rung down the baud ladder (CHANGE_BAUDRATE at the current rate,
 * proved by a register read at the new one), so the caller can send the
 * same block again and go on; the stub keeps its write state across the
 * command.  ESPL_EUNSUPPORTED when there is no lower rung (check with
 * espl_loader_can_step_down); a link error when the chip could be found at
 * neither rate (reconnecting then uses the lower rate). */
int espl_loader_step_down(espl_loader *l, espl_error *err);
int espl_loader_can_step_down(const espl_loader *l);
int espl_loader_spi_set_params(espl_loader *l, uint32_t flash_size, espl_error *err);

/* Wait for the stub's "OHAI" greeting frame; switches mode to STUB. */
int espl_loader_wait_ohai(espl_loader *l, int timeout_ms, espl_error *err);

/* Read one raw SLIP frame (used by READ_FLASH's data stream).  *frame points
 * into the loader's buffer, valid until the next call. */
int espl_loader_read_frame(espl_loader *l, int timeout_ms, const uint8_t **frame,
			   size_t *len, espl_error *err);
/* Send one raw SLIP frame (READ_FLASH acknowledgements). */
int espl_loader_write_frame(espl_loader *l, const uint8_t *data, size_t len, espl_error *err);

#endif /* ESPLINE_LOADER_H */
