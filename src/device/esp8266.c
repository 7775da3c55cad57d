/* esp8266.c - chip check and identification; see include/espline/esp8266.h. */
#include "espline/esp8266.h"
#include "espline/flash_vendor.h"

#include <stdio.h>
#include <string.h>

/* SPI0 controller registers used for the JEDEC id (protocol notes §4.4). */
#define SPI_CMD 0x60000200u
#define SPI_USER 0x6000021Cu
#define SPI_USER1 0x60000220u
#define SPI_USER2 0x60000224u
#define SPI_W0 0x60000240u
#define SPI_CMD_USR (1u << 18)
#define SPI_USER_COMMAND (1u << 31)
#define SPI_USER_MISO (1u << 28)
#define SPI_MISO_BITLEN_SHIFT 8
#define SPI_USER2_CMD_BITLEN_SHIFT 28
#define JEDEC_READ_ID 0x9F

typedef struct magic_name {
	uint32_t magic;
	const char *name;
} magic_name;

/* Magic words at 0x40001000 of Espressif ROMs (esptool / esptool-js tables). */
static const magic_name magics[] = {
	{ 0xFFF0C101, "ESP8266" },
	{ 0x00F01D83, "ESP32" },
	{ 0x000007C6, "ESP32-S2" },
	{ 0x00000009, "ESP32-S3" },
	{ 0x6921506F, "ESP32-C3" }, { 0x1B31506F, "ESP32-C3" },
	{ 0x4881606F, "ESP32-C3" }, { 0x4361606F, "ESP32-C3" },
	{ 0x0C21E06F, "ESP32-C2" }, { 0x6F51306F, "ESP32-C2" }, { 0x7C41A06F, "ESP32-C2" },
	{ 0x2CE0806F, "ESP32-C6" },
	{ 0x2421606F, "ESP32-C61" }, { 0x33F0206F, "ESP32-C61" }, { 0x4F81606F, "ESP32-C61" },
	{ 0x1101406F, "ESP32-C5" }, { 0x63E1406F, "ESP32-C5" },
	{ 0x5FD1406F, "ESP32-C5" }, { 0x30E1706F, "ESP32-C5" },
	{ 0xD7B73E80, "ESP32-H2" }, { 0x97E30068, "ESP32-H2" },
	{ 0x00000000, "ESP32-P4" }, { 0x0ADDBAD0, "ESP32-P4" }, { 0x07039AD9, "ESP32-P4" },
};

const char *espl_chip_name_for_magic(uint32_t magic)
{
	for (size_t i = 0; i < sizeof magics / sizeof *magics; i++)
		if (magics[i].magic == magic)
			return magics[i].name;
	return NULL;
}

int espl_esp8266_mac(const uint32_t efuse[4], uint8_t mac[6], espl_error *err)
{
	uint32_t mac0 = efuse[0], mac1 = efuse[1], mac3 = efuse[3];
	unsigned oui_sel = (mac1 >> 16) & 0xFF;

	if (mac3 != 0) {
		mac[0] = (uint8_t)(mac3 >> 16);
		mac[1] = (uint8_t)(mac3 >> 8);
		mac[2] = (uint8_t)mac3;
	} else if (oui_sel == 0) {
		mac[0] = 0x18; mac[1] = 0xFE; mac[2] = 0x34;
	} else if (oui_sel == 1) {
		mac[0] = 0xAC; mac[1] = 0xD0; mac[2] = 0x74;
	} else {
		return espl_fail(err, ESPL_EDEVICE, "unknown OUI selector 0x%02X in eFuse word 1 "
				 "(0x%08X): the eFuses may be corrupt", oui_sel, mac1);
	}
	mac[3] = (uint8_t)(mac1 >> 8);
	mac[4] = (uint8_t)mac1;
	mac[5] = (uint8_t)(mac0 >> 24);
	return 0;
}

uint32_t espl_esp8266_chip_id(const uint32_t efuse[4])
{
	return (efuse[0] >> 24) | ((efuse[1] & 0xFFFFFF) << 8);
}

static int efuse_bit(const uint32_t efuse[4], unsigned bit)
{
	return (efuse[bit / 32] >> (bit % 32)) & 1;
}

const char *espl_esp8266_description(const uint32_t efuse[4])
{
	int is_8285 = efuse_bit(efuse, 4) || efuse_bit(efuse, 80);
	if (!is_8285)
		return "ESP8266EX";
	/* Embedded flash size bits and the high-temperature flag. */
	int big = efuse_bit(efuse, 121) || efuse_bit(efuse, 122) || efuse_bit(efuse, 123);
	int hot = efuse_bit(efuse, 5);
	if (big)
		return hot ? "ESP8285H16" : "ESP8285N16";
	return hot ? "ESP8285H08" : "ESP8285N08";
}

