/*
 * sim_boot.c - the boot path of a simulated ESP8266 (see sim_boot.h and
 * docs/boot-model.md, which cites the source of every text and rule here).
 */
#include "sim_boot.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_wire.h"

#define IMAGE_MAGIC 0xE9u
#define CHECKSUM_SEED 0xEFu
#define ROM_CHUNK 16u              /* the ROM reads the image 16 bytes at a time */
#define ROM_SLOW_BYTES 16u         /* read before the header's SPI mode applies */
#define SEGMENT_LEN_MAX (1u << 20) /* more than all of the chip's RAM */
#define INIT_DATA_FROM_END 0x4000u /* esp_init_data_default: flash size - 16 KiB */
#define INIT_DATA_VERSION 0x05u
#define BANNER_SCAN_MAX (1u << 20) /* the flash the cache can map */
#define BOOT_MODE_UART 1           /* (GPIO15 << 2) | (GPIO0 << 1) | GPIO2 */
#define BOOT_MODE_FLASH 3

static const char *const mode_names[4] = { "qio", "qout", "dio", "dout" };

void sim_boot_config_defaults(sim_boot_config *c)
{
	memset(c, 0, sizeof *c);
	c->xtal_mhz = 26;
	c->spi_modes = SIM_SPI_ALL_MODES;
	snprintf(c->marker, sizeof c->marker, "NodeMCU");
	c->fw_baud = 115200;
	c->rom_delay_us = 2000;
	c->load_us_per_kib = 250;
	c->sdk_init_us = 40000;
	c->fw_boot_us = 250000;
	c->restart_us = 10000;
	c->fault = SIM_BOOT_FAULT_NONE;
}

const char *sim_spi_mode_name(unsigned mode)
{
	return mode < 4 ? mode_names[mode] : "unknown mode";
}

int sim_boot_parse_modes(const char *s, unsigned *bits)
{
	unsigned out = 0;
	const char *p = s;
	while (*p) {
		size_t n = strcspn(p, ",+"); /* '+' too: --dev lists split at commas */
		unsigned m;
		for (m = 0; m < 4; m++)
			if (strlen(mode_names[m]) == n && !strncmp(p, mode_names[m], n))
				break;
		if (m == 4)
			return -1;
		out |= 1u << m;
		p += n;
		if (*p && !*++p)
			return -1; /* a separator with nothing after it */
	}
	if (!out)
		return -1;
	*bits = out;
	return 0;
}

/* "name" or "name:MS"; *ms untouched when absent.  0 or -1. */
static int split_ms(const char *s, const char *name, uint32_t *ms, int *has_ms)
{
	size_t n = strlen(name);
	*has_ms = 0;
	if (strncmp(s, name, n))
		return -1;
	if (s[n] == '\0')
		return 0;
	if (s[n] != ':')
		return -1;
	char *end;
	unsigned long v = strtoul(s + n + 1, &end, 10);
	if (end == s + n + 1 || *end || v == 0 || v > 3600000ul)
		return -1;
	*ms = (uint32_t)v;
	*has_ms = 1;
	return 0;
}

int sim_boot_parse_fault(const char *s, sim_boot_config *c)
{
	uint32_t ms = 0;
	int has_ms;
	if (!strcmp(s, "none")) {
		c->fault = SIM_BOOT_FAULT_NONE;
	} else if (!strcmp(s, "dead-xtal")) {
		c->fault = SIM_BOOT_FAULT_DEAD_XTAL;
	} else if (!split_ms(s, "loop", &ms, &has_ms)) {
		c->fault = SIM_BOOT_FAULT_LOOP;
		c->fault_ms = has_ms ? ms : 500;
	} else if (!split_ms(s, "exception", &ms, &has_ms)) {
		c->fault = SIM_BOOT_FAULT_EXCEPTION;
		c->fault_ms = has_ms ? ms : 100;
	} else if (!split_ms(s, "brownout", &ms, &has_ms) && has_ms) {
		c->fault = SIM_BOOT_FAULT_BROWNOUT;
		c->fault_ms = ms;
	} else {
		return -1;
	}
	return 0;
}

size_t sim_boot_declared_size(uint8_t size_freq)
{
	static const size_t kib[16] = { 512, 256, 1024, 2048, 4096, 2048, 4096, 0,
	                                8192, 16384, 0, 0, 0, 0, 0, 0 };
	return kib[size_freq >> 4] * 1024;
}

/* ---- the plan being written --------------------------------------------- */

typedef struct boot_ctx {
	const sim_boot_config *cfg;
	const sim_flash *flash;
	sim_boot_plan *plan;
	unsigned rom_baud;
	uint64_t pending_us;   /* quiet time before the next text */
	int mode_ok;           /* the part can do the header's SPI mode */
} boot_ctx;

