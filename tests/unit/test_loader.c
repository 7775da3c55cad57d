/* test_loader.c - the loader, identify and flash operations end to end
 * against the simulated chip model (tests/sim/sim_chip.h), in process.
 *
 * A fake espl_port (tests/sim/sim_port.h) runs the chip synchronously: bytes
 * the loader writes are SLIP-decoded and handed to the chip, and the chip's
 * replies are queued for the loader to read, with the auto-reset circuit,
 * the boot garbage, baud mismatches and a few faults (lost or corrupted
 * requests and replies, a port without modem lines, a stuck GPIO0).  The stub is a small fake JSON: the chip model only needs
 * something uploaded before MEM_END to start its stub personality. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "espline/esp8266.h"
#include "espline/flash.h"
#include "espline/image.h"
#include "espline/loader.h"
#include "espline/reset.h"
#include "espline/slip.h"
#include "../sim/sim_chip.h"
#include "../sim/sim_port.h"
#include "loader_fixture.h"

/* The fake port: tests/sim/sim_port.h (shared with test_runner.c); the
 * fake stub, chip configurations and firmware bytes: loader_fixture.h. */
typedef sim_port chip_port;

static int64_t test_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- fixtures ----------------------------------------------------------- */

static char stub_path[64];

static int write_fake_stub(void **state)
{
	(void)state;
	snprintf(stub_path, sizeof stub_path, "/tmp/espline-test-stub-%d.json", (int)getpid());
	write_fake_stub_to(stub_path);
	return 0;
}

static int remove_fake_stub(void **state)
{
	(void)state;
	unlink(stub_path);
	return 0;
}

typedef struct log_capture {
	char text[8192];
	size_t len;
	int progress_calls;
	size_t last_done, last_total;
} log_capture;

static void on_log(void *ctx, int level, const char *msg)
{
	log_capture *c = ctx;
	(void)level;
	c->len += (size_t)snprintf(c->text + c->len, sizeof c->text - c->len, "%s\n", msg);
	if (c->len >= sizeof c->text)
		c->len = sizeof c->text - 1;
}

static void on_progress(void *ctx, const espl_progress *p)
{
	log_capture *c = ctx;
	c->progress_calls++;
	c->last_done = p->done;
	c->last_total = p->total;
}

static uint8_t *firmware(size_t n, unsigned seed)
{
	uint8_t *d = malloc(n);
	assert_non_null(d);
	fill_firmware(d, n, seed, "espline firmware ");
	return d;
}

static espl_image *prepared(const uint8_t *d, size_t n, uint32_t addr)
{
	espl_image *img;
	espl_error err;
	espl_flash_params keep;
	espl_flash_params_keep(&keep);
	assert_int_equal(espl_image_prepare(d, n, addr, &keep, 0, "fw.bin", &img, &err), 0);
	return img;
}

/* One test case: a simulated chip (Winbond, MAC ac:d0:74:12:34:56), the
 * port that runs it, the loader options (ROM at 115200, then the stub at
 * 921600), what the loader logged, and optionally an image.  A test sets
 * it up with case_init, changes cfg / o / the port's faults as it needs,
 * connects, and ends with case_free.  Not copyable: o points at cap. */
typedef struct lcase {
	sim_chip_config cfg;
	chip_port *cp;          /* made by case_port or the first connect */
	espl_loader_options o;
	log_capture cap;
	espl_loader *l;         /* NULL until connected, and after a failed connect */
	espl_error err;
	uint8_t *fw;            /* case_image: the bytes, n of them, and img */
	size_t n;
	espl_image *img;
} lcase;

static void case_init(lcase *c, size_t flash_size, unsigned xtal)
{
	static const uint8_t mac[6] = { 0xAC, 0xD0, 0x74, 0x12, 0x34, 0x56 };
	memset(c, 0, sizeof *c);
	c->cfg = chip_of_size(flash_size, 0xEF, xtal, mac);
	espl_loader_options_init(&c->o);
	c->o.stub_path = stub_path;
	c->o.baud = 115200;      /* the ROM at 115200, then a switch (connect.baud: 115200) */
	c->o.flash_baud = 921600;
	c->o.connect_attempts = 2;
	c->o.connect_timeout_ms = 3000;
	c->o.events.ctx = &c->cap;
	c->o.events.log = on_log;
	c->o.events.progress = on_progress;
}

/* The port for the chip as c->cfg now says (a new chip each call). */
static chip_port *case_port(lcase *c)
{
	c->cp = sim_port_new(&c->cfg);
	assert_non_null(c->cp);
	return c->cp;
}

/* Connect (making the port first if the test did not); the loader's
 * result.  On failure the loader has closed (freed) the port. */
static int case_connect(lcase *c)
{
	if (!c->cp)
		case_port(c);
	return espl_loader_connect(&c->cp->base, &c->o, &c->l, &c->err);
}

/* Connect, or fail the test with the reason and the log. */
static void case_connected(lcase *c)
{
	if (case_connect(c) < 0)
		fail_msg("connect: %s\n%s", c->err.msg, c->cap.text);
}

/* n firmware-like bytes (seed) prepared as an image at addr. */
static void case_image(lcase *c, size_t n, unsigned seed, uint32_t addr)
{
	c->n = n;
	c->fw = firmware(n, seed);
	c->img = prepared(c->fw, n, addr);
}

/* Write c->img (flags: ESPL_WRITE_*) and verify it by MD5, or fail the
 * test saying which and why. */
static void case_write_verify(lcase *c, int flags)
{
	if (espl_flash_write(c->l, c->img, flags, &c->err) < 0)
		fail_msg("write: %s\n%s", c->err.msg, c->cap.text);
	if (espl_flash_verify(c->l, c->img, &c->err) < 0)
		fail_msg("verify: %s\n%s", c->err.msg, c->cap.text);
}

