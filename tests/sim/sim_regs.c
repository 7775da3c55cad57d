/*
 * sim_regs.c - what READ_REG/WRITE_REG see on the simulated ESP8266: the
 * chip-detect ROM word, UART registers, eFuse MAC words, the SPI0 block with
 * a user-command engine talking to the flash model, and a small scratch
 * store so that a written register reads back.  Unknown addresses read 0,
 * as any address is readable on the real chip.
 */
#include <string.h>

#include "sim_chip_int.h"

#define REG_MAGIC 0x40001000u
#define REG_UART_CLKDIV 0x60000014u
#define REG_UART_DATE 0x60000078u
#define REG_EFUSE0 0x3FF00050u
#define REG_EFUSE3 0x3FF0005Cu
#define REG_SPI_BASE 0x60000200u
#define REG_SPI_END 0x60000280u

#define SPI_CMD 0x00
#define SPI_ADDR 0x04
#define SPI_USER 0x1C
#define SPI_USER1 0x20
#define SPI_USER2 0x24
#define SPI_W0 0x40
#define SPI_CMD_USR (1u << 18)
#define SPI_CMD_RDID (1u << 28)  /* esptool 1.x read the JEDEC id with this bit */
#define SPI_USR_COMMAND (1u << 31)
#define SPI_USR_ADDR (1u << 30)
#define SPI_USR_MISO (1u << 28)
#define SPI_USR_MOSI (1u << 27)

#define SPI(c, off) ((c)->regs.spi[(off) / 4])

/* SPI_USER1 as the boot code leaves it: 24-bit addresses and a long MISO
 * phase (256 bits).  esptool-js 0.7 never sets the MISO length on the
 * ESP8266 (it writes it to 0x60000200 instead, believing the chip has an
 * ESP32-style MISO_DLEN register at offset 0), so its RDID reads as many
 * bits as this leaves; with 0 it would see only the manufacturer byte. */
#define SPI_USER1_AT_BOOT (23u << 26 | 255u << 8)

void sim_regs_reset(sim_chip *c)
{
	memset(&c->regs, 0, sizeof c->regs);
	c->regs.spi[0x20 / 4] = SPI_USER1_AT_BOOT;
}

/* eFuse words that make esptool print cfg.mac (protocol notes 4.2). */
static uint32_t efuse_word(const sim_chip *c, unsigned idx)
{
	const uint8_t *m = c->cfg.mac;
	uint32_t oui = (uint32_t)m[0] << 16 | (uint32_t)m[1] << 8 | m[2];
	uint32_t oui_code = 0, mac3 = 0;
	if (oui == 0x18FE34)
		oui_code = 0;
	else if (oui == 0xACD074)
		oui_code = 1;
	else
		mac3 = oui;
	switch (idx) {
	case 0: return (uint32_t)m[5] << 24;
	case 1: return oui_code << 16 | (uint32_t)m[3] << 8 | m[4];
	case 2: return 0;       /* bit 16 clear: ESP8266EX, not ESP8285 */
	default: return mac3;
	}
}

static uint32_t uart_clkdiv(const sim_chip *c)
{
	/* clients estimate xtal = baud * div / 1e6 / 2 (esptool-js getCrystalFreq) */
	uint64_t num = (uint64_t)c->cfg.xtal_mhz * 2000000u;
	unsigned baud = c->uart_baud ? c->uart_baud : 115200;
	return (uint32_t)((num + baud / 2) / baud) & 0xFFFFF;
}

static uint8_t sfdp_byte(const sim_chip *c, uint32_t addr)
{
	/* A Winbond-like SFDP header; byte 0x10 (second parameter header id) is
	 * 0x84, so esptool's XMC probe (looking for 0x20) leaves it alone. */
	static const uint8_t table[] = {
		'S', 'F', 'D', 'P', 0x06, 0x01, 0x01, 0xFF,
		0x00, 0x06, 0x01, 0x10, 0x80, 0x00, 0x00, 0xFF,
		0x84, 0x00, 0x01, 0x02, 0xD0, 0x00, 0x00, 0xFF,
	};
	(void)c;
	return addr < sizeof table ? table[addr] : 0xFF;
}

/* Bytes the flash shifts out for one user command. */
static void flash_reply(sim_chip *c, uint8_t cmd, uint32_t addr, uint8_t *out, size_t n)
{
	uint32_t id = c->cfg.jedec_id;
	bool busy = sim_now(c) < c->busy_until;
	for (size_t i = 0; i < n; i++) {
		switch (cmd) {
		case 0x9F: out[i] = i < 3 ? (uint8_t)(id >> (8 * i)) : 0x00; break;
		case 0x90: out[i] = (i % 2 == 0) ? (uint8_t)id : (uint8_t)((id >> 16) - 1); break;
		case 0x5A: out[i] = sfdp_byte(c, addr + (uint32_t)i); break;
		case 0x05: out[i] = (uint8_t)(c->regs.status[0] | (busy ? 1 : 0)); break;
		case 0x35: out[i] = (uint8_t)c->regs.status[1]; break;
		case 0x15: out[i] = (uint8_t)c->regs.status[2]; break;
		case 0x03:
		case 0x0B:
			if (sim_flash_read(&c->flash, addr + (uint32_t)i, &out[i], 1) != 0)
				out[i] = 0xFF;
			break;
		default: out[i] = 0xFF; break;
		}
	}
}