unsigned espl_esp8266_xtal_mhz(uint32_t clkdiv, unsigned baud, double *estimate)
{
	/* The ESP8266 UART clock is the crystal divided by 2. */
	double est = (double)baud * (double)(clkdiv & 0xFFFFF) / 1e6 / 2.0;
	if (estimate)
		*estimate = est;
	return est > 33.0 ? 40 : 26;
}

size_t espl_flash_size_from_capacity(uint8_t cap)
{
	switch (cap) {
	case 0x12: case 0x32: return 256u << 10;
	case 0x13: case 0x33: return 512u << 10;
	case 0x14: case 0x34: return 1u << 20;
	case 0x15: case 0x35: return 2u << 20;
	case 0x16: case 0x36: return 4u << 20;
	case 0x17: case 0x37: return 8u << 20;
	case 0x18: case 0x38: return 16u << 20;
	case 0x19: case 0x39: return 32u << 20;
	case 0x1A: case 0x3A: case 0x20: return 64u << 20;
	case 0x1B: case 0x21: return 128u << 20;
	case 0x1C: case 0x22: return 256u << 20;
	default: return 0;
	}
}

const char *espl_flash_vendor(uint8_t manufacturer)
{
	const char *name = espl_flash_manufacturer_name(manufacturer);
	return name ? name : "unknown";
}

int espl_esp8266_check_chip(espl_loader *l, espl_error *err)
{
	uint32_t magic;
	const char *name;

	ESPL_TRY(espl_loader_read_reg(l, ESPL_CHIP_MAGIC_REG, &magic, err));
	if (magic != ESPL_ESP8266_MAGIC) /* a garbled reply, or really another chip? */
		ESPL_TRY(espl_loader_read_reg(l, ESPL_CHIP_MAGIC_REG, &magic, err));
	if (magic == ESPL_ESP8266_MAGIC)
		return 0;
	name = espl_chip_name_for_magic(magic);
	if (name)
		return espl_fail(err, ESPL_ECHIP, "found %s (magic 0x%08X), this recipe is for ESP8266: "
				 "wrong module in the jig", name, magic);
	return espl_fail(err, ESPL_ECHIP, "unknown chip (magic word 0x%08X at 0x40001000, an ESP8266 "
			 "has 0x%08X): not an ESP8266", magic, ESPL_ESP8266_MAGIC);
}

/* Run one SPI user command that reads miso_bits and return W0. */
static int spi_read_command(espl_loader *l, uint8_t cmd, unsigned miso_bits, uint32_t *out,
			    espl_error *err)
{
	uint32_t user, user2, v = SPI_CMD_USR;

	ESPL_TRY(espl_loader_read_reg(l, SPI_USER, &user, err));
	ESPL_TRY(espl_loader_read_reg(l, SPI_USER2, &user2, err));
	ESPL_TRY(espl_loader_write_reg(l, SPI_USER1, (miso_bits - 1) << SPI_MISO_BITLEN_SHIFT,
				       0xFFFFFFFF, 0, err));
	ESPL_TRY(espl_loader_write_reg(l, SPI_USER, SPI_USER_COMMAND | SPI_USER_MISO, 0xFFFFFFFF, 0, err));
	ESPL_TRY(espl_loader_write_reg(l, SPI_USER2, (7u << SPI_USER2_CMD_BITLEN_SHIFT) | cmd,
				       0xFFFFFFFF, 0, err));
	ESPL_TRY(espl_loader_write_reg(l, SPI_W0, 0, 0xFFFFFFFF, 0, err));
	ESPL_TRY(espl_loader_write_reg(l, SPI_CMD, SPI_CMD_USR, 0xFFFFFFFF, 0, err));
	for (int i = 0; i < 10 && (v & SPI_CMD_USR); i++)
		ESPL_TRY(espl_loader_read_reg(l, SPI_CMD, &v, err));
	if (v & SPI_CMD_USR)
		return espl_fail(err, ESPL_EDEVICE, "SPI flash command 0x%02X did not complete", cmd);
	ESPL_TRY(espl_loader_read_reg(l, SPI_W0, out, err));
	ESPL_TRY(espl_loader_write_reg(l, SPI_USER, user, 0xFFFFFFFF, 0, err));
	ESPL_TRY(espl_loader_write_reg(l, SPI_USER2, user2, 0xFFFFFFFF, 0, err));
	return 0;
}

int espl_esp8266_flash_id(espl_loader *l, uint32_t *id, espl_error *err)
{
	if (espl_loader_mode(l) == ESPL_MODE_ROM) {
		/* The ROM attaches the SPI flash as a side effect of FLASH_BEGIN(0,0). */
		ESPL_TRY(espl_loader_flash_begin(l, 0, 0, 0, ESPL_ROM_WRITE_BLOCK, 0, err));
	}
	if (spi_read_command(l, JEDEC_READ_ID, 24, id, err) < 0) {
		espl_error_prefix(err, "reading the flash JEDEC id");
		return err->code;
	}
	*id &= 0xFFFFFF;
	if (*id == 0xFFFFFF || *id == 0)
		return espl_fail(err, ESPL_EDEVICE, "flash JEDEC id reads 0x%06X: the chip cannot talk to "
				 "its SPI flash (bad solder joint, or a module without flash)", *id);
	return 0;
}

