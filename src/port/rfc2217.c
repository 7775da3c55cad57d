/* rfc2217.c - streaming telnet / RFC 2217 codec; see include/espline/rfc2217.h. */
#include "espline/rfc2217.h"

#include <string.h>

enum decoder_state {
	ST_DATA = 0,   /* plain data */
	ST_IAC,        /* after IAC */
	ST_OPTION,     /* after IAC WILL/WONT/DO/DONT, waiting for the option */
	ST_SB_OPTION,  /* after IAC SB, waiting for the option */
	ST_SB_DATA,    /* inside a subnegotiation */
	ST_SB_IAC,     /* IAC inside a subnegotiation */
};

/* Option states in espl_telnet_options. */
enum opt_state { OPT_OFF = 0, OPT_ON, OPT_WANT, OPT_REFUSED };

void espl_telnet_decoder_init(espl_telnet_decoder *dec)
{
	memset(dec, 0, sizeof *dec);
	dec->state = ST_DATA;
}

static int is_negotiation_verb(uint8_t b)
{
	return b == ESPL_TELNET_WILL || b == ESPL_TELNET_WONT ||
	       b == ESPL_TELNET_DO || b == ESPL_TELNET_DONT;
}

/* Argument size a COM-PORT-OPTION command needs: -1 any, -2 unknown command. */
static int cpo_arg_size(uint8_t base)
{
	switch (base) {
	case ESPL_RFC2217_SIGNATURE: return -1;
	case ESPL_RFC2217_SET_BAUDRATE: return 4;
	case ESPL_RFC2217_FLOWCONTROL_SUSPEND:
	case ESPL_RFC2217_FLOWCONTROL_RESUME: return 0;
	case ESPL_RFC2217_SET_DATASIZE:
	case ESPL_RFC2217_SET_PARITY:
	case ESPL_RFC2217_SET_STOPSIZE:
	case ESPL_RFC2217_SET_CONTROL:
	case ESPL_RFC2217_NOTIFY_LINESTATE:
	case ESPL_RFC2217_NOTIFY_MODEMSTATE:
	case ESPL_RFC2217_SET_LINESTATE_MASK:
	case ESPL_RFC2217_SET_MODEMSTATE_MASK:
	case ESPL_RFC2217_PURGE_DATA: return 1;
	default: return -2;
	}
}

/* Fill the cpo_* fields of a COM-PORT-OPTION subnegotiation event. */
static void parse_com_port(espl_telnet_decoder *dec, espl_telnet_event *ev)
{
	if (ev->len < 1 || ev->truncated) {
		dec->protocol_errors++;
		return;
	}
	uint8_t cmd = ev->data[0];
	int from_server = cmd >= ESPL_RFC2217_SERVER_OFFSET;
	uint8_t base = from_server ? (uint8_t)(cmd - ESPL_RFC2217_SERVER_OFFSET) : cmd;
	int want = cpo_arg_size(base);
	size_t arg_len = ev->len - 1;
	if (want == -2)
		return; /* a command we do not know: leave it to the caller, not an error */
	if (want >= 0 && arg_len != (size_t)want) {
		dec->protocol_errors++;
		return;
	}
	ev->cpo = 1;
	ev->cpo_cmd = cmd;
	ev->cpo_base = base;
	ev->cpo_from_server = from_server;
	ev->cpo_arg = ev->data + 1;
	ev->cpo_arg_len = arg_len;
	if (want == 4)
		ev->cpo_value = (uint32_t)ev->cpo_arg[0] << 24 | (uint32_t)ev->cpo_arg[1] << 16 |
		                (uint32_t)ev->cpo_arg[2] << 8 | ev->cpo_arg[3];
	else if (want == 1)
		ev->cpo_value = ev->cpo_arg[0];
}

static void finish_subneg(espl_telnet_decoder *dec, espl_telnet_event *ev)
{
	ev->kind = ESPL_TELNET_EV_SUBNEG;
	ev->option = dec->sb_option;
	ev->data = dec->sb;
	ev->len = dec->sb_len;
	ev->truncated = dec->sb_truncated;
	if (ev->option == ESPL_TELNET_OPT_COM_PORT)
		parse_com_port(dec, ev);
}

