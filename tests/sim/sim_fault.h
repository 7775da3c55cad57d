/*
 * sim_fault.h - fault injection for the simulated serial link.
 *
 * Parses fault specs given on the espline-sim command line and decides, one
 * byte at a time, what happens to each byte on the wire: passes, is dropped,
 * gets one bit flipped, is held back (stall), or triggers an unplug or a chip
 * reset.  Chip-side faults (silent chip, wrong magic, stuck sector, unplug or
 * reset at a flash offset) are only parsed here and handed to sim_chip.
 * It does no I/O and keeps no global state; randomness comes from a seeded
 * generator inside the engine, so a run is reproducible from its seed.
 *
 * Fault spec grammar (DIR is "rx" = host->chip, the default, or "tx" =
 * chip->host; N counts the bytes of that direction from 0, since the
 * simulator started, across reconnects and resets.  rx counts bytes as the
 * host sent them (after telnet unescaping); tx counts bytes as the chip
 * transmits them, boot log included, before any wrong-baud garbling):
 *
 *   drop@[DIR:]N           drop byte N
 *   corrupt@[DIR:]N        flip one bit of byte N
 *   drop~[DIR:]P           drop every byte with probability P (0 < P <= 1)
 *   corrupt~[DIR:]P        flip one bit of every byte with probability P
 *   stall@[DIR:]N:MS       hold the line for MS milliseconds before byte N
 *   unplug@[DIR:]N[:MS]    before byte N pull the cable; back after MS (default 1000)
 *   reset@[DIR:]N          before byte N pulse EN: the chip reboots
 *   unplug@flash:OFF[:MS]  unplug when a flash write reaches offset OFF
 *   reset@flash:OFF        reset when a flash write reaches offset OFF
 *   stuck@OFF              the 4 KiB sector holding OFF keeps bits at 1 on write
 *   silent                 the chip never answers
 *   magic:HEX              the chip-detect register reads HEX
 *   wrong-chip             same as magic:0x00F01D83 (an ESP32)
 *
 * Numbers take decimal or 0x hex and an optional K/M suffix (x1024).
 * Byte-position faults fire once; random ones on every byte they hit.
 *
 * Thread safety: an engine belongs to one device thread.
 */
#ifndef ESPLINE_SIM_FAULT_H
#define ESPLINE_SIM_FAULT_H

#include <stddef.h>
#include <stdint.h>

#include "sim_chip.h"

enum sim_dir { SIM_RX = 0, SIM_TX = 1 };

enum sim_fault_kind {
	SIM_FAULT_DROP,
	SIM_FAULT_CORRUPT,
	SIM_FAULT_STALL,
	SIM_FAULT_UNPLUG,
	SIM_FAULT_RESET,
	/* chip-side, passed to sim_chip */
	SIM_FAULT_FLASH_UNPLUG,
	SIM_FAULT_FLASH_RESET,
	SIM_FAULT_STUCK,
	SIM_FAULT_SILENT,
	SIM_FAULT_MAGIC,
	SIM_FAULT_KINDS
};

typedef struct sim_fault {
	enum sim_fault_kind kind;
	enum sim_dir dir;
	int random;        /* fires with probability p on each byte */
	double p;
	uint64_t at;       /* byte index, or flash offset for chip-side kinds */
	unsigned ms;       /* stall length / unplug time */
	uint32_t magic;
} sim_fault;

#define SIM_FAULTS_MAX 16

/* Parse one spec.  Returns 0, or -1 with a message in err. */
int sim_fault_parse(const char *spec, sim_fault *out, char *err, size_t errlen);

/* Short name of a kind, e.g. "drop". */
const char *sim_fault_kind_name(enum sim_fault_kind kind);

/* Fill the chip-side part of a chip config from a fault list. */
void sim_fault_chip_faults(const sim_fault *faults, size_t n, sim_chip_faults *out);

/* --- the per-byte engine ---------------------------------------------- */

typedef struct sim_fault_engine {
	sim_fault faults[SIM_FAULTS_MAX];
	uint8_t fired[SIM_FAULTS_MAX];
	size_t n;
	uint64_t count[2];                        /* bytes seen per direction */
	uint64_t rng;                             /* splitmix64 state */
	unsigned long injected[2][SIM_FAULT_KINDS]; /* per direction and kind */
} sim_fault_engine;

/* What to do with one byte.  Flags combine: a stall and a corrupt can hit
 * the same byte. */
typedef struct sim_byte_verdict {
	int pass;            /* deliver `byte` (possibly corrupted) */
	uint8_t byte;
	int dropped, corrupted;
	unsigned stall_ms;   /* wait this long before the byte */
	int unplug;          /* pull the cable before this byte (byte lost) */
	unsigned unplug_ms;
	int reset;           /* pulse EN before this byte (byte lost) */
	int fault_index;     /* the positional fault that fired, or -1 */
} sim_byte_verdict;

void sim_fault_engine_init(sim_fault_engine *e, const sim_fault *faults, size_t n, uint64_t seed);

/* Decide the fate of the next byte in direction dir. */
void sim_fault_byte(sim_fault_engine *e, enum sim_dir dir, uint8_t byte, sim_byte_verdict *v);

/* Total faults injected so far (all kinds, both directions). */
unsigned long sim_fault_total(const sim_fault_engine *e);

/* Parse an unsigned number: decimal or 0x hex, optional K/M suffix
 * (x1024, x1024*1024), optional trailing "B" after K/M.  The whole string
 * must be used.  Returns 0 or -1. */
int sim_parse_size(const char *s, uint64_t *out);

/* The engine's generator, for other seeded noise (line garbage). */
uint64_t sim_rng_next(uint64_t *state);

#endif /* ESPLINE_SIM_FAULT_H */
