/* test_sim_boot.c - the simulator's boot path (tests/sim/sim_boot.c): a
 * reset into flash boot with crafted flash contents, and the exact lines
 * the chip prints for each case, with their rates and timings; the fake
 * capacity part's address wrap (sim_flash.c); the boot settings' parsing.
 * The expected lines follow the real boot logs cited in docs/boot-model.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../sim/sim_boot.h"
#include "../sim/sim_config.h"
#include "../sim/sim_flash.h"
#include "boot_fixture.h"

#define MB (1024u * 1024u)
#define BANNER "NodeMCU 3.0.0-espline-test build 2026-12-05"

/* The segment lengths of a real boot log (micropython issue 17198), so
 * that room, tail and ho come out as the real ROM printed them. */
static const boot_seg three_segs[] = {
	{ 0x40100000u, 31264 }, { 0x3FFE8000u, 1060 }, { 0x3FFE8430u, 1124 },
};

typedef struct fixture {
	sim_flash flash;
	sim_boot_config cfg;
	sim_boot_plan *plan;
	uint8_t checksum;
	char text[SIM_BOOT_TEXT_MAX + 1];
} fixture;

static fixture *fx_new(size_t die, int wrap)
{
	fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	assert_int_equal(sim_flash_init(&f->flash, die, 0, 0), 0);
	f->flash.wrap = wrap;
	f->plan = malloc(sizeof *f->plan);
	assert_non_null(f->plan);
	sim_boot_config_defaults(&f->cfg);
	return f;
}

static void fx_free(fixture *f)
{
	sim_flash_free(&f->flash);
	free(f->plan);
	free(f);
}

/* A NodeMCU-like flash: the image at 0 (mode, size byte), a banner in its
 * flash-mapped part at 0x10000, init data where size_freq's size puts it
 * (init_at, or none when 0). */
static void fx_image(fixture *f, uint8_t mode, uint8_t size_freq, size_t init_at)
{
	boot_image_write(f->flash.data, mode, size_freq, three_segs, 3, 1, &f->checksum);
	memcpy(f->flash.data + 0x10000 + 100, BANNER, sizeof BANNER); /* NUL-terminated, as a C string */
	if (init_at)
		boot_put_init_data(f->flash.data, init_at);
}

static void fx_boot(fixture *f, int cause, int download)
{
	sim_boot_run(&f->cfg, &f->flash, cause, download, f->plan);
}

/* Everything sent at baud, in order. */
static const char *sent_at(fixture *f, unsigned baud)
{
	size_t n = 0;
	for (size_t i = 0; i < f->plan->nsteps; i++) {
		const sim_boot_step *s = &f->plan->step[i];
		if (s->baud != baud)
			continue;
		memcpy(f->text + n, f->plan->text + s->off, s->len);
		n += s->len;
	}
	f->text[n] = '\0';
	return f->text;
}

static const char *all_text(fixture *f)
{
	memcpy(f->text, f->plan->text, f->plan->text_len);
	f->text[f->plan->text_len] = '\0';
	return f->text;
}

static char expected[4096];

