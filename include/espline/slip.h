/*
 * slip.h - SLIP framing (RFC 1055) as used by the ESP8266 serial loader.
 *
 * A pure streaming codec: no I/O, no allocation after init, no global state.
 * Every frame is sent as C0 <escaped bytes> C0; C0 inside is sent as DB DC
 * and DB as DB DD.
 *
 * The decoder is tolerant where the chip is noisy and strict where the data
 * would be wrong.  Bytes before the first C0 (the ROM's 74880-baud boot
 * message) are counted and skipped.  After a frame ends, its closing C0 is
 * also taken as the opening of the next one, so back-to-back frames
 * (C0 .. C0 C0 .. C0), frames sharing one delimiter (C0 .. C0 .. C0) and a
 * stream that lost one delimiter all resynchronise without losing the frames
 * that follow; noise between frames comes out as a short bogus frame that the
 * response parser rejects.  A bad escape or a frame longer than the buffer is
 * reported and the rest of that frame is dropped up to the next C0.
 */
#ifndef ESPLINE_SLIP_H
#define ESPLINE_SLIP_H

#include <stddef.h>
#include <stdint.h>

#define ESPL_SLIP_END 0xC0
#define ESPL_SLIP_ESC 0xDB
#define ESPL_SLIP_ESC_END 0xDC
#define ESPL_SLIP_ESC_ESC 0xDD

/* Worst-case encoded size of n payload bytes. */
#define ESPL_SLIP_ENCODED_MAX(n) (2 * (size_t)(n) + 2)

/* Encode one whole frame, delimiters included; returns the encoded length.
 * out must hold ESPL_SLIP_ENCODED_MAX(n) bytes. */
size_t espl_slip_encode(const uint8_t *in, size_t n, uint8_t *out);

/* Encode without the delimiters, for building a frame in pieces; returns
 * the encoded length (at most 2n). */
size_t espl_slip_escape(const uint8_t *in, size_t n, uint8_t *out);

enum espl_slip_event {
	ESPL_SLIP_NONE = 0,     /* byte consumed, nothing to report */
	ESPL_SLIP_FRAME,        /* a frame is complete: see dec->frame, dec->len */
	ESPL_SLIP_GARBAGE,      /* a byte arrived before any frame opened */
	ESPL_SLIP_BAD_ESCAPE,   /* DB followed by something other than DC/DD; frame dropped */
	ESPL_SLIP_OVERSIZE,     /* frame longer than the buffer; frame dropped */
};

typedef struct espl_slip_decoder {
	uint8_t *frame;     /* caller's buffer */
	size_t cap;         /* its size: the largest frame accepted */
	size_t len;         /* bytes of the current/complete frame */
	int in_frame;
	int escaped;
	int discarding;     /* dropping the rest of a broken frame */
	int delivered;      /* frame[0..len) was reported; start afresh */
	size_t garbage;     /* bytes skipped between frames so far */
} espl_slip_decoder;

void espl_slip_decoder_init(espl_slip_decoder *dec, uint8_t *buf, size_t cap);

/* Discard any partial frame and forget counted garbage. */
void espl_slip_decoder_reset(espl_slip_decoder *dec);

/* Feed one byte.  After ESPL_SLIP_FRAME, dec->frame[0..len) holds the
 * decoded frame until the next call.  Empty frames (C0 C0) are not reported. */
enum espl_slip_event espl_slip_feed(espl_slip_decoder *dec, uint8_t byte);

#endif /* ESPLINE_SLIP_H */
