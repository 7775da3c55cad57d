/* test_rfc2217.c - the telnet / RFC 2217 codec: stripping, escaping,
 * COM-PORT-OPTION parsing, builders and option negotiation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "espline/rfc2217.h"

enum { IAC = 255, SB = 250, SE = 240, WILL = 251, WONT = 252, DO = 253, DONT = 254 };

/* Everything one decode produced, in order. */
typedef struct decoded {
	uint8_t data[512];
	size_t len;
	espl_telnet_event ev[16];
	uint8_t ev_payload[16][ESPL_TELNET_SB_MAX];
	size_t ev_data_pos[16]; /* data bytes that came before each event */
	size_t events;
} decoded;

static void decode_chunk(espl_telnet_decoder *dec, const uint8_t *in, size_t n, decoded *d)
{
	size_t off = 0;
	while (off < n) {
		uint8_t out[512];
		size_t dlen;
		espl_telnet_event ev;
		size_t used = espl_telnet_feed(dec, in + off, n - off, out, &dlen, &ev);
		assert_true(used > 0);
		assert_true(dlen <= used);
		off += used;
		memcpy(d->data + d->len, out, dlen);
		d->len += dlen;
		if (ev.kind != ESPL_TELNET_EV_NONE) {
			assert_true(d->events < 16);
			/* copy the payload and point the event at the copy: the
			 * decoder's buffer is reused by the next feed */
			if (ev.len) {
				uint8_t *copy = d->ev_payload[d->events];
				memcpy(copy, ev.data, ev.len);
				if (ev.cpo_arg)
					ev.cpo_arg = copy + (ev.cpo_arg - ev.data);
				ev.data = copy;
			}
			d->ev_data_pos[d->events] = d->len;
			d->ev[d->events++] = ev;
		} else {
			assert_int_equal(off, n); /* no event: all input was used */
		}
	}
}

static void decode_all(const uint8_t *in, size_t n, decoded *d)
{
	espl_telnet_decoder dec;
	espl_telnet_decoder_init(&dec);
	memset(d, 0, sizeof *d);
	decode_chunk(&dec, in, n, d);
}

static void test_data_and_iac_iac(void **state)
{
	(void)state;
	const uint8_t in[] = { 'a', IAC, IAC, 'b', 0x00, 0xC0, IAC, IAC, IAC, IAC };
	const uint8_t want[] = { 'a', 0xFF, 'b', 0x00, 0xC0, 0xFF, 0xFF };
	decoded d;
	decode_all(in, sizeof in, &d);
	assert_int_equal(d.events, 0);
	assert_int_equal(d.len, sizeof want);
	assert_memory_equal(d.data, want, sizeof want);
}

static void test_decode_in_place(void **state)
{
	(void)state;
	uint8_t buf[] = { IAC, IAC, 1, IAC, WILL, 3, 2, IAC, IAC };
	espl_telnet_decoder dec;
	espl_telnet_event ev;
	size_t dlen;
	espl_telnet_decoder_init(&dec);
	size_t used = espl_telnet_feed(&dec, buf, sizeof buf, buf, &dlen, &ev);
	assert_int_equal(used, 6);
	assert_int_equal(dlen, 2);
	assert_int_equal(buf[0], 0xFF);
	assert_int_equal(buf[1], 1);
	assert_int_equal(ev.kind, ESPL_TELNET_EV_NEGOTIATION);
	used = espl_telnet_feed(&dec, buf + 6, 3, buf + 6, &dlen, &ev);
	assert_int_equal(used, 3);
	assert_int_equal(dlen, 2);
	assert_int_equal(buf[6], 2);
	assert_int_equal(buf[7], 0xFF);
	assert_int_equal(ev.kind, ESPL_TELNET_EV_NONE);
}

