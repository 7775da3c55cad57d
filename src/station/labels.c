/* labels.c - labels printed on PASS, and their queue; see src/station/labels.h. */
#include "station/labels.h"
#include "util/clock.h"
#include "util/file.h"
#include "util/spawn.h"
#include "util/str.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LABEL_MAX (4 * ESPL_LABEL_TEMPLATE_MAX) /* a rendered label */
#define IDLE_WAIT_MS 1000
#define LINGER_MS 500   /* after sending: wait this long at most for the printer to close */

struct espl__labels {
	const espl_station_file *sf;
	char dir[4096];
	espl__labels_fn on_change;
	espl__labels_unit_fn on_unit;
	void *ctx;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	atomic_int queued;
	atomic_int stopping;
	int64_t flush_until_ms;       /* guarded by lock */
	char last_problem[ESPL_ERROR_MAX]; /* printer thread only: said once */
	/* printer thread only: the label the printer failed to take, since
	 * when, how many times (its unit's "label-failed" is said once) */
	char failing[512];
	int64_t failing_since_ms;
	unsigned failed_tries;
};

static void tell(espl__labels *l, const char *level, const char *message)
{
	if (l->on_change)
		l->on_change(l->ctx, atomic_load(&l->queued), level, message);
}

/* The printer's name, as the hand-off messages give it. */
static const char *printer_name(const espl__labels *l, char *buf, size_t cap)
{
	if (l->sf->label_printer)
		snprintf(buf, cap, "printer %s", l->sf->label_printer);
	else if (l->sf->label_file)
		snprintf(buf, cap, "label file %s", l->sf->label_file);
	else
		snprintf(buf, cap, "label command %s", l->sf->label_command.argv ? l->sf->label_command.argv[0] : "?");
	return buf;
}

/* The unit of a queued label's file, NNNNNNNNNNNNN-UUID.zpl. */
static const char *unit_of(const char *name, char *uuid, size_t cap)
{
	const char *dash = strchr(name, '-');
	size_t n = strlen(name);
	if (!dash || n < 4 || (size_t)(dash - name) + 1 > n - 4)
		snprintf(uuid, cap, "%s", "");
	else
		snprintf(uuid, cap, "%.*s", (int)(n - 4 - (size_t)(dash - name) - 1), dash + 1);
	return uuid;
}

static void tell_unit(espl__labels *l, const char *file_name, const char *kind, const char *level,
                      const char *message)
{
	char uuid[128];
	if (l->on_unit && *unit_of(file_name, uuid, sizeof uuid))
		l->on_unit(l->ctx, uuid, kind, level, message);
}

/* ---- the queue folder --------------------------------------------------- */

static bool is_label_file(const char *name)
{
	size_t n = strlen(name);
	return name[0] != '.' && n > 4 && strcmp(name + n - 4, ".zpl") == 0;
}

/* The oldest queued label's file name into first (if any); the count. */
static int scan_queue(espl__labels *l, char *first, size_t cap)
{
	DIR *d = opendir(l->dir);
	char *best = NULL;
	int n = 0;
	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (!is_label_file(e->d_name))
			continue;
		n++;
		if (!best || strcmp(e->d_name, best) < 0) {
			free(best);
			best = strdup(e->d_name);
		}
	}
	closedir(d);
	if (first && cap)
		snprintf(first, cap, "%s", best ? best : "");
	free(best);
	atomic_store(&l->queued, n);
	return n;
}

