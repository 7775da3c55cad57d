/* scanner.c - the operator's barcode scanner; see src/station/scanner.h. */
#include "station/scanner.h"
#include "util/str.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "espline/port.h"

#define PENDING_MAX 16
#define READ_POLL_MS 100
#define SCANNER_BAUD 9600

/* A worker waiting under NEXT_WAITING, in the order they began to wait. */
typedef struct waiter {
	struct waiter *next;
	bool served;
	char code[ESPL_SCAN_CODE_MAX];
} waiter;

struct espl__scanner {
	int fd;                       /* the terminal, or -1 */
	espl_port *port;              /* the serial scanner, or NULL */
	enum espl_scan_map map;
	const espl_station_slot *slots;
	size_t n_slots;
	espl__scanner_log_fn log;
	void *log_ctx;
	pthread_t thread;
	atomic_int stop;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	/* guarded by lock */
	int selected;                 /* SLOT_LABEL: the slot whose label was scanned, -1 */
	char (*mailbox)[ESPL_SCAN_CODE_MAX]; /* SLOT_LABEL: a code per slot ("" none) */
	waiter *waiters;              /* NEXT_WAITING: oldest first */
	char pending[PENDING_MAX][ESPL_SCAN_CODE_MAX];
	size_t n_pending;
	bool gone;                    /* the source ended: no more codes */
};

/* "scanner: " before VALUE after, the value escaped (it is what was typed). */
static void say(espl__scanner *sc, const char *level, const char *before, const char *value, const char *after)
{
	char msg[512], shown[300];
	snprintf(msg, sizeof msg, "scanner: %s%s%s", before, espl__str_escape(value, shown, sizeof shown), after);
	if (sc->log)
		sc->log(sc->log_ctx, level, msg);
}

static int slot_index(const espl__scanner *sc, const char *name)
{
	for (size_t i = 0; name && i < sc->n_slots; i++)
		if (strcmp(sc->slots[i].slot, name) == 0)
			return (int)i;
	return -1;
}

/* ---- the reader thread: one line, one code ---------------------------- */

static void hand_out_by_label(espl__scanner *sc, const char *line)
{
	int slot = slot_index(sc, line);
	if (slot >= 0) {
		sc->selected = slot;
		say(sc, "info", "slot ", line, " selected: scan its unit's code now");
		return;
	}
	if (sc->selected < 0) {
		say(sc, "warn", "code '", line, "' dropped: scan the slot's label first, then the unit");
		return;
	}
	char after[96];  /* slot names are [A-Za-z0-9_.-] (station file) */
	int replaces = sc->mailbox[sc->selected][0] != '\0';
	snprintf(after, sizeof after, "' %s slot %s", replaces ? "replaces the code scanned before for" : "is for",
	         sc->slots[sc->selected].slot);
	say(sc, replaces ? "warn" : "info", "code '", line, after);
	snprintf(sc->mailbox[sc->selected], ESPL_SCAN_CODE_MAX, "%s", line);
	sc->selected = -1;
}

static void hand_out_to_next(espl__scanner *sc, const char *line)
{
	waiter *w = sc->waiters;
	if (w) {
		sc->waiters = w->next;
		snprintf(w->code, sizeof w->code, "%s", line);
		w->served = true;
		return;
	}
	if (sc->n_pending == PENDING_MAX) {
		say(sc, "warn", "code '", line, "' dropped: 16 codes are already waiting for a unit");
		return;
	}
	snprintf(sc->pending[sc->n_pending++], ESPL_SCAN_CODE_MAX, "%s", line);
	say(sc, "info", "code '", line, "' kept for the next slot that waits for one");
}

static void hand_out(espl__scanner *sc, const char *line)
{
	pthread_mutex_lock(&sc->lock);
	if (sc->map == ESPL_SCAN_SLOT_LABEL)
		hand_out_by_label(sc, line);
	else
		hand_out_to_next(sc, line);
	pthread_cond_broadcast(&sc->changed);
	pthread_mutex_unlock(&sc->lock);
}

/* Up to len bytes, waiting at most READ_POLL_MS: > 0 bytes, 0 nothing yet,
 * < 0 the source is gone. */
static int read_some(espl__scanner *sc, char *buf, size_t len)
{
	if (sc->port) {
		espl_error err;
		int n = espl_port_read(sc->port, (uint8_t *)buf, len, READ_POLL_MS, &err);
		return n == ESPL_ETIMEOUT ? 0 : n;
	}
	struct pollfd p = { sc->fd, POLLIN, 0 };
	int r = poll(&p, 1, READ_POLL_MS);
	if (r <= 0)
		return r < 0 && errno != EINTR ? -1 : 0;
	ssize_t n = read(sc->fd, buf, len);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -1;
	return n == 0 ? -1 : (int)n;
}

static void *reader_main(void *arg)
{
	espl__scanner *sc = arg;
	char line[ESPL_SCAN_CODE_MAX], buf[256];
	size_t len = 0;
	bool too_long = false;
	while (!atomic_load(&sc->stop)) {
		int n = read_some(sc, buf, sizeof buf);
		if (n < 0) {
			say(sc, "error", "", sc->port ? sc->port->name : "terminal", ": the scanner is gone; no more codes can be read");
			pthread_mutex_lock(&sc->lock);
			sc->gone = true;  /* units waiting for a code fail instead of waiting forever */
			pthread_cond_broadcast(&sc->changed);
			pthread_mutex_unlock(&sc->lock);
			break;
		}
		for (int i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)buf[i];
			if (ch == '\n' || ch == '\r') {
				line[len] = '\0';
				if (too_long)
					say(sc, "warn", "a code longer than 127 bytes was dropped", "", "");
				else if (len)
					hand_out(sc, line);
				len = 0;
				too_long = false;
			} else if (ch < 0x20 || ch == 0x7F) {
				continue;
			} else if (len + 1 < sizeof line) {
				line[len++] = (char)ch;
			} else {
				too_long = true;
			}
		}
	}
	return NULL;
}

