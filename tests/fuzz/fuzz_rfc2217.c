/* fuzz_rfc2217.c - libFuzzer target: the telnet / RFC 2217 decoder and the
 * option negotiation state (include/espline/rfc2217.h).
 *
 * Input: byte 0 picks how the stream is cut into feeds and which options we
 * accept; the rest is what a telnet peer sent.  Checks:
 *   - every feed consumes something and never outputs more than it read;
 *   - decoding in ragged chunks and decoding in place (out == in) give the
 *     same data and the same events as one-call-per-event decoding (commands
 *     split across calls are reassembled);
 *   - a SUBNEG payload never exceeds ESPL_TELNET_SB_MAX;
 *   - the answer to a negotiation is IAC + the matching reply verb + option;
 *   - a server reply built for a client COM-PORT-OPTION command decodes back
 *     to the same command and argument;
 *   - two option tables answering each other stop talking (no loops). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "espline/rfc2217.h"
#include "fuzz_util.h"

#define FUZZ_TN_MAX 4096
#define FUZZ_TN_EVENTS 2048

typedef struct fuzz_tn_ev {
	int kind;
	uint8_t verb, option;
	size_t len;
	int truncated;
	uint8_t data[ESPL_TELNET_SB_MAX];
	int cpo;
	uint8_t cpo_cmd;
	uint32_t cpo_value;
} fuzz_tn_ev;

typedef struct fuzz_tn_log {
	uint8_t data[FUZZ_TN_MAX];
	size_t data_len;
	fuzz_tn_ev ev[FUZZ_TN_EVENTS];
	size_t n_ev;
	unsigned long errors;
} fuzz_tn_log;

static void fuzz_tn_record(fuzz_tn_log *log, const espl_telnet_event *ev)
{
	if (ev->kind == ESPL_TELNET_EV_NONE)
		return;
	FUZZ_CHECK(log->n_ev < FUZZ_TN_EVENTS);
	fuzz_tn_ev *e = &log->ev[log->n_ev++];
	memset(e, 0, sizeof *e);
	e->kind = ev->kind;
	e->verb = ev->verb;
	e->option = ev->option;
	if (ev->kind == ESPL_TELNET_EV_SUBNEG) {
		FUZZ_CHECK(ev->len <= ESPL_TELNET_SB_MAX);
		FUZZ_CHECK(ev->len == 0 || ev->data != NULL);
		e->len = ev->len;
		e->truncated = ev->truncated;
		memcpy(e->data, ev->data, ev->len);
		e->cpo = ev->cpo;
		if (ev->cpo) {
			FUZZ_CHECK(ev->option == ESPL_TELNET_OPT_COM_PORT);
			FUZZ_CHECK(ev->cpo_arg_len + 1 == ev->len);
			FUZZ_CHECK(ev->cpo_from_server == (ev->cpo_cmd >= ESPL_RFC2217_SERVER_OFFSET));
			e->cpo_cmd = ev->cpo_cmd;
			e->cpo_value = ev->cpo_value;
		}
	}
}

/* Decode in[0..n) in feeds of at most chunk(i) bytes; in_place copies each
 * chunk to a buffer and decodes it onto itself. */
static void fuzz_tn_decode(const uint8_t *in, size_t n, uint8_t seed, int in_place, fuzz_tn_log *log)
{
	static uint8_t buf[FUZZ_TN_MAX];
	espl_telnet_decoder dec;
	size_t off = 0, k = 0;

	espl_telnet_decoder_init(&dec);
	log->data_len = 0;
	log->n_ev = 0;
	while (off < n) {
		size_t want = seed ? 1 + (size_t)((seed * 7u + k * 13u) % (seed % 17u + 1u)) : n - off;
		if (want > n - off)
			want = n - off;
		k++;
		size_t pos = 0;
		if (in_place)
			memcpy(buf, in + off, want);
		while (pos < want) {
			espl_telnet_event ev;
			size_t dlen = 0;
			const uint8_t *src = in_place ? buf + pos : in + off + pos;
			uint8_t *dst = in_place ? buf + pos : log->data + log->data_len;
			size_t used = espl_telnet_feed(&dec, src, want - pos, dst, &dlen, &ev);
			FUZZ_CHECK(used > 0 && used <= want - pos);
			FUZZ_CHECK(dlen <= used);
			if (in_place)
				memcpy(log->data + log->data_len, dst, dlen);
			log->data_len += dlen;
			fuzz_tn_record(log, &ev);
			pos += used;
		}
		off += want;
	}
	log->errors = dec.protocol_errors;
}

