/*
 * web.h - the line in a browser: an HTTP view of a running station and of
 * the history in a database.
 *
 * One server, two sources, either or both:
 *   live     the station's events (supervisor.h) through the ui (ui.h): GET
 *            /events is a Server-Sent Events stream that starts with a
 *            "snapshot" (the state so far) and goes on with every event in
 *            the JSON view's format (progress thinned to about 4 a second a
 *            port); GET /api/state is the snapshot alone.
 *   history  a database opened read-only for each request: /api/batches,
 *            /api/report?batch=NAME, /api/history?mac=MAC (the units
 *            `espline history` shows, in the export's JSON form) and
 *            /api/export.csv|json?batch=NAME (report.h's export).
 * The page itself (web/index.html, app.js, app.css) is built into the binary.
 *
 * Security.  A token (at least 16 bytes) is required when the address is not
 * loopback and when control is allowed; every /api and /events request must
 * then carry it, as "Authorization: Bearer TOKEN" or as the cookie that POST
 * /api/login sets (HttpOnly, SameSite=Strict).  Tokens are compared in
 * constant time.  POST /api/control answers 403 unless control was given
 * (and the request carries the token and "X-Espline-Control: 1", which a
 * cross-site form cannot send).  Every response carries a Content-Security-
 * Policy without inline script, X-Content-Type-Options: nosniff, and data
 * responses Cache-Control: no-store.  Request headers are bounded by the
 * connection memory limit (larger: 431), bodies to 1 KiB (413), connections
 * and event streams in number (503).
 *
 * Isolation.  A browser never slows the station: espl_web_event copies the
 * event's text into each stream's bounded buffer and returns; when a
 * buffer is full its events are dropped and that browser gets a fresh
 * snapshot once it reads again.  Each connection has its own thread
 * (libmicrohttpd's thread-per-connection mode), so a stuck one blocks only
 * itself; its kernel send buffer is bounded too (16 KB).  A stream sends at
 * most ten times a second, whatever the event rate.
 *
 * The module never prints.  Thread safety: espl_web_event may be called from
 * any number of threads at once; start and stop from one thread.  With a ui,
 * feed the station's events through espl_web_event only (it passes each to
 * espl_ui_event under the server's lock, so that a browser's snapshot and
 * the events after it neither miss nor repeat one).
 */
#ifndef ESPLINE_WEB_H
#define ESPLINE_WEB_H

#include <stddef.h>

#include "espline/central_query.h"
#include "espline/error.h"
#include "espline/report.h"
#include "espline/supervisor.h"
#include "espline/ui.h"

typedef struct espl_web espl_web;

/* A control request: action "stop" (port NULL: the whole station,
 * gracefully), or "pause"/"resume"/"stop" of one slot (port: its slot name
 * or port).  Returns ESPL_OK, or a code answered with the error's message:
 * ESPL_ENOTFOUND 404, ESPL_EARG 400, ESPL_EUNSUPPORTED 501, others 409.
 * Called on a connection thread. */
typedef int (*espl_web_control_fn)(void *ctx, const char *action, const char *port, espl_error *err);

/* Where the history pages read, when it is not a local database (espline
 * serve --central).  The calls have report.h's contracts (central_query.h
 * implements them for PostgreSQL).  They may come from several connection
 * threads at once: the source serialises what must be.  stations may be
 * NULL (no overview of the stations). */
typedef struct espl_web_history {
	void *ctx;
	int (*batches)(void *ctx, int limit, espl_report_batch_cb cb, void *user, espl_error *err);
	int (*history)(void *ctx, const char *key, espl_report_unit_cb cb, void *user, espl_error *err);
	int (*report)(void *ctx, const espl_report_filter *f, espl_report *out, espl_error *err);
	int (*export_units)(void *ctx, const espl_report_filter *f, enum espl_export_format format, FILE *out,
	                    espl_error *err);
	int (*stations)(void *ctx, espl_central_station_cb cb, void *user, espl_error *err);
} espl_web_history;

#define ESPL_WEB_TOKEN_MIN 16
#define ESPL_WEB_TOKEN_MAX 256

typedef struct espl_web_options {
	const char *listen;          /* "HOST:PORT", "[V6]:PORT"; NULL: "127.0.0.1:8080"; port 0: any */
	const char *token;           /* NULL: none (only allowed on loopback without control) */
	espl_ui *ui;                 /* the live station; NULL: no live view */
	const char *db_path;         /* the history database; NULL: no history pages */
	const espl_web_history *history; /* instead of db_path: another source (copied) */
	espl_web_control_fn control; /* non-NULL: control allowed (needs a token) */
	void *control_ctx;
	unsigned max_connections;    /* 0: 64 */
	unsigned max_streams;        /* event streams at once; 0: 32 */
	size_t stream_buffer;        /* bytes queued per event stream; 0: 64 KiB */
} espl_web_options;

/* Check the options, bind and start serving.  ESPL_EARG for a bad address, a
 * non-loopback address or control without a token, a token too short;
 * ESPL_ESYS when the address cannot be bound. */
int espl_web_start(const espl_web_options *opts, espl_web **out, espl_error *err);
/* The port actually bound (useful with port 0). */
unsigned espl_web_port(const espl_web *w);
/* Event streams opened so far, and how many times one fell behind (its
 * buffer was full, its events dropped, a fresh snapshot sent instead). */
void espl_web_stats(espl_web *w, unsigned long long *streams, unsigned long long *overflows);
/* Is this listen address loopback (127.0.0.0/8, ::1)?  1, 0, or ESPL_EARG. */
int espl_web_is_loopback(const char *listen, espl_error *err);
/* One station event: to the ui (if any), then to every event stream. */
void espl_web_event(espl_web *w, const espl_station_event *ev);
/* Close every connection and free the server.  NULL is fine. */
void espl_web_stop(espl_web *w);

/* The token from file when it is not NULL (a bounded regular file not
 * readable by others; surrounding white space trimmed), else from env_value
 * (the program passes $ESPLINE_HTTP_TOKEN; NULL or "" = none).  *out is
 * malloc'd, NULL when neither is given (ESPL_OK).  Never from the command
 * line: it would show in ps and shell history. */
int espl_web_load_token(const char *file, const char *env_value, char **out, espl_error *err);

#endif /* ESPLINE_WEB_H */