static void run_user_command(sim_chip *c)
{
	uint32_t user = SPI(c, SPI_USER), user1 = SPI(c, SPI_USER1);
	uint8_t cmd = (uint8_t)SPI(c, SPI_USER2);
	unsigned miso_bits = (user & SPI_USR_MISO) ? ((user1 >> 8) & 0x1FF) + 1 : 0;
	unsigned mosi_bits = (user & SPI_USR_MOSI) ? ((user1 >> 17) & 0x1FF) + 1 : 0;
	unsigned addr_bits = (user & SPI_USR_ADDR) ? ((user1 >> 26) & 0x3F) + 1 : 0;
	/* The address register holds at most 32 bits; a longer address phase
	 * (the field allows 64) shifts out the whole register. */
	if (addr_bits > 32)
		addr_bits = 32;
	uint32_t addr = addr_bits ? SPI(c, SPI_ADDR) >> (32 - addr_bits) : 0;
	if (!c->flash_attached || !(user & SPI_USR_COMMAND))
		return;  /* pins not routed to the flash: nothing shifts in */
	switch (cmd) {
	case 0x06: c->regs.status[0] |= 0x02; break;
	case 0x04: c->regs.status[0] &= ~0x02u; break;
	case 0x01:
		if (mosi_bits >= 8)
			c->regs.status[0] = SPI(c, SPI_W0) & 0xFC;
		if (mosi_bits >= 16)
			c->regs.status[1] = (SPI(c, SPI_W0) >> 8) & 0xFF;
		break;
	default: break;
	}
	size_t n = (miso_bits + 7) / 8;
	if (n == 0)
		return;
	uint8_t buf[64];
	if (n > sizeof buf)
		n = sizeof buf;
	flash_reply(c, cmd, addr, buf, n);
	for (size_t i = 0; i < n; i++) {
		uint32_t *w = &c->regs.spi[SPI_W0 / 4 + i / 4];
		unsigned shift = 8 * (i % 4);
		*w = (*w & ~(0xFFu << shift)) | (uint32_t)buf[i] << shift;
	}
}

static void spi_write(sim_chip *c, uint32_t off, uint32_t value)
{
	c->regs.spi[off / 4] = value;
	if (off != SPI_CMD)
		return;
	if (value & SPI_CMD_USR)
		run_user_command(c);
	if ((value & SPI_CMD_RDID) && c->flash_attached)
		SPI(c, SPI_W0) = c->cfg.jedec_id & 0xFFFFFF;
	/* every command completes at once: the busy bits read back clear */
	SPI(c, SPI_CMD) = 0;
}

static int scratch_find(const sim_chip *c, uint32_t addr)
{
	for (unsigned i = 0; i < c->regs.scratch_n; i++)
		if (c->regs.scratch_addr[i] == addr)
			return (int)i;
	return -1;
}

uint32_t sim_regs_read(sim_chip *c, uint32_t addr)
{
	if (addr == REG_MAGIC)
		return c->cfg.faults.chip_magic ? c->cfg.faults.chip_magic : SIM_ESP8266_MAGIC;
	if (addr == REG_UART_DATE)
		return SIM_UART_DATE;
	if (addr == REG_UART_CLKDIV)
		return uart_clkdiv(c);
	if (addr >= REG_EFUSE0 && addr <= REG_EFUSE3 && addr % 4 == 0)
		return efuse_word(c, (addr - REG_EFUSE0) / 4);
	if (addr >= REG_SPI_BASE && addr < REG_SPI_END)
		return c->regs.spi[(addr - REG_SPI_BASE) / 4];
	int i = scratch_find(c, addr);
	return i >= 0 ? c->regs.scratch_val[i] : 0;
}

void sim_regs_write(sim_chip *c, uint32_t addr, uint32_t value)
{
	if (addr >= REG_SPI_BASE && addr < REG_SPI_END) {
		spi_write(c, (addr - REG_SPI_BASE) & ~3u, value);
		return;
	}
	int i = scratch_find(c, addr);
	if (i < 0) {
		if (c->regs.scratch_n == SIM_SCRATCH_REGS)
			return;  /* full: further registers just read 0 */
		i = (int)c->regs.scratch_n++;
		c->regs.scratch_addr[i] = addr;
	}
	c->regs.scratch_val[i] = value;
}
