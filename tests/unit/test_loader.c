/* test_loader.c - the loader, identify and flash operations end to end
 * against the simulated chip model (tests/sim/sim_chip.h), in process.
 *
 * A fake espl_port runs the chip synchronously: bytes the loader writes are
 * SLIP-decoded and handed to the chip, and the chip's replies are queued for
 * the loader to read.  It models the NodeMCU auto-reset circuit on DTR/RTS,
 * the boot garbage, baud mismatches after CHANGE_BAUDRATE, and a few faults
 * (corrupted payload bytes, a port without modem lines, a chip whose GPIO0
 * never goes low).  The stub is a small fake JSON: the chip model only needs
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

#define RXQ_CAP (1u << 20)

typedef struct chip_port {
	espl_port base;
	sim_chip *chip;
	uint8_t *rxq;
	size_t rx_head, rx_tail;
	espl_slip_decoder dec;
	uint8_t frame[0x4100];
	unsigned chip_baud;
	int dtr, rts;
	int no_lines;          /* fault: a pty-like port */
	int gpio0_stuck_high;  /* fault: the auto-reset circuit cannot pull GPIO0 low */
	unsigned max_baud;     /* fault: the adapter refuses faster rates (0 = none) */
	int spew;              /* fault: the firmware prints without pause */
	unsigned garble_above; /* fault: the cable garbles faster rates (0 = none) */
	long corrupt_op;       /* fault: flip a payload byte of this opcode ... */
	int corrupt_count;     /* ... this many times (-1 = always) */
	uint64_t now_us;
	int boots;
	int *boots_out;        /* also counted here: outlives the port */
} chip_port;

static int64_t test_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- chip io ------------------------------------------------------------ */

static void queue(chip_port *cp, const uint8_t *b, size_t n)
{
	assert_true(cp->rx_tail + n <= RXQ_CAP);
	memcpy(cp->rxq + cp->rx_tail, b, n);
	cp->rx_tail += n;
}

static void chip_emit(void *ctx, const uint8_t *frame, size_t len)
{
	chip_port *cp = ctx;
	uint8_t enc[ESPL_SLIP_ENCODED_MAX(0x4100)];
	if (cp->chip_baud != cp->base.baud || (cp->garble_above && cp->base.baud > cp->garble_above)) {
		static const uint8_t junk[] = { 0x00, 0xF0, 0x80, 0x78, 0x00 };
		queue(cp, junk, sizeof junk); /* what a wrong baud looks like */
		return;
	}
	queue(cp, enc, espl_slip_encode(frame, len, enc));
}

static void chip_sleep(void *ctx, uint64_t us) { ((chip_port *)ctx)->now_us += us; }
static uint64_t chip_now(void *ctx) { return ((chip_port *)ctx)->now_us; }
static void chip_set_baud(void *ctx, unsigned baud) { ((chip_port *)ctx)->chip_baud = baud; }
static void chip_reboot(void *ctx, int to_app) { (void)ctx; (void)to_app; }
static void chip_fault(void *ctx, const char *what) { (void)ctx; (void)what; }

/* ---- port ops ----------------------------------------------------------- */

static int cp_read(espl_port *p, uint8_t *buf, size_t len, int timeout_ms, espl_error *err)
{
	chip_port *cp = (chip_port *)p;
	(void)timeout_ms;
	if (cp->spew) {
		static const char text[] = "wifi: scanning... ";
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)text[i % (sizeof text - 1)];
		return (int)len;
	}
	size_t avail = cp->rx_tail - cp->rx_head;
	if (avail == 0) {
		cp->rx_head = cp->rx_tail = 0;
		return espl_fail(err, ESPL_ETIMEOUT, "timeout");
	}
	if (len > avail)
		len = avail;
	memcpy(buf, cp->rxq + cp->rx_head, len);
	cp->rx_head += len;
	return (int)len;
}

static void maybe_corrupt(chip_port *cp, uint8_t *frame, size_t len)
{
	if (cp->corrupt_count == 0 || len < 8 + 16 + 1 || frame[1] != cp->corrupt_op)
		return;
	frame[8 + 16] ^= 0x01; /* first payload byte after the sub-header */
	if (cp->corrupt_count > 0)
		cp->corrupt_count--;
}

