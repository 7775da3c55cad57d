/* web_live.c - the web view's live event streams (server-sent events); see
 * include/espline/web.h and src/station/web_int.h. */
#include "espline/web.h"
#include "station/web_int.h"
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "espline/db.h"
#include "espline/report.h"
#include "station/web_assets.h"
#include "util/clock.h"
#include "util/file.h"

/* ------------------------------------------------------------------ */
/* live: event streams                                                  */

/* Append SSE text to one stream; a full buffer drops it all and asks for a
 * snapshot instead (the events in it are superseded by the state). */
static void stream_push(espl_web *w, stream *s, const char *text, size_t n)
{
	if (s->resync)
		return;
	if (s->len + n > s->cap) {
		s->len = 0;
		s->resync = 1;
		s->dropped++;
		w->overflows++;
		pthread_cond_signal(&s->wake);
		return;
	}
	memcpy(s->buf + s->len, text, n);
	if (!s->len)  /* only the first event wakes the stream's thread */
		pthread_cond_signal(&s->wake);
	s->len += n;
}

/* "data: JSON\n\n" (JSON from jansson's compact form has no newline). */
static char *sse_frame(char *json, size_t *n)
{
	if (!json)
		return NULL;
	size_t jl = strlen(json);
	char *f = malloc(jl + 9);
	if (f) {
		memcpy(f, "data: ", 6);
		memcpy(f + 6, json, jl);
		memcpy(f + 6 + jl, "\n\n", 3);
		*n = jl + 8;
	}
	free(json);
	return f;
}

/* Snapshot into the stream, in place of what it held; w->lock held, so no
 * event slips between.  A snapshot larger than the buffer (hundreds of
 * ports) grows it once: events are bounded, the state must get through. */
static void stream_snapshot(espl_web *w, stream *s)
{
	size_t n = 0;
	char *frame = sse_frame(espl_ui_snapshot_text(w->o.ui), &n), *grown;
	s->len = 0;
	s->resync = 1;
	if (frame && n > s->cap && (grown = realloc(s->buf, n))) {
		s->buf = grown;
		s->cap = n;
	}
	if (frame && n <= s->cap) {
		memcpy(s->buf, frame, n);
		s->len = n;
		s->resync = 0;
	}
	free(frame);
}

static int progress_due(espl_web *w, const espl_station_event *ev)
{
	if (!ev->port || !ev->progress)
		return 0;
	int64_t now = espl__now_ms();
	port_clock *pc = NULL;
	for (size_t i = 0; i < w->n_clocks && !pc; i++)
		if (strcmp(w->clocks[i].port, ev->port) == 0)
			pc = &w->clocks[i];
	if (!pc) {
		if (w->n_clocks == MAX_TRACKED_PORTS)
			return 0;
		pc = &w->clocks[w->n_clocks++];
		snprintf(pc->port, sizeof pc->port, "%s", ev->port);
		pc->last_ms = 0;
	}
	int last = ev->progress->total && ev->progress->done >= ev->progress->total;
	if (!last && now - pc->last_ms < PROGRESS_EVERY_MS)
		return 0;
	pc->last_ms = now;
	return 1;
}

void espl_web_event(espl_web *w, const espl_station_event *ev)
{
	pthread_mutex_lock(&w->lock);
	if (w->o.ui)
		espl_ui_event(w->o.ui, ev);
	if (w->o.ui && w->streams && (ev->kind != ESPL_EV_PROGRESS || progress_due(w, ev))) {
		size_t n = 0;
		char *frame = sse_frame(espl_ui_event_text(w->o.ui, ev), &n);
		for (stream *s = w->streams; s && frame; s = s->next)
			stream_push(w, s, frame, n);
		for (stream *s = w->streams; s && !frame; s = s->next) {
			s->resync = 1;  /* out of memory: this event is lost to everyone */
			pthread_cond_signal(&s->wake);
		}
		free(frame);
	}
	pthread_mutex_unlock(&w->lock);
}

/* libmicrohttpd asks for the next bytes of a stream (its own thread).  It
 * sends at most every COALESCE_MS, so that a busy station costs each
 * browser ten wake-ups a second, not one per event. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	stream *s = cls;
	espl_web *w = s->web;
	(void)pos;
	pthread_mutex_lock(&w->lock);
	int64_t rest = s->last_send_ms + COALESCE_MS - espl__now_ms();
	if (rest > 0 && !w->stopping) {
		pthread_mutex_unlock(&w->lock);
		espl__sleep_ms((unsigned)rest);
		pthread_mutex_lock(&w->lock);
	}
	struct timespec until = espl__mono_after_ms(KEEPALIVE_S * 1000);
	while (!w->stopping && !s->len && !s->resync)
		if (pthread_cond_timedwait(&s->wake, &w->lock, &until) == ETIMEDOUT)
			break;
	if (w->stopping && (!s->len || s->resync)) {  /* the last events go out first */
		pthread_mutex_unlock(&w->lock);
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	if (s->resync)
		stream_snapshot(w, s);
	size_t n;
	if (!s->len) {  /* nothing for a while: a comment keeps the connection */
		static const char ping[] = ": keepalive\n\n";
		n = sizeof ping - 1 < max ? sizeof ping - 1 : max;
		memcpy(buf, ping, n);
	} else {
		n = s->len < max ? s->len : max;
		memcpy(buf, s->buf, n);
		memmove(s->buf, s->buf + n, s->len - n);
		s->len -= n;
	}
	s->last_send_ms = espl__now_ms();
	pthread_mutex_unlock(&w->lock);
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	stream *s = cls;
	espl_web *w = s->web;
	pthread_mutex_lock(&w->lock);
	for (stream **p = &w->streams; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			w->n_streams--;
			break;
		}
	pthread_mutex_unlock(&w->lock);
	pthread_cond_destroy(&s->wake);
	free(s->buf);
	free(s);
}

enum MHD_Result espl__web_serve_events(espl_web *w, struct MHD_Connection *c)
{
	stream *s = calloc(1, sizeof *s);
	if (!s || !(s->buf = malloc(s->cap = w->o.stream_buffer))) {
		free(s);
		return espl__web_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	}
	s->web = w;
	pthread_cond_init(&s->wake, &w->mono);
	pthread_mutex_lock(&w->lock);
	if (w->n_streams >= w->o.max_streams) {
		pthread_mutex_unlock(&w->lock);
		pthread_cond_destroy(&s->wake);
		free(s->buf);
		free(s);
		return espl__web_reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "too many event streams");
	}
	stream_snapshot(w, s);
	s->next = w->streams;
	w->streams = s;
	w->n_streams++;
	w->streams_served++;
	pthread_mutex_unlock(&w->lock);
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
	if (!r) {
		stream_free(s);
		return MHD_NO;
	}
	return espl__web_send_response(c, MHD_HTTP_OK, r, "text/event-stream; charset=utf-8", "no-store");
}