int espl__labels_enqueue(espl__labels *l, const char *unit_uuid, const char *text, espl_error *err)
{
	char tmp[4352], path[4352];
	snprintf(path, sizeof path, "%s/%013lld-%s.zpl", l->dir, (long long)espl__wall_ms(), unit_uuid);
	snprintf(tmp, sizeof tmp, "%s/.%s.tmp", l->dir, unit_uuid);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	size_t len = strlen(text), done = 0;
	while (fd >= 0 && done < len) {
		ssize_t n = write(fd, text + done, len - done);
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	int ok = fd >= 0 && done == len && fsync(fd) == 0;
	int e = errno;
	if (fd >= 0)
		close(fd);
	if (!ok || rename(tmp, path) < 0) {
		e = ok ? errno : e;
		unlink(tmp);
		return espl_fail(err, ESPL_ESYS, "cannot queue the label in %s: %s", l->dir, strerror(e));
	}
	int ahead = atomic_fetch_add(&l->queued, 1);
	char msg[4600], who[4200];
	snprintf(msg, sizeof msg, "queued for the %s, %d label%s ahead of it", printer_name(l, who, sizeof who), ahead,
	         ahead == 1 ? "" : "s");
	tell_unit(l, strrchr(path, '/') + 1, "label-queued", "info", msg);
	pthread_mutex_lock(&l->lock);
	pthread_cond_signal(&l->wake);
	pthread_mutex_unlock(&l->lock);
	return ESPL_OK;
}

int espl__labels_queued(espl__labels *l)
{
	return l ? atomic_load(&l->queued) : 0;
}

const char *espl__labels_dir(const espl__labels *l)
{
	return l->dir;
}

/* ---- sending ------------------------------------------------------------- */

static int wait_fd(int fd, short events, int64_t deadline_ms)
{
	for (;;) {
		int64_t left = deadline_ms - espl__now_ms();
		if (left <= 0)
			return ESPL_ETIMEOUT;
		struct pollfd p = { fd, events, 0 };
		int r = poll(&p, 1, (int)left);
		if (r > 0)
			return ESPL_OK;
		if (r < 0 && errno != EINTR)
			return ESPL_ESYS;
	}
}

static int tcp_connect(const char *hostport, int64_t deadline_ms, int *out, espl_error *err)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	snprintf(host, sizeof host, "%.*s", (int)(colon - hostport), hostport);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	int rc = getaddrinfo(host, colon + 1, &hints, &ai);
	if (rc != 0)
		return espl_fail(err, ESPL_ENOTFOUND, "printer %s: %s", hostport, gai_strerror(rc));
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	rc = fd < 0 ? -1 : connect(fd, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (rc < 0 && fd >= 0 && errno == EINPROGRESS) {
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		rc = wait_fd(fd, POLLOUT, deadline_ms);
		if (rc == ESPL_ETIMEOUT) {
			close(fd);
			return espl_fail(err, ESPL_ETIMEOUT, "printer %s: no connection within the timeout", hostport);
		}
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		errno = soerr;
		rc = soerr ? -1 : 0;
	}
	if (rc < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return espl_fail(err, ESPL_ENOTFOUND, "printer %s: %s", hostport, strerror(e));
	}
	*out = fd;
	return ESPL_OK;
}

static int send_tcp(espl__labels *l, const char *text, size_t len, espl_error *err)
{
	int64_t deadline = espl__now_ms() + l->sf->label_timeout_ms;
	int fd = -1;
	ESPL_TRY(tcp_connect(l->sf->label_printer, deadline, &fd, err));
	size_t done = 0;
	while (done < len) {
		ssize_t n = send(fd, text + done, len - done, MSG_NOSIGNAL);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR) && wait_fd(fd, POLLOUT, deadline) == ESPL_OK)
			continue;
		int e = errno;
		close(fd);
		return espl_fail(err, ESPL_ESYS, "printer %s: sending: %s", l->sf->label_printer, strerror(e));
	}
	/* A printer that closes its side has taken the whole label; one that
	 * keeps the connection open is given a moment, not the timeout. */
	shutdown(fd, SHUT_WR);
	int64_t linger = espl__now_ms() + LINGER_MS < deadline ? espl__now_ms() + LINGER_MS : deadline;
	char sink[256];
	while (wait_fd(fd, POLLIN, linger) == ESPL_OK && recv(fd, sink, sizeof sink, 0) > 0)
		;
	close(fd);
	return ESPL_OK;
}