static void test_negotiation_and_command_events(void **state)
{
	(void)state;
	const uint8_t in[] = { IAC, WILL, 44, 'x', IAC, DONT, 1, IAC, 241 /* NOP */, 'y' };
	decoded d;
	decode_all(in, sizeof in, &d);
	assert_int_equal(d.events, 3);
	assert_int_equal(d.ev[0].kind, ESPL_TELNET_EV_NEGOTIATION);
	assert_int_equal(d.ev[0].verb, WILL);
	assert_int_equal(d.ev[0].option, ESPL_TELNET_OPT_COM_PORT);
	assert_int_equal(d.ev[1].verb, DONT);
	assert_int_equal(d.ev[1].option, ESPL_TELNET_OPT_ECHO);
	assert_int_equal(d.ev[2].kind, ESPL_TELNET_EV_COMMAND);
	assert_int_equal(d.ev[2].verb, ESPL_TELNET_NOP);
	assert_int_equal(d.len, 2);
	assert_memory_equal(d.data, "xy", 2);
	/* event order relative to data: x came before the DONT, y after the NOP */
	assert_int_equal(d.ev_data_pos[0], 0);
	assert_int_equal(d.ev_data_pos[1], 1);
	assert_int_equal(d.ev_data_pos[2], 1);
}

static void test_set_baudrate_client_and_server(void **state)
{
	(void)state;
	uint8_t buf[2 * ESPL_RFC2217_CMD_MAX];
	size_t n = espl_rfc2217_build_baud(ESPL_RFC2217_SET_BAUDRATE, 115200, buf);
	const uint8_t want[] = { IAC, SB, 44, 1, 0x00, 0x01, 0xC2, 0x00, IAC, SE };
	assert_int_equal(n, sizeof want);
	assert_memory_equal(buf, want, sizeof want);
	n += espl_rfc2217_build_baud(ESPL_RFC2217_SERVER(ESPL_RFC2217_SET_BAUDRATE), 921600, buf + n);

	decoded d;
	decode_all(buf, n, &d);
	assert_int_equal(d.len, 0);
	assert_int_equal(d.events, 2);
	assert_int_equal(d.ev[0].kind, ESPL_TELNET_EV_SUBNEG);
	assert_int_equal(d.ev[0].option, ESPL_TELNET_OPT_COM_PORT);
	assert_true(d.ev[0].cpo);
	assert_int_equal(d.ev[0].cpo_cmd, 1);
	assert_int_equal(d.ev[0].cpo_base, ESPL_RFC2217_SET_BAUDRATE);
	assert_false(d.ev[0].cpo_from_server);
	assert_int_equal(d.ev[0].cpo_value, 115200);
	assert_true(d.ev[1].cpo);
	assert_int_equal(d.ev[1].cpo_cmd, 101);
	assert_int_equal(d.ev[1].cpo_base, ESPL_RFC2217_SET_BAUDRATE);
	assert_true(d.ev[1].cpo_from_server);
	assert_int_equal(d.ev[1].cpo_value, 921600);
}

static void test_iac_inside_subnegotiation_is_escaped(void **state)
{
	(void)state;
	uint8_t buf[ESPL_RFC2217_CMD_MAX];
	const uint32_t rate = 0xFF00FFFFu; /* silly, but every 0xFF must be doubled */
	size_t n = espl_rfc2217_build_baud(ESPL_RFC2217_SET_BAUDRATE, rate, buf);
	assert_int_equal(n, 6 + 4 + 3);
	decoded d;
	decode_all(buf, n, &d);
	assert_int_equal(d.events, 1);
	assert_true(d.ev[0].cpo);
	assert_int_equal(d.ev[0].cpo_value, rate);
}