static int starts_with(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/* The ROM's lines for three_segs read correctly, after its banner. */
static const char *good_rom_log(int cause, uint8_t csum_line)
{
	snprintf(expected, sizeof expected,
	         "\r\n ets Jan  8 2013,rst cause:%d, boot mode:(3,6)\r\n\r\n"
	         "load 0x40100000, len 31264, room 16 \r\ntail 0\r\nchksum 0x%02x\r\n"
	         "load 0x3ffe8000, len 1060, room 8 \r\ntail 12\r\nchksum 0x%02x\r\n"
	         "ho 0 tail 12 room 4\r\n"
	         "load 0x3ffe8430, len 1124, room 12 \r\ntail 8\r\nchksum 0x%02x\r\n"
	         "csum 0x%02x\r\n",
	         cause, boot_running_checksum(three_segs, 0, 1), boot_running_checksum(three_segs, 1, 1),
	         boot_running_checksum(three_segs, 2, 1), csum_line);
	return expected;
}

/* ---- a good image ---------------------------------------------------------- */

static void test_good_image_boots_and_prints_its_banner(void **state)
{
	(void)state;
	fixture *f = fx_new(4 * MB, 0);
	fx_image(f, SIM_SPI_DIO, 0x40, 0x3FC000);
	fx_boot(f, SIM_RST_EXTERNAL, 0);
	assert_string_equal(sent_at(f, 74880), good_rom_log(2, f->checksum));
	assert_int_equal(f->checksum, boot_running_checksum(three_segs, 2, 1));
	assert_string_equal(sent_at(f, 115200), "\r\n" BANNER "\r\n");
	assert_string_equal(f->plan->banner, BANNER);
	assert_int_equal(f->plan->end, SIM_BOOT_END_RUNNING);
	assert_string_equal(f->plan->outcome, "running");
	assert_false(f->plan->truncated);

	/* Timing: ROM banner 2 ms after EN rise; each segment's tail line after
	 * its loading time (250 us per KiB); the firmware banner 250 ms after
	 * the last segment's csum line. */
	const sim_boot_plan *p = f->plan;
	assert_int_equal(p->nsteps, 5);
	assert_int_equal(p->step[0].delay_us, 2000);
	assert_int_equal(p->step[1].delay_us, 31264u * 250 / 1024);
	assert_int_equal(p->step[2].delay_us, 1060u * 250 / 1024);
	assert_int_equal(p->step[3].delay_us, 1124u * 250 / 1024);
	assert_int_equal(p->step[4].delay_us, 250000);
	assert_int_equal(p->step[4].baud, 115200);
	/* wire time of the ROM's text at 74880: 10 bits a byte */
	uint64_t rom_bytes = strlen(good_rom_log(2, f->checksum));
	uint64_t want = 2000 + 7632 + 258 + 274 + 250000 + (rom_bytes * 10 * 1000000 + 74879) / 74880 +
	                ((sizeof BANNER + 3) * 10 * 1000000 + 115199) / 115200;
	uint64_t got = sim_boot_plan_duration(p);
	assert_true(got + 2 >= want && got <= want + 2);
	fx_free(f);
}

/* Power-on prints cause 1; a watchdog reset adds the ROM's "wdt reset". */
static void test_rst_causes(void **state)
{
	(void)state;
	fixture *f = fx_new(4 * MB, 0);
	fx_image(f, SIM_SPI_DIO, 0x40, 0x3FC000);
	fx_boot(f, SIM_RST_POWER_ON, 0);
	assert_string_equal(sent_at(f, 74880), good_rom_log(1, f->checksum));
	fx_boot(f, SIM_RST_WATCHDOG, 0);
	assert_true(starts_with(sent_at(f, 74880),
	                        "\r\n ets Jan  8 2013,rst cause:4, boot mode:(3,6)\r\n\r\nwdt reset\r\nload 0x40100000"));
	/* the loader jumping into the flash boot: no reset, no ROM banner */
	fx_boot(f, SIM_RST_NONE, 0);
	assert_true(starts_with(sent_at(f, 74880), "load 0x40100000, len 31264, room 16 \r\n"));
	assert_string_equal(sent_at(f, 115200), "\r\n" BANNER "\r\n");
	fx_free(f);
}

static void test_download_mode(void **state)
{
	(void)state;
	fixture *f = fx_new(4 * MB, 0);
	fx_image(f, SIM_SPI_DIO, 0x40, 0x3FC000);
	fx_boot(f, SIM_RST_EXTERNAL, 1);
	assert_string_equal(all_text(f), "\r\n ets Jan  8 2013,rst cause:2, boot mode:(1,6)\r\n\r\n");
	assert_int_equal(f->plan->end, SIM_BOOT_END_DOWNLOAD);
	fx_free(f);
}

/* 26 MHz: the ROM's divider assumes 40 MHz, so it prints at 74880; 40 MHz
 * at 115200.  The firmware sets its own rate either way. */
static void test_rom_rate_follows_the_crystal(void **state)
{
	(void)state;
	fixture *f = fx_new(4 * MB, 0);
	fx_image(f, SIM_SPI_DIO, 0x40, 0x3FC000);
	f->cfg.xtal_mhz = 40;
	fx_boot(f, SIM_RST_EXTERNAL, 0);
	for (size_t i = 0; i < f->plan->nsteps; i++)
		assert_int_equal(f->plan->step[i].baud, 115200);
	assert_null(strstr(sent_at(f, 74880), "ets"));
	f->cfg.xtal_mhz = 26;
	f->cfg.fw_baud = 9600;
	fx_boot(f, SIM_RST_EXTERNAL, 0);
	assert_string_equal(sent_at(f, 74880), good_rom_log(2, f->checksum));
	assert_string_equal(sent_at(f, 9600), "\r\n" BANNER "\r\n");
	fx_free(f);
}

/* ---- the ROM rejects the image ------------------------------------------ */

static void test_blank_flash(void **state)
{
	(void)state;
	fixture *f = fx_new(4 * MB, 0);
	fx_boot(f, SIM_RST_POWER_ON, 0);
	assert_string_equal(all_text(f), "\r\n ets Jan  8 2013,rst cause:1, boot mode:(3,6)\r\n\r\nets_main.c \r\n");
	assert_int_equal(f->plan->end, SIM_BOOT_END_HANG);
	assert_string_equal(f->plan->outcome, "bad magic");
	fx_free(f);
}

static void test_bad_magic(void **state)
{
	(void)state;
	fixture *f = fx_new(4 * MB, 0);
	fx_image(f, SIM_SPI_DIO, 0x40, 0x3FC000);
	f->flash.data[0] = 0xEA; /* e.g. a v2 (OTA) image's magic: not the ROM's */
	fx_boot(f, SIM_RST_EXTERNAL, 0);
	assert_string_equal(all_text(f), "\r\n ets Jan  8 2013,rst cause:2, boot mode:(3,6)\r\n\r\nets_main.c \r\n");
	assert_int_equal(f->plan->end, SIM_BOOT_END_HANG);
	fx_free(f);
}

/* One flipped byte in segment 2: written with matching MD5 pins it still
 * fails, as the ROM sums what it loads. */
static void test_bad_checksum(void **state)
{
	(void)state;
	fixture *f = fx_new(4 * MB, 0);
	fx_image(f, SIM_SPI_DIO, 0x40, 0x3FC000);
	size_t seg2_data = 8 + 8 + 31264 + 8;
	f->flash.data[seg2_data + 100] ^= 0x21;
	fx_boot(f, SIM_RST_EXTERNAL, 0);
	uint8_t c0 = boot_running_checksum(three_segs, 0, 1);
	uint8_t c1 = boot_running_checksum(three_segs, 1, 1) ^ 0x21;
	uint8_t c2 = boot_running_checksum(three_segs, 2, 1) ^ 0x21;
	char want[1024];
	snprintf(want, sizeof want,
	         "\r\n ets Jan  8 2013,rst cause:2, boot mode:(3,6)\r\n\r\n"
	         "load 0x40100000, len 31264, room 16 \r\ntail 0\r\nchksum 0x%02x\r\n"
	         "load 0x3ffe8000, len 1060, room 8 \r\ntail 12\r\nchksum 0x%02x\r\n"
	         "ho 0 tail 12 room 4\r\n"
	         "load 0x3ffe8430, len 1124, room 12 \r\ntail 8\r\nchksum 0x%02x\r\n"
	         "csum 0x%02x\r\ncsum err\r\nets_main.c \r\n",
	         c0, c1, c2, c2);
	assert_string_equal(all_text(f), want);
	assert_int_equal(f->plan->end, SIM_BOOT_END_HANG);
	assert_string_equal(f->plan->outcome, "csum err");
	assert_string_equal(f->plan->banner, "");
	fx_free(f);
}

/* A QIO header on a part that only does DIO/DOUT: the ROM reads the first
 * 16 bytes in its slow mode, then zeros, as in the real logs (esp8266/Arduino
 * issue 8240, cnlohr/esp82xx issue 31). */
static void test_unsupported_spi_mode(void **state)
{
	(void)state;
	fixture *f = fx_new(4 * MB, 0);
	fx_image(f, SIM_SPI_QIO, 0x40, 0x3FC000);
	assert_int_equal(sim_boot_parse_modes("dio,dout", &f->cfg.spi_modes), 0);
	fx_boot(f, SIM_RST_EXTERNAL, 0);
	assert_string_equal(all_text(f),
	                    "\r\n ets Jan  8 2013,rst cause:2, boot mode:(3,6)\r\n\r\n"
	                    "load 0x40100000, len 31264, room 16 \r\ntail 0\r\nchksum 0xef\r\n"
	                    "load 0x00000000, len 0, room 8 \r\ntail 0\r\nchksum 0xef\r\n"
	                    "load 0x00000000, len 0, room 0 \r\ntail 0\r\nchksum 0xef\r\n"
	                    "csum 0xef\r\ncsum err\r\nets_main.c \r\n");
	assert_int_equal(f->plan->end, SIM_BOOT_END_HANG);

	/* a first segment ending 4 bytes into a chunk: the "ho 12" variant of
	 * the same failure (bbs.espressif.com t=2826) */
	static const boot_seg short_first[] = { { 0x40100000u, 212 }, { 0x3FFE8000u, 64 }, { 0x3FFE8040u, 64 } };
	boot_image_write(f->flash.data, SIM_SPI_QIO, 0x40, short_first, 3, 2, NULL);
	fx_boot(f, SIM_RST_POWER_ON, 0);
	assert_string_equal(all_text(f),
	                    "\r\n ets Jan  8 2013,rst cause:1, boot mode:(3,6)\r\n\r\n"
	                    "load 0x40100000, len 212, room 16 \r\ntail 4\r\nchksum 0xef\r\n"
	                    "load 0x00000000, len 0, room 4 \r\ntail 0\r\nchksum 0xef\r\n"
	                    "ho 12 tail 0 room 4\r\n"
	                    "load 0x00000000, len 0, room 12 \r\ntail 0\r\nchksum 0xef\r\n"
	                    "csum 0xef\r\ncsum err\r\nets_main.c \r\n");

	/* the same image in a mode the part can do boots */
	fx_image(f, SIM_SPI_DOUT, 0x40, 0x3FC000);
	fx_boot(f, SIM_RST_EXTERNAL, 0);
	assert_int_equal(f->plan->end, SIM_BOOT_END_RUNNING);
	fx_free(f);
}

/* An absurd segment length (erased or garbage header): the load line, then
 * nothing (esp8266.com t=7975: "load 0xffffffff, len -1, room 12"). */
static void test_absurd_segment_hangs(void **state)
{
	(void)state;
	fixture *f = fx_new(4 * MB, 0);
	f->flash.data[0] = 0xE9;
	f->flash.data[1] = 2;
	f->flash.data[2] = SIM_SPI_DIO;
	f->flash.data[3] = 0x40;
	memset(f->flash.data + 8, 0, 8); /* segment 1: 0 bytes at 0 */
	fx_boot(f, SIM_RST_EXTERNAL, 0);
	assert_string_equal(all_text(f),
	                    "\r\n ets Jan  8 2013,rst cause:2, boot mode:(3,6)\r\n\r\n"
	                    "load 0x00000000, len 0, room 16 \r\ntail 0\r\nchksum 0xef\r\n"
	                    "load 0xffffffff, len -1, room 8 \r\n");
	assert_int_equal(f->plan->end, SIM_BOOT_END_HANG);
	fx_free(f);
}

/* ---- the SDK's init data -------------------------------------------------- */

static void test_missing_init_data(void **state)
{
	(void)state;
	fixture *f = fx_new(4 * MB, 0);
	fx_image(f, SIM_SPI_DIO, 0x40, 0);
	fx_boot(f, SIM_RST_EXTERNAL, 0);
	char want[4096];
	snprintf(want, sizeof want, "%srf_cal[0] !=0x05,is 0xFF\r\n", good_rom_log(2, f->checksum));
	assert_string_equal(all_text(f), want);
	assert_int_equal(f->plan->end, SIM_BOOT_END_RESET);
	assert_int_equal(f->plan->reset_cause, SIM_RST_EXTERNAL);
	assert_int_equal(f->plan->reset_after_us, 10000);
	assert_string_equal(f->plan->outcome, "rf_cal");
	/* printed by the SDK early, at the ROM's rate, 40 ms after loading */
	assert_int_equal(f->plan->step[f->plan->nsteps - 1].delay_us, 40000);
	assert_int_equal(f->plan->step[f->plan->nsteps - 1].baud, 74880);
	fx_free(f);
}

/* Stale contents in the init data sector: the byte it holds is printed. */
static void test_stale_init_data(void **state)
{
	(void)state;
	fixture *f = fx_new(4 * MB, 0);
	fx_image(f, SIM_SPI_DIO, 0x40, 0);
	memset(f->flash.data + 0x3FC000, 0x00, 128);
	fx_boot(f, SIM_RST_EXTERNAL, 0);
	assert_non_null(strstr(all_text(f), "csum 0x"));
	assert_non_null(strstr(all_text(f), "\r\nrf_cal[0] !=0x05,is 0x00\r\n"));
	assert_int_equal(f->plan->end, SIM_BOOT_END_RESET);
	fx_free(f);
}

/* The SDK looks at (declared size - 16 KiB), not at the real size. */
static void test_declared_size_moves_the_init_data(void **state)
{
	(void)state;
	/* 4 MB part, header says 1 MB: init data written for 4 MB is missed */
	fixture *f = fx_new(4 * MB, 0);
	fx_image(f, SIM_SPI_DIO, 0x20, 0x3FC000);
	fx_boot(f, SIM_RST_EXTERNAL, 0);
	assert_non_null(strstr(all_text(f), "rf_cal[0] !=0x05,is 0xFF\r\n"));
	boot_put_init_data(f->flash.data, 0xFC000); /* where a 1 MB header points */
	fx_boot(f, SIM_RST_EXTERNAL, 0);
	assert_int_equal(f->plan->end, SIM_BOOT_END_RUNNING);
	fx_free(f);

	/* a genuine 1 MB part with a 4 MB header: 0x3FC000 is past its die */
	f = fx_new(1 * MB, 0);
	fx_image(f, SIM_SPI_DIO, 0x40, 0xFC000);
	fx_boot(f, SIM_RST_EXTERNAL, 0);
	assert_non_null(strstr(all_text(f), "rf_cal[0] !=0x05,is 0xFF\r\n"));
	assert_int_equal(f->plan->end, SIM_BOOT_END_RESET);
	/* the right header for it boots */
	fx_image(f, SIM_SPI_DIO, 0x20, 0xFC000);
	fx_boot(f, SIM_RST_EXTERNAL, 0);
	assert_int_equal(f->plan->end, SIM_BOOT_END_RUNNING);
	fx_free(f);

	/* a fake "4 MB" part with a 1 MB die: 0x3FC000 aliases 0xFC000 */
	f = fx_new(1 * MB, 1);
	fx_image(f, SIM_SPI_DIO, 0x40, 0xFC000);
	fx_boot(f, SIM_RST_EXTERNAL, 0);
	assert_int_equal(f->plan->end, SIM_BOOT_END_RUNNING);
	fx_free(f);
}

static void test_declared_size_table(void **state)
{
	(void)state;
	static const struct { uint8_t b; size_t kib; } t[] = {
		{ 0x00, 512 }, { 0x10, 256 }, { 0x20, 1024 }, { 0x30, 2048 }, { 0x40, 4096 },
		{ 0x5F, 2048 }, { 0x60, 4096 }, { 0x80, 8192 }, { 0x92, 16384 }, { 0x70, 0 }, { 0xA0, 0 },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		assert_int_equal(sim_boot_declared_size(t[i].b), t[i].kib * 1024);
}

/* ---- the firmware's banner -------------------------------------------------- */

static void test_banner_convention(void **state)
{
	(void)state;
	fixture *f = fx_new(4 * MB, 0);
	char out[128];
	/* inside a longer string is not a start; printable run, cut at the buffer */
	memcpy(f->flash.data + 0x2000, "xNodeMCU fake", 13);
	assert_int_equal(sim_boot_find_banner(&f->flash, "NodeMCU", out, sizeof out), 0);
	memcpy(f->flash.data + 0x3000, "\0NodeMCU 2.2.1 build\nmore", 25);
	assert_int_equal(sim_boot_find_banner(&f->flash, "NodeMCU", out, sizeof out), 19);
	assert_string_equal(out, "NodeMCU 2.2.1 build");
	assert_int_equal(sim_boot_find_banner(&f->flash, "NodeMCU", out, 8), 7);
	assert_string_equal(out, "NodeMCU");
	/* another marker, another firmware */
	memcpy(f->flash.data + 0x4000, "\0MicroPython v1.25.0 on 2025-04-15\0", 36);
	assert_int_equal(sim_boot_find_banner(&f->flash, "MicroPython", out, sizeof out), 33);
	assert_string_equal(out, "MicroPython v1.25.0 on 2025-04-15");
	/* only the first 1 MiB counts */
	assert_int_equal(sim_boot_find_banner(&f->flash, "Tasmota", out, sizeof out), 0);
	memcpy(f->flash.data + MB + 10, "\0Tasmota 14\0", 12);
	assert_int_equal(sim_boot_find_banner(&f->flash, "Tasmota", out, sizeof out), 0);
	memcpy(f->flash.data + MB - 20, "\0Tasmota 14\0", 12);
	assert_int_equal(sim_boot_find_banner(&f->flash, "Tasmota", out, sizeof out), 10);

	/* an image without a banner runs silently */
	fixture *g = fx_new(4 * MB, 0);
	boot_image_write(g->flash.data, SIM_SPI_DIO, 0x40, three_segs, 3, 1, NULL);
	boot_put_init_data(g->flash.data, 0x3FC000);
	fx_boot(g, SIM_RST_EXTERNAL, 0);
	assert_int_equal(g->plan->end, SIM_BOOT_END_RUNNING);
	assert_string_equal(sent_at(g, 115200), "");
	assert_string_equal(g->plan->outcome, "running (no banner in the image)");
	fx_free(g);
	fx_free(f);
}

/* ---- boot faults ------------------------------------------------------------ */

static void test_fault_loop(void **state)
{
	(void)state;
	fixture *f = fx_new(4 * MB, 0);
	fx_image(f, SIM_SPI_DIO, 0x40, 0x3FC000);
	assert_int_equal(sim_boot_parse_fault("loop:800", &f->cfg), 0);
	fx_boot(f, SIM_RST_EXTERNAL, 0);
	assert_string_equal(all_text(f), good_rom_log(2, f->checksum)); /* no banner */
	assert_int_equal(f->plan->end, SIM_BOOT_END_RESET);
	assert_int_equal(f->plan->reset_cause, SIM_RST_WATCHDOG);
	assert_int_equal(f->plan->reset_after_us, 800000);
	/* and the next boot says why */
	fx_boot(f, f->plan->reset_cause, 0);
	assert_non_null(strstr(all_text(f), "rst cause:4, boot mode:(3,6)\r\n\r\nwdt reset\r\nload "));
	fx_free(f);
}

static void test_fault_exception_after_banner(void **state)
{
	(void)state;
	fixture *f = fx_new(4 * MB, 0);
	fx_image(f, SIM_SPI_DIO, 0x40, 0x3FC000);
	assert_int_equal(sim_boot_parse_fault("exception", &f->cfg), 0);
	fx_boot(f, SIM_RST_EXTERNAL, 0);
	assert_string_equal(sent_at(f, 115200),
	                    "\r\n" BANNER "\r\n"
	                    "\r\nFatal exception 0(IllegalInstructionCause):\r\n"
	                    "epc1=0x40100004, epc2=0x00000000, epc3=0x00000000, excvaddr=0x00000000, "
	                    "depc=0x00000000\r\n");
	const sim_boot_plan *p = f->plan;
	assert_int_equal(p->step[p->nsteps - 1].delay_us, 100000); /* 100 ms after the banner */
	assert_int_equal(p->end, SIM_BOOT_END_RESET);
	assert_int_equal(p->reset_cause, SIM_RST_EXTERNAL);
	fx_free(f);
}

/* A reset fault_ms after every EN rise, whatever is being printed. */
static void test_fault_brownout(void **state)
{
	(void)state;
	fixture *f = fx_new(4 * MB, 0);
	fx_image(f, SIM_SPI_DIO, 0x40, 0x3FC000);
	assert_int_equal(sim_boot_parse_fault("brownout:30", &f->cfg), 0);
	fx_boot(f, SIM_RST_EXTERNAL, 0);
	const sim_boot_plan *p = f->plan;
	assert_int_equal(p->end, SIM_BOOT_END_RESET);
	assert_int_equal(p->reset_cause, SIM_RST_POWER_ON);
	assert_string_equal(p->outcome, "brown-out");
	uint64_t total = sim_boot_plan_duration(p) + p->reset_after_us;
	assert_true(total >= 29999 && total <= 30000);
	/* cut in the middle of the ROM's lines: a prefix of the good log */
	const char *good = good_rom_log(2, f->checksum);
	const char *t = all_text(f);
	assert_true(strlen(t) > 60 && strlen(t) < strlen(good));
	assert_memory_equal(t, good, strlen(t));
	assert_null(strstr(t, "NodeMCU"));

	/* after the banner when the period is long enough, and never in download mode */
	f->cfg.fault_ms = 400;
	fx_boot(f, SIM_RST_EXTERNAL, 0);
	assert_string_equal(sent_at(f, 115200), "\r\n" BANNER "\r\n");
	assert_int_equal(f->plan->end, SIM_BOOT_END_RESET);
	total = sim_boot_plan_duration(f->plan) + f->plan->reset_after_us;
	assert_true(total >= 399999 && total <= 400000);
	fx_boot(f, SIM_RST_EXTERNAL, 1);
	assert_int_equal(f->plan->end, SIM_BOOT_END_DOWNLOAD);
	fx_free(f);
}

static void test_fault_dead_crystal(void **state)
{
	(void)state;
	fixture *f = fx_new(4 * MB, 0);
	fx_image(f, SIM_SPI_DIO, 0x40, 0x3FC000);
	assert_int_equal(sim_boot_parse_fault("dead-xtal", &f->cfg), 0);
	for (int download = 0; download <= 1; download++) {
		fx_boot(f, SIM_RST_POWER_ON, download);
		assert_int_equal(f->plan->nsteps, 0);
		assert_int_equal(f->plan->text_len, 0);
		assert_int_equal(f->plan->end, SIM_BOOT_END_SILENT);
	}
	fx_free(f);
}

/* ---- the fake-capacity part ------------------------------------------------ */

static void test_fake_capacity_wraps(void **state)
{
	(void)state;
	assert_true(sim_flash_claims_more(0x1640EF, 1 * MB));  /* claims 4 MB */
	assert_false(sim_flash_claims_more(0x1640EF, 4 * MB));
	assert_false(sim_flash_claims_more(0x1440EF, 1 * MB));
	assert_false(sim_flash_claims_more(0xFFFFFF, 1 * MB)); /* no capacity byte */

	sim_flash f;
	assert_int_equal(sim_flash_init(&f, 1 * MB, 0, 0), 0);
	uint64_t us = 0;
	uint8_t buf[16];
	/* a genuine part: past the die is out of range */
	assert_int_equal(sim_flash_read(&f, 1 * MB, buf, 1), SIM_FLASH_OUT_OF_RANGE);
	assert_int_equal(sim_flash_program(&f, 3 * MB, (const uint8_t *)"x", 1, &us), SIM_FLASH_OUT_OF_RANGE);

	f.wrap = 1;
	assert_int_equal(sim_flash_alias(&f, 0x3FC000), 0xFC000);
	static const uint8_t data[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	assert_int_equal(sim_flash_program(&f, 0x300010, data, sizeof data, &us), SIM_FLASH_OK);
	assert_memory_equal(f.data + 0x10, data, sizeof data); /* the mirror at 3 MB is the die at 0 */
	assert_int_equal(sim_flash_read(&f, 0x100010, buf, 8), SIM_FLASH_OK);
	assert_memory_equal(buf, data, 8);
	/* a read across the die's end continues at its start */
	assert_int_equal(sim_flash_read(&f, 2 * MB - 8, buf, 16), SIM_FLASH_OK);
	static const uint8_t erased[8] = { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF };
	assert_memory_equal(buf + 8, erased, 8);
	assert_int_equal(sim_flash_program(&f, 1 * MB - 4, data, sizeof data, &us), SIM_FLASH_OK);
	assert_memory_equal(f.data + MB - 4, data, 4);
	assert_memory_equal(f.data, data + 4, 4);
	/* erasing the alias erases the die */
	assert_int_equal(sim_flash_erase_sector(&f, 0x300000 / SIM_FLASH_SECTOR, &us), SIM_FLASH_OK);
	assert_int_equal(f.data[0x10], 0xFF);
	assert_int_equal(sim_flash_erase_block(&f, 0x2F0000 / SIM_FLASH_BLOCK, &us), SIM_FLASH_OK);
	assert_int_equal(f.data[MB - 4], 0xFF);
	sim_flash_free(&f);
}

/* The claim= setting makes the JEDEC id claim more than the die. */
static void test_claim_setting(void **state)
{
	(void)state;
	char *argv[] = { "espline-sim", "--devices", "2", "--dev", "1:flash=1MB,claim=4MB,modes=dio+dout,"
	                 "marker=Tasmota,fw_baud=9600,fw_boot_ms=500,boot_fault=brownout:250",
	                 NULL };
	sim_options o;
	char err[256] = "";
	assert_int_equal(sim_options_parse(5, argv, &o, err, sizeof err), 0);
	const sim_device_config *d0 = &o.devices[0], *d1 = &o.devices[1];
	assert_int_equal(d0->chip.jedec_id, 0x1640EF);
	assert_false(sim_flash_claims_more(d0->chip.jedec_id, d0->chip.flash_size));
	assert_int_equal(d0->boot_model.spi_modes, SIM_SPI_ALL_MODES);
	assert_int_equal(d1->chip.flash_size, 1 * MB);
	assert_int_equal(d1->chip.jedec_id, 0x1640EF);
	assert_true(sim_flash_claims_more(d1->chip.jedec_id, d1->chip.flash_size));
	assert_int_equal(d1->boot_model.spi_modes, (1u << SIM_SPI_DIO) | (1u << SIM_SPI_DOUT));
	assert_string_equal(d1->boot_model.marker, "Tasmota");
	assert_int_equal(d1->boot_model.fw_baud, 9600);
	assert_int_equal(d1->boot_model.fw_boot_us, 500000);
	assert_int_equal(d1->boot_model.fault, SIM_BOOT_FAULT_BROWNOUT);
	assert_int_equal(d1->boot_model.fault_ms, 250);
	sim_options_free(&o);

	char *bad[] = { "espline-sim", "--flash", "4MB", "--claim", "2MB", NULL };
	assert_int_equal(sim_options_parse(5, bad, &o, err, sizeof err), -1);
	assert_non_null(strstr(err, "claim"));
	char *xtal[] = { "espline-sim", "--xtal", "40", "--boot-fault", "dead-xtal", NULL };
	assert_int_equal(sim_options_parse(5, xtal, &o, err, sizeof err), 0);
	assert_int_equal(o.devices[0].boot_model.xtal_mhz, 40);
	assert_true(o.devices[0].chip.faults.silent); /* no clock: the loader is dead too */
	sim_options_free(&o);
}

static void test_parse_modes_and_faults(void **state)
{
	(void)state;
	unsigned bits = 0;
	assert_int_equal(sim_boot_parse_modes("qio,qout,dio,dout", &bits), 0);
	assert_int_equal(bits, SIM_SPI_ALL_MODES);
	assert_int_equal(sim_boot_parse_modes("dout", &bits), 0);
	assert_int_equal(bits, 1u << SIM_SPI_DOUT);
	static const char *const bad_modes[] = { "", "qio,", "fast", "dio,qi", "DIO" };
	for (size_t i = 0; i < sizeof bad_modes / sizeof bad_modes[0]; i++)
		if (sim_boot_parse_modes(bad_modes[i], &bits) == 0)
			fail_msg("modes \"%s\" accepted", bad_modes[i]);
	assert_string_equal(sim_spi_mode_name(SIM_SPI_DIO), "dio");

	sim_boot_config c;
	sim_boot_config_defaults(&c);
	assert_int_equal(sim_boot_parse_fault("loop", &c), 0);
	assert_int_equal(c.fault, SIM_BOOT_FAULT_LOOP);
	assert_int_equal(c.fault_ms, 500);
	assert_int_equal(sim_boot_parse_fault("exception:2000", &c), 0);
	assert_int_equal(c.fault, SIM_BOOT_FAULT_EXCEPTION);
	assert_int_equal(c.fault_ms, 2000);
	assert_int_equal(sim_boot_parse_fault("none", &c), 0);
	assert_int_equal(c.fault, SIM_BOOT_FAULT_NONE);
	static const char *const bad[] = { "brownout", "brownout:0", "loop:", "loop:x", "dead-xtal:5",
	                                   "exceptions", "wdt", "" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (sim_boot_parse_fault(bad[i], &c) == 0)
			fail_msg("fault \"%s\" accepted", bad[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_image_boots_and_prints_its_banner),
		cmocka_unit_test(test_rst_causes),
		cmocka_unit_test(test_download_mode),
		cmocka_unit_test(test_rom_rate_follows_the_crystal),
		cmocka_unit_test(test_blank_flash),
		cmocka_unit_test(test_bad_magic),
		cmocka_unit_test(test_bad_checksum),
		cmocka_unit_test(test_unsupported_spi_mode),
		cmocka_unit_test(test_absurd_segment_hangs),
		cmocka_unit_test(test_missing_init_data),
		cmocka_unit_test(test_stale_init_data),
		cmocka_unit_test(test_declared_size_moves_the_init_data),
		cmocka_unit_test(test_declared_size_table),
		cmocka_unit_test(test_banner_convention),
		cmocka_unit_test(test_fault_loop),
		cmocka_unit_test(test_fault_exception_after_banner),
		cmocka_unit_test(test_fault_brownout),
		cmocka_unit_test(test_fault_dead_crystal),
		cmocka_unit_test(test_fake_capacity_wraps),
		cmocka_unit_test(test_claim_setting),
		cmocka_unit_test(test_parse_modes_and_faults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