static int fuzz_tn_same(const fuzz_tn_log *a, const fuzz_tn_log *b)
{
	if (a->data_len != b->data_len || memcmp(a->data, b->data, a->data_len) != 0)
		return 0;
	if (a->n_ev != b->n_ev || a->errors != b->errors)
		return 0;
	for (size_t i = 0; i < a->n_ev; i++)
		if (memcmp(&a->ev[i], &b->ev[i], sizeof a->ev[i]) != 0)
			return 0;
	return 1;
}

static void fuzz_tn_check_answer(espl_telnet_options *opt, const espl_telnet_event *ev, int accept)
{
	uint8_t out[3];
	size_t n = espl_telnet_answer(opt, ev, accept, out);
	FUZZ_CHECK(n == 0 || n == 3);
	if (ev->kind != ESPL_TELNET_EV_NEGOTIATION) {
		FUZZ_CHECK(n == 0);
		return;
	}
	if (n == 3) {
		FUZZ_CHECK(out[0] == ESPL_TELNET_IAC && out[2] == ev->option);
		if (ev->verb == ESPL_TELNET_DO || ev->verb == ESPL_TELNET_DONT)
			FUZZ_CHECK(out[1] == ESPL_TELNET_WILL || out[1] == ESPL_TELNET_WONT);
		else
			FUZZ_CHECK(out[1] == ESPL_TELNET_DO || out[1] == ESPL_TELNET_DONT);
		/* Never agree to something the peer just switched off. */
		if (ev->verb == ESPL_TELNET_DONT)
			FUZZ_CHECK(out[1] == ESPL_TELNET_WONT);
		if (ev->verb == ESPL_TELNET_WONT)
			FUZZ_CHECK(out[1] == ESPL_TELNET_DONT);
		if (!accept)
			FUZZ_CHECK(out[1] == ESPL_TELNET_WONT || out[1] == ESPL_TELNET_DONT);
	}
}

/* A server's reply to a client command must decode to the same command. */
static void fuzz_tn_check_reply(const espl_telnet_event *ev)
{
	uint8_t out[ESPL_RFC2217_BUILD_MAX(ESPL_TELNET_SB_MAX)];
	uint8_t data[sizeof out];
	size_t n = espl_rfc2217_build_reply(ev, out);
	if (ev->kind != ESPL_TELNET_EV_SUBNEG || !ev->cpo || ev->cpo_from_server) {
		FUZZ_CHECK(n == 0);
		return;
	}
	FUZZ_CHECK(n > 0 && n <= ESPL_RFC2217_BUILD_MAX(ev->cpo_arg_len));
	uint8_t base = ev->cpo_base;
	uint8_t arg[ESPL_TELNET_SB_MAX];
	size_t arg_len = ev->cpo_arg_len;
	memcpy(arg, ev->cpo_arg, arg_len);

	espl_telnet_decoder dec;
	espl_telnet_event back;
	size_t dlen;
	espl_telnet_decoder_init(&dec);
	size_t used = espl_telnet_feed(&dec, out, n, data, &dlen, &back);
	FUZZ_CHECK(used == n && dlen == 0);
	FUZZ_CHECK(back.kind == ESPL_TELNET_EV_SUBNEG && back.cpo && back.cpo_from_server);
	FUZZ_CHECK(back.cpo_base == base && back.cpo_arg_len == arg_len);
	FUZZ_CHECK(memcmp(back.cpo_arg, arg, arg_len) == 0);
	FUZZ_CHECK(dec.protocol_errors == 0);
}

