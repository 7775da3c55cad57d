/*
 * flashmap.h - where the non-OS SDK keeps its system sectors, computed from
 * the flash size (protocol notes §9), so recipes never hard-code addresses.
 *
 * For a flash of S bytes (as the image header declares it; normally the
 * detected size): RF calibration at S - 0x5000, esp_init_data_default at
 * S - 0x4000, blank system parameters at S - 0x2000.
 *
 * Pure functions; thread-safe.
 */
#ifndef ESPLINE_FLASHMAP_H
#define ESPLINE_FLASHMAP_H

#include <stddef.h>
#include <stdint.h>

#include "espline/error.h"

typedef struct espl_flashmap {
	size_t flash_size;
	uint32_t rf_cal;      /* 5th sector from the end (SDK >= 1.5.4.1) */
	uint32_t init_data;   /* 4th sector from the end */
	uint32_t blank;       /* 2nd sector from the end (system params) */
} espl_flashmap;

#define ESPL_FLASHMAP_RF_CAL_FROM_END 0x5000u
#define ESPL_FLASHMAP_INIT_DATA_FROM_END 0x4000u
#define ESPL_FLASHMAP_BLANK_FROM_END 0x2000u

/* Fails with ESPL_EARG for sizes that are not 256 KiB .. 16 MiB powers of 2. */
int espl_flashmap_for_size(size_t flash_size, espl_flashmap *map, espl_error *err);

/* The arithmetic alone, for a size the caller checked (>= 0x5000): the one
 * place the system-sector offsets are applied (the recipe uses it too). */
void espl_flashmap_layout(size_t flash_size, espl_flashmap *map);

/* Parse "512KB", "1MB", "4M", "4194304", "0x400000" into bytes. */
int espl_size_parse(const char *s, size_t *bytes, espl_error *err);
/* "512KB", "4MB" ...; buf of 16 bytes. */
const char *espl_size_name(size_t bytes, char *buf, size_t cap);

#endif /* ESPLINE_FLASHMAP_H */