static void sb_append(espl_telnet_decoder *dec, uint8_t b)
{
	if (dec->sb_len < sizeof dec->sb)
		dec->sb[dec->sb_len++] = b;
	else
		dec->sb_truncated = 1;
}

/* Handle the byte after IAC (outside a subnegotiation).  Returns 1 when it
 * completed an event; data 0xFF goes through *data_byte (set to 0x100 + b). */
static int after_iac(espl_telnet_decoder *dec, uint8_t b, espl_telnet_event *ev, int *data_byte)
{
	dec->state = ST_DATA;
	if (b == ESPL_TELNET_IAC) {
		*data_byte = b;
		return 0;
	}
	if (is_negotiation_verb(b)) {
		dec->verb = b; /* kept in the decoder: the option may come in the next feed */
		dec->state = ST_OPTION;
		return 0;
	}
	if (b == ESPL_TELNET_SB) {
		dec->state = ST_SB_OPTION;
		return 0;
	}
	if (b == ESPL_TELNET_SE) {
		dec->protocol_errors++; /* SE without SB: drop it */
		return 0;
	}
	ev->kind = ESPL_TELNET_EV_COMMAND;
	ev->verb = b;
	return 1;
}

/* One byte; returns 1 when an event completed.  *data_byte >= 0 is a data byte. */
static int step(espl_telnet_decoder *dec, uint8_t b, espl_telnet_event *ev, int *data_byte)
{
	*data_byte = -1;
	switch (dec->state) {
	case ST_DATA:
		if (b == ESPL_TELNET_IAC)
			dec->state = ST_IAC;
		else
			*data_byte = b;
		return 0;
	case ST_IAC:
		return after_iac(dec, b, ev, data_byte);
	case ST_OPTION:
		dec->state = ST_DATA;
		ev->kind = ESPL_TELNET_EV_NEGOTIATION;
		ev->verb = dec->verb;
		ev->option = b;
		return 1;
	case ST_SB_OPTION:
		dec->sb_option = b;
		dec->sb_len = 0;
		dec->sb_truncated = 0;
		dec->state = ST_SB_DATA;
		return 0;
	case ST_SB_DATA:
		if (b == ESPL_TELNET_IAC)
			dec->state = ST_SB_IAC;
		else
			sb_append(dec, b);
		return 0;
	case ST_SB_IAC:
		if (b == ESPL_TELNET_IAC) {
			sb_append(dec, b);
			dec->state = ST_SB_DATA;
			return 0;
		}
		if (b == ESPL_TELNET_SE) {
			dec->state = ST_DATA;
			finish_subneg(dec, ev);
			return 1;
		}
		/* IAC <command> inside SB: the peer forgot IAC SE.  Drop the
		 * subnegotiation and read the command as if it stood alone. */
		dec->protocol_errors++;
		return after_iac(dec, b, ev, data_byte);
	default:
		dec->state = ST_DATA;
		return 0;
	}
}

size_t espl_telnet_feed(espl_telnet_decoder *dec, const uint8_t *in, size_t n,
                        uint8_t *out, size_t *out_len, espl_telnet_event *ev)
{
	size_t i = 0, o = 0;
	memset(ev, 0, sizeof *ev);
	while (i < n) {
		int data_byte;
		int done = step(dec, in[i++], ev, &data_byte);
		if (data_byte >= 0)
			out[o++] = (uint8_t)data_byte;
		if (done)
			break;
	}
	*out_len = o;
	return i;
}

size_t espl_telnet_escape(const uint8_t *in, size_t n, uint8_t *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		out[o++] = in[i];
		if (in[i] == ESPL_TELNET_IAC)
			out[o++] = ESPL_TELNET_IAC;
	}
	return o;
}

size_t espl_telnet_build_negotiation(uint8_t verb, uint8_t option, uint8_t out[3])
{
	out[0] = ESPL_TELNET_IAC;
	out[1] = verb;
	out[2] = option;
	return 3;
}

size_t espl_rfc2217_build(uint8_t cmd, const uint8_t *arg, size_t n, uint8_t *out)
{
	size_t o = 0;
	out[o++] = ESPL_TELNET_IAC;
	out[o++] = ESPL_TELNET_SB;
	out[o++] = ESPL_TELNET_OPT_COM_PORT;
	o += espl_telnet_escape(&cmd, 1, out + o);
	o += espl_telnet_escape(arg, n, out + o);
	out[o++] = ESPL_TELNET_IAC;
	out[o++] = ESPL_TELNET_SE;
	return o;
}