/* The simulated chip's flash, all of it. */
static uint8_t *case_flash(lcase *c)
{
	size_t size;
	return sim_chip_flash(c->cp->unit->chip, &size);
}

/* Close the loader (which frees the port) and free the image.  The case
 * may be set up again with case_init. */
static void case_free(lcase *c)
{
	if (c->l)
		espl_loader_close(c->l);
	espl_image_free(c->img);
	free(c->fw);
	c->l = NULL;
	c->img = NULL;
	c->fw = NULL;
}

/* ---- tests -------------------------------------------------------------- */

static void test_connect_identify(void **state)
{
	(void)state;
	static const struct { size_t size; unsigned xtal; } cases[] = {
		{ 512u << 10, 26 }, { 1u << 20, 40 }, { 4u << 20, 26 }, { 16u << 20, 40 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		lcase c;
		espl_chip_info info;
		case_init(&c, cases[i].size, cases[i].xtal);
		case_connected(&c);
		assert_int_equal(espl_loader_mode(c.l), ESPL_MODE_STUB);
		assert_int_equal(espl_loader_baud(c.l), 921600);
		if (espl_esp8266_identify(c.l, &info, &c.err))
			fail_msg("identify: %s", c.err.msg);
		assert_string_equal(info.mac_str, "ac:d0:74:12:34:56");
		if (info.flash_size != cases[i].size)
			fail_msg("flash id 0x%06X: size %zu, expected %zu (%s)", info.flash_id, info.flash_size,
			         cases[i].size, c.cap.text);
		assert_int_equal(espl_loader_flash_size(c.l), cases[i].size);
		assert_int_equal(info.xtal_mhz, cases[i].xtal);
		assert_int_equal(info.flash_manufacturer, 0xEF);
		assert_string_equal(info.flash_vendor, "Winbond");
		assert_string_equal(info.chip, "ESP8266EX");
		case_free(&c);
	}
}

static void test_write_compressed_and_verify(void **state)
{
	(void)state;
	lcase c;
	espl_chip_info info;
	case_init(&c, 1u << 20, 26);
	case_image(&c, 300001, 1, 0x10000); /* not a multiple of 4: padded with 0xFF */
	case_connected(&c);
	assert_int_equal(espl_esp8266_identify(c.l, &info, &c.err), 0);
	case_write_verify(&c, ESPL_WRITE_COMPRESS);
	assert_true(c.img->zsize < c.img->size);
	assert_int_equal(c.cap.last_done, c.img->size);
	assert_int_equal(c.cap.last_total, c.img->size);
	uint8_t *flash = case_flash(&c);
	assert_memory_equal(flash + 0x10000, c.fw, c.n);
	assert_int_equal(flash[0x10000 + c.n], 0xFF);

	/* Read it back through READ_FLASH. */
	uint8_t *back = malloc(c.n);
	if (espl_flash_read(c.l, 0x10000, (uint32_t)c.n, back, &c.err))
		fail_msg("read: %s", c.err.msg);
	assert_memory_equal(back, c.fw, c.n);
	free(back);
	case_free(&c);
}

static void test_write_uncompressed_stub_and_rom(void **state)
{
	(void)state;
	for (int rom = 0; rom <= 1; rom++) {
		lcase c;
		case_init(&c, 1u << 20, 26);
		case_image(&c, 70000, 2, 0x3000);
		c.o.no_stub = rom;
		case_connected(&c);
		assert_int_equal(espl_loader_mode(c.l), rom ? ESPL_MODE_ROM : ESPL_MODE_STUB);
		if (espl_flash_write(c.l, c.img, 0, &c.err))
			fail_msg("write (rom=%d): %s", rom, c.err.msg);
		assert_memory_equal(case_flash(&c) + 0x3000, c.fw, c.n);
		int rc = espl_flash_verify(c.l, c.img, &c.err);
		if (rom) {
			assert_int_equal(rc, ESPL_EUNSUPPORTED);
			assert_non_null(strstr(c.err.msg, "stub"));
		} else {
			assert_int_equal(rc, 0);
		}
		case_free(&c);
	}
}

static void test_erase(void **state)
{
	(void)state;
	lcase c;
	size_t fsize;
	case_init(&c, 1u << 20, 26);
	uint8_t *flash = sim_chip_flash(case_port(&c)->unit->chip, &fsize);
	memset(flash, 0x00, fsize);
	case_connected(&c);
	assert_int_equal(espl_flash_erase_region(c.l, 0x1000, 0x2000, &c.err), 0);
	assert_int_equal(flash[0x0FFF], 0x00);
	assert_int_equal(flash[0x1000], 0xFF);
	assert_int_equal(flash[0x2FFF], 0xFF);
	assert_int_equal(flash[0x3000], 0x00);
	assert_int_equal(espl_flash_erase_region(c.l, 0x1001, 0x1000, &c.err), ESPL_EARG);
	assert_non_null(strstr(c.err.msg, "4096"));
	assert_int_equal(espl_flash_erase_chip(c.l, &c.err), 0);
	for (size_t i = 0; i < fsize; i += 4093)
		assert_int_equal(flash[i], 0xFF);
	case_free(&c);
}

static void test_wrong_chip(void **state)
{
	(void)state;
	lcase c;
	case_init(&c, 4u << 20, 26);
	c.cfg.faults.chip_magic = 0x1B31506F;
	assert_int_equal(case_connect(&c), ESPL_ECHIP);
	assert_null(c.l);
	assert_non_null(strstr(c.err.msg, "found ESP32-C3"));
	assert_non_null(strstr(c.err.msg, "this recipe is for ESP8266"));
}

static void test_no_modem_lines(void **state)
{
	(void)state;
	lcase c;
	case_init(&c, 4u << 20, 26);
	case_port(&c)->no_lines = 1;
	assert_int_equal(case_connect(&c), ESPL_EUNSUPPORTED);
	assert_non_null(strstr(c.err.msg, "--reset none"));

	/* The jig put the chip in download mode itself. */
	case_port(&c)->no_lines = 1;
	sim_port_boot(c.cp, 1);
	c.o.reset = ESPL_RESET_NONE;
	if (case_connect(&c))
		fail_msg("connect with --reset none: %s", c.err.msg);
	assert_int_equal(espl_loader_mode(c.l), ESPL_MODE_STUB);
	/* No reset lines: the stub is asked to run the firmware. */
	assert_int_equal(espl_loader_hard_reset(c.l, &c.err), 0);
	assert_int_equal(sim_chip_mode(c.cp->unit->chip), SIM_MODE_APP);
	case_free(&c);
}

static void test_hard_reset_boots_app(void **state)
{
	(void)state;
	lcase c;
	case_init(&c, 4u << 20, 26);
	case_connected(&c);
	int boots = c.cp->boots;
	assert_int_equal(espl_loader_hard_reset(c.l, &c.err), 0);
	assert_int_equal(c.cp->boots, boots + 1);
	assert_int_equal(sim_chip_mode(c.cp->unit->chip), SIM_MODE_APP);
	case_free(&c);
}

static void test_silent_chip_times_out(void **state)
{
	(void)state;
	lcase c;
	case_init(&c, 4u << 20, 26);
	c.cfg.faults.silent = 1;
	c.o.reset = ESPL_RESET_NONE; /* no boot garbage either */
	c.o.connect_timeout_ms = 800;
	assert_int_equal(case_connect(&c), ESPL_ETIMEOUT);
	assert_non_null(strstr(c.err.msg, "no reply at all"));
}

static void test_not_in_download_mode(void **state)
{
	(void)state;
	lcase c;
	int boots = 0;
	case_init(&c, 4u << 20, 26);
	case_port(&c)->gpio0_stuck_high = 1;
	c.cp->boots_out = &boots;  /* the port is freed when connect fails */
	c.o.connect_attempts = 2;
	assert_int_equal(case_connect(&c), ESPL_ETIMEOUT);
	assert_non_null(strstr(c.err.msg, "not in download mode"));
	assert_non_null(strstr(c.err.msg, "NodeMCU 3.0.0"));
	assert_int_equal(boots, 2);
}

static void test_endless_output_does_not_hang(void **state)
{
	(void)state;
	lcase c;
	case_init(&c, 4u << 20, 26);
	case_port(&c)->spew = 1;
	c.o.reset = ESPL_RESET_NONE;
	c.o.connect_timeout_ms = 1000;
	int64_t t0 = test_now_ms();
	assert_int_equal(case_connect(&c), ESPL_ETIMEOUT);
	assert_true(test_now_ms() - t0 < 5000);
	assert_non_null(strstr(c.err.msg, "not in download mode"));
	assert_non_null(strstr(c.err.msg, "wifi: scanning"));
}

static void test_checksum_retry_and_give_up(void **state)
{
	(void)state;
	for (int always = 0; always <= 1; always++) {
		lcase c;
		case_init(&c, 1u << 20, 26);
		case_image(&c, 100000, 3, 0);
		case_connected(&c);
		c.cp->corrupt.op = ESPL_OP_FLASH_DEFL_DATA;
		c.cp->corrupt.count = always ? -1 : 1;
		if (always) {
			assert_int_equal(espl_flash_write(c.l, c.img, ESPL_WRITE_COMPRESS, &c.err), ESPL_EDEVICE);
			assert_non_null(strstr(c.err.msg, "checksum"));
			assert_non_null(strstr(c.err.msg, "block 1/"));
		} else {
			case_write_verify(&c, ESPL_WRITE_COMPRESS);
			assert_non_null(strstr(c.cap.text, "retrying"));
		}
		case_free(&c);
	}
}

static void test_md5_mismatch_reports_both(void **state)
{
	(void)state;
	lcase c;
	case_init(&c, 1u << 20, 26);
	case_image(&c, 0x8000, 4, 0x20000);
	uint8_t *other = firmware(c.n, 7);
	espl_image *img2 = prepared(other, c.n, 0x20000), *blank = prepared(other, c.n, 0x80000);
	case_connected(&c);
	case_write_verify(&c, ESPL_WRITE_COMPRESS);
	/* The chip holds img, not img2. */
	assert_int_equal(espl_flash_verify(c.l, img2, &c.err), ESPL_EMISMATCH);
	assert_non_null(strstr(c.err.msg, img2->md5_hex));
	assert_non_null(strstr(c.err.msg, c.img->md5_hex));
	assert_non_null(strstr(c.err.msg, "reject the module"));
	assert_null(strstr(c.err.msg, "blank"));
	/* Nothing was written at 0x80000. */
	assert_int_equal(espl_flash_verify(c.l, blank, &c.err), ESPL_EMISMATCH);
	assert_non_null(strstr(c.err.msg, "blank"));
	case_free(&c);
	espl_image_free(img2);
	espl_image_free(blank);
	free(other);
}

static void test_stuck_flash_is_reported(void **state)
{
	(void)state;
	lcase c;
	case_init(&c, 1u << 20, 26);
	c.cfg.faults.stuck_sector = 0x21;
	c.n = 0x8000;
	c.fw = calloc(1, c.n); /* zeros: a stuck-at-1 sector cannot hold them */
	c.img = prepared(c.fw, c.n, 0x20000);
	case_connected(&c);
	/* The stub does not read back: the write "succeeds", MD5 finds it. */
	if (espl_flash_write(c.l, c.img, ESPL_WRITE_COMPRESS, &c.err))
		fail_msg("write to a stuck sector: %s", c.err.msg);
	assert_int_equal(espl_flash_verify(c.l, c.img, &c.err), ESPL_EMISMATCH);
	assert_non_null(strstr(c.err.msg, c.img->md5_hex));
	assert_non_null(strstr(c.err.msg, "reject the module"));
	case_free(&c);
}

static void test_image_larger_than_flash(void **state)
{
	(void)state;
	lcase c;
	espl_chip_info info;
	case_init(&c, 512u << 10, 26);
	case_image(&c, 600000, 5, 0);
	case_connected(&c);
	assert_int_equal(espl_esp8266_identify(c.l, &info, &c.err), 0);
	assert_int_equal(espl_flash_write(c.l, c.img, ESPL_WRITE_COMPRESS, &c.err), ESPL_ECHIP);
	assert_non_null(strstr(c.err.msg, "does not fit"));
	assert_non_null(strstr(c.err.msg, "524288"));
	case_free(&c);
}

static void fast_baud_case(int adapter_refuses)
{
	lcase c;
	case_init(&c, 1u << 20, 26);
	case_image(&c, 50000, 6, 0);
	if (adapter_refuses)
		case_port(&c)->max_baud = 460800;
	else
		case_port(&c)->garble_above = 460800;
	case_connected(&c);
	assert_int_equal(espl_loader_baud(c.l), 115200);
	if (adapter_refuses) {
		/* found out before the chip was told: no reconnect */
		assert_non_null(strstr(c.cap.text, "staying at 115200"));
		assert_null(strstr(c.cap.text, "reconnecting"));
		assert_int_equal(c.cp->boots, 1);
	} else {
		/* the chip switched, the line failed: reset and start over */
		assert_non_null(strstr(c.cap.text, "reconnecting at 115200"));
		assert_int_equal(c.cp->boots, 2);
	}
	case_write_verify(&c, ESPL_WRITE_COMPRESS);
	case_free(&c);
}

static void test_fast_baud_refused_by_adapter(void **state)
{
	(void)state;
	fast_baud_case(1);
}

static void test_fast_baud_garbled_falls_back(void **state)
{
	(void)state;
	fast_baud_case(0);
}

/* A baud ladder whose top rate the line garbles: the stub switched there,
 * so the chip is reset and the next rate is tried; the rate the adapter
 * refuses outright is skipped without a reset. */
static void test_ladder_climbs_down_at_connect(void **state)
{
	(void)state;
	for (int refuse = 0; refuse <= 1; refuse++) {
		lcase c;
		case_init(&c, 1u << 20, 26);
		if (refuse)
			case_port(&c)->max_baud = 1500000;
		else
			case_port(&c)->garble_above = 1500000;
		c.o.baud = 0; /* the ladder's last rate */
		c.o.flash_baud = 3000000;
		c.o.lower_bauds[0] = 2000000;
		c.o.lower_bauds[1] = 1500000;
		c.o.lower_bauds[2] = 921600;
		c.o.n_lower_bauds = 3;
		case_connected(&c);
		assert_int_equal(espl_loader_rom_baud(c.l), 921600);
		assert_int_equal(espl_loader_baud(c.l), 1500000);
		assert_int_equal(espl_loader_flash_baud(c.l), 1500000);
		/* garbled: 3M and 2M each cost a reset; refused: none */
		if (c.cp->boots != (refuse ? 1 : 3))
			fail_msg("%d boots:\n%s", c.cp->boots, c.cap.text);
		case_free(&c);
	}
}

/* A write whose block keeps arriving corrupted steps one rate down and
 * goes on with that block: one FLASH_DEFL_BEGIN, no reset, the flash right. */
static void test_ladder_steps_down_mid_write(void **state)
{
	(void)state;
	lcase c;
	espl_chip_info info;
	case_init(&c, 1u << 20, 26);
	case_image(&c, 200000, 11, 0x20000);
	c.o.lower_bauds[0] = 460800;
	c.o.n_lower_bauds = 1;
	case_connected(&c);
	assert_int_equal(espl_loader_baud(c.l), 921600);
	assert_true(espl_loader_can_step_down(c.l));
	assert_int_equal(espl_esp8266_identify(c.l, &info, &c.err), 0);
	assert_true(c.img->zblocks >= 3);
	c.cp->corrupt.op = ESPL_OP_FLASH_DEFL_DATA; /* the 3rd block, twice in a row */
	c.cp->corrupt.skip = 2;
	c.cp->corrupt.count = 2;
	unsigned begins = c.cp->unit->op_count[ESPL_OP_FLASH_DEFL_BEGIN];
	case_write_verify(&c, ESPL_WRITE_COMPRESS);
	assert_non_null(strstr(c.cap.text, "stepping down to 460800 baud"));
	assert_int_equal(espl_loader_baud(c.l), 460800);
	assert_int_equal(espl_loader_flash_baud(c.l), 460800);
	assert_false(espl_loader_can_step_down(c.l));
	assert_int_equal(c.cp->unit->op_count[ESPL_OP_FLASH_DEFL_BEGIN], begins + 1);
	assert_int_equal(c.cp->boots, 1);
	assert_memory_equal(case_flash(&c) + 0x20000, c.fw, c.n);
	case_free(&c);
}

/* A fast ROM rate (opt.baud): the ROM auto-bauds on SYNC; a line that
 * garbles that rate costs the fast rounds, then the loader syncs at
 * 115200, says so, and runs the stub there. */
static void rom_baud_case(unsigned garble_above)
{
	lcase c;
	case_init(&c, 1u << 20, 26);
	case_port(&c)->garble_above = garble_above;
	c.o.baud = 921600;
	c.o.flash_baud = garble_above ? garble_above : 921600;
	case_connected(&c);
	assert_int_equal(espl_loader_mode(c.l), ESPL_MODE_STUB);
	if (garble_above) {
		assert_int_equal(espl_loader_baud(c.l), 115200);
		assert_non_null(strstr(c.cap.text, "no answer from the ROM at 921600 baud within 250 ms; "
					       "falling back to 115200 baud"));
		/* the bound (issue 17): the fast try costs its 250 ms budget plus
		 * one 40 ms SYNC timeout, then the 115200 SYNC answers at once;
		 * 200 ms of slack for a loaded machine */
		const char *ph = strstr(c.cap.text, ", sync ");
		assert_non_null(ph);
		int sync_ms = atoi(ph + 7);
		if (sync_ms > 250 + 40 + 200)
			fail_msg("the fast try and fallback took %d ms of SYNC:\n%s", sync_ms, c.cap.text);
	} else {
		assert_int_equal(espl_loader_baud(c.l), 921600);
		assert_null(strstr(c.cap.text, "falling back"));
	}
	case_free(&c);
}

/* No ROM rate given (baud 0): the loader syncs at flash_baud and uploads
 * the stub there, so no CHANGE_BAUDRATE is sent; a ROM deaf at that rate
 * costs one short round (FAST_SYNC_BUDGET_MS), not more. */
static void test_default_rom_baud_is_the_flash_baud(void **state)
{
	(void)state;
	for (int deaf = 0; deaf <= 1; deaf++) {
		lcase c;
		case_init(&c, 1u << 20, 26);
		c.o.baud = 0;
		c.o.connect_attempts = 3;
		if (deaf)
			case_port(&c)->garble_above = 115200;
		case_connected(&c);
		assert_int_equal(espl_loader_rom_baud(c.l), deaf ? 115200 : 921600);
		assert_int_equal(espl_loader_baud(c.l), deaf ? 115200 : 921600);
		assert_int_equal(strstr(c.cap.text, "falling back") != NULL, deaf);
		/* a direct sync needs no switch: 1 boot, and the phase line says so
		 * (a line that garbles 921600 also fails the switch after the
		 * fallback: that costs a reconnect, as with connect.baud: 115200) */
		if (!deaf && c.cp->boots != 1)
			fail_msg("%d boots:\n%s", c.cp->boots, c.cap.text);
		assert_non_null(strstr(c.cap.text, deaf ? "(ROM at 115200, now 115200 baud)"
		                                        : "baud switch 0 (ROM at 921600, now 921600 baud)"));
		case_free(&c);
	}
}

static void test_fast_rom_baud_syncs_directly(void **state)
{
	(void)state;
	rom_baud_case(0);
}

static void test_fast_rom_baud_falls_back_to_115200(void **state)
{
	(void)state;
	rom_baud_case(115200);
}

/* The first reset is missed (the module booted its firmware): no answer
 * at the fast rate, nor at 115200 after the fall-back.  That round says
 * nothing about the rate, so the next reset tries the fast rate again and
 * the loader ends there, instead of reporting the port as one whose ROM
 * cannot sync fast (the station would then connect its next units at
 * 115200). */
static void test_missed_reset_is_not_a_slow_rom(void **state)
{
	(void)state;
	lcase c;
	case_init(&c, 1u << 20, 26);
	case_port(&c)->resets_missed = 1;
	c.o.baud = 921600;
	c.o.connect_attempts = 3;
	case_connected(&c);
	assert_int_equal(c.cp->boots, 2);
	assert_non_null(strstr(c.cap.text, "falling back to 115200"));
	assert_non_null(strstr(c.cap.text, "trying 921600 baud again"));
	if (espl_loader_rom_baud(c.l) != 921600)
		fail_msg("ROM rate %u after one missed reset:\n%s", espl_loader_rom_baud(c.l), c.cap.text);
	assert_int_equal(espl_loader_baud(c.l), 921600);
	case_free(&c);
}

/* The caller's stop flag (options.cancel), set from a progress callback
 * part-way through a write: the loader sends no further block and the write
 * fails with ESPL_EINTERRUPTED at once, not after the whole image. */
typedef struct stop_after {
	log_capture *cap;
	size_t after;           /* bytes written when the flag goes up */
	int flag;
} stop_after;

static void stop_on_progress(void *ctx, const espl_progress *p)
{
	stop_after *st = ctx;
	on_progress(st->cap, p);
	if (p->done >= st->after)
		st->flag = 1;
}

static void test_cancel_stops_a_write_within_a_block(void **state)
{
	(void)state;
	lcase c;
	stop_after st = { .cap = &c.cap, .after = 40000 };
	case_init(&c, 1u << 20, 26);
	case_image(&c, 300000, 12, 0x10000);
	c.o.cancel = &st.flag;
	c.o.events.ctx = &st;
	c.o.events.progress = stop_on_progress;
	c.o.events.log = NULL;
	case_connected(&c);
	unsigned before = c.cp->unit->op_count[ESPL_OP_FLASH_DATA];
	int rc = espl_flash_write(c.l, c.img, 0, &c.err);
	assert_int_equal(rc, ESPL_EINTERRUPTED);
	assert_non_null(strstr(c.err.msg, "stopped"));
	unsigned sent = c.cp->unit->op_count[ESPL_OP_FLASH_DATA] - before;
	/* 300000 bytes are 19 blocks of 16 KiB; the flag went up after the
	 * third (40000 bytes done): nothing after it was sent */
	if (sent != 3)
		fail_msg("%u blocks sent after the stop at %zu bytes", sent, st.after);
	assert_int_equal(st.flag, 1);
	case_free(&c);
}

/* ROM at 460800, stub switched to 921600: CHANGE_BAUDRATE must name the
 * rate the ROM auto-bauded to as the old one (the stub scales its divider
 * by old/new), or the line ends up at a rate nobody uses. */
static void test_rom_baud_then_flash_baud_passes_the_right_old_rate(void **state)
{
	(void)state;
	lcase c;
	case_init(&c, 1u << 20, 26);
	case_image(&c, 50000, 7, 0);
	c.o.baud = 460800;
	c.o.flash_baud = 921600;
	case_connected(&c);
	assert_int_equal(espl_loader_baud(c.l), 921600);
	assert_int_equal(c.cp->boots, 1);
	assert_null(strstr(c.cap.text, "reconnecting"));
	case_write_verify(&c, ESPL_WRITE_COMPRESS);
	case_free(&c);
}

/* A corrupted byte in the stub upload (MEM_DATA checksum error) restarts
 * the upload; a corruption every time still fails, with the reason. */
static void test_stub_upload_restarts(void **state)
{
	(void)state;
	for (int always = 0; always <= 1; always++) {
		lcase c;
		case_init(&c, 1u << 20, 26);
		case_port(&c)->corrupt.op = ESPL_OP_MEM_DATA;
		c.cp->corrupt.count = always ? -1 : 1;
		int rc = case_connect(&c);
		if (always) {
			assert_int_equal(rc, ESPL_EDEVICE);
			assert_non_null(strstr(c.err.msg, "checksum"));
			continue;
		}
		if (rc)
			fail_msg("connect with one corrupted MEM_DATA: %s\n%s", c.err.msg, c.cap.text);
		assert_int_equal(espl_loader_mode(c.l), ESPL_MODE_STUB);
		assert_non_null(strstr(c.cap.text, "uploading it again"));
		case_free(&c);
	}
}

/* What identify says on a clean line, for the fault cases to match. */
static espl_chip_info clean_identify(size_t flash_size, unsigned xtal)
{
	lcase c;
	espl_chip_info clean;
	case_init(&c, flash_size, xtal);
	case_connected(&c);
	assert_int_equal(espl_esp8266_identify(c.l, &clean, &c.err), 0);
	case_free(&c);
	return clean;
}

static void assert_same_chip(const espl_chip_info *got, const espl_chip_info *clean)
{
	assert_string_equal(got->mac_str, clean->mac_str);
	assert_int_equal(got->flash_id, clean->flash_id);
	assert_int_equal(got->xtal_mhz, clean->xtal_mhz);
	assert_int_equal(got->chip_id, clean->chip_id);
}

/* Lost and garbled replies to idempotent commands are asked again: identify
 * gives the same answers as on a clean line, and verify passes. */
static void test_idempotent_commands_are_retried(void **state)
{
	(void)state;
	static const struct { int op; int skip; int garble; } cases[] = {
		{ ESPL_OP_READ_REG, 0, 0 },       /* first efuse word: reply lost */
		{ ESPL_OP_READ_REG, 2, 1 },       /* third efuse word: value garbled */
		{ ESPL_OP_READ_REG, 4, 1 },       /* UART divider (crystal): garbled */
		{ ESPL_OP_WRITE_REG, 3, 0 },      /* JEDEC id command setup: lost */
		{ ESPL_OP_WRITE_REG, 4, 1 },      /* JEDEC id trigger: garbled status ok */
		{ ESPL_OP_SPI_SET_PARAMS, 0, 0 }, /* lost */
		{ ESPL_OP_SPI_FLASH_MD5, 0, 0 },  /* lost */
		{ ESPL_OP_SPI_FLASH_MD5, 0, 1 },  /* garbled: only the value word */
	};
	espl_chip_info clean = clean_identify(4u << 20, 40);
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		lcase c;
		espl_chip_info info;
		case_init(&c, 4u << 20, 40);
		case_image(&c, 50000, 9, 0x1000);
		case_connected(&c);
		assert_int_equal(espl_flash_write(c.l, c.img, ESPL_WRITE_COMPRESS, &c.err), 0);
		sim_port_fault f = { .op = cases[i].op, .skip = cases[i].skip, .count = 1 };
		if (cases[i].garble)
			c.cp->corrupt_reply = f;
		else
			c.cp->drop_reply = f;
		if (espl_esp8266_identify(c.l, &info, &c.err) < 0 || espl_flash_verify(c.l, c.img, &c.err) < 0)
			fail_msg("case %zu (op 0x%02X): %s\n%s", i, cases[i].op, c.err.msg, c.cap.text);
		assert_int_equal(c.cp->corrupt_reply.count + c.cp->drop_reply.count, 0); /* it happened */
		assert_same_chip(&info, &clean);
		case_free(&c);
	}
}