static int cp_write(espl_port *p, const uint8_t *buf, size_t len, espl_error *err)
{
	chip_port *cp = (chip_port *)p;
	(void)err;
	if (cp->chip_baud != cp->base.baud || (cp->garble_above && cp->base.baud > cp->garble_above))
		return (int)len; /* the chip hears noise */
	for (size_t i = 0; i < len; i++) {
		if (espl_slip_feed(&cp->dec, buf[i]) == ESPL_SLIP_FRAME) {
			maybe_corrupt(cp, cp->dec.frame, cp->dec.len);
			sim_chip_handle_frame(cp->chip, cp->dec.frame, cp->dec.len);
		}
	}
	return (int)len;
}

static int cp_drain(espl_port *p, espl_error *err) { (void)p; (void)err; return 0; }

static int cp_flush(espl_port *p, espl_error *err)
{
	chip_port *cp = (chip_port *)p;
	(void)err;
	cp->rx_head = cp->rx_tail = 0;
	return 0;
}

static int cp_set_baud(espl_port *p, unsigned baud, espl_error *err)
{
	chip_port *cp = (chip_port *)p;
	if (cp->max_baud && baud > cp->max_baud)
		return espl_fail(err, ESPL_ESYS, "%s: %u baud not supported", p->name, baud);
	p->baud = baud;
	if (sim_chip_mode(cp->chip) != SIM_MODE_STUB)
		cp->chip_baud = baud; /* the ROM auto-bauds */
	sim_chip_set_host_baud(cp->chip, baud);
	return 0;
}

static void boot(chip_port *cp, int download)
{
	static const uint8_t rom_garbage[] = { 0x00, 0x8E, 0xF2, 0x6C, 0x9C, 0x12, 0x8C, 0x7C, 0x02 };
	static const char app_text[] = "\r\nNodeMCU 3.0.0 build 2026\r\n> ";
	sim_chip_boot(cp->chip, download);
	cp->chip_baud = cp->base.baud;
	sim_chip_set_host_baud(cp->chip, cp->base.baud);
	cp->boots++;
	if (cp->boots_out)
		(*cp->boots_out)++;
	if (download)
		queue(cp, rom_garbage, sizeof rom_garbage);
	else
		queue(cp, (const uint8_t *)app_text, sizeof app_text - 1);
}

static int cp_set_lines(espl_port *p, int dtr, int rts, espl_error *err)
{
	chip_port *cp = (chip_port *)p;
	if (cp->no_lines)
		return espl_fail(err, ESPL_EUNSUPPORTED, "%s is a pseudo-terminal: no modem lines", p->name);
	int en_was_low = cp->rts && !cp->dtr;
	if (dtr != ESPL_LINE_KEEP)
		cp->dtr = dtr;
	if (rts != ESPL_LINE_KEEP)
		cp->rts = rts;
	int en_low = cp->rts && !cp->dtr;
	int gpio0_low = cp->dtr && !cp->rts && !cp->gpio0_stuck_high;
	if (en_was_low && !en_low)
		boot(cp, gpio0_low);
	return 0;
}

static void cp_close(espl_port *p)
{
	chip_port *cp = (chip_port *)p;
	sim_chip_free(cp->chip);
	free(cp->rxq);
	free(cp);
}

static const espl_port_ops chip_port_ops = {
	.kind = "test", .read = cp_read, .write = cp_write, .drain = cp_drain,
	.flush_input = cp_flush, .set_baud = cp_set_baud, .set_lines = cp_set_lines,
	.close = cp_close,
};

static chip_port *new_chip_port(const sim_chip_config *cfg)
{
	chip_port *cp = calloc(1, sizeof *cp);
	assert_non_null(cp);
	cp->rxq = malloc(RXQ_CAP);
	assert_non_null(cp->rxq);
	cp->base.ops = &chip_port_ops;
	snprintf(cp->base.name, sizeof cp->base.name, "testchip");
	cp->base.baud = 115200;
	cp->chip_baud = 115200;
	cp->corrupt_op = -1;
	sim_chip_io io = { .ctx = cp, .emit = chip_emit, .sleep_us = chip_sleep, .now_us = chip_now,
			   .set_baud = chip_set_baud, .reboot = chip_reboot, .fault = chip_fault };
	cp->chip = sim_chip_new(cfg, &io);
	assert_non_null(cp->chip);
	espl_slip_decoder_init(&cp->dec, cp->frame, sizeof cp->frame);
	return cp;
}

