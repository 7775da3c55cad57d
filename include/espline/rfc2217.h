/*
 * rfc2217.h - a streaming telnet / RFC 2217 (COM-PORT-OPTION) codec.
 *
 * Pure: no I/O, no allocation, no global state.  It is shared by the client
 * port (src/port/port_rfc2217.c) and by the simulator's RFC 2217 server, so both
 * ends of the tests speak through the same, separately tested code.  It
 * does: strip telnet commands out of a byte stream and undo IAC IAC
 * escaping; report option negotiations (WILL/WONT/DO/DONT), other telnet
 * commands and subnegotiations, with COM-PORT-OPTION commands already parsed;
 * build outgoing negotiations, COM-PORT-OPTION commands and escaped data;
 * keep per-option state so that a negotiation is answered exactly once
 * (never loops, in the spirit of RFC 1143).  It does not: send anything,
 * decide policy (the caller says which options it accepts), handle telnet
 * NVT line endings (both ends negotiate BINARY, as pyserial and ser2net do).
 *
 * Thread safety: every object belongs to its caller; use one decoder and one
 * option table per connection.
 *
 * Event ordering: espl_telnet_feed() stops right after each event, so the
 * caller always handles the data that came before a command before the
 * command itself.  That is what makes "write data at 115200, then
 * SET-BAUDRATE 460800" take effect in order at the far end.
 *
 * --- How a server (e.g. the simulator) uses it --------------------------
 *
 *   espl_telnet_decoder dec;  espl_telnet_options opt;  uint8_t out[64];
 *   espl_telnet_decoder_init(&dec);  espl_telnet_options_init(&opt);
 *   // Offer and ask for what a serial server speaks (optional: a client
 *   // such as espline's asks first; crossing requests are handled).
 *   send(out, espl_telnet_request(&opt, ESPL_TELNET_WILL, ESPL_TELNET_OPT_BINARY, out));
 *   send(out, espl_telnet_request(&opt, ESPL_TELNET_DO, ESPL_TELNET_OPT_BINARY, out));
 *   send(out, espl_telnet_request(&opt, ESPL_TELNET_WILL, ESPL_TELNET_OPT_SGA, out));
 *   send(out, espl_telnet_request(&opt, ESPL_TELNET_DO, ESPL_TELNET_OPT_SGA, out));
 *   send(out, espl_telnet_request(&opt, ESPL_TELNET_DO, ESPL_TELNET_OPT_COM_PORT, out));
 *
 *   on bytes buf[0..n) from the socket:
 *     size_t off = 0;
 *     while (off < n) {
 *         size_t dlen;  espl_telnet_event ev;
 *         off += espl_telnet_feed(&dec, buf + off, n - off, data, &dlen, &ev);
 *         uart_rx(data, dlen);                 // host -> chip bytes, unescaped
 *         if (ev.kind == ESPL_TELNET_EV_NEGOTIATION)
 *             send(out, espl_telnet_answer(&opt, &ev,
 *                       ev.option == ESPL_TELNET_OPT_BINARY ||
 *                       ev.option == ESPL_TELNET_OPT_SGA ||
 *                       ev.option == ESPL_TELNET_OPT_COM_PORT, out));
 *         else if (ev.kind == ESPL_TELNET_EV_SUBNEG && ev.cpo && !ev.cpo_from_server)
 *             switch (ev.cpo_base) {
 *             case ESPL_RFC2217_SET_BAUDRATE:   // value 0 asks for the current rate
 *                 if (ev.cpo_value) set_baud(ev.cpo_value);
 *                 send(out, espl_rfc2217_build_baud(
 *                      ESPL_RFC2217_SERVER(ESPL_RFC2217_SET_BAUDRATE), baud, out));
 *                 break;
 *             case ESPL_RFC2217_SET_CONTROL:    // DTR_ON 8, DTR_OFF 9, RTS_ON 11, RTS_OFF 12
 *                 apply(ev.cpo_value);          // "on" = asserted = pin low on a USB-UART
 *                 send(out, espl_rfc2217_build_reply(&ev, out));   // 105, same value
 *                 break;                        // (for the "request" values 0/4/7/10/13,
 *                                               //  reply with build_byte(105, current))
 *             case ESPL_RFC2217_PURGE_DATA:     // 1 = our receive side, 2 = transmit, 3 both
 *                 purge(ev.cpo_value);
 *                 send(out, espl_rfc2217_build_reply(&ev, out));   // 112, same value
 *                 break;
 *             default:                          // SET-DATASIZE/PARITY/STOPSIZE, masks, ...
 *                 send(out, espl_rfc2217_build_reply(&ev, out));   // accept as asked
 *             }
 *   chip -> host bytes: send(esc, espl_telnet_escape(bytes, n, esc));  // esc holds 2n
 *
 * A client does the mirror image: request WILL COM-PORT-OPTION (and
 * BINARY/SGA both ways), wait until espl_telnet_us_enabled(&opt,
 * ESPL_TELNET_OPT_COM_PORT), then send client commands (cmd numbers 0..12)
 * and read replies whose cpo_from_server is set (cmd numbers 100..112).
 */
