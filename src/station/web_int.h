/*
 * web_int.h - what the web view's files share (internal to src/station, not
 * installed; private names start with espl__web_).
 *
 *   web.c          addresses and tokens, responses, requests, start and stop
 *   web_live.c     the live view's event streams (server-sent events)
 *   web_history.c  history, reports and exports read from the database
 *
 * Locks: web->lock guards the streams, the port clocks and the order of
 * events; each stream has its own condition variable.  See
 * docs/ARCHITECTURE.md.
 */
#ifndef ESPLINE_STATION_WEB_INT_H
#define ESPLINE_STATION_WEB_INT_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>

#include "espline/web.h"

#define BODY_MAX 1024               /* login token or control request */
#define HEADER_MEMORY (16 * 1024)   /* per connection: request line + headers */
#define KEEPALIVE_S 15              /* SSE comment so proxies keep the stream */
#define PROGRESS_EVERY_MS 250       /* progress events per port, at most */
#define COALESCE_MS 100             /* a stream sends at most ten times a second */
#define MAX_TRACKED_PORTS 256
#define HISTORY_BATCHES 200
/* Longest search key (MAC, serial or scanned code) the history takes. */
#define HISTORY_KEY_MAX 128
/* A central station counts as live when its newest unit is younger. */
#define STATION_LIVE_MS (10 * 60 * 1000)
#define COOKIE "espline_token"
#define SOCKET_SEND_BUFFER (16 * 1024)  /* kernel bytes per connection (Linux doubles it) */

/* Every response: no inline script, no framing, no sniffing, no referrer. */
#define CSP "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " \
	    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/* One event stream (one browser's GET /events). */
typedef struct stream {
	struct stream *next;
	espl_web *web;
	pthread_cond_t wake;  /* signalled when buf stops being empty */
	char *buf;            /* SSE text waiting for the browser */
	size_t len, cap;      /* cap: stream_buffer, or a larger snapshot's size */
	int resync;           /* events were dropped: send a fresh snapshot first */
	int64_t last_send_ms;
	unsigned long long dropped;
} stream;

typedef struct port_clock {
	char port[128];
	int64_t last_ms;
} port_clock;

struct espl_web {
	espl_web_options o;
	char *token;
	char *db_path;
	espl_web_history history;  /* where /api/batches etc. read; batches NULL: nowhere */
	struct MHD_Daemon *daemon;
	unsigned port;
	pthread_mutex_t lock;      /* streams, clocks, and the order of ui events */
	pthread_condattr_t mono;   /* every condition variable waits on CLOCK_MONOTONIC */
	stream *streams;
	unsigned n_streams;
	int stopping;
	port_clock clocks[MAX_TRACKED_PORTS];
	size_t n_clocks;
	unsigned long long streams_served, overflows;
};

/* Per request: the body of a POST, bounded. */
typedef struct request {
	char body[BODY_MAX + 1];
	size_t len;
	int too_big;
} request;

/* web.c */
/* Queue response r with the security headers, type and cache policy. */
enum MHD_Result espl__web_send_response(struct MHD_Connection *c, unsigned status,
					struct MHD_Response *r, const char *type, const char *cache);
/* Reply with body (freed by the library once sent). */
enum MHD_Result espl__web_reply_owned(struct MHD_Connection *c, unsigned status,
				      const char *type, char *body, size_t len);
enum MHD_Result espl__web_reply_json_text(struct MHD_Connection *c, unsigned status, char *text);
enum MHD_Result espl__web_reply_error(struct MHD_Connection *c, unsigned status, const char *message);

/* web_live.c */
/* GET /events: a server-sent event stream of the station's events. */
enum MHD_Result espl__web_serve_events(espl_web *w, struct MHD_Connection *c);

/* web_history.c */
/* GET /api/...: history, reports and exports from the database. */
enum MHD_Result espl__web_serve_db(espl_web *w, struct MHD_Connection *c, const char *url);
/* The local source: espl_report_* on db_path, opened read-only per call
 * (db_path must outlive h). */
void espl__web_history_local(espl_web_history *h, const char *db_path);

#endif /* ESPLINE_STATION_WEB_INT_H */
