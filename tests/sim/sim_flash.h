/*
 * sim_flash.h - a SPI NOR flash part for the simulated ESP8266: erase sets
 * bytes to 0xFF, programming can only clear bits (new = old & data), an
 * optional stuck sector keeps some bits at 1.  Every operation reports how
 * long the real part (W25Q32 class, typical datasheet values) would take, in
 * unscaled microseconds; the caller decides whether to sleep or to record the
 * flash as busy.  It does not know about the loader protocol or addresses
 * the ESP8266 "believes" in; bounds are the physical size.
 *
 * Thread-safety: none; a sim_flash belongs to one sim_chip.
 */
#ifndef ESPLINE_SIM_FLASH_H
#define ESPLINE_SIM_FLASH_H

#include <stddef.h>
#include <stdint.h>

#define SIM_FLASH_SECTOR 0x1000u
#define SIM_FLASH_BLOCK 0x10000u
#define SIM_FLASH_PAGE 0x100u

/* Typical timings of a 3.3 V W25Q32-class part. */
#define SIM_FLASH_PAGE_PROGRAM_US 700u
#define SIM_FLASH_SECTOR_ERASE_US 45000u
#define SIM_FLASH_BLOCK_ERASE_US 150000u
#define SIM_FLASH_CHIP_ERASE_US_PER_4MB 9000000u

/* The bits a stuck sector refuses to program (they stay 1). */
#define SIM_FLASH_STUCK_MASK 0x01u

enum sim_flash_result {
	SIM_FLASH_OK = 0,
	SIM_FLASH_OUT_OF_RANGE = -1,   /* beyond the physical end */
	SIM_FLASH_VERIFY_FAILED = -2,  /* read-back differs from old & data */
};

typedef struct sim_flash {
	uint8_t *data;
	size_t size;
	long stuck_sector;      /* -1 = none */
	int wrap;               /* a part whose JEDEC id claims more than its die: addresses at or
	                           past size alias modulo size (the die ignores the high address
	                           bits), for reads, programs and erases alike; 0 = they are out
	                           of range */
} sim_flash;

/* Whether a part with this JEDEC id (capacity byte 2^N, as read from W0)
 * and this die size claims more than it has: the counterfeit "4 MB" part
 * with a 1 MB die.  Such a part gets wrap = 1. */
int sim_flash_claims_more(uint32_t jedec_id, size_t size);

/* The die address that addr reaches: addr % size when the part wraps,
 * else addr unchanged (the caller's range check decides).  One function,
 * so every access (loader commands, the boot model) aliases the same way. */
uint64_t sim_flash_alias(const sim_flash *f, uint64_t addr);

/* All 0xFF, or pseudo-random bytes from seed when random is set. 0 / -ENOMEM. */
int sim_flash_init(sim_flash *f, size_t size, int random, uint32_t seed);
void sim_flash_free(sim_flash *f);
/* Fill one 4 KiB sector with pseudo-random bytes from *x (xorshift32 state,
 * advanced): a used module's leftovers.  Sectors past the end are ignored. */
void sim_flash_dirty_sector(sim_flash *f, uint32_t sector, uint32_t *x);

int sim_flash_erase_sector(sim_flash *f, uint32_t sector, uint64_t *us);
int sim_flash_erase_block(sim_flash *f, uint32_t block, uint64_t *us);
void sim_flash_erase_chip(sim_flash *f, uint64_t *us);

/* Erase count sectors from start_sector the way both the ROM and the stub
 * do: sector erases up to a 64 KiB boundary, block erases while at least a
 * block remains, sector erases for the tail.  Adds the time to *us. */
int sim_flash_erase_range(sim_flash *f, uint32_t start_sector, uint32_t count, uint64_t *us);

/* Page-program n bytes at addr (AND semantics), adding the time to *us. */
int sim_flash_program(sim_flash *f, uint32_t addr, const uint8_t *src, size_t n, uint64_t *us);

int sim_flash_read(const sim_flash *f, uint32_t addr, uint8_t *dst, size_t n);

/* Raw image files.  load: a shorter file leaves the rest as it is. 0 or -errno. */
int sim_flash_load(sim_flash *f, const char *path);
int sim_flash_save(const sim_flash *f, const char *path);

#endif /* ESPLINE_SIM_FLASH_H */