static void test_control_and_reply(void **state)
{
	(void)state;
	uint8_t req[ESPL_RFC2217_CMD_MAX], rep[ESPL_RFC2217_CMD_MAX];
	size_t n = espl_rfc2217_build_byte(ESPL_RFC2217_SET_CONTROL, ESPL_RFC2217_DTR_ON, req);
	const uint8_t want[] = { IAC, SB, 44, 5, 8, IAC, SE };
	assert_int_equal(n, sizeof want);
	assert_memory_equal(req, want, sizeof want);

	decoded d;
	decode_all(req, n, &d);
	assert_int_equal(d.events, 1);
	assert_int_equal(d.ev[0].cpo_base, ESPL_RFC2217_SET_CONTROL);
	assert_int_equal(d.ev[0].cpo_value, ESPL_RFC2217_DTR_ON);
	size_t r = espl_rfc2217_build_reply(&d.ev[0], rep);
	const uint8_t want_rep[] = { IAC, SB, 44, 105, 8, IAC, SE };
	assert_int_equal(r, sizeof want_rep);
	assert_memory_equal(rep, want_rep, sizeof want_rep);

	/* a server's reply is not itself something to reply to */
	decoded d2;
	decode_all(rep, r, &d2);
	assert_true(d2.ev[0].cpo_from_server);
	assert_int_equal(espl_rfc2217_build_reply(&d2.ev[0], req), 0);
}

static void test_purge_and_signature(void **state)
{
	(void)state;
	uint8_t buf[64];
	size_t n = espl_rfc2217_build_byte(ESPL_RFC2217_PURGE_DATA, ESPL_RFC2217_PURGE_RX, buf);
	n += espl_rfc2217_build(ESPL_RFC2217_SIGNATURE, (const uint8_t *)"sim", 3, buf + n);
	n += espl_rfc2217_build(ESPL_RFC2217_FLOWCONTROL_SUSPEND, NULL, 0, buf + n);
	decoded d;
	decode_all(buf, n, &d);
	assert_int_equal(d.events, 3);
	assert_int_equal(d.ev[0].cpo_base, ESPL_RFC2217_PURGE_DATA);
	assert_int_equal(d.ev[0].cpo_value, ESPL_RFC2217_PURGE_RX);
	assert_int_equal(d.ev[1].cpo_base, ESPL_RFC2217_SIGNATURE);
	assert_int_equal(d.ev[1].cpo_arg_len, 3);
	assert_memory_equal(d.ev[1].cpo_arg, "sim", 3);
	assert_true(d.ev[2].cpo);
	assert_int_equal(d.ev[2].cpo_base, ESPL_RFC2217_FLOWCONTROL_SUSPEND);
	assert_int_equal(d.ev[2].cpo_arg_len, 0);
}

static void test_data_order_around_commands(void **state)
{
	(void)state;
	uint8_t buf[64];
	size_t n = 0;
	buf[n++] = 'A';
	buf[n++] = IAC;
	buf[n++] = IAC;
	n += espl_rfc2217_build_baud(ESPL_RFC2217_SET_BAUDRATE, 460800, buf + n);
	buf[n++] = 'B';
	decoded d;
	decode_all(buf, n, &d);
	assert_int_equal(d.events, 1);
	assert_int_equal(d.ev_data_pos[0], 2); /* 'A' 0xFF before the baud change */
	assert_int_equal(d.len, 3);
	assert_int_equal(d.data[2], 'B');
}

