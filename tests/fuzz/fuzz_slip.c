/* fuzz_slip.c - libFuzzer target: the SLIP decoder (include/espline/slip.h).
 *
 * The input is a raw byte stream as it might arrive from a noisy serial
 * line.  It is fed byte by byte into a small decoder (so oversize frames are
 * common) and checked against the header's promises: a frame is never
 * longer than the buffer and never empty, and encoding a delivered frame
 * then decoding it gives the same bytes back.  The whole input is also
 * encoded as one frame and decoded again (round trip). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "espline/slip.h"
#include "fuzz_util.h"

#define FUZZ_SLIP_CAP 64
#define FUZZ_SLIP_BIG 4096

/* Decode enc[0..n) with a fresh decoder of cap bytes; the single frame it
 * must yield has to equal want[0..wlen). */
static void fuzz_slip_check_roundtrip(const uint8_t *enc, size_t n, const uint8_t *want,
				      size_t wlen, uint8_t *buf, size_t cap)
{
	espl_slip_decoder dec;
	size_t frames = 0;

	espl_slip_decoder_init(&dec, buf, cap);
	for (size_t i = 0; i < n; i++) {
		enum espl_slip_event ev = espl_slip_feed(&dec, enc[i]);
		FUZZ_CHECK(ev != ESPL_SLIP_BAD_ESCAPE && ev != ESPL_SLIP_GARBAGE);
		if (ev == ESPL_SLIP_FRAME) {
			FUZZ_CHECK(dec.len == wlen);
			FUZZ_CHECK(memcmp(dec.frame, want, wlen) == 0);
			frames++;
		}
	}
	FUZZ_CHECK(frames == (wlen > 0 && wlen <= cap ? 1u : 0u));
}

static int fuzz_slip_one(const uint8_t *data, size_t size)
{
	static uint8_t enc[ESPL_SLIP_ENCODED_MAX(FUZZ_SLIP_BIG)];
	static uint8_t big[FUZZ_SLIP_BIG];
	uint8_t small[FUZZ_SLIP_CAP];
	espl_slip_decoder dec;

	if (size > FUZZ_SLIP_BIG)
		return 0;

	/* 1. The stream as received. */
	espl_slip_decoder_init(&dec, small, sizeof small);
	size_t garbage = 0;
	for (size_t i = 0; i < size; i++) {
		enum espl_slip_event ev = espl_slip_feed(&dec, data[i]);
		FUZZ_CHECK(dec.len <= dec.cap);
		if (ev == ESPL_SLIP_GARBAGE)
			garbage++;
		if (ev == ESPL_SLIP_FRAME) {
			uint8_t copy[FUZZ_SLIP_CAP];
			uint8_t reenc[ESPL_SLIP_ENCODED_MAX(FUZZ_SLIP_CAP)];
			uint8_t again[FUZZ_SLIP_CAP];
			FUZZ_CHECK(dec.len > 0);
			memcpy(copy, dec.frame, dec.len);
			size_t n = espl_slip_encode(copy, dec.len, reenc);
			FUZZ_CHECK(n <= ESPL_SLIP_ENCODED_MAX(dec.len));
			fuzz_slip_check_roundtrip(reenc, n, copy, dec.len, again, sizeof again);
		}
	}
	FUZZ_CHECK(dec.garbage == garbage);
	espl_slip_decoder_reset(&dec);
	FUZZ_CHECK(dec.len == 0 && dec.garbage == 0);

	/* 2. The input as one payload: encode, decode, compare. */
	size_t n = espl_slip_encode(data, size, enc);
	FUZZ_CHECK(n <= ESPL_SLIP_ENCODED_MAX(size) && n >= size + 2);
	FUZZ_CHECK(enc[0] == ESPL_SLIP_END && enc[n - 1] == ESPL_SLIP_END);
	for (size_t i = 1; i + 1 < n; i++)
		FUZZ_CHECK(enc[i] != ESPL_SLIP_END);
	fuzz_slip_check_roundtrip(enc, n, data, size, big, sizeof big);
	/* The same payload escaped in two pieces must equal the one-shot encoding. */
	size_t half = size / 2;
	size_t m = espl_slip_escape(data, half, enc + 1);
	m += espl_slip_escape(data + half, size - half, enc + 1 + m);
	FUZZ_CHECK(m + 2 == n);
	return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_slip_one(data, size);
}
#endif
