/* fuzz_sim.c - libFuzzer target: the simulated chip's frame handler
 * (tests/sim/sim_chip.h: sim_chip_handle_frame).  The simulator faces
 * whatever a client under test sends, so it must never crash on bad input.
 *
 * Input: byte 0 picks the chip (flash size 64 KB..1 MB, crystal, random
 * flash contents) and byte 1 a chip-side fault (none, stuck sector, unplug
 * or reset at an offset); the rest is a SLIP byte stream from the host,
 * decoded into frames and handed to the chip one by one.  A chip that left
 * download mode is booted into it again, so later frames still count.
 * The io callbacks keep a virtual clock and check what the chip emits: a
 * reply is at least a header plus status, never longer than a READ_FLASH
 * packet. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "espline/slip.h"
#include "../sim/sim_chip.h"
#include "fuzz_util.h"

#define FUZZ_SIM_FRAME (0x4000 + 64)

typedef struct fuzz_sim_io {
	uint64_t now;
	unsigned baud;
	size_t emitted;
	int faults;
} fuzz_sim_io;

static void fuzz_sim_emit(void *ctx, const uint8_t *frame, size_t len)
{
	fuzz_sim_io *io = ctx;
	FUZZ_CHECK(frame != NULL);
	FUZZ_CHECK(len >= 1 && len <= 0x4000 + 64);
	if (len >= 2)
		(void)frame[len - 1];
	io->emitted++;
}

static void fuzz_sim_sleep(void *ctx, uint64_t us) { ((fuzz_sim_io *)ctx)->now += us; }
static uint64_t fuzz_sim_now(void *ctx) { return ((fuzz_sim_io *)ctx)->now; }
static void fuzz_sim_set_baud(void *ctx, unsigned baud) { ((fuzz_sim_io *)ctx)->baud = baud; }
static void fuzz_sim_reboot(void *ctx, int to_app) { (void)ctx; (void)to_app; }

static void fuzz_sim_fault(void *ctx, const char *what)
{
	FUZZ_CHECK(what != NULL && what[0] != '\0');
	((fuzz_sim_io *)ctx)->faults++;
}

static void fuzz_sim_config(const uint8_t sel[2], sim_chip_config *cfg)
{
	static const uint8_t caps[4] = { 0x10, 0x12, 0x13, 0x14 }; /* 64 KB .. 1 MB */
	sim_chip_config_defaults(cfg);
	uint8_t cap = caps[sel[0] & 3];
	cfg->jedec_id = 0x4000EFu | (uint32_t)cap << 16;
	cfg->flash_size = (size_t)1 << cap;
	cfg->xtal_mhz = sel[0] & 4 ? 40 : 26;
	cfg->flash_random = sel[0] >> 3 & 1;
	cfg->flash_seed = sel[0];
	long where = (long)(sel[1] >> 2) * 0x1000 % (long)cfg->flash_size;
	switch (sel[1] & 3) {
	case 1: cfg->faults.stuck_sector = where / 0x1000; break;
	case 2: cfg->faults.unplug_at_flash_offset = where; break;
	case 3: cfg->faults.reset_at_flash_offset = where; break;
	default: break;
	}
}

static int fuzz_sim_one(const uint8_t *data, size_t size)
{
	static uint8_t frame[FUZZ_SIM_FRAME];
	if (size < 2 || size > (256u << 10))
		return 0;
	fuzz_sim_io st = { 0, 115200, 0, 0 };
	sim_chip_io io = { .ctx = &st, .emit = fuzz_sim_emit, .sleep_us = fuzz_sim_sleep,
			   .now_us = fuzz_sim_now, .set_baud = fuzz_sim_set_baud,
			   .reboot = fuzz_sim_reboot, .fault = fuzz_sim_fault };
	sim_chip_config cfg;
	fuzz_sim_config(data, &cfg);
	sim_chip *chip = sim_chip_new(&cfg, &io);
	FUZZ_CHECK(chip != NULL);
	sim_chip_set_host_baud(chip, 115200);
	sim_chip_boot(chip, 1);

	espl_slip_decoder dec;
	espl_slip_decoder_init(&dec, frame, sizeof frame);
	for (size_t i = 2; i < size; i++) {
		if (espl_slip_feed(&dec, data[i]) != ESPL_SLIP_FRAME)
			continue;
		enum sim_chip_mode m = sim_chip_mode(chip);
		if (m != SIM_MODE_ROM && m != SIM_MODE_STUB)
			sim_chip_boot(chip, 1);
		sim_chip_handle_frame(chip, dec.frame, dec.len);
	}
	/* A frame with no bytes and a NULL frame are the transport's bugs, but
	 * must not bring the chip down either. */
	sim_chip_handle_frame(chip, frame, 0);
	sim_chip_handle_frame(chip, NULL, 0);

	size_t fsize = 0;
	uint8_t *flash = sim_chip_flash(chip, &fsize);
	FUZZ_CHECK(flash != NULL && fsize == cfg.flash_size);
	sim_chip_free(chip);
	return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_sim_one(data, size);
}
#endif
