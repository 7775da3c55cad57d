/* test_slip.c - the SLIP codec: escapes, framing, resynchronisation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "espline/slip.h"

typedef struct collected {
	uint8_t frames[8][64];
	size_t lens[8];
	size_t count;
	size_t bad_escapes, oversize;
} collected;

static void feed_all(espl_slip_decoder *dec, const uint8_t *in, size_t n, collected *c)
{
	for (size_t i = 0; i < n; i++) {
		switch (espl_slip_feed(dec, in[i])) {
		case ESPL_SLIP_FRAME:
			assert_true(c->count < 8);
			memcpy(c->frames[c->count], dec->frame, dec->len);
			c->lens[c->count++] = dec->len;
			break;
		case ESPL_SLIP_BAD_ESCAPE: c->bad_escapes++; break;
		case ESPL_SLIP_OVERSIZE: c->oversize++; break;
		default: break;
		}
	}
}

static void test_encode_escapes(void **state)
{
	(void)state;
	const uint8_t in[] = { 0x01, 0xC0, 0x02, 0xDB, 0x03 };
	const uint8_t want[] = { 0xC0, 0x01, 0xDB, 0xDC, 0x02, 0xDB, 0xDD, 0x03, 0xC0 };
	uint8_t out[ESPL_SLIP_ENCODED_MAX(sizeof in)];
	size_t n = espl_slip_encode(in, sizeof in, out);
	assert_int_equal(n, sizeof want);
	assert_memory_equal(out, want, sizeof want);
}

static void test_roundtrip_all_bytes(void **state)
{
	(void)state;
	uint8_t in[256], enc[ESPL_SLIP_ENCODED_MAX(256)], buf[300];
	for (int i = 0; i < 256; i++)
		in[i] = (uint8_t)i;
	size_t n = espl_slip_encode(in, sizeof in, enc);
	assert_int_equal(n, 256 + 2 + 2); /* two escaped bytes, two delimiters */
	espl_slip_decoder dec;
	espl_slip_decoder_init(&dec, buf, sizeof buf);
	int frames = 0;
	for (size_t i = 0; i < n; i++) {
		if (espl_slip_feed(&dec, enc[i]) == ESPL_SLIP_FRAME) {
			frames++;
			assert_int_equal(dec.len, 256);
			assert_memory_equal(dec.frame, in, 256);
		}
	}
	assert_int_equal(frames, 1);
}

static void test_back_to_back_and_shared_delimiters(void **state)
{
	(void)state;
	const uint8_t stream[] = { 0xC0, 1, 2, 0xC0, 0xC0, 3, 0xC0, 4, 5, 6, 0xC0 };
	uint8_t buf[64];
	espl_slip_decoder dec;
	collected c = { 0 };
	espl_slip_decoder_init(&dec, buf, sizeof buf);
	feed_all(&dec, stream, sizeof stream, &c);
	assert_int_equal(c.count, 3);
	assert_int_equal(c.lens[0], 2);
	assert_int_equal(c.frames[1][0], 3);
	assert_int_equal(c.lens[2], 3);
	assert_int_equal(c.frames[2][2], 6);
}

static void test_garbage_before_first_frame(void **state)
{
	(void)state;
	const uint8_t stream[] = { 'e', 't', 's', 0x8c, 0xC0, 0x01, 0x08, 0xC0 };
	uint8_t buf[64];
	espl_slip_decoder dec;
	collected c = { 0 };
	espl_slip_decoder_init(&dec, buf, sizeof buf);
	feed_all(&dec, stream, sizeof stream, &c);
	assert_int_equal(dec.garbage, 4);
	assert_int_equal(c.count, 1);
	assert_int_equal(c.lens[0], 2);
}

static void test_lost_opening_delimiter_recovers_next_frame(void **state)
{
	(void)state;
	/* frame 1 lost its opening C0: its body looks like noise, then frame 2
	 * must still come out whole. */
	const uint8_t stream[] = { 9, 9, 0xC0, 0xC0, 7, 8, 0xC0 };
	uint8_t buf[64];
	espl_slip_decoder dec;
	collected c = { 0 };
	espl_slip_decoder_init(&dec, buf, sizeof buf);
	feed_all(&dec, stream, sizeof stream, &c);
	assert_int_equal(c.count, 1);
	assert_int_equal(c.lens[0], 2);
	assert_int_equal(c.frames[0][0], 7);
}

static void test_bad_escape_drops_frame_only(void **state)
{
	(void)state;
	const uint8_t stream[] = { 0xC0, 1, 0xDB, 0x42, 2, 0xC0, 0xC0, 5, 0xC0 };
	uint8_t buf[64];
	espl_slip_decoder dec;
	collected c = { 0 };
	espl_slip_decoder_init(&dec, buf, sizeof buf);
	feed_all(&dec, stream, sizeof stream, &c);
	assert_int_equal(c.bad_escapes, 1);
	assert_int_equal(c.count, 1);
	assert_int_equal(c.frames[0][0], 5);
}

static void test_truncated_escape_at_end(void **state)
{
	(void)state;
	const uint8_t stream[] = { 0xC0, 1, 2, 0xDB, 0xC0, 0xC0, 6, 0xC0 };
	uint8_t buf[64];
	espl_slip_decoder dec;
	collected c = { 0 };
	espl_slip_decoder_init(&dec, buf, sizeof buf);
	feed_all(&dec, stream, sizeof stream, &c);
	assert_int_equal(c.bad_escapes, 1);
	assert_int_equal(c.count, 1);
	assert_int_equal(c.frames[0][0], 6);
}

static void test_oversize_rejected_then_resync(void **state)
{
	(void)state;
	uint8_t stream[20] = { 0xC0 };
	for (int i = 1; i < 12; i++)
		stream[i] = (uint8_t)i;
	stream[12] = 0xC0;
	stream[13] = 0x55;
	stream[14] = 0xC0;
	uint8_t buf[8];
	espl_slip_decoder dec;
	collected c = { 0 };
	espl_slip_decoder_init(&dec, buf, sizeof buf);
	feed_all(&dec, stream, 15, &c);
	assert_int_equal(c.oversize, 1);
	assert_int_equal(c.count, 1);
	assert_int_equal(c.lens[0], 1);
	assert_int_equal(c.frames[0][0], 0x55);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_escapes),
		cmocka_unit_test(test_roundtrip_all_bytes),
		cmocka_unit_test(test_back_to_back_and_shared_delimiters),
		cmocka_unit_test(test_garbage_before_first_frame),
		cmocka_unit_test(test_lost_opening_delimiter_recovers_next_frame),
		cmocka_unit_test(test_bad_escape_drops_frame_only),
		cmocka_unit_test(test_truncated_escape_at_end),
		cmocka_unit_test(test_oversize_rejected_then_resync),
	};
	return cmocka_run_group_tests_name("slip", tests, NULL, NULL);
}