/* A stalled line delivers a command late, after the loader has sent it
 * again: both copies are answered, and the surplus reply must not answer
 * the next command.  Without the fence after a resend, each later READ_REG
 * got the register before it (a PASS recorded with MAC 18:fe:34:00:00:00 in
 * the fault matrix).  Every READ_REG and WRITE_REG of identify is held in
 * turn; identify must give the clean answers every time. */
static void test_late_reply_after_a_resend_answers_nothing(void **state)
{
	(void)state;
	espl_chip_info clean = clean_identify(4u << 20, 40);
	static const int ops[] = { ESPL_OP_READ_REG, ESPL_OP_WRITE_REG };
	for (size_t o = 0; o < 2; o++) {
		for (int skip = 0; skip < 8; skip++) {
			lcase c;
			espl_chip_info info;
			case_init(&c, 4u << 20, 40);
			case_connected(&c);
			c.cp->hold = (sim_port_fault){ .op = ops[o], .skip = skip, .count = 1 };
			if (espl_esp8266_identify(c.l, &info, &c.err) < 0)
				fail_msg("op 0x%02X, skip %d: %s\n%s", ops[o], skip, c.err.msg, c.cap.text);
			if (c.cp->hold.count == 0)
				assert_same_chip(&info, &clean);
			case_free(&c);
		}
	}
}

