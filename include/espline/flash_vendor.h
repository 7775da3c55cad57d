/*
 * flash_vendor.h - names of the SPI NOR flash makers found on ESP8266
 * modules, by JEDEC manufacturer id: for identify's log, the recipe's
 * expect.flash_manufacturer (names or ids) and its error messages.
 *
 * Pure data, no device access.  Thread-safe (the table is constant).
 */
#ifndef ESPLINE_FLASH_VENDOR_H
#define ESPLINE_FLASH_VENDOR_H

#include <stddef.h>
#include <stdint.h>

/* JEDEC manufacturer id -> name ("Winbond"), or NULL if not in the table. */
const char *espl_flash_manufacturer_name(uint8_t id);

/* Name (case-insensitive; also a maker's other name, e.g. "Cypress" for
 * Spansion) -> id: 0, or -1 if unknown. */
int espl_flash_manufacturer_by_name(const char *name, uint8_t *id);

/* The names in table order, "A, B, C", into buf (truncated to cap). */
const char *espl_flash_manufacturer_list(char *buf, size_t cap);

#endif /* ESPLINE_FLASH_VENDOR_H */