static void wait_us(boot_ctx *b, uint64_t us)
{
	b->pending_us += us;
}

/* Append text at baud after the pending quiet time. */
static void say(boot_ctx *b, unsigned baud, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(boot_ctx *b, unsigned baud, const char *fmt, ...)
{
	sim_boot_plan *p = b->plan;
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	if ((size_t)n >= sizeof line)
		n = (int)sizeof line - 1;
	sim_boot_step *last = p->nsteps ? &p->step[p->nsteps - 1] : NULL;
	int join = last && last->baud == baud && b->pending_us == 0;
	if ((!join && p->nsteps == SIM_BOOT_STEPS_MAX) || p->text_len + (size_t)n > SIM_BOOT_TEXT_MAX) {
		p->truncated = 1;
		return;
	}
	if (!join) {
		last = &p->step[p->nsteps++];
		*last = (sim_boot_step){ .delay_us = b->pending_us, .baud = baud, .off = p->text_len };
		b->pending_us = 0;
	}
	memcpy(p->text + p->text_len, line, (size_t)n);
	p->text_len += (size_t)n;
	last->len += (size_t)n;
}

static void end_with(boot_ctx *b, enum sim_boot_end end, const char *outcome)
{
	b->plan->end = end;
	b->plan->outcome = outcome;
}

/* The chip resets itself after the pending quiet time. */
static void end_reset(boot_ctx *b, int cause, const char *outcome)
{
	end_with(b, SIM_BOOT_END_RESET, outcome);
	b->plan->reset_after_us = b->pending_us;
	b->plan->reset_cause = cause;
}

/* ---- flash as the ROM reads it -------------------------------------------- */

/* Bytes past a non-wrapping part's end read as 0xFF: nothing drives MISO. */
static void part_read(const sim_flash *f, uint64_t addr, uint8_t *dst, size_t n)
{
	if (addr <= UINT32_MAX && sim_flash_read(f, (uint32_t)addr, dst, n) == SIM_FLASH_OK)
		return;
	for (size_t i = 0; i < n; i++)
		if (addr + i > UINT32_MAX || sim_flash_read(f, (uint32_t)(addr + i), dst + i, 1))
			dst[i] = 0xFF;
}

/* The image's bytes as the ROM sees them: past the first 16 it reads in
 * the header's mode, and a part that cannot do that mode answers zeros. */
static void rom_read(boot_ctx *b, uint64_t off, uint8_t *dst, size_t n)
{
	part_read(b->flash, off, dst, n);
	if (b->mode_ok)
		return;
	for (size_t i = 0; i < n; i++)
		if (off + i >= ROM_SLOW_BYTES)
			dst[i] = 0x00;
}

static uint32_t rom_le32(boot_ctx *b, uint64_t off)
{
	uint8_t v[4];
	rom_read(b, off, v, 4);
	return (uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24;
}

static uint8_t segment_checksum(boot_ctx *b, uint64_t off, uint32_t len, uint8_t state)
{
	uint8_t buf[4096];
	for (uint32_t done = 0; done < len;) {
		size_t n = len - done < sizeof buf ? len - done : sizeof buf;
		rom_read(b, off + done, buf, n);
		for (size_t i = 0; i < n; i++)
			state ^= buf[i];
		done += (uint32_t)n;
	}
	return state;
}

/* ---- the ROM ------------------------------------------------------------ */

static void rom_banner(boot_ctx *b, int cause, int download)
{
	wait_us(b, b->cfg->rom_delay_us);
	say(b, b->rom_baud, "\r\n ets Jan  8 2013,rst cause:%d, boot mode:(%d,6)\r\n\r\n", cause,
	    download ? BOOT_MODE_UART : BOOT_MODE_FLASH);
	if (cause == SIM_RST_WATCHDOG)
		say(b, b->rom_baud, "wdt reset\r\n");
}

/* Where the next segment header starts reading: "room" is what is left of
 * the current 16-byte chunk; a header that does not fit in it is preceded
 * by an "ho" line. */
static void rom_segments(boot_ctx *b, unsigned nseg, uint64_t *pos, uint8_t *cks)
{
	unsigned prev_tail = 0, ho = 0;
	for (unsigned i = 0; i < nseg; i++) {
		if (i > 0) {
			unsigned left = (unsigned)((ROM_CHUNK - *pos % ROM_CHUNK) % ROM_CHUNK);
			if (left && left < 8)
				say(b, b->rom_baud, "ho %u tail %u room %u\r\n", ho, prev_tail, left);
		}
		uint32_t addr = rom_le32(b, *pos), len = rom_le32(b, *pos + 4);
		*pos += 8;
		unsigned room = i == 0 ? ROM_CHUNK : (unsigned)((ROM_CHUNK - *pos % ROM_CHUNK) % ROM_CHUNK);
		say(b, b->rom_baud, "load 0x%08x, len %d, room %u \r\n", addr, (int)(int32_t)len, room);
		if (len > SEGMENT_LEN_MAX) {
			end_with(b, SIM_BOOT_END_HANG, "bad segment length");
			return;
		}
		*cks = segment_checksum(b, *pos, len, *cks);
		wait_us(b, (uint64_t)len * b->cfg->load_us_per_kib / 1024);
		unsigned tail = len > room ? (len - room) % ROM_CHUNK : 0;
		ho = len > room ? 0 : (unsigned)(*pos % ROM_CHUNK);
		*pos += len;
		prev_tail = tail;
		say(b, b->rom_baud, "tail %u\r\nchksum 0x%02x\r\n", tail, *cks);
	}
}

/* The ROM's flash boot.  Returns 1 when it jumps into the image. */
static int rom_flash_boot(boot_ctx *b, uint8_t head[ROM_SLOW_BYTES])
{
	b->mode_ok = 1;
	rom_read(b, 0, head, ROM_SLOW_BYTES);
	if (head[0] != IMAGE_MAGIC) {
		say(b, b->rom_baud, "ets_main.c \r\n");
		end_with(b, SIM_BOOT_END_HANG, "bad magic");
		return 0;
	}
	unsigned spi_modes = b->cfg->spi_modes ? b->cfg->spi_modes : SIM_SPI_ALL_MODES;
	b->mode_ok = head[2] < 4 && (spi_modes & (1u << head[2]));
	uint64_t pos = 8;
	uint8_t cks = CHECKSUM_SEED;
	b->plan->end = SIM_BOOT_END_RUNNING;
	rom_segments(b, head[1], &pos, &cks);
	if (b->plan->end == SIM_BOOT_END_HANG)
		return 0;
	/* zero padding up to 15 mod 16, then the checksum byte (esptool) */
	uint8_t stored;
	rom_read(b, pos | (ROM_CHUNK - 1), &stored, 1);
	say(b, b->rom_baud, "csum 0x%02x\r\n", cks);
	if (stored != cks) {
		say(b, b->rom_baud, "csum err\r\nets_main.c \r\n");
		end_with(b, SIM_BOOT_END_HANG, b->mode_ok ? "csum err" : "csum err (SPI mode the part cannot do)");
		return 0;
	}
	return 1;
}

/* ---- the SDK and the firmware -------------------------------------------- */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The SDK reads its RF init data where the header's flash size puts it. */
static int init_data_ok(boot_ctx *b, const uint8_t head[ROM_SLOW_BYTES], uint8_t *first)
{
	size_t declared = sim_boot_declared_size(head[3]);
	if (!declared)
		declared = sim_boot_declared_size(0);
	part_read(b->flash, declared - INIT_DATA_FROM_END, first, 1);
	return *first == INIT_DATA_VERSION;
}

static void firmware(boot_ctx *b, const uint8_t head[ROM_SLOW_BYTES])
{
	const sim_boot_config *c = b->cfg;
	uint8_t first;
	wait_us(b, c->sdk_init_us);
	if (!init_data_ok(b, head, &first)) {
		say(b, b->rom_baud, "rf_cal[0] !=0x05,is 0x%02X\r\n", first);
		wait_us(b, c->restart_us);
		end_reset(b, SIM_RST_EXTERNAL, "rf_cal");
		return;
	}
	if (c->fault == SIM_BOOT_FAULT_LOOP) {
		uint64_t wdt = (uint64_t)c->fault_ms * 1000;
		wait_us(b, wdt > c->sdk_init_us ? wdt - c->sdk_init_us : 0);
		end_reset(b, SIM_RST_WATCHDOG, "boot loop (watchdog)");
		return;
	}
	wait_us(b, c->fw_boot_us > c->sdk_init_us ? c->fw_boot_us - c->sdk_init_us : 0);
	sim_boot_plan *p = b->plan;
	if (sim_boot_find_banner(b->flash, c->marker, p->banner, sizeof p->banner))
		say(b, c->fw_baud, "\r\n%s\r\n", p->banner);
	if (c->fault == SIM_BOOT_FAULT_EXCEPTION) {
		wait_us(b, (uint64_t)c->fault_ms * 1000);
		say(b, c->fw_baud,
		    "\r\nFatal exception 0(IllegalInstructionCause):\r\n"
		    "epc1=0x%08x, epc2=0x00000000, epc3=0x00000000, excvaddr=0x00000000, depc=0x00000000\r\n",
		    le32(head + 4));
		wait_us(b, c->restart_us);
		end_reset(b, SIM_RST_EXTERNAL, "fatal exception");
		return;
	}
	end_with(b, SIM_BOOT_END_RUNNING, p->banner[0] ? "running" : "running (no banner in the image)");
}

/* ---- brown-out: cut the plan where the supply gives out ------------------ */

static uint64_t step_wire_us(const sim_boot_step *s, size_t len)
{
	return sim_wire_us(len, s->baud, 1.0);
}

static void apply_brownout(boot_ctx *b)
{
	sim_boot_plan *p = b->plan;
	uint64_t at = (uint64_t)b->cfg->fault_ms * 1000, t = 0;
	size_t i;
	for (i = 0; i < p->nsteps; i++) {
		sim_boot_step *s = &p->step[i];
		if (t + s->delay_us >= at)
			break;
		t += s->delay_us;
		uint64_t dur = step_wire_us(s, s->len);
		if (t + dur > at) {
			/* the bytes that made it out before the supply sagged */
			s->len = (size_t)((at - t) * s->baud / SIM_WIRE_BITS_PER_BYTE / 1000000u);
			t += step_wire_us(s, s->len);
			i++;
			break;
		}
		t += dur;
	}
	if (i == p->nsteps && p->end == SIM_BOOT_END_RESET && t + p->reset_after_us <= at)
		return; /* it resets on its own first */
	p->nsteps = i;
	p->text_len = i ? p->step[i - 1].off + p->step[i - 1].len : 0;
	p->end = SIM_BOOT_END_RESET;
	p->reset_after_us = at > t ? at - t : 0;
	p->reset_cause = SIM_RST_POWER_ON;
	p->outcome = "brown-out";
}

/* ---- public --------------------------------------------------------------- */

void sim_boot_run(const sim_boot_config *cfg, const sim_flash *flash, int rst_cause, int download,
                  sim_boot_plan *plan)
{
	/* everything but the text arena, which only text_len makes valid */
	memset(plan, 0, offsetof(sim_boot_plan, text));
	plan->text_len = 0;
	plan->truncated = 0;
	plan->end = SIM_BOOT_END_RUNNING;
	plan->reset_after_us = 0;
	plan->reset_cause = 0;
	plan->outcome = "";
	plan->banner[0] = '\0';
	boot_ctx b = { .cfg = cfg, .flash = flash, .plan = plan,
	               .rom_baud = sim_wire_boot_baud(cfg->xtal_mhz), .mode_ok = 1 };
	if (cfg->fault == SIM_BOOT_FAULT_DEAD_XTAL) {
		end_with(&b, SIM_BOOT_END_SILENT, "dead crystal");
		return;
	}
	if (rst_cause != SIM_RST_NONE)
		rom_banner(&b, rst_cause, download);
	if (download) {
		end_with(&b, SIM_BOOT_END_DOWNLOAD, "download mode");
		return;
	}
	uint8_t head[ROM_SLOW_BYTES];
	if (rom_flash_boot(&b, head))
		firmware(&b, head);
	if (cfg->fault == SIM_BOOT_FAULT_BROWNOUT)
		apply_brownout(&b);
}

uint64_t sim_boot_plan_duration(const sim_boot_plan *plan)
{
	uint64_t t = 0;
	for (size_t i = 0; i < plan->nsteps; i++)
		t += plan->step[i].delay_us + step_wire_us(&plan->step[i], plan->step[i].len);
	return t;
}

static int printable(uint8_t c)
{
	return c >= 0x20 && c < 0x7F;
}

size_t sim_boot_find_banner(const sim_flash *flash, const char *marker, char *out, size_t out_len)
{
	size_t mlen = marker ? strlen(marker) : 0;
	size_t limit = flash->size < BANNER_SCAN_MAX ? flash->size : BANNER_SCAN_MAX;
	if (out_len)
		out[0] = '\0';
	if (!mlen || out_len < 2)
		return 0;
	const uint8_t *data = flash->data;
	for (size_t at = 0; at + mlen <= limit;) {
		const uint8_t *hit = memmem(data + at, limit - at, marker, mlen);
		if (!hit)
			return 0;
		size_t start = (size_t)(hit - data);
		at = start + 1;
		if (start > 0 && printable(data[start - 1]))
			continue; /* inside a longer string: not where one starts */
		size_t n = 0;
		while (start + n < limit && n < out_len - 1 && printable(data[start + n]))
			n++;
		memcpy(out, data + start, n);
		out[n] = '\0';
		return n;
	}
	return 0;
}