#ifndef ESPLINE_RFC2217_H
#define ESPLINE_RFC2217_H

#include <stddef.h>
#include <stdint.h>

/* Telnet command bytes (RFC 854). */
enum espl_telnet_cmd {
	ESPL_TELNET_SE = 240,    /* end of subnegotiation */
	ESPL_TELNET_NOP = 241,
	ESPL_TELNET_DM = 242,
	ESPL_TELNET_BRK = 243,
	ESPL_TELNET_IP = 244,
	ESPL_TELNET_AO = 245,
	ESPL_TELNET_AYT = 246,
	ESPL_TELNET_EC = 247,
	ESPL_TELNET_EL = 248,
	ESPL_TELNET_GA = 249,
	ESPL_TELNET_SB = 250,    /* start of subnegotiation */
	ESPL_TELNET_WILL = 251,
	ESPL_TELNET_WONT = 252,
	ESPL_TELNET_DO = 253,
	ESPL_TELNET_DONT = 254,
	ESPL_TELNET_IAC = 255,   /* "interpret as command"; IAC IAC is a data 0xFF */
};

/* Telnet options used by serial servers. */
enum espl_telnet_option {
	ESPL_TELNET_OPT_BINARY = 0,    /* RFC 856: 8-bit clean, no CR/NUL games */
	ESPL_TELNET_OPT_ECHO = 1,      /* RFC 857: refuse it, a serial port must not echo */
	ESPL_TELNET_OPT_SGA = 3,       /* RFC 858: suppress go-ahead */
	ESPL_TELNET_OPT_COM_PORT = 44, /* RFC 2217 COM-PORT-OPTION */
};

/* COM-PORT-OPTION commands as a client sends them; a server answers with
 * the same number plus 100 (ESPL_RFC2217_SERVER(cmd)). */
enum espl_rfc2217_cmd {
	ESPL_RFC2217_SIGNATURE = 0,
	ESPL_RFC2217_SET_BAUDRATE = 1,        /* 4 bytes big-endian; 0 = query */
	ESPL_RFC2217_SET_DATASIZE = 2,        /* 1 byte: 0 query, 5..8 */
	ESPL_RFC2217_SET_PARITY = 3,          /* 1 byte: 0 query, 1 none, 2 odd, 3 even, 4 mark, 5 space */
	ESPL_RFC2217_SET_STOPSIZE = 4,        /* 1 byte: 0 query, 1 one, 2 two, 3 one and a half */
	ESPL_RFC2217_SET_CONTROL = 5,         /* 1 byte: enum espl_rfc2217_control */
	ESPL_RFC2217_NOTIFY_LINESTATE = 6,    /* 1 byte, normally server to client */
	ESPL_RFC2217_NOTIFY_MODEMSTATE = 7,   /* 1 byte, normally server to client */
	ESPL_RFC2217_FLOWCONTROL_SUSPEND = 8, /* no argument */
	ESPL_RFC2217_FLOWCONTROL_RESUME = 9,  /* no argument */
	ESPL_RFC2217_SET_LINESTATE_MASK = 10, /* 1 byte */
	ESPL_RFC2217_SET_MODEMSTATE_MASK = 11,/* 1 byte */
	ESPL_RFC2217_PURGE_DATA = 12,         /* 1 byte: enum espl_rfc2217_purge */
};
#define ESPL_RFC2217_SERVER_OFFSET 100
#define ESPL_RFC2217_SERVER(cmd) ((uint8_t)((cmd) + ESPL_RFC2217_SERVER_OFFSET))

/* SET-CONTROL values (RFC 2217).  "On" means asserted: on a USB-UART bridge
 * the pin is then driven low, as with pyserial's dtr = True. */
