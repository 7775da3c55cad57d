/* sim_fixture.h - drives the simulated ESP8266 frame by frame, for the
 * simulator's unit tests: a fake transport (virtual clock, captured frames,
 * recorded baud changes, reboots, faults and log lines), helpers that send
 * raw request frames (already SLIP-decoded) and check replies, and a fake
 * stub upload.  Header-only because each test_*.c is its own program. */
#ifndef ESPLINE_TEST_SIM_FIXTURE_H
#define ESPLINE_TEST_SIM_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "../sim/sim_chip.h"

/* ---- fake transport ------------------------------------------------------ */

#define MAX_FRAMES 4096

typedef struct captured {
	uint8_t *data;
	size_t len;
	uint64_t at;        /* virtual time when emitted */
} captured;

typedef struct fake_io {
	uint64_t now;
	captured frames[MAX_FRAMES];
	size_t n;
	unsigned baud;      /* last set_baud */
	size_t frames_at_baud_change;
	int reboots, last_reboot_to_app;
	char last_fault[16];
	int faults;
	char last_log[256];
	int logs;
} fake_io;

static inline void fake_emit(void *ctx, const uint8_t *frame, size_t len)
{
	fake_io *f = ctx;
	assert_true(f->n < MAX_FRAMES);
	f->frames[f->n].data = malloc(len ? len : 1);
	memcpy(f->frames[f->n].data, frame, len);
	f->frames[f->n].len = len;
	f->frames[f->n].at = f->now;
	f->n++;
}

static inline void fake_sleep(void *ctx, uint64_t us) { ((fake_io *)ctx)->now += us; }
static inline uint64_t fake_now(void *ctx) { return ((fake_io *)ctx)->now; }

static inline void fake_set_baud(void *ctx, unsigned baud)
{
	fake_io *f = ctx;
	f->baud = baud;
	f->frames_at_baud_change = f->n;
}

static inline void fake_reboot(void *ctx, int to_app)
{
	fake_io *f = ctx;
	f->reboots++;
	f->last_reboot_to_app = to_app;
}

static inline void fake_fault(void *ctx, const char *what)
{
	fake_io *f = ctx;
	f->faults++;
	snprintf(f->last_fault, sizeof f->last_fault, "%s", what);
}

static inline void fake_log(void *ctx, const char *line)
{
	fake_io *f = ctx;
	f->logs++;
	snprintf(f->last_log, sizeof f->last_log, "%s", line);
}

static inline void clear_frames(fake_io *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->frames[i].data);
	f->n = 0;
}

typedef struct fixture {
	fake_io io;
	sim_chip_config cfg;
	sim_chip *chip;
} fixture;

static inline fixture *fixture_new(const sim_chip_config *cfg)
{
	fixture *fx = calloc(1, sizeof *fx);
	if (cfg)
		fx->cfg = *cfg;
	else
		sim_chip_config_defaults(&fx->cfg);
	sim_chip_io io = {
		.ctx = &fx->io, .emit = fake_emit, .sleep_us = fake_sleep, .now_us = fake_now,
		.set_baud = fake_set_baud, .reboot = fake_reboot, .fault = fake_fault, .log = fake_log,
	};
	fx->chip = sim_chip_new(&fx->cfg, &io);
	assert_non_null(fx->chip);
	sim_chip_set_host_baud(fx->chip, 115200);
	sim_chip_boot(fx->chip, 1);
	return fx;
}

static inline void fixture_free(fixture *fx)
{
	clear_frames(&fx->io);
	sim_chip_free(fx->chip);
	free(fx);
}

/* ---- frame helpers -------------------------------------------------------- */

static inline void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint8_t xsum(const uint8_t *p, size_t n)
{
	uint8_t x = 0xEF;
	for (size_t i = 0; i < n; i++)
		x ^= p[i];
	return x;
}

/* Send op with data; clears previously captured frames first. */
static inline void send_cmd(fixture *fx, uint8_t op, const uint8_t *data, size_t len, uint32_t chk)
{
	uint8_t *frame = malloc(8 + len);
	frame[0] = 0;
	frame[1] = op;
	frame[2] = (uint8_t)len;
	frame[3] = (uint8_t)(len >> 8);
	put32(frame + 4, chk);
	if (len)
		memcpy(frame + 8, data, len);
	clear_frames(&fx->io);
	sim_chip_handle_frame(fx->chip, frame, 8 + len);
	free(frame);
}