/* A block whose reply is late arrives twice (the loader timed out and sent
 * it again).  Neither stub checks block numbers.  Whatever esp-flasher-stub
 * (the one that does not trim) makes of the second copy, write + verify must
 * not pass with bytes the image does not hold, nor with anything written in
 * the 64 KiB after it (docs/simulator-fidelity.md, row 4q). */
static void test_block_twice_never_passes_wrong(void **state)
{
	(void)state;
	for (int compress = 0; compress <= 1; compress++) {
		for (int skip = 0; skip < 3; skip++) {
			lcase c;
			case_init(&c, 1u << 20, 26);
			c.cfg.stub_as = "esp-flasher-stub";
			case_image(&c, 40000, 7, 0x10000); /* 3 blocks plain, 2+ compressed; ends inside a sector */
			case_connected(&c);
			c.cp->hold = (sim_port_fault){ .op = compress ? ESPL_OP_FLASH_DEFL_DATA : ESPL_OP_FLASH_DATA,
				                       .skip = skip, .count = 1 };
			int rc = espl_flash_write(c.l, c.img, compress ? ESPL_WRITE_COMPRESS : 0, &c.err);
			if (rc == 0)
				rc = espl_flash_verify(c.l, c.img, &c.err);
			uint8_t *flash = case_flash(&c);
			int image_ok = memcmp(flash + 0x10000, c.fw, c.n) == 0;
			int tail_blank = 1;
			for (size_t a = 0x10000 + c.n; a < 0x10000 + 0x10000; a++)
				tail_blank &= flash[a] == 0xFF;
			if (rc == 0 && (!image_ok || !tail_blank))
				fail_msg("compress %d, block %d twice: passed with %s", compress, skip,
				         image_ok ? "bytes written past the image" : "a wrong image");
			/* the fault really fired where there was such a block */
			if (!compress || skip < 2)
				assert_int_equal(c.cp->hold.count, 0);
			case_free(&c);
		}
	}
}