static void test_split_anywhere_gives_same_result(void **state)
{
	(void)state;
	uint8_t buf[128];
	size_t n = 0;
	buf[n++] = 'a';
	buf[n++] = IAC;
	buf[n++] = IAC;
	n += espl_rfc2217_build_baud(ESPL_RFC2217_SET_BAUDRATE, 0x12FF34FFu, buf + n);
	buf[n++] = IAC;
	buf[n++] = DO;
	buf[n++] = 3;
	n += espl_rfc2217_build_byte(ESPL_RFC2217_SET_CONTROL, ESPL_RFC2217_RTS_OFF, buf + n);
	buf[n++] = 'z';

	decoded whole;
	decode_all(buf, n, &whole);
	assert_int_equal(whole.events, 3);
	for (size_t cut = 1; cut < n; cut++) {
		espl_telnet_decoder dec;
		decoded d;
		espl_telnet_decoder_init(&dec);
		memset(&d, 0, sizeof d);
		decode_chunk(&dec, buf, cut, &d);
		decode_chunk(&dec, buf + cut, n - cut, &d);
		assert_int_equal(d.len, whole.len);
		assert_memory_equal(d.data, whole.data, whole.len);
		assert_int_equal(d.events, whole.events);
		for (size_t e = 0; e < d.events; e++) {
			assert_int_equal(d.ev[e].kind, whole.ev[e].kind);
			assert_int_equal(d.ev[e].verb, whole.ev[e].verb);
			assert_int_equal(d.ev[e].option, whole.ev[e].option);
			assert_int_equal(d.ev[e].cpo_value, whole.ev[e].cpo_value);
			assert_int_equal(d.ev_data_pos[e], whole.ev_data_pos[e]);
		}
	}
	/* one byte at a time */
	espl_telnet_decoder dec;
	decoded d;
	espl_telnet_decoder_init(&dec);
	memset(&d, 0, sizeof d);
	for (size_t i = 0; i < n; i++)
		decode_chunk(&dec, buf + i, 1, &d);
	assert_int_equal(d.events, 3);
	assert_int_equal(d.ev[0].cpo_value, 0x12FF34FFu);
	assert_int_equal(d.ev[2].cpo_value, ESPL_RFC2217_RTS_OFF);
}

static void test_malformed_input_is_counted(void **state)
{
	(void)state;
	/* SET-BAUDRATE with three bytes; SB missing its SE, then a real WILL */
	const uint8_t in[] = { IAC, SB, 44, 1, 0, 1, 2, IAC, SE,
	                       IAC, SB, 44, 5, IAC, WILL, 0, 'k', IAC, SE };
	espl_telnet_decoder dec;
	decoded d;
	espl_telnet_decoder_init(&dec);
	memset(&d, 0, sizeof d);
	decode_chunk(&dec, in, sizeof in, &d);
	assert_int_equal(d.events, 2);
	assert_int_equal(d.ev[0].kind, ESPL_TELNET_EV_SUBNEG);
	assert_false(d.ev[0].cpo);
	assert_int_equal(d.ev[1].kind, ESPL_TELNET_EV_NEGOTIATION);
	assert_int_equal(d.ev[1].verb, WILL);
	assert_int_equal(d.ev[1].option, 0);
	assert_int_equal(d.len, 1);
	assert_int_equal(d.data[0], 'k');
	/* bad baud length, IAC WILL inside SB, stray IAC SE */
	assert_int_equal(dec.protocol_errors, 3);
}

static void test_oversized_subnegotiation_is_truncated(void **state)
{
	(void)state;
	uint8_t in[ESPL_TELNET_SB_MAX + 20];
	size_t n = 0;
	in[n++] = IAC;
	in[n++] = SB;
	in[n++] = 24; /* terminal type, not ours */
	for (int i = 0; i < ESPL_TELNET_SB_MAX + 10; i++)
		in[n++] = 'x';
	in[n++] = IAC;
	in[n++] = SE;
	in[n++] = 'd';
	decoded d;
	decode_all(in, n, &d);
	assert_int_equal(d.events, 1);
	assert_true(d.ev[0].truncated);
	assert_int_equal(d.ev[0].len, ESPL_TELNET_SB_MAX);
	assert_int_equal(d.len, 1);
}

/* --- negotiation between two option tables ---------------------------- */

typedef struct peer {
	espl_telnet_options opt;
	espl_telnet_decoder dec;
	const uint8_t *accept; /* options this side agrees to, 0xFF-terminated */
	uint8_t outbox[256];
	size_t out_len;
	size_t sent; /* negotiation messages sent in total */
} peer;

