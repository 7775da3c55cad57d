/*
 * sim_boot.h - what a simulated ESP8266 prints from the moment EN rises:
 * the mask ROM's banner, its flash boot (image header, segments, checksum),
 * the SDK's init-data check and the firmware's own banner, with the boot
 * faults a test may ask for.  docs/boot-model.md lists every text and rule
 * with its source.
 *
 * Pure: sim_boot_run() reads the flash and returns a plan (texts, each with
 * its baud rate and the quiet time before it, and how the boot ends); the
 * transport plays it on the wire and performs the reset the plan asks for.
 * Times are real-chip microseconds, unscaled.  Nothing here sleeps, prints
 * or allocates.
 *
 * Thread safety: none needed; a plan belongs to its caller.
 */
#ifndef ESPLINE_SIM_BOOT_H
#define ESPLINE_SIM_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "sim_flash.h"

/* SPI flash modes, numbered as in the image header's byte 2 (esptool). */
enum sim_spi_mode { SIM_SPI_QIO = 0, SIM_SPI_QOUT = 1, SIM_SPI_DIO = 2, SIM_SPI_DOUT = 3 };
#define SIM_SPI_ALL_MODES 0x0Fu   /* bit (1 << mode) per mode the part can do */

/* rst cause values the ROM prints (esp8266/Arduino doc/boards.rst). */
enum {
	SIM_RST_NONE = 0,          /* no reset: the loader jumped into the flash boot */
	SIM_RST_POWER_ON = 1,
	SIM_RST_EXTERNAL = 2,      /* EN pin; also after a software restart or an exception */
	SIM_RST_WATCHDOG = 4,
};

enum sim_boot_fault {
	SIM_BOOT_FAULT_NONE = 0,
	SIM_BOOT_FAULT_LOOP,       /* the firmware hangs before its banner; the watchdog resets it */
	SIM_BOOT_FAULT_BROWNOUT,   /* the supply sags: a reset fault_ms after every EN rise */
	SIM_BOOT_FAULT_DEAD_XTAL,  /* no clock: nothing at all, ever */
	SIM_BOOT_FAULT_EXCEPTION,  /* "Fatal exception" fault_ms after the banner, then a reset */
};

typedef struct sim_boot_config {
	unsigned xtal_mhz;         /* 26 or 40: the ROM prints at 115200 * xtal / 40 */
	unsigned spi_modes;        /* SIM_SPI_ALL_MODES bits the part supports; 0 = all */
	char marker[32];           /* the firmware's banner starts with this ("NodeMCU") */
	unsigned fw_baud;          /* the firmware's UART rate (115200) */
	uint32_t rom_delay_us;     /* EN rise -> the ROM's first byte */
	uint32_t load_us_per_kib;  /* the ROM reading a segment from flash */
	uint32_t sdk_init_us;      /* end of loading -> the SDK checks the init data */
	uint32_t fw_boot_us;       /* end of loading -> the firmware's banner (>= sdk_init_us) */
	uint32_t restart_us;       /* a printed error -> the reset that follows it */
	enum sim_boot_fault fault;
	uint32_t fault_ms;         /* LOOP: watchdog time after loading; BROWNOUT: period
	                              from EN rise; EXCEPTION: time after the banner */
} sim_boot_config;

/* Defaults: 26 MHz, every mode, "NodeMCU", 115200, ROM after 2 ms, 250 us
 * per KiB loaded, SDK check after 40 ms, banner 250 ms after loading,
 * restart 10 ms after an error, no fault. */
void sim_boot_config_defaults(sim_boot_config *c);

/* "qio,qout,dio,dout" (any subset, separated by ',' or '+') -> mode bits.
 * 0 or -1. */
int sim_boot_parse_modes(const char *s, unsigned *bits);
/* "none", "loop[:MS]", "brownout:MS", "dead-xtal", "exception[:MS]".  0 or -1. */
int sim_boot_parse_fault(const char *s, sim_boot_config *c);
/* "qio" ... "dout", or "mode N" for a byte no mode has. */
const char *sim_spi_mode_name(unsigned mode);

enum sim_boot_end {
	SIM_BOOT_END_DOWNLOAD,     /* the ROM loader waits for SLIP frames */
	SIM_BOOT_END_RUNNING,      /* the firmware runs and prints nothing more */
	SIM_BOOT_END_HANG,         /* stuck until the next reset (ets_main.c) */
	SIM_BOOT_END_RESET,        /* resets itself: reset_after_us after the last text */
	SIM_BOOT_END_SILENT,       /* a dead chip: no text, no answers */
};

#define SIM_BOOT_STEPS_MAX 96
#define SIM_BOOT_TEXT_MAX 12288

typedef struct sim_boot_step {
	uint64_t delay_us;         /* quiet line before this text (after the previous one ends) */
	unsigned baud;             /* the rate the chip sends it at */
	size_t off, len;           /* in plan->text */
} sim_boot_step;

typedef struct sim_boot_plan {
	size_t nsteps;
	sim_boot_step step[SIM_BOOT_STEPS_MAX];
	char text[SIM_BOOT_TEXT_MAX];
	size_t text_len;
	int truncated;             /* more text than fits (an absurd segment count) */
	enum sim_boot_end end;
	uint64_t reset_after_us;   /* END_RESET */
	int reset_cause;           /* END_RESET: the rst cause of the next boot */
	const char *outcome;       /* for logs: "running", "csum err", "bad magic", "rf_cal", ... */
	char banner[128];          /* the firmware banner found in the image ("" = none) */
} sim_boot_plan;

/* What the chip sends after a reset with this rst cause (SIM_RST_NONE: the
 * ROM loader jumped into the flash boot, so no ROM banner) with GPIO0 low
 * (download) or high.  flash is the part as the chip sees it (its wrap
 * flag included). */
void sim_boot_run(const sim_boot_config *cfg, const sim_flash *flash, int rst_cause, int download,
                  sim_boot_plan *plan);

/* How long the plan's texts and quiet times take on the wire, from EN rise
 * to the end of its last text (unscaled us). */
uint64_t sim_boot_plan_duration(const sim_boot_plan *plan);

/* The banner convention: the first maximal run of printable ASCII that
 * starts with marker in the first min(1 MiB, size) bytes of flash (the
 * ESP8266 maps at most 1 MiB of flash for code and constants), cut at
 * out_len - 1 characters.  Returns its length, 0 if there is none. */
size_t sim_boot_find_banner(const sim_flash *flash, const char *marker, char *out, size_t out_len);

/* The flash size an image header's byte 3 declares (high nibble, esptool's
 * ESP8266 table); 0 for a code no size has. */
size_t sim_boot_declared_size(uint8_t size_freq);

#endif /* ESPLINE_SIM_BOOT_H */