/* ---- workers ------------------------------------------------------------ */

static void deadline_in(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Take what is there for this worker: 1 taken, 0 nothing yet. */
static int take(espl__scanner *sc, int slot, waiter *w, char code[ESPL_SCAN_CODE_MAX])
{
	if (sc->map == ESPL_SCAN_SLOT_LABEL) {
		if (!sc->mailbox[slot][0])
			return 0;
		snprintf(code, ESPL_SCAN_CODE_MAX, "%s", sc->mailbox[slot]);
		sc->mailbox[slot][0] = '\0';
		return 1;
	}
	if (!w->served)
		return 0;
	snprintf(code, ESPL_SCAN_CODE_MAX, "%s", w->code);
	return 1;
}

static void unlink_waiter(espl__scanner *sc, waiter *w)
{
	for (waiter **pp = &sc->waiters; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			return;
		}
}

/* NEXT_WAITING: a code kept from before, or a place at the end of the line. */
static void queue_up(espl__scanner *sc, waiter *w)
{
	if (sc->n_pending) {
		snprintf(w->code, sizeof w->code, "%s", sc->pending[0]);
		memmove(sc->pending[0], sc->pending[1], (sc->n_pending - 1) * sizeof sc->pending[0]);
		sc->n_pending--;
		w->served = true;
		return;
	}
	waiter **pp = &sc->waiters;
	while (*pp)
		pp = &(*pp)->next;
	*pp = w;
}

int espl__scanner_wait(espl__scanner *sc, const char *slot, unsigned timeout_ms,
                       int (*leave)(void *ctx), void *leave_ctx, char code[ESPL_SCAN_CODE_MAX],
                       espl_error *err)
{
	int index = slot_index(sc, slot);
	waiter w = { NULL, false, "" };
	unsigned waited = 0;
	int rc = ESPL_OK;

	if (sc->map == ESPL_SCAN_SLOT_LABEL && index < 0)
		return espl_fail(err, ESPL_EARG, "this port has no slot name in the station file, and scan.map: "
		                 "slot_label finds a unit's code by its slot");
	pthread_mutex_lock(&sc->lock);
	if (sc->map == ESPL_SCAN_NEXT_WAITING)
		queue_up(sc, &w);
	while (!take(sc, index, &w, code)) {
		if (sc->gone) {
			rc = espl_fail(err, ESPL_EDISCONNECTED, "the scanner (%s) is gone: no code can be scanned",
			               sc->port ? "serial port" : "terminal");
			break;
		}
		if (leave && leave(leave_ctx)) {
			rc = espl_fail(err, ESPL_EINTERRUPTED, "the station is stopping: no code was scanned");
			break;
		}
		if (timeout_ms && waited >= timeout_ms) {
			rc = espl_fail(err, ESPL_ETIMEOUT, "no code was scanned within %u s", timeout_ms / 1000);
			break;
		}
		struct timespec ts;
		deadline_in(&ts, 50);
		pthread_cond_timedwait(&sc->changed, &sc->lock, &ts);
		waited += 50;
	}
	if (rc < 0 && sc->map == ESPL_SCAN_NEXT_WAITING && !w.served)
		unlink_waiter(sc, &w);
	pthread_mutex_unlock(&sc->lock);
	return rc;
}

/* ---- life cycle --------------------------------------------------------- */

int espl__scanner_start(int fd, const char *port_spec, enum espl_scan_map map,
                        const espl_station_slot *slots, size_t n_slots, espl__scanner_log_fn log,
                        void *log_ctx, espl__scanner **out, espl_error *err)
{
	espl__scanner *sc = calloc(1, sizeof *sc);
	*out = NULL;
	if (!sc || !(sc->mailbox = calloc(n_slots ? n_slots : 1, sizeof *sc->mailbox))) {
		free(sc);
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	}
	sc->fd = fd;
	sc->map = map;
	sc->slots = slots;
	sc->n_slots = n_slots;
	sc->log = log;
	sc->log_ctx = log_ctx;
	sc->selected = -1;
	atomic_init(&sc->stop, 0);
	if (fd < 0 && espl_port_open(port_spec, SCANNER_BAUD, &sc->port, err) < 0) {
		espl_error_prefix(err, "scan.from");
		free(sc->mailbox);
		free(sc);
		return err->code;
	}
	pthread_mutex_init(&sc->lock, NULL);
	pthread_cond_init(&sc->changed, NULL);
	if (pthread_create(&sc->thread, NULL, reader_main, sc) != 0) {
		espl_port_close(sc->port);
		free(sc->mailbox);
		free(sc);
		return espl_fail(err, ESPL_ESYS, "cannot start the scanner's thread");
	}
	*out = sc;
	return ESPL_OK;
}

void espl__scanner_stop(espl__scanner *sc)
{
	if (!sc)
		return;
	atomic_store(&sc->stop, 1);
	pthread_join(sc->thread, NULL);
	espl_port_close(sc->port);
	pthread_mutex_destroy(&sc->lock);
	pthread_cond_destroy(&sc->changed);
	free(sc->mailbox);
	free(sc);
}