/* The reply to CHANGE_BAUDRATE is lost: the loader finds the chip at the
 * new rate instead of giving up. */
static void test_lost_change_baud_reply(void **state)
{
	(void)state;
	lcase c;
	case_init(&c, 1u << 20, 26);
	c.o.reset = ESPL_RESET_NONE;
	case_port(&c)->no_lines = 1;
	sim_port_boot(c.cp, 1);
	c.cp->drop_reply = (sim_port_fault){ .op = ESPL_OP_CHANGE_BAUDRATE, .count = 1 };
	if (case_connect(&c))
		fail_msg("connect with a lost CHANGE_BAUDRATE reply: %s\n%s", c.err.msg, c.cap.text);
	assert_int_equal(c.cp->drop_reply.count, 0);
	assert_int_equal(espl_loader_baud(c.l), 921600);
	case_free(&c);
}

/* The wrong chip is an answer, not a link error: one extra read to rule
 * out a garbled reply, and no reconnect. */
static void test_wrong_chip_is_not_retried_away(void **state)
{
	(void)state;
	lcase c;
	case_init(&c, 1u << 20, 26);
	c.cfg.faults.chip_magic = 0x00F01D83; /* ESP32 */
	assert_int_equal(case_connect(&c), ESPL_ECHIP);
	assert_non_null(strstr(c.err.msg, "ESP32"));
	assert_null(strstr(c.cap.text, "connecting again"));
}