static int accepts(const peer *p, uint8_t option)
{
	for (size_t i = 0; p->accept[i] != 0xFF; i++)
		if (p->accept[i] == option)
			return 1;
	return 0;
}

static void peer_init(peer *p, const uint8_t *accept)
{
	memset(p, 0, sizeof *p);
	espl_telnet_options_init(&p->opt);
	espl_telnet_decoder_init(&p->dec);
	p->accept = accept;
}

static void peer_request(peer *p, uint8_t verb, uint8_t option)
{
	size_t n = espl_telnet_request(&p->opt, verb, option, p->outbox + p->out_len);
	p->out_len += n;
	p->sent += n / 3;
}

/* Deliver from's outbox to to; to's answers go to its outbox. */
static void deliver(peer *from, peer *to)
{
	uint8_t in[256];
	size_t n = from->out_len, off = 0;
	memcpy(in, from->outbox, n);
	from->out_len = 0;
	while (off < n) {
		uint8_t data[256];
		size_t dlen;
		espl_telnet_event ev;
		off += espl_telnet_feed(&to->dec, in + off, n - off, data, &dlen, &ev);
		assert_int_equal(dlen, 0);
		size_t r = espl_telnet_answer(&to->opt, &ev, accepts(to, ev.option),
		                              to->outbox + to->out_len);
		to->out_len += r;
		to->sent += r / 3;
	}
}

static void converse(peer *a, peer *b)
{
	for (int round = 0; round < 10 && (a->out_len || b->out_len); round++) {
		deliver(a, b);
		deliver(b, a);
	}
	assert_int_equal(a->out_len, 0); /* quiet: no negotiation loop */
	assert_int_equal(b->out_len, 0);
}

static const uint8_t client_accepts[] = { ESPL_TELNET_OPT_BINARY, ESPL_TELNET_OPT_SGA,
                                          ESPL_TELNET_OPT_COM_PORT, 0xFF };
static const uint8_t server_accepts[] = { ESPL_TELNET_OPT_BINARY, ESPL_TELNET_OPT_SGA,
                                          ESPL_TELNET_OPT_COM_PORT, ESPL_TELNET_OPT_ECHO, 0xFF };

static void test_negotiation_client_first(void **state)
{
	(void)state;
	peer c, s;
	peer_init(&c, client_accepts);
	peer_init(&s, server_accepts);
	peer_request(&c, WILL, ESPL_TELNET_OPT_COM_PORT);
	peer_request(&c, WILL, ESPL_TELNET_OPT_BINARY);
	peer_request(&c, DO, ESPL_TELNET_OPT_BINARY);
	peer_request(&c, WILL, ESPL_TELNET_OPT_COM_PORT); /* asked already: nothing */
	assert_int_equal(c.sent, 3);
	converse(&c, &s);
	assert_true(espl_telnet_us_enabled(&c.opt, ESPL_TELNET_OPT_COM_PORT));
	assert_true(espl_telnet_him_enabled(&s.opt, ESPL_TELNET_OPT_COM_PORT));
	assert_true(espl_telnet_us_enabled(&c.opt, ESPL_TELNET_OPT_BINARY));
	assert_true(espl_telnet_him_enabled(&c.opt, ESPL_TELNET_OPT_BINARY));
	assert_true(espl_telnet_us_enabled(&s.opt, ESPL_TELNET_OPT_BINARY));
	assert_int_equal(s.sent, 3); /* one answer per request, no echo of acks */
}