size_t espl_rfc2217_build_baud(uint8_t cmd, uint32_t baud, uint8_t *out)
{
	const uint8_t be[4] = { (uint8_t)(baud >> 24), (uint8_t)(baud >> 16),
	                        (uint8_t)(baud >> 8), (uint8_t)baud };
	return espl_rfc2217_build(cmd, be, sizeof be, out);
}

size_t espl_rfc2217_build_byte(uint8_t cmd, uint8_t value, uint8_t *out)
{
	return espl_rfc2217_build(cmd, &value, 1, out);
}

size_t espl_rfc2217_build_reply(const espl_telnet_event *req, uint8_t *out)
{
	if (req->kind != ESPL_TELNET_EV_SUBNEG || !req->cpo || req->cpo_from_server)
		return 0;
	return espl_rfc2217_build(ESPL_RFC2217_SERVER(req->cpo_base), req->cpo_arg,
	                          req->cpo_arg_len, out);
}

void espl_telnet_options_init(espl_telnet_options *o)
{
	memset(o, 0, sizeof *o);
}

size_t espl_telnet_request(espl_telnet_options *o, uint8_t verb, uint8_t option, uint8_t out[3])
{
	uint8_t *side;
	if (verb == ESPL_TELNET_WILL)
		side = &o->us[option];
	else if (verb == ESPL_TELNET_DO)
		side = &o->him[option];
	else
		return 0;
	if (*side == OPT_ON || *side == OPT_WANT)
		return 0;
	*side = OPT_WANT;
	return espl_telnet_build_negotiation(verb, option, out);
}

/* The peer asks for an option on *side (DO for us, WILL for him). */
static size_t on_enable_request(uint8_t *side, int accept, uint8_t yes, uint8_t no,
                                uint8_t option, uint8_t out[3])
{
	switch (*side) {
	case OPT_ON:
		return 0;
	case OPT_WANT:
		*side = OPT_ON; /* the answer to our own request */
		return 0;
	default:
		if (accept) {
			*side = OPT_ON;
			return espl_telnet_build_negotiation(yes, option, out);
		}
		*side = OPT_OFF;
		return espl_telnet_build_negotiation(no, option, out);
	}
}

/* The peer turns an option off on *side (DONT for us, WONT for him). */
static size_t on_disable(uint8_t *side, uint8_t no, uint8_t option, uint8_t out[3])
{
	switch (*side) {
	case OPT_ON:
		*side = OPT_OFF;
		return espl_telnet_build_negotiation(no, option, out);
	case OPT_WANT:
		*side = OPT_REFUSED;
		return 0;
	default:
		return 0;
	}
}

size_t espl_telnet_answer(espl_telnet_options *o, const espl_telnet_event *ev, int accept,
                          uint8_t out[3])
{
	if (ev->kind != ESPL_TELNET_EV_NEGOTIATION)
		return 0;
	uint8_t opt = ev->option;
	switch (ev->verb) {
	case ESPL_TELNET_DO:
		return on_enable_request(&o->us[opt], accept, ESPL_TELNET_WILL, ESPL_TELNET_WONT, opt, out);
	case ESPL_TELNET_DONT:
		return on_disable(&o->us[opt], ESPL_TELNET_WONT, opt, out);
	case ESPL_TELNET_WILL:
		return on_enable_request(&o->him[opt], accept, ESPL_TELNET_DO, ESPL_TELNET_DONT, opt, out);
	case ESPL_TELNET_WONT:
		return on_disable(&o->him[opt], ESPL_TELNET_DONT, opt, out);
	default:
		return 0;
	}
}

int espl_telnet_us_enabled(const espl_telnet_options *o, uint8_t option)
{
	return o->us[option] == OPT_ON;
}

int espl_telnet_him_enabled(const espl_telnet_options *o, uint8_t option)
{
	return o->him[option] == OPT_ON;
}

int espl_telnet_us_refused(const espl_telnet_options *o, uint8_t option)
{
	return o->us[option] == OPT_REFUSED;
}

int espl_telnet_him_refused(const espl_telnet_options *o, uint8_t option)
{
	return o->him[option] == OPT_REFUSED;
}