/* Two peers negotiate the options named in ops[]; they must fall silent. */
static void fuzz_tn_converse(const uint8_t *ops, size_t n)
{
	espl_telnet_options side[2];
	uint8_t wire[2][4096];
	size_t len[2] = { 0, 0 };
	espl_telnet_options_init(&side[0]);
	espl_telnet_options_init(&side[1]);

	if (n > 64)
		n = 64;
	for (size_t i = 0; i < n; i++) {
		int who = ops[i] >> 7;
		uint8_t verb = ops[i] & 0x40 ? ESPL_TELNET_DO : ESPL_TELNET_WILL;
		uint8_t opt = ops[i] & 0x07; /* a few options, so requests collide */
		len[who] += espl_telnet_request(&side[who], verb, opt, wire[who] + len[who]);
	}
	/* Each peer accepts an option when its parity matches its own index. */
	for (int round = 0; round < 64 && (len[0] || len[1]); round++) {
		for (int who = 0; who < 2; who++) {
			int peer = !who;
			espl_telnet_decoder dec;
			uint8_t data[4096];
			size_t off = 0;
			uint8_t msg[4096];
			size_t mlen = len[who];
			memcpy(msg, wire[who], mlen);
			len[who] = 0;
			espl_telnet_decoder_init(&dec);
			while (off < mlen) {
				espl_telnet_event ev;
				size_t dlen;
				off += espl_telnet_feed(&dec, msg + off, mlen - off, data, &dlen, &ev);
				FUZZ_CHECK(dlen == 0);
				if (ev.kind == ESPL_TELNET_EV_NEGOTIATION) {
					FUZZ_CHECK(len[peer] + 3 <= sizeof wire[peer]);
					len[peer] += espl_telnet_answer(&side[peer], &ev,
									(ev.option & 1) == peer,
									wire[peer] + len[peer]);
				}
			}
		}
		FUZZ_CHECK(round < 16); /* no negotiation loop */
	}
	/* Both sides agree on what is on. */
	for (unsigned o = 0; o < 8; o++) {
		FUZZ_CHECK(espl_telnet_us_enabled(&side[0], (uint8_t)o) ==
			   espl_telnet_him_enabled(&side[1], (uint8_t)o));
		FUZZ_CHECK(espl_telnet_him_enabled(&side[0], (uint8_t)o) ==
			   espl_telnet_us_enabled(&side[1], (uint8_t)o));
	}
}

static int fuzz_rfc2217_one(const uint8_t *data, size_t size)
{
	static fuzz_tn_log whole, ragged, inplace;
	if (size < 1 || size > FUZZ_TN_MAX)
		return 0;
	uint8_t seed = data[0];
	const uint8_t *in = data + 1;
	size_t n = size - 1;

	fuzz_tn_decode(in, n, 0, 0, &whole);
	fuzz_tn_decode(in, n, seed | 1, 0, &ragged);
	fuzz_tn_decode(in, n, seed | 1, 1, &inplace);
	FUZZ_CHECK(fuzz_tn_same(&whole, &ragged));
	FUZZ_CHECK(fuzz_tn_same(&whole, &inplace));

	/* Answer every event as a server would. */
	espl_telnet_options opt;
	espl_telnet_decoder dec;
	uint8_t out[FUZZ_TN_MAX];
	size_t off = 0;
	espl_telnet_options_init(&opt);
	espl_telnet_decoder_init(&dec);
	while (off < n) {
		espl_telnet_event ev;
		size_t dlen;
		off += espl_telnet_feed(&dec, in + off, n - off, out, &dlen, &ev);
		fuzz_tn_check_answer(&opt, &ev, (ev.option ^ seed) & 1);
		fuzz_tn_check_reply(&ev);
	}

	/* Escaping arbitrary data and decoding it gives the data back. */
	static uint8_t esc[2 * FUZZ_TN_MAX];
	size_t elen = espl_telnet_escape(in, n, esc);
	FUZZ_CHECK(elen >= n && elen <= 2 * n);
	fuzz_tn_decode(esc, elen, seed | 1, 0, &ragged);
	FUZZ_CHECK(ragged.data_len == n && memcmp(ragged.data, in, n) == 0);
	FUZZ_CHECK(ragged.n_ev == 0 && ragged.errors == 0);

	fuzz_tn_converse(in, n);
	return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_rfc2217_one(data, size);
}
#endif