/* The pure reply parser the loader uses (and the fuzz target calls). */
static void test_parse_reply(void **state)
{
	(void)state;
	uint32_t value = 0;
	uint8_t out[32];
	size_t out_len = 99;
	unsigned status = 1234;
	espl_error err;
	static const uint8_t reg[] = { 0x01, 0x0A, 0x02, 0x00, 0x01, 0xC1, 0xF0, 0xFF, 0x00, 0x00 };
	assert_int_equal(espl_loader_parse_reply(ESPL_MODE_ROM, ESPL_OP_READ_REG, reg, sizeof reg, &value,
						 NULL, 0, &out_len, &status, &err), 0);
	assert_int_equal(value, ESPL_ESP8266_MAGIC);
	assert_int_equal(status, 0);
	assert_int_equal(out_len, 0);
	/* noise, a request, a surplus SYNC reply: not for this command */
	assert_int_equal(espl_loader_parse_reply(ESPL_MODE_ROM, ESPL_OP_READ_REG, reg, 7, NULL, NULL, 0,
						 NULL, NULL, &err), 1);
	static const uint8_t req[] = { 0x00, 0x0A, 0x04, 0x00, 0, 0, 0, 0, 0x00, 0x10, 0x00, 0x40 };
	assert_int_equal(espl_loader_parse_reply(ESPL_MODE_ROM, ESPL_OP_READ_REG, req, sizeof req, NULL,
						 NULL, 0, NULL, NULL, &err), 1);
	static const uint8_t sync[] = { 0x01, 0x08, 0x02, 0x00, 0x07, 0x07, 0x12, 0x20, 0x00, 0x00 };
	assert_int_equal(espl_loader_parse_reply(ESPL_MODE_ROM, ESPL_OP_READ_REG, sync, sizeof sync, NULL,
						 NULL, 0, NULL, NULL, &err), 1);
	assert_int_equal(espl_loader_parse_reply(ESPL_MODE_ROM, ESPL_OP_READ_REG, NULL, 0, NULL, NULL, 0,
						 NULL, NULL, &err), 1);
	/* the ROM rejects an unknown command (it answers with its own opcode) */
	static const uint8_t invalid[] = { 0x01, 0xD0, 0x02, 0x00, 0, 0, 0, 0, 0x01, 0x05 };
	assert_int_equal(espl_loader_parse_reply(ESPL_MODE_ROM, ESPL_OP_ERASE_FLASH - 1, invalid,
						 sizeof invalid, NULL, NULL, 0, NULL, NULL, &err),
			 ESPL_EUNSUPPORTED);
	/* stub: bad data checksum, decoded */
	static const uint8_t bad[] = { 0x01, 0x11, 0x02, 0x00, 0, 0, 0, 0, 0xC1, 0x00 };
	assert_int_equal(espl_loader_parse_reply(ESPL_MODE_STUB, ESPL_OP_FLASH_DEFL_DATA, bad, sizeof bad,
						 NULL, NULL, 0, NULL, &status, &err), ESPL_EDEVICE);
	assert_int_equal(status, 0xC100);
	assert_non_null(strstr(err.msg, "checksum"));
	/* a ROM status while the stub should answer: the chip was reset */
	static const uint8_t rom[] = { 0x01, 0x03, 0x02, 0x00, 0, 0, 0, 0, 0x01, 0x07 };
	assert_int_equal(espl_loader_parse_reply(ESPL_MODE_STUB, ESPL_OP_FLASH_DATA, rom, sizeof rom,
						 NULL, NULL, 0, NULL, NULL, &err), ESPL_EDEVICE);
	assert_non_null(strstr(err.msg, "reset"));
	/* no status bytes at all */
	static const uint8_t bare[] = { 0x01, 0x0B, 0x00, 0x00, 0, 0, 0, 0 };
	assert_int_equal(espl_loader_parse_reply(ESPL_MODE_STUB, ESPL_OP_SPI_SET_PARAMS, bare, sizeof bare,
						 NULL, NULL, 0, NULL, NULL, &err), ESPL_EPROTO);
	/* MD5: 16 data bytes before the status, truncated to out_cap */
	uint8_t md5[8 + 18] = { 0x01, 0x13, 18, 0x00, 0, 0, 0, 0 };
	for (int i = 0; i < 16; i++)
		md5[8 + i] = (uint8_t)(0xA0 + i);
	assert_int_equal(espl_loader_parse_reply(ESPL_MODE_STUB, ESPL_OP_SPI_FLASH_MD5, md5, sizeof md5,
						 NULL, out, 4, &out_len, &status, &err), 0);
	assert_int_equal(out_len, 16);
	assert_int_equal(out[0], 0xA0);
	assert_int_equal(out[3], 0xA3);
}