static inline void send_words(fixture *fx, uint8_t op, int n, const uint32_t *w)
{
	uint8_t buf[32];
	for (int i = 0; i < n; i++)
		put32(buf + 4 * i, w[i]);
	send_cmd(fx, op, buf, 4 * (size_t)n, 0);
}

#define CMD(fx, op, ...)                                                        \
	do {                                                                    \
		const uint32_t w_[] = { __VA_ARGS__ };                          \
		send_words(fx, op, (int)(sizeof w_ / sizeof w_[0]), w_);        \
	} while (0)

/* FLASH_DATA / MEM_DATA style: 16-byte sub-header then checksummed data. */
static inline void send_data(fixture *fx, uint8_t op, uint32_t seq, const uint8_t *data, size_t len)
{
	uint8_t *buf = calloc(1, 16 + len);
	put32(buf, (uint32_t)len);
	put32(buf + 4, seq);
	memcpy(buf + 16, data, len);
	send_cmd(fx, op, buf, 16 + len, xsum(data, len));
	free(buf);
}

/* Assert frame i is a response to op; returns its value field. */
static inline uint32_t expect_resp(fixture *fx, size_t i, uint8_t op, uint8_t s0, uint8_t s1)
{
	assert_true(i < fx->io.n);
	const captured *c = &fx->io.frames[i];
	assert_true(c->len >= 10);
	assert_int_equal(c->data[0], 0x01);
	assert_int_equal(c->data[1], op);
	assert_int_equal(c->data[c->len - 2], s0);
	assert_int_equal(c->data[c->len - 1], s1);
	return get32(c->data + 4);
}

static inline uint32_t read_reg(fixture *fx, uint32_t addr)
{
	CMD(fx, 0x0A, addr);
	assert_int_equal(fx->io.n, 1);
	return expect_resp(fx, 0, 0x0A, 0, 0);
}

static inline void write_reg(fixture *fx, uint32_t addr, uint32_t value)
{
	CMD(fx, 0x09, addr, value, 0xFFFFFFFFu, 0);
	assert_int_equal(fx->io.n, 1);
	expect_resp(fx, 0, 0x09, 0, 0);
}

static inline void md5_of(const uint8_t *p, size_t n, uint8_t out[16])
{
	unsigned len = 0;
	assert_int_equal(EVP_Digest(p, n, out, &len, EVP_md5(), NULL), 1);
}

static inline void fill_pattern(uint8_t *p, size_t n, uint32_t seed)
{
	uint32_t x = seed;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		/* runs of 0xFF and text-like bytes, so zlib has something to do */
		p[i] = (i / 512) % 3 == 0 ? 0xFF : (uint8_t)(x >> 24);
	}
}

/* Upload a fake stub with the esptool v4 sizes and addresses. */
static inline void upload_stub(fixture *fx)
{
	static uint8_t text[8248], data[768];
	fill_pattern(text, sizeof text, 1);
	fill_pattern(data, sizeof data, 2);
	CMD(fx, 0x05, sizeof text, 2, 0x1800, 0x4010D000);
	expect_resp(fx, 0, 0x05, 0, 0);
	send_data(fx, 0x07, 0, text, 0x1800);
	expect_resp(fx, 0, 0x07, 0, 0);
	send_data(fx, 0x07, 1, text + 0x1800, sizeof text - 0x1800);
	expect_resp(fx, 0, 0x07, 0, 0);
	CMD(fx, 0x05, sizeof data, 1, 0x1800, 0x3FFFACA8);
	send_data(fx, 0x07, 0, data, sizeof data);
	expect_resp(fx, 0, 0x07, 0, 0);
	CMD(fx, 0x06, 0, 0x4010D004);
}

static inline fixture *stub_fixture(const sim_chip_config *cfg)
{
	fixture *fx = fixture_new(cfg);
	upload_stub(fx);
	assert_int_equal(sim_chip_mode(fx->chip), SIM_MODE_STUB);
	return fx;
}

static const uint8_t sync_payload[36] = {
	0x07, 0x07, 0x12, 0x20, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55,
	0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55,
	0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55,
};

#endif /* ESPLINE_TEST_SIM_FIXTURE_H */