static void test_negotiation_crossing_requests(void **state)
{
	(void)state;
	peer c, s;
	peer_init(&c, client_accepts);
	peer_init(&s, server_accepts);
	peer_request(&c, WILL, ESPL_TELNET_OPT_COM_PORT);
	peer_request(&s, DO, ESPL_TELNET_OPT_COM_PORT);
	peer_request(&s, WILL, ESPL_TELNET_OPT_ECHO);
	converse(&c, &s);
	assert_true(espl_telnet_us_enabled(&c.opt, ESPL_TELNET_OPT_COM_PORT));
	assert_true(espl_telnet_him_enabled(&s.opt, ESPL_TELNET_OPT_COM_PORT));
	/* the client refuses ECHO: the server sees its request refused */
	assert_false(espl_telnet_him_enabled(&c.opt, ESPL_TELNET_OPT_ECHO));
	assert_true(espl_telnet_us_refused(&s.opt, ESPL_TELNET_OPT_ECHO));
	assert_int_equal(c.sent, 2); /* WILL COM-PORT, DONT ECHO; the DO was an ack */
	assert_int_equal(s.sent, 2); /* its two requests, no replies needed */
}

static void test_negotiation_refused_and_disabled(void **state)
{
	(void)state;
	static const uint8_t nothing[] = { 0xFF };
	peer c, s;
	peer_init(&c, client_accepts);
	peer_init(&s, nothing); /* a plain telnet server with no RFC 2217 */
	peer_request(&c, WILL, ESPL_TELNET_OPT_COM_PORT);
	converse(&c, &s);
	assert_false(espl_telnet_us_enabled(&c.opt, ESPL_TELNET_OPT_COM_PORT));
	assert_true(espl_telnet_us_refused(&c.opt, ESPL_TELNET_OPT_COM_PORT));

	/* an enabled option switched off by the peer is acknowledged once */
	peer_init(&c, client_accepts);
	peer_init(&s, server_accepts);
	peer_request(&s, WILL, ESPL_TELNET_OPT_SGA);
	converse(&s, &c);
	assert_true(espl_telnet_him_enabled(&c.opt, ESPL_TELNET_OPT_SGA));
	s.out_len = espl_telnet_build_negotiation(WONT, ESPL_TELNET_OPT_SGA, s.outbox);
	deliver(&s, &c);
	assert_int_equal(c.out_len, 3);
	assert_int_equal(c.outbox[1], DONT);
	assert_false(espl_telnet_him_enabled(&c.opt, ESPL_TELNET_OPT_SGA));
	c.out_len = 0;
	/* saying it again changes nothing and needs no answer */
	s.out_len = espl_telnet_build_negotiation(WONT, ESPL_TELNET_OPT_SGA, s.outbox);
	deliver(&s, &c);
	assert_int_equal(c.out_len, 0);
}

static void test_escape(void **state)
{
	(void)state;
	const uint8_t in[] = { 1, 0xFF, 2, 0xFF, 0xFF };
	const uint8_t want[] = { 1, 0xFF, 0xFF, 2, 0xFF, 0xFF, 0xFF, 0xFF };
	uint8_t out[10];
	size_t n = espl_telnet_escape(in, sizeof in, out);
	assert_int_equal(n, sizeof want);
	assert_memory_equal(out, want, sizeof want);
	decoded d;
	decode_all(out, n, &d);
	assert_int_equal(d.len, sizeof in);
	assert_memory_equal(d.data, in, sizeof in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_data_and_iac_iac),
		cmocka_unit_test(test_decode_in_place),
		cmocka_unit_test(test_negotiation_and_command_events),
		cmocka_unit_test(test_set_baudrate_client_and_server),
		cmocka_unit_test(test_iac_inside_subnegotiation_is_escaped),
		cmocka_unit_test(test_control_and_reply),
		cmocka_unit_test(test_purge_and_signature),
		cmocka_unit_test(test_data_order_around_commands),
		cmocka_unit_test(test_split_anywhere_gives_same_result),
		cmocka_unit_test(test_malformed_input_is_counted),
		cmocka_unit_test(test_oversized_subnegotiation_is_truncated),
		cmocka_unit_test(test_negotiation_client_first),
		cmocka_unit_test(test_negotiation_crossing_requests),
		cmocka_unit_test(test_negotiation_refused_and_disabled),
		cmocka_unit_test(test_escape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
