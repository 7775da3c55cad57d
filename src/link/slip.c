/* slip.c - SLIP framing codec; see include/espline/slip.h. */
#include "espline/slip.h"

size_t espl_slip_escape(const uint8_t *in, size_t n, uint8_t *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (in[i] == ESPL_SLIP_END) {
			out[o++] = ESPL_SLIP_ESC;
			out[o++] = ESPL_SLIP_ESC_END;
		} else if (in[i] == ESPL_SLIP_ESC) {
			out[o++] = ESPL_SLIP_ESC;
			out[o++] = ESPL_SLIP_ESC_ESC;
		} else {
			out[o++] = in[i];
		}
	}
	return o;
}

size_t espl_slip_encode(const uint8_t *in, size_t n, uint8_t *out)
{
	size_t o = 0;
	out[o++] = ESPL_SLIP_END;
	o += espl_slip_escape(in, n, out + o);
	out[o++] = ESPL_SLIP_END;
	return o;
}

void espl_slip_decoder_init(espl_slip_decoder *dec, uint8_t *buf, size_t cap)
{
	dec->frame = buf;
	dec->cap = cap;
	espl_slip_decoder_reset(dec);
}

void espl_slip_decoder_reset(espl_slip_decoder *dec)
{
	dec->len = 0;
	dec->in_frame = 0;
	dec->escaped = 0;
	dec->discarding = 0;
	dec->delivered = 0;
	dec->garbage = 0;
}

/* A delimiter ends the current frame and opens the next one. */
static enum espl_slip_event on_end(espl_slip_decoder *dec)
{
	int had_frame = dec->in_frame && !dec->discarding && dec->len > 0;
	int dangling_escape = dec->escaped;

	dec->in_frame = 1;
	dec->escaped = 0;
	dec->discarding = 0;
	if (had_frame && !dangling_escape) {
		dec->delivered = 1;
		return ESPL_SLIP_FRAME;
	}
	dec->len = 0;
	return had_frame ? ESPL_SLIP_BAD_ESCAPE : ESPL_SLIP_NONE;
}

static enum espl_slip_event drop_frame(espl_slip_decoder *dec, enum espl_slip_event why)
{
	dec->discarding = 1;
	dec->escaped = 0;
	dec->len = 0;
	return why;
}

static enum espl_slip_event append(espl_slip_decoder *dec, uint8_t byte)
{
	if (dec->len >= dec->cap)
		return drop_frame(dec, ESPL_SLIP_OVERSIZE);
	dec->frame[dec->len++] = byte;
	return ESPL_SLIP_NONE;
}

enum espl_slip_event espl_slip_feed(espl_slip_decoder *dec, uint8_t byte)
{
	if (dec->delivered) {
		dec->delivered = 0;
		dec->len = 0;
	}
	if (byte == ESPL_SLIP_END)
		return on_end(dec);
	if (!dec->in_frame) {
		dec->garbage++;
		return ESPL_SLIP_GARBAGE;
	}
	if (dec->discarding)
		return ESPL_SLIP_NONE;
	if (dec->escaped) {
		dec->escaped = 0;
		if (byte == ESPL_SLIP_ESC_END)
			return append(dec, ESPL_SLIP_END);
		if (byte == ESPL_SLIP_ESC_ESC)
			return append(dec, ESPL_SLIP_ESC);
		return drop_frame(dec, ESPL_SLIP_BAD_ESCAPE);
	}
	if (byte == ESPL_SLIP_ESC) {
		dec->escaped = 1;
		return ESPL_SLIP_NONE;
	}
	return append(dec, byte);
}