/* ---- fixtures ----------------------------------------------------------- */

static char stub_path[64];

static int write_fake_stub(void **state)
{
	(void)state;
	snprintf(stub_path, sizeof stub_path, "/tmp/espline-test-stub-%d.json", (int)getpid());
	FILE *f = fopen(stub_path, "w");
	assert_non_null(f);
	/* "AAECAwQFBgcICQoLDA0ODw==" = bytes 0..15 */
	fprintf(f, "{\"entry\": 1074840836, \"text\": \"AAECAwQFBgcICQoLDA0ODw==\", "
		   "\"text_start\": 1074840832, \"data\": \"AAECAw==\", \"data_start\": 1073720940}\n");
	fclose(f);
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

static void options(espl_loader_options *o, log_capture *cap)
{
	espl_loader_options_init(o);
	o->stub_path = stub_path;
	o->flash_baud = 921600;
	o->connect_attempts = 2;
	o->connect_timeout_ms = 3000;
	o->events.ctx = cap;
	o->events.log = on_log;
	o->events.progress = on_progress;
}

static sim_chip_config chip_config(size_t flash_size, unsigned xtal)
{
	sim_chip_config cfg;
	sim_chip_config_defaults(&cfg);
	static const uint8_t mac[6] = { 0xAC, 0xD0, 0x74, 0x12, 0x34, 0x56 };
	memcpy(cfg.mac, mac, 6);
	cfg.flash_size = flash_size;
	unsigned cap = 0;
	while (((size_t)1 << cap) < flash_size)
		cap++;
	cfg.jedec_id = 0x40EFu | (uint32_t)cap << 16;
	cfg.xtal_mhz = xtal;
	return cfg;
}

/* Firmware-like bytes: repetitive text with some noise, compressible. */
static uint8_t *firmware(size_t n, unsigned seed)
{
	uint8_t *d = malloc(n);
	assert_non_null(d);
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		d[i] = (x >> 24) % 4 == 0 ? (uint8_t)(x >> 16) : (uint8_t)("espline firmware "[i % 17]);
	}
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

/* ---- tests -------------------------------------------------------------- */

static void test_connect_identify(void **state)
{
	(void)state;
	static const struct { size_t size; unsigned xtal; } cases[] = {
		{ 512u << 10, 26 }, { 1u << 20, 40 }, { 4u << 20, 26 }, { 16u << 20, 40 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		sim_chip_config cfg = chip_config(cases[i].size, cases[i].xtal);
		chip_port *cp = new_chip_port(&cfg);
		espl_loader_options o;
		log_capture cap = { 0 };
		espl_loader *l;
		espl_error err;
		espl_chip_info info;
		options(&o, &cap);
		int rc = espl_loader_connect(&cp->base, &o, &l, &err);
		if (rc)
			fail_msg("connect: %s", err.msg);
		assert_int_equal(espl_loader_mode(l), ESPL_MODE_STUB);
		assert_int_equal(espl_loader_baud(l), 921600);
		rc = espl_esp8266_identify(l, &info, &err);
		if (rc)
			fail_msg("identify: %s", err.msg);
		assert_string_equal(info.mac_str, "ac:d0:74:12:34:56");
		if (info.flash_size != cases[i].size)
			fail_msg("flash id 0x%06X: size %zu, expected %zu (%s)", info.flash_id, info.flash_size, cases[i].size, cap.text);
		assert_int_equal(espl_loader_flash_size(l), cases[i].size);
		assert_int_equal(info.xtal_mhz, cases[i].xtal);
		assert_int_equal(info.flash_manufacturer, 0xEF);
		assert_string_equal(info.flash_vendor, "Winbond");
		assert_string_equal(info.chip, "ESP8266EX");
		espl_loader_close(l);
	}
}

static void test_write_compressed_and_verify(void **state)
{
	(void)state;
	sim_chip_config cfg = chip_config(1u << 20, 26);
	chip_port *cp = new_chip_port(&cfg);
	espl_loader_options o;
	log_capture cap = { 0 };
	espl_loader *l;
	espl_error err;
	espl_chip_info info;
	size_t n = 300001; /* not a multiple of 4: padded with 0xFF */
	uint8_t *fw = firmware(n, 1);
	espl_image *img = prepared(fw, n, 0x10000);

	options(&o, &cap);
	assert_int_equal(espl_loader_connect(&cp->base, &o, &l, &err), 0);
	assert_int_equal(espl_esp8266_identify(l, &info, &err), 0);
	int rc = espl_flash_write(l, img, ESPL_WRITE_COMPRESS, &err);
	if (rc)
		fail_msg("write: %s", err.msg);
	assert_true(img->zsize < img->size);
	assert_int_equal(cap.last_done, img->size);
	assert_int_equal(cap.last_total, img->size);
	rc = espl_flash_verify(l, img, &err);
	if (rc)
		fail_msg("verify: %s", err.msg);
	size_t fsize;
	uint8_t *flash = sim_chip_flash(cp->chip, &fsize);
	assert_memory_equal(flash + 0x10000, fw, n);
	assert_int_equal(flash[0x10000 + n], 0xFF);

	/* Read it back through READ_FLASH. */
	uint8_t *back = malloc(n);
	rc = espl_flash_read(l, 0x10000, (uint32_t)n, back, &err);
	if (rc)
		fail_msg("read: %s", err.msg);
	assert_memory_equal(back, fw, n);
	free(back);
	espl_loader_close(l);
	espl_image_free(img);
	free(fw);
}

static void test_write_uncompressed_stub_and_rom(void **state)
{
	(void)state;
	for (int rom = 0; rom <= 1; rom++) {
		sim_chip_config cfg = chip_config(1u << 20, 26);
		chip_port *cp = new_chip_port(&cfg);
		espl_loader_options o;
		log_capture cap = { 0 };
		espl_loader *l;
		espl_error err;
		size_t n = 70000;
		uint8_t *fw = firmware(n, 2);
		espl_image *img = prepared(fw, n, 0x3000);

		options(&o, &cap);
		o.no_stub = rom;
		assert_int_equal(espl_loader_connect(&cp->base, &o, &l, &err), 0);
		assert_int_equal(espl_loader_mode(l), rom ? ESPL_MODE_ROM : ESPL_MODE_STUB);
		int rc = espl_flash_write(l, img, 0, &err);
		if (rc)
			fail_msg("write (rom=%d): %s", rom, err.msg);
		size_t fsize;
		uint8_t *flash = sim_chip_flash(cp->chip, &fsize);
		assert_memory_equal(flash + 0x3000, fw, n);
		rc = espl_flash_verify(l, img, &err);
		if (rom) {
			assert_int_equal(rc, ESPL_EUNSUPPORTED);
			assert_non_null(strstr(err.msg, "stub"));
		} else {
			assert_int_equal(rc, 0);
		}
		espl_loader_close(l);
		espl_image_free(img);
		free(fw);
	}
}

static void test_erase(void **state)
{
	(void)state;
	sim_chip_config cfg = chip_config(1u << 20, 26);
	chip_port *cp = new_chip_port(&cfg);
	espl_loader_options o;
	log_capture cap = { 0 };
	espl_loader *l;
	espl_error err;
	size_t fsize;
	uint8_t *flash = sim_chip_flash(cp->chip, &fsize);
	memset(flash, 0x00, fsize);

	options(&o, &cap);
	assert_int_equal(espl_loader_connect(&cp->base, &o, &l, &err), 0);
	assert_int_equal(espl_flash_erase_region(l, 0x1000, 0x2000, &err), 0);
	assert_int_equal(flash[0x0FFF], 0x00);
	assert_int_equal(flash[0x1000], 0xFF);
	assert_int_equal(flash[0x2FFF], 0xFF);
	assert_int_equal(flash[0x3000], 0x00);
	assert_int_equal(espl_flash_erase_region(l, 0x1001, 0x1000, &err), ESPL_EARG);
	assert_non_null(strstr(err.msg, "4096"));
	assert_int_equal(espl_flash_erase_chip(l, &err), 0);
	for (size_t i = 0; i < fsize; i += 4093)
		assert_int_equal(flash[i], 0xFF);
	espl_loader_close(l);
}

static void test_wrong_chip(void **state)
{
	(void)state;
	sim_chip_config cfg = chip_config(4u << 20, 26);
	cfg.faults.chip_magic = 0x1B31506F;
	chip_port *cp = new_chip_port(&cfg);
	espl_loader_options o;
	log_capture cap = { 0 };
	espl_loader *l;
	espl_error err;
	options(&o, &cap);
	assert_int_equal(espl_loader_connect(&cp->base, &o, &l, &err), ESPL_ECHIP);
	assert_null(l);
	assert_non_null(strstr(err.msg, "found ESP32-C3"));
	assert_non_null(strstr(err.msg, "this recipe is for ESP8266"));
}

static void test_no_modem_lines(void **state)
{
	(void)state;
	sim_chip_config cfg = chip_config(4u << 20, 26);
	espl_loader_options o;
	log_capture cap = { 0 };
	espl_loader *l;
	espl_error err;

	chip_port *cp = new_chip_port(&cfg);
	cp->no_lines = 1;
	options(&o, &cap);
	assert_int_equal(espl_loader_connect(&cp->base, &o, &l, &err), ESPL_EUNSUPPORTED);
	assert_non_null(strstr(err.msg, "--reset none"));

	/* The jig put the chip in download mode itself. */
	cp = new_chip_port(&cfg);
	cp->no_lines = 1;
	boot(cp, 1);
	o.reset = ESPL_RESET_NONE;
	int rc = espl_loader_connect(&cp->base, &o, &l, &err);
	if (rc)
		fail_msg("connect with --reset none: %s", err.msg);
	assert_int_equal(espl_loader_mode(l), ESPL_MODE_STUB);
	/* No reset lines: the stub is asked to run the firmware. */
	assert_int_equal(espl_loader_hard_reset(l, &err), 0);
	assert_int_equal(sim_chip_mode(cp->chip), SIM_MODE_APP);
	espl_loader_close(l);
}

static void test_hard_reset_boots_app(void **state)
{
	(void)state;
	sim_chip_config cfg = chip_config(4u << 20, 26);
	chip_port *cp = new_chip_port(&cfg);
	espl_loader_options o;
	log_capture cap = { 0 };
	espl_loader *l;
	espl_error err;
	options(&o, &cap);
	assert_int_equal(espl_loader_connect(&cp->base, &o, &l, &err), 0);
	int boots = cp->boots;
	assert_int_equal(espl_loader_hard_reset(l, &err), 0);
	assert_int_equal(cp->boots, boots + 1);
	assert_int_equal(sim_chip_mode(cp->chip), SIM_MODE_APP);
	espl_loader_close(l);
}

static void test_silent_chip_times_out(void **state)
{
	(void)state;
	sim_chip_config cfg = chip_config(4u << 20, 26);
	cfg.faults.silent = 1;
	chip_port *cp = new_chip_port(&cfg);
	espl_loader_options o;
	log_capture cap = { 0 };
	espl_loader *l;
	espl_error err;
	options(&o, &cap);
	o.reset = ESPL_RESET_NONE; /* no boot garbage either */
	o.connect_timeout_ms = 800;
	assert_int_equal(espl_loader_connect(&cp->base, &o, &l, &err), ESPL_ETIMEOUT);
	assert_non_null(strstr(err.msg, "no reply at all"));
}

static void test_not_in_download_mode(void **state)
{
	(void)state;
	sim_chip_config cfg = chip_config(4u << 20, 26);
	chip_port *cp = new_chip_port(&cfg);
	espl_loader_options o;
	log_capture cap = { 0 };
	espl_loader *l;
	espl_error err;
	int boots = 0;
	cp->gpio0_stuck_high = 1;
	cp->boots_out = &boots;
	options(&o, &cap);
	o.connect_attempts = 2;
	/* On failure the loader closes (frees) the port. */
	assert_int_equal(espl_loader_connect(&cp->base, &o, &l, &err), ESPL_ETIMEOUT);
	assert_non_null(strstr(err.msg, "not in download mode"));
	assert_non_null(strstr(err.msg, "NodeMCU 3.0.0"));
	assert_int_equal(boots, 2);
}

static void test_endless_output_does_not_hang(void **state)
{
	(void)state;
	sim_chip_config cfg = chip_config(4u << 20, 26);
	chip_port *cp = new_chip_port(&cfg);
	espl_loader_options o;
	log_capture cap = { 0 };
	espl_loader *l;
	espl_error err;
	cp->spew = 1;
	options(&o, &cap);
	o.reset = ESPL_RESET_NONE;
	o.connect_timeout_ms = 1000;
	int64_t t0 = test_now_ms();
	assert_int_equal(espl_loader_connect(&cp->base, &o, &l, &err), ESPL_ETIMEOUT);
	assert_true(test_now_ms() - t0 < 5000);
	assert_non_null(strstr(err.msg, "not in download mode"));
	assert_non_null(strstr(err.msg, "wifi: scanning"));
}

static void test_checksum_retry_and_give_up(void **state)
{
	(void)state;
	for (int always = 0; always <= 1; always++) {
		sim_chip_config cfg = chip_config(1u << 20, 26);
		chip_port *cp = new_chip_port(&cfg);
		espl_loader_options o;
		log_capture cap = { 0 };
		espl_loader *l;
		espl_error err;
		size_t n = 100000;
		uint8_t *fw = firmware(n, 3);
		espl_image *img = prepared(fw, n, 0);
		options(&o, &cap);
		assert_int_equal(espl_loader_connect(&cp->base, &o, &l, &err), 0);
		cp->corrupt_op = ESPL_OP_FLASH_DEFL_DATA;
		cp->corrupt_count = always ? -1 : 1;
		int rc = espl_flash_write(l, img, ESPL_WRITE_COMPRESS, &err);
		if (always) {
			assert_int_equal(rc, ESPL_EDEVICE);
			assert_non_null(strstr(err.msg, "checksum"));
			assert_non_null(strstr(err.msg, "block 1/"));
		} else {
			if (rc)
				fail_msg("write with one corrupted block: %s", err.msg);
			assert_non_null(strstr(cap.text, "retrying"));
			assert_int_equal(espl_flash_verify(l, img, &err), 0);
		}
		espl_loader_close(l);
		espl_image_free(img);
		free(fw);
	}
}

static void test_md5_mismatch_reports_both(void **state)
{
	(void)state;
	sim_chip_config cfg = chip_config(1u << 20, 26);
	chip_port *cp = new_chip_port(&cfg);
	espl_loader_options o;
	log_capture cap = { 0 };
	espl_loader *l;
	espl_error err;
	size_t n = 0x8000;
	uint8_t *fw = firmware(n, 4), *other = firmware(n, 7);
	espl_image *img = prepared(fw, n, 0x20000), *img2 = prepared(other, n, 0x20000);
	espl_image *blank = prepared(other, n, 0x80000);
	options(&o, &cap);
	assert_int_equal(espl_loader_connect(&cp->base, &o, &l, &err), 0);
	assert_int_equal(espl_flash_write(l, img, ESPL_WRITE_COMPRESS, &err), 0);
	assert_int_equal(espl_flash_verify(l, img, &err), 0);
	/* The chip holds img, not img2. */
	assert_int_equal(espl_flash_verify(l, img2, &err), ESPL_EMISMATCH);
	assert_non_null(strstr(err.msg, img2->md5_hex));
	assert_non_null(strstr(err.msg, img->md5_hex));
	assert_non_null(strstr(err.msg, "reject the module"));
	assert_null(strstr(err.msg, "blank"));
	/* Nothing was written at 0x80000. */
	assert_int_equal(espl_flash_verify(l, blank, &err), ESPL_EMISMATCH);
	assert_non_null(strstr(err.msg, "blank"));
	espl_loader_close(l);
	espl_image_free(img);
	espl_image_free(img2);
	espl_image_free(blank);
	free(fw);
	free(other);
}

static void test_stuck_flash_is_reported(void **state)
{
	(void)state;
	sim_chip_config cfg = chip_config(1u << 20, 26);
	cfg.faults.stuck_sector = 0x21;
	chip_port *cp = new_chip_port(&cfg);
	espl_loader_options o;
	log_capture cap = { 0 };
	espl_loader *l;
	espl_error err;
	size_t n = 0x8000;
	uint8_t *fw = calloc(1, n); /* zeros: a stuck-at-1 sector cannot hold them */
	espl_image *img = prepared(fw, n, 0x20000);
	options(&o, &cap);
	assert_int_equal(espl_loader_connect(&cp->base, &o, &l, &err), 0);
	int rc = espl_flash_write(l, img, ESPL_WRITE_COMPRESS, &err);
	if (rc == 0)
		rc = espl_flash_verify(l, img, &err);
	assert_true(rc == ESPL_EDEVICE || rc == ESPL_EMISMATCH);
	assert_non_null(strstr(err.msg, "reject the module"));
	espl_loader_close(l);
	espl_image_free(img);
	free(fw);
}

static void test_image_larger_than_flash(void **state)
{
	(void)state;
	sim_chip_config cfg = chip_config(512u << 10, 26);
	chip_port *cp = new_chip_port(&cfg);
	espl_loader_options o;
	log_capture cap = { 0 };
	espl_loader *l;
	espl_error err;
	espl_chip_info info;
	size_t n = 600000;
	uint8_t *fw = firmware(n, 5);
	espl_image *img = prepared(fw, n, 0);
	options(&o, &cap);
	assert_int_equal(espl_loader_connect(&cp->base, &o, &l, &err), 0);
	assert_int_equal(espl_esp8266_identify(l, &info, &err), 0);
	assert_int_equal(espl_flash_write(l, img, ESPL_WRITE_COMPRESS, &err), ESPL_ECHIP);
	assert_non_null(strstr(err.msg, "does not fit"));
	assert_non_null(strstr(err.msg, "524288"));
	espl_loader_close(l);
	espl_image_free(img);
	free(fw);
}

static void fast_baud_case(int adapter_refuses)
{
	sim_chip_config cfg = chip_config(1u << 20, 26);
	chip_port *cp = new_chip_port(&cfg);
	espl_loader_options o;
	log_capture cap = { 0 };
	espl_loader *l;
	espl_error err;
	size_t n = 50000;
	uint8_t *fw = firmware(n, 6);
	espl_image *img = prepared(fw, n, 0);
	if (adapter_refuses)
		cp->max_baud = 460800;
	else
		cp->garble_above = 460800;
	options(&o, &cap);
	int rc = espl_loader_connect(&cp->base, &o, &l, &err);
	if (rc)
		fail_msg("connect: %s", err.msg);
	assert_int_equal(espl_loader_baud(l), 115200);
	if (adapter_refuses) {
		/* found out before the chip was told: no reconnect */
		assert_non_null(strstr(cap.text, "staying at 115200"));
		assert_null(strstr(cap.text, "reconnecting"));
		assert_int_equal(cp->boots, 1);
	} else {
		/* the chip switched, the line failed: reset and start over */
		assert_non_null(strstr(cap.text, "reconnecting at 115200"));
		assert_int_equal(cp->boots, 2);
	}
	assert_int_equal(espl_flash_write(l, img, ESPL_WRITE_COMPRESS, &err), 0);
	assert_int_equal(espl_flash_verify(l, img, &err), 0);
	espl_loader_close(l);
	espl_image_free(img);
	free(fw);
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

static void test_missing_stub(void **state)
{
	(void)state;
	sim_chip_config cfg = chip_config(4u << 20, 26);
	chip_port *cp = new_chip_port(&cfg);
	espl_loader_options o;
	log_capture cap = { 0 };
	espl_loader *l;
	espl_error err;
	options(&o, &cap);
	o.stub_path = "/nonexistent/stub.json";
	assert_int_equal(espl_loader_connect(&cp->base, &o, &l, &err), ESPL_ENOTFOUND);
	assert_non_null(strstr(err.msg, "/nonexistent/stub.json"));
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
		cmocka_unit_test(test_missing_stub),
	};
	return cmocka_run_group_tests(tests, write_fake_stub, remove_fake_stub);
}