enum espl_rfc2217_control {
	ESPL_RFC2217_FLOW_REQUEST = 0,
	ESPL_RFC2217_FLOW_NONE = 1,
	ESPL_RFC2217_FLOW_XONXOFF = 2,
	ESPL_RFC2217_FLOW_HARDWARE = 3,
	ESPL_RFC2217_BREAK_REQUEST = 4,
	ESPL_RFC2217_BREAK_ON = 5,
	ESPL_RFC2217_BREAK_OFF = 6,
	ESPL_RFC2217_DTR_REQUEST = 7,
	ESPL_RFC2217_DTR_ON = 8,
	ESPL_RFC2217_DTR_OFF = 9,
	ESPL_RFC2217_RTS_REQUEST = 10,
	ESPL_RFC2217_RTS_ON = 11,
	ESPL_RFC2217_RTS_OFF = 12,
	ESPL_RFC2217_INFLOW_REQUEST = 13,
	ESPL_RFC2217_INFLOW_NONE = 14,
	ESPL_RFC2217_INFLOW_XONXOFF = 15,
	ESPL_RFC2217_INFLOW_HARDWARE = 16,
};

/* PURGE-DATA values, from the server's point of view. */
enum espl_rfc2217_purge {
	ESPL_RFC2217_PURGE_RX = 1,   /* the server's receive buffer (bytes from the device) */
	ESPL_RFC2217_PURGE_TX = 2,   /* the server's transmit buffer (bytes to the device) */
	ESPL_RFC2217_PURGE_BOTH = 3,
};

/* Largest subnegotiation payload kept (option byte excluded); longer ones
 * are reported with truncated set. */
#define ESPL_TELNET_SB_MAX 64

enum espl_telnet_event_kind {
	ESPL_TELNET_EV_NONE = 0,     /* input ran out; only data (if any) came out */
	ESPL_TELNET_EV_NEGOTIATION,  /* IAC WILL/WONT/DO/DONT option */
	ESPL_TELNET_EV_COMMAND,      /* another two-byte command: IAC NOP, IAC BRK, ... */
	ESPL_TELNET_EV_SUBNEG,       /* IAC SB option ... IAC SE */
};

typedef struct espl_telnet_event {
	enum espl_telnet_event_kind kind;
	uint8_t verb;          /* NEGOTIATION: WILL/WONT/DO/DONT; COMMAND: the command byte */
	uint8_t option;        /* NEGOTIATION and SUBNEG: the telnet option */
	/* SUBNEG: the unescaped payload after the option byte.  Points into the
	 * decoder; valid until the next espl_telnet_feed call. */
	const uint8_t *data;
	size_t len;
	int truncated;         /* SUBNEG: payload was longer than ESPL_TELNET_SB_MAX */

	/* Filled for a SUBNEG on ESPL_TELNET_OPT_COM_PORT whose argument has the
	 * size its command requires (cpo = 1); cpo = 0 otherwise. */
	int cpo;
	uint8_t cpo_cmd;       /* as received: 1 from a client, 101 from a server */
	uint8_t cpo_base;      /* without the +100: compare with enum espl_rfc2217_cmd */
	int cpo_from_server;   /* cpo_cmd >= 100 */
	uint32_t cpo_value;    /* SET-BAUDRATE: the rate; 1-byte commands: that byte; else 0 */
	const uint8_t *cpo_arg;/* the argument bytes after the command byte (SIGNATURE text) */
	size_t cpo_arg_len;
} espl_telnet_event;

typedef struct espl_telnet_decoder {
	int state;                       /* private */
	uint8_t verb;                    /* private: WILL/WONT/DO/DONT awaiting its option */
	uint8_t sb_option;               /* private */
	uint8_t sb[ESPL_TELNET_SB_MAX];  /* private */
	size_t sb_len;                   /* private */
	int sb_truncated;                /* private */
	unsigned long protocol_errors;   /* IAC <junk> inside SB, stray IAC SE, bad COM-PORT args */
} espl_telnet_decoder;

void espl_telnet_decoder_init(espl_telnet_decoder *dec);

/* Decode in[0..n) until it runs out or one event completes, whichever comes
 * first.  Data bytes (telnet stripped, IAC IAC made 0xFF) go to out, which
 * must hold n bytes and may be the same buffer as in (output never runs
 * ahead of input); their count goes to *out_len.  *ev gets the event, or
 * kind ESPL_TELNET_EV_NONE.  Returns the input bytes consumed (> 0 when
 * n > 0); call again with the rest.  Commands split across calls are
 * reassembled. */