static void test_missing_stub(void **state)
{
	(void)state;
	lcase c;
	case_init(&c, 4u << 20, 26);
	c.o.stub_path = "/nonexistent/stub.json";
	assert_int_equal(case_connect(&c), ESPL_ENOTFOUND);
	assert_non_null(strstr(c.err.msg, "/nonexistent/stub.json"));
}

/* The one place that turns connect settings into loader options: the
 * ladder starts at its highest rate not above a rate that worked before. */
static void test_options_for_cuts_the_ladder(void **state)
{
	(void)state;
	static const unsigned lower[] = { 460800, 230400, 115200 };
	espl_connect_settings s = {
		.reset = ESPL_RESET_NONE, .rom_baud = 115200, .flash_baud = 921600,
		.lower_bauds = lower, .n_lower_bauds = 3, .no_stub = 0, .connect_attempts = 2,
		.connect_timeout_ms = 1500,
	};
	espl_loader_options o;

	espl_loader_options_for(&s, &o);
	assert_int_equal(o.flash_baud, 921600);
	assert_int_equal(o.n_lower_bauds, 3);
	assert_int_equal(o.lower_bauds[2], 115200);
	assert_int_equal(o.reset, ESPL_RESET_NONE);
	assert_int_equal(o.baud, 115200);
	assert_int_equal(o.connect_attempts, 2);
	assert_int_equal(o.connect_timeout_ms, 1500);

	s.flash_baud_start = 300000; /* between rungs: the next one down */
	espl_loader_options_for(&s, &o);
	assert_int_equal(o.flash_baud, 230400);
	assert_int_equal(o.n_lower_bauds, 1);
	assert_int_equal(o.lower_bauds[0], 115200);

	s.flash_baud_start = 9600; /* below the ladder: its last rung alone */
	espl_loader_options_for(&s, &o);
	assert_int_equal(o.flash_baud, 115200);
	assert_int_equal(o.n_lower_bauds, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_identify),
		cmocka_unit_test(test_write_compressed_and_verify),
		cmocka_unit_test(test_write_uncompressed_stub_and_rom),
		cmocka_unit_test(test_erase),
		cmocka_unit_test(test_wrong_chip),
		cmocka_unit_test(test_no_modem_lines),
		cmocka_unit_test(test_hard_reset_boots_app),
		cmocka_unit_test(test_silent_chip_times_out),
		cmocka_unit_test(test_not_in_download_mode),
		cmocka_unit_test(test_endless_output_does_not_hang),
		cmocka_unit_test(test_checksum_retry_and_give_up),
		cmocka_unit_test(test_md5_mismatch_reports_both),
		cmocka_unit_test(test_stuck_flash_is_reported),
		cmocka_unit_test(test_image_larger_than_flash),
		cmocka_unit_test(test_fast_baud_refused_by_adapter),
		cmocka_unit_test(test_fast_baud_garbled_falls_back),
		cmocka_unit_test(test_ladder_climbs_down_at_connect),
		cmocka_unit_test(test_ladder_steps_down_mid_write),
		cmocka_unit_test(test_fast_rom_baud_syncs_directly),
		cmocka_unit_test(test_default_rom_baud_is_the_flash_baud),
		cmocka_unit_test(test_fast_rom_baud_falls_back_to_115200),
		cmocka_unit_test(test_rom_baud_then_flash_baud_passes_the_right_old_rate),
		cmocka_unit_test(test_missed_reset_is_not_a_slow_rom),
		cmocka_unit_test(test_cancel_stops_a_write_within_a_block),
		cmocka_unit_test(test_missing_stub),
		cmocka_unit_test(test_stub_upload_restarts),
		cmocka_unit_test(test_parse_reply),
		cmocka_unit_test(test_idempotent_commands_are_retried),
		cmocka_unit_test(test_late_reply_after_a_resend_answers_nothing),
		cmocka_unit_test(test_block_twice_never_passes_wrong),
		cmocka_unit_test(test_lost_change_baud_reply),
		cmocka_unit_test(test_wrong_chip_is_not_retried_away),
		cmocka_unit_test(test_options_for_cuts_the_ladder),
	};
	return cmocka_run_group_tests(tests, write_fake_stub, remove_fake_stub);
}
