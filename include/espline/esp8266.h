/*
 * esp8266.h - what a connected ESP8266 is: chip family check, MAC, chip id,
 * crystal, flash JEDEC id and size.
 *
 * The decode functions are pure (unit-tested against known values); the
 * espl_esp8266_* functions that take a loader read registers through it.
 * The flash id is read with the SPI-controller register sequence esptool uses
 * (there is no loader command for it).
 *
 * Thread safety: pure functions are thread-safe; loader functions follow the
 * loader's one-thread rule.
 */
#ifndef ESPLINE_ESP8266_H
#define ESPLINE_ESP8266_H

#include <stddef.h>
#include <stdint.h>

#include "espline/error.h"
#include "espline/loader.h"

#define ESPL_EFUSE_BASE 0x3FF00050u   /* four words: 0x50, 0x54, 0x58, 0x5C */
#define ESPL_UART_CLKDIV_REG 0x60000014u

typedef struct espl_chip_info {
	char chip[32];              /* "ESP8266EX", "ESP8285N08", ... */
	uint32_t efuse[4];
	uint8_t mac[6];
	char mac_str[18];           /* "5c:cf:7f:12:34:56" */
	uint32_t chip_id;           /* as system_get_chip_id() */
	unsigned xtal_mhz;          /* 26 or 40 */
	double xtal_estimate_mhz;
	uint32_t flash_id;          /* JEDEC: manufacturer | type << 8 | capacity << 16 */
	uint8_t flash_manufacturer, flash_type, flash_capacity;
	const char *flash_vendor;   /* "Winbond", ..., "unknown" */
	size_t flash_size;          /* bytes; 0 if the capacity byte is unknown */
} espl_chip_info;

/* Name of the Espressif chip with this magic word at 0x40001000, or NULL. */
const char *espl_chip_name_for_magic(uint32_t magic);

/* MAC from the eFuse words with esptool's OUI rule; ESPL_EDEVICE for an
 * unknown OUI byte. */
int espl_esp8266_mac(const uint32_t efuse[4], uint8_t mac[6], espl_error *err);
uint32_t espl_esp8266_chip_id(const uint32_t efuse[4]);
/* "ESP8266EX" or an ESP8285 variant. */
const char *espl_esp8266_description(const uint32_t efuse[4]);
/* 26 or 40 from UART CLKDIV read while the host uses baud. */
unsigned espl_esp8266_xtal_mhz(uint32_t clkdiv, unsigned baud, double *estimate);
/* Bytes for a JEDEC capacity byte, 0 if unknown. */
size_t espl_flash_size_from_capacity(uint8_t capacity);
/* Vendor for a JEDEC manufacturer byte; "unknown" if not in the table. */
const char *espl_flash_vendor(uint8_t manufacturer);

/* Read 0x40001000 and fail with ESPL_ECHIP unless it is an ESP8266. */
int espl_esp8266_check_chip(espl_loader *l, espl_error *err);
/* JEDEC id via the SPI user-command registers. */
int espl_esp8266_flash_id(espl_loader *l, uint32_t *id, espl_error *err);
/* Everything above; also records the flash size in the loader (and tells
 * the stub, SPI_SET_PARAMS). */
int espl_esp8266_identify(espl_loader *l, espl_chip_info *info, espl_error *err);

#endif /* ESPLINE_ESP8266_H */