size_t espl_telnet_feed(espl_telnet_decoder *dec, const uint8_t *in, size_t n,
                        uint8_t *out, size_t *out_len, espl_telnet_event *ev);

/* --- building outgoing bytes ------------------------------------------- */

/* Escape data for the wire (0xFF -> FF FF).  out must hold 2n bytes;
 * returns the length written. */
size_t espl_telnet_escape(const uint8_t *in, size_t n, uint8_t *out);

/* IAC verb option: always 3 bytes. */
size_t espl_telnet_build_negotiation(uint8_t verb, uint8_t option, uint8_t out[3]);

/* Worst-case size of a COM-PORT-OPTION command with an n-byte argument:
 * IAC SB 44 cmd <escaped arg> IAC SE. */
#define ESPL_RFC2217_BUILD_MAX(n) (6 + 2 * (size_t)(n))
/* Enough for every fixed-size command (SET-BAUDRATE is the longest). */
#define ESPL_RFC2217_CMD_MAX ESPL_RFC2217_BUILD_MAX(4)

/* IAC SB COM-PORT-OPTION cmd <arg, IAC-escaped> IAC SE.  cmd is sent as
 * given: a client passes ESPL_RFC2217_SET_CONTROL, a server
 * ESPL_RFC2217_SERVER(ESPL_RFC2217_SET_CONTROL).  Returns the length. */
size_t espl_rfc2217_build(uint8_t cmd, const uint8_t *arg, size_t n, uint8_t *out);
/* SET-BAUDRATE (cmd 1 or 101) with its 4-byte big-endian rate; out holds
 * ESPL_RFC2217_CMD_MAX. */
size_t espl_rfc2217_build_baud(uint8_t cmd, uint32_t baud, uint8_t *out);
/* A command with a 1-byte argument (SET-CONTROL, PURGE-DATA, SET-PARITY, ...). */
size_t espl_rfc2217_build_byte(uint8_t cmd, uint8_t value, uint8_t *out);
/* A server's acknowledgement of a client command: the same argument under
 * the server's command number (cmd + 100).  req must be a COM-PORT-OPTION
 * event from a client (cpo set, cpo_from_server clear); returns 0 otherwise.
 * out holds ESPL_RFC2217_BUILD_MAX(req->cpo_arg_len). */
size_t espl_rfc2217_build_reply(const espl_telnet_event *req, uint8_t *out);

/* --- option negotiation state ------------------------------------------ */

/* Per-option state for each side: "us" is what we WILL do, "him" what we
 * asked the peer to DO.  Values are private. */
typedef struct espl_telnet_options {
	uint8_t us[256];
	uint8_t him[256];
} espl_telnet_options;

void espl_telnet_options_init(espl_telnet_options *o);

/* Ask for an option: verb WILL (enable on our side) or DO (ask the peer).
 * Writes IAC verb option and returns 3, or returns 0 when the option is
 * already enabled or already asked for.  The peer's answer arrives as a
 * NEGOTIATION event: pass it to espl_telnet_answer, which then sees it is
 * an acknowledgement and sends nothing. */
size_t espl_telnet_request(espl_telnet_options *o, uint8_t verb, uint8_t option, uint8_t out[3]);

/* Answer a NEGOTIATION event.  accept says whether we agree to the option
 * being on (for DO: on our side; for WILL: on the peer's side).  Writes the
 * reply and returns 3, or returns 0 when no reply is due (an
 * acknowledgement of our own request, or a state already in effect).
 * WONT/DONT are always accepted, as telnet requires.  Returns 0 for events
 * that are not negotiations. */
size_t espl_telnet_answer(espl_telnet_options *o, const espl_telnet_event *ev, int accept,
                          uint8_t out[3]);

/* Whether an option is on: on our side (after WILL was acknowledged by DO,
 * or we answered DO with WILL), or on the peer's side. */
int espl_telnet_us_enabled(const espl_telnet_options *o, uint8_t option);
int espl_telnet_him_enabled(const espl_telnet_options *o, uint8_t option);
/* Whether the peer refused a request we made (answered DONT to our WILL or
 * WONT to our DO) and it has not been asked again since. */
int espl_telnet_us_refused(const espl_telnet_options *o, uint8_t option);
int espl_telnet_him_refused(const espl_telnet_options *o, uint8_t option);

#endif /* ESPLINE_RFC2217_H */