/* Identity registers: four efuse words and the UART divider. */
#define ID_REGS 5
/* Rounds of reads before two consecutive ones must have agreed. */
#define STABLE_READ_ROUNDS 4

static int read_id_regs(espl_loader *l, uint32_t v[ID_REGS], espl_error *err)
{
	for (int i = 0; i < 4; i++)
		ESPL_TRY(espl_loader_read_reg(l, ESPL_EFUSE_BASE + 4u * (uint32_t)i, &v[i], err));
	return espl_loader_read_reg(l, ESPL_UART_CLKDIV_REG, &v[4], err);
}

static int read_flash_id_regs(espl_loader *l, uint32_t v[ID_REGS], espl_error *err)
{
	return espl_esp8266_flash_id(l, &v[0], err);
}

/* Replies carry no checksum: a garbled command reads another register and a
 * garbled reply another value, and the unit would be recorded with a wrong
 * MAC or flash.  Read until two consecutive rounds agree. */
static int read_stable(espl_loader *l, int (*read)(espl_loader *, uint32_t *, espl_error *),
		       uint32_t out[ID_REGS], const char *what, espl_error *err)
{
	uint32_t prev[ID_REGS] = { 0 };
	ESPL_TRY(read(l, prev, err));
	for (int round = 1; round < STABLE_READ_ROUNDS; round++) {
		memset(out, 0, sizeof(uint32_t) * ID_REGS);
		ESPL_TRY(read(l, out, err));
		if (memcmp(prev, out, sizeof prev) == 0)
			return 0;
		espl_loader_log(l, ESPL_LOG_DEBUG, "%s read twice differs; reading again", what);
		memcpy(prev, out, sizeof prev);
	}
	return espl_fail(err, ESPL_EPROTO, "the %s reads differently each time (%d reads): the serial "
			 "line is corrupting data; check the cable or lower the baud rate", what,
			 STABLE_READ_ROUNDS);
}

int espl_esp8266_identify(espl_loader *l, espl_chip_info *info, espl_error *err)
{
	uint32_t regs[ID_REGS], id[ID_REGS], clkdiv;

	memset(info, 0, sizeof *info);
	ESPL_TRY(read_stable(l, read_id_regs, regs, "chip's efuse/clock", err));
	memcpy(info->efuse, regs, sizeof info->efuse);
	clkdiv = regs[4];
	ESPL_TRY(espl_esp8266_mac(info->efuse, info->mac, err));
	snprintf(info->mac_str, sizeof info->mac_str, "%02x:%02x:%02x:%02x:%02x:%02x", info->mac[0],
		 info->mac[1], info->mac[2], info->mac[3], info->mac[4], info->mac[5]);
	info->chip_id = espl_esp8266_chip_id(info->efuse);
	snprintf(info->chip, sizeof info->chip, "%s", espl_esp8266_description(info->efuse));

	info->xtal_mhz = espl_esp8266_xtal_mhz(clkdiv, espl_loader_baud(l), &info->xtal_estimate_mhz);
	if (info->xtal_estimate_mhz < info->xtal_mhz - 1.0 || info->xtal_estimate_mhz > info->xtal_mhz + 1.0)
		espl_loader_log(l, ESPL_LOG_WARN, "crystal estimate %.1f MHz is far from %u MHz",
				info->xtal_estimate_mhz, info->xtal_mhz);

	ESPL_TRY(read_stable(l, read_flash_id_regs, id, "flash JEDEC id", err));
	info->flash_id = id[0];
	info->flash_manufacturer = (uint8_t)info->flash_id;
	info->flash_type = (uint8_t)(info->flash_id >> 8);
	info->flash_capacity = (uint8_t)(info->flash_id >> 16);
	info->flash_vendor = espl_flash_vendor(info->flash_manufacturer);
	info->flash_size = espl_flash_size_from_capacity(info->flash_capacity);
	if (info->flash_size == 0) {
		espl_loader_log(l, ESPL_LOG_WARN, "unknown flash capacity byte 0x%02X (JEDEC id 0x%06X); "
				"flash size unknown", info->flash_capacity, info->flash_id);
		return 0;
	}
	espl_loader_set_flash_size(l, info->flash_size);
	if (espl_loader_mode(l) == ESPL_MODE_STUB && info->flash_size <= (16u << 20))
		ESPL_TRY(espl_loader_spi_set_params(l, (uint32_t)info->flash_size, err));
	return 0;
}
