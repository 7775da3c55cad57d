/* flash_vendor.c - JEDEC flash manufacturer names; see
 * include/espline/flash_vendor.h. */
#include "espline/flash_vendor.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* JEDEC JEP106 bank-1 ids of SPI NOR makers seen on ESP8266 modules; the
 * alias is another name the same maker goes by (or was bought by). */
static const struct {
	uint8_t id;
	const char *name;
	const char *alias;
} vendors[] = {
	{ 0x01, "Spansion", "Cypress" }, { 0x0B, "XTX", NULL },       { 0x1C, "EON", NULL },
	{ 0x1F, "Adesto", "Atmel" },     { 0x20, "XMC", "Micron" },   { 0x37, "AMIC", NULL },
	{ 0x5E, "Zbit", NULL },          { 0x68, "Boya", NULL },      { 0x85, "Puya", NULL },
	{ 0x8C, "ESMT", NULL },          { 0x9D, "ISSI", NULL },      { 0xA1, "Fudan", NULL },
	{ 0xBF, "SST", "Microchip" },    { 0xC2, "Macronix", NULL },  { 0xC8, "GigaDevice", NULL },
	{ 0xCD, "TH", "Tenda" },         { 0xE0, "BergMicro", "Paragon" }, { 0xEF, "Winbond", NULL },
};

#define N_VENDORS (sizeof vendors / sizeof vendors[0])

const char *espl_flash_manufacturer_name(uint8_t id)
{
	for (size_t i = 0; i < N_VENDORS; i++)
		if (vendors[i].id == id)
			return vendors[i].name;
	return NULL;
}

int espl_flash_manufacturer_by_name(const char *name, uint8_t *id)
{
	for (size_t i = 0; i < N_VENDORS; i++)
		if (strcasecmp(vendors[i].name, name) == 0 ||
		    (vendors[i].alias && strcasecmp(vendors[i].alias, name) == 0)) {
			*id = vendors[i].id;
			return 0;
		}
	return -1;
}

const char *espl_flash_manufacturer_list(char *buf, size_t cap)
{
	if (cap == 0)
		return buf;
	buf[0] = '\0';
	for (size_t i = 0; i < N_VENDORS; i++) {
		size_t used = strlen(buf);
		if (used + 1 >= cap)
			break;
		snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", vendors[i].name);
	}
	return buf;
}