static int send_file(espl__labels *l, const char *text, size_t len, espl_error *err)
{
	int fd = open(l->sf->label_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	ssize_t n = fd < 0 ? -1 : write(fd, text, len);
	int e = errno;
	if (fd >= 0 && close(fd) < 0 && n >= 0) {
		e = errno;
		n = -1;
	}
	if (n == (ssize_t)len)
		return ESPL_OK;
	return espl_fail(err, ESPL_ESYS, "label file %s: %s", l->sf->label_file, n < 0 ? strerror(e) : "short write");
}

static int send_command(espl__labels *l, const char *text, size_t len, espl_error *err)
{
	espl__spawn_result res;
	char how[96], shown[128];
	const espl_station_command *c = &l->sf->label_command;
	int rc = espl__spawn_run(c->argv, text, len, c->timeout_ms, &res, err);
	if (rc == ESPL_OK && !(res.exited && res.status == 0))
		rc = espl_fail(err, ESPL_ESYS, "%s", espl__spawn_outcome(&res, c->timeout_ms, how, sizeof how));
	if (rc < 0)
		espl_error_prefix(err, "label command %s", espl__str_escape(c->argv[0], shown, sizeof shown));
	return rc;
}

static int send_label(espl__labels *l, const char *text, size_t len, espl_error *err)
{
	if (l->sf->label_printer)
		return send_tcp(l, text, len, err);
	if (l->sf->label_file)
		return send_file(l, text, len, err);
	return send_command(l, text, len, err);
}

/* ---- the printer thread ------------------------------------------------- */

/* Send the oldest label (its file name in name): 1 sent, 0 none queued,
 * < 0 failed (err). */
static int print_oldest(espl__labels *l, char *name, size_t cap, size_t *len, espl_error *err)
{
	char path[4700];
	char *text = NULL;
	if (scan_queue(l, name, cap) == 0)
		return 0;
	snprintf(path, sizeof path, "%s/%s", l->dir, name);
	int rc = espl__file_read(path, LABEL_MAX, "queued label", &text, len, err);
	if (rc == ESPL_OK)
		rc = send_label(l, text, *len, err);
	free(text);
	if (rc < 0)
		return rc;
	unlink(path);
	atomic_fetch_sub(&l->queued, 1);
	return 1;
}

/* Sleep ms unless woken (a new label, stop). */
static void pause_ms(espl__labels *l, unsigned ms)
{
	struct timespec ts = espl__mono_after_ms((int)ms);
	pthread_mutex_lock(&l->lock);
	if (!atomic_load(&l->stopping))
		pthread_cond_timedwait(&l->wake, &l->lock, &ts);
	pthread_mutex_unlock(&l->lock);
}

/* The unit's record: its label went to the printer (after how long, if
 * the printer failed first). */
static void sent(espl__labels *l, const char *name, size_t len)
{
	char msg[4600], who[4200];
	int n = snprintf(msg, sizeof msg, "sent to the %s (%zu bytes)", printer_name(l, who, sizeof who), len);
	if (strcmp(name, l->failing) == 0 && n > 0 && (size_t)n < sizeof msg)
		snprintf(msg + n, sizeof msg - (size_t)n, " after %u failed tr%s over %.1f s", l->failed_tries,
		         l->failed_tries == 1 ? "y" : "ies", (espl__now_ms() - l->failing_since_ms) / 1000.0);
	l->failing[0] = '\0';
	tell_unit(l, name, "label-sent", "info", msg);
}

/* The unit's record: the printer did not take its label, said once per
 * label (it stays queued and is tried again). */
static void unit_failed(espl__labels *l, const char *name, const espl_error *err)
{
	char msg[ESPL_ERROR_MAX + 128];
	if (strcmp(name, l->failing) == 0) {
		l->failed_tries++;
		return;
	}
	snprintf(l->failing, sizeof l->failing, "%s", name);
	l->failing_since_ms = espl__now_ms();
	l->failed_tries = 1;
	snprintf(msg, sizeof msg, "not printed: %s; kept in the queue, tried again every %.1f s", err->msg,
	         l->sf->label_retry_ms / 1000.0);
	tell_unit(l, name, "label-failed", "warn", msg);
}

static void failed(espl__labels *l, const espl_error *err)
{
	char msg[ESPL_ERROR_MAX + 4300];
	if (strcmp(l->last_problem, err->msg) == 0)
		return;  /* said once per cause; the count still shows on the dashboard */
	snprintf(l->last_problem, sizeof l->last_problem, "%s", err->msg);
	snprintf(msg, sizeof msg, "label not printed: %s; %d label%s queued in %s, tried again every %.1f s",
	         err->msg, atomic_load(&l->queued), atomic_load(&l->queued) == 1 ? "" : "s", l->dir,
	         l->sf->label_retry_ms / 1000.0);
	tell(l, "warn", msg);
}

static int flushing(espl__labels *l)
{
	pthread_mutex_lock(&l->lock);
	int64_t until = l->flush_until_ms;
	pthread_mutex_unlock(&l->lock);
	return espl__now_ms() < until;
}

static void *printer_main(void *arg)
{
	espl__labels *l = arg;
	for (;;) {
		espl_error err = { 0, "" };
		char name[512];
		size_t len = 0;
		int stopping = atomic_load(&l->stopping);
		if (stopping && !flushing(l))
			break;
		int rc = print_oldest(l, name, sizeof name, &len, &err);
		if (rc > 0) {
			l->last_problem[0] = '\0';
			sent(l, name, len);
			tell(l, "info", NULL);
			continue;
		}
		if (rc < 0) {
			unit_failed(l, name, &err);
			failed(l, &err);
		}
		if (stopping)
			break;  /* nothing left, or the printer fails: leave it queued */
		pause_ms(l, rc < 0 ? l->sf->label_retry_ms : IDLE_WAIT_MS);
	}
	return NULL;
}

/* ---- life cycle ----------------------------------------------------------- */

/* The units whose label is still queued as the queue stops. */
static void tell_left(espl__labels *l)
{
	char msg[4300];
	DIR *d = opendir(l->dir);
	if (!d)
		return;
	snprintf(msg, sizeof msg, "still queued when the station stopped, in %s: sent first at the next start", l->dir);
	for (struct dirent *e; (e = readdir(d));)
		if (is_label_file(e->d_name))
			tell_unit(l, e->d_name, "label-queued", "warn", msg);
	closedir(d);
}

int espl__labels_render(const espl__labels *l, const espl_unit_values *v, char **text, espl_error *err)
{
	const char *t = l->sf->label_template;
	size_t cap = LABEL_MAX, len = 0;
	uint8_t *out = malloc(cap + 1);
	*text = NULL;
	if (!out)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	int rc = espl_template_render(t, strlen(t), ESPL_TEMPLATE_LABEL, v, out, cap, &len, err);
	if (rc < 0) {
		free(out);
		return rc;
	}
	out[len] = '\0';
	*text = (char *)out;
	return ESPL_OK;
}

int espl__labels_start(const espl_station_file *sf, const char *db_path, espl__labels_fn on_change,
                       espl__labels_unit_fn on_unit, void *ctx, espl__labels **out, espl_error *err)
{
	espl__labels *l = calloc(1, sizeof *l);
	*out = NULL;
	if (!l)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	l->sf = sf;
	l->on_change = on_change;
	l->on_unit = on_unit;
	l->ctx = ctx;
	if (sf->label_queue)
		snprintf(l->dir, sizeof l->dir, "%s", sf->label_queue);
	else
		snprintf(l->dir, sizeof l->dir, "%s.labels", db_path);
	if (mkdir(l->dir, 0750) < 0 && errno != EEXIST) {
		espl_fail(err, ESPL_ESYS, "label queue %s: %s", l->dir, strerror(errno));
		free(l);
		return ESPL_ESYS;
	}
	atomic_init(&l->queued, 0);
	atomic_init(&l->stopping, 0);
	scan_queue(l, NULL, 0);
	pthread_mutex_init(&l->lock, NULL);
	/* util/clock's deadlines are on the monotonic clock: a clock step
	 * never stretches or cuts a retry wait. */
	pthread_condattr_t mono;
	pthread_condattr_init(&mono);
	pthread_condattr_setclock(&mono, CLOCK_MONOTONIC);
	pthread_cond_init(&l->wake, &mono);
	pthread_condattr_destroy(&mono);
	if (pthread_create(&l->thread, NULL, printer_main, l) != 0) {
		free(l);
		return espl_fail(err, ESPL_ESYS, "cannot start the label printer's thread");
	}
	*out = l;
	return ESPL_OK;
}

int espl__labels_stop(espl__labels *l, unsigned flush_ms)
{
	if (!l)
		return 0;
	pthread_mutex_lock(&l->lock);
	l->flush_until_ms = espl__now_ms() + flush_ms;
	atomic_store(&l->stopping, 1);
	pthread_cond_broadcast(&l->wake);
	pthread_mutex_unlock(&l->lock);
	pthread_join(l->thread, NULL);
	int left = scan_queue(l, NULL, 0);
	if (left)
		tell_left(l);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->wake);
	free(l);
	return left;
}
