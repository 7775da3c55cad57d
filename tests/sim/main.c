/*
 * main.c - espline-sim: serve N simulated ESP8266 modules until SIGINT or
 * SIGTERM (or --exit-after-idle).  See `espline-sim --help`.
 *
 * The main thread parses options, opens every device, prints one line per
 * device on stdout, writes --ready-file, then waits for a signal; one thread
 * per device does the work (sim_server.c).  Exit status: 0 after a signal or
 * idle timeout, 1 if a device could not be set up, 2 for a bad command line.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sim_config.h"
#include "sim_server.h"

typedef struct app {
	pthread_mutex_t lock;
	const char *ready_file;
	unsigned n;
	char (*lines)[512];
	int ready;               /* every device listening: the ready file exists */
} app;

static void log_line(void *ctx, const char *line)
{
	app *a = ctx;
	pthread_mutex_lock(&a->lock);
	fprintf(stderr, "espline-sim: %s\n", line);
	pthread_mutex_unlock(&a->lock);
}

/* Caller holds the lock. */
static void write_ready_file(app *a)
{
	if (!a->ready_file || !a->ready)
		return;
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", a->ready_file);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		fprintf(stderr, "espline-sim: cannot write %s: %s\n", tmp, strerror(errno));
		return;
	}
	for (unsigned i = 0; i < a->n; i++)
		fprintf(f, "%s\n", a->lines[i]);
	if (fclose(f) != 0 || rename(tmp, a->ready_file) != 0)
		fprintf(stderr, "espline-sim: cannot write %s: %s\n", a->ready_file, strerror(errno));
}

static void announce(void *ctx, unsigned index, const char *line)
{
	app *a = ctx;
	pthread_mutex_lock(&a->lock);
	snprintf(a->lines[index], sizeof a->lines[index], "%s", line);
	printf("%s\n", line);
	fflush(stdout);
	write_ready_file(a);
	pthread_mutex_unlock(&a->lock);
}

static void make_dir(const char *dir)
{
	if (dir && mkdir(dir, 0777) < 0 && errno != EEXIST)
		fprintf(stderr, "espline-sim: cannot create %s: %s\n", dir, strerror(errno));
}

/* Wait for SIGINT/SIGTERM, or for every device to be idle long enough. */
static void wait_for_end(const sim_options *o, sim_device **devs, const sigset_t *sigs)
{
	for (;;) {
		struct timespec tick = { 0, 100 * 1000 * 1000 };
		int sig = sigtimedwait(sigs, NULL, &tick);
		if (sig == SIGINT || sig == SIGTERM)
			return;
		if (o->exit_after_idle > 0) {
			uint64_t last = 0;
			for (unsigned i = 0; i < o->ndevices; i++) {
				uint64_t t = sim_device_last_activity(devs[i]);
				if (t > last)
					last = t;
			}
			if (sim_mono_us() - last >= (uint64_t)(o->exit_after_idle * 1e6)) {
				fprintf(stderr, "espline-sim: idle for %g s, exiting\n", o->exit_after_idle);
				return;
			}
		}
	}
}

int main(int argc, char **argv)
{
	sim_options o;
	char err[512];
	if (sim_options_parse(argc, argv, &o, err, sizeof err) < 0) {
		fprintf(stderr, "espline-sim: %s\n", err);
		return 2;
	}
	if (o.help) {
		fputs(sim_options_usage(), stdout);
		sim_options_free(&o);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* threads inherit it; main waits */

	int stop[2];
	if (pipe(stop) < 0) {
		perror("espline-sim: pipe");
		return 1;
	}
	make_dir(o.link_dir);
	make_dir(o.flash_dir);

	app a = { .lock = PTHREAD_MUTEX_INITIALIZER, .ready_file = o.ready_file, .n = o.ndevices };
	a.lines = calloc(o.ndevices, sizeof *a.lines);
	sim_device **devs = calloc(o.ndevices, sizeof *devs);
	if (!a.lines || !devs) {
		fprintf(stderr, "espline-sim: out of memory\n");
		return 1;
	}
	sim_server_options so = {
		.time_scale = o.time_scale, .link_dir = o.link_dir, .flash_dir = o.flash_dir,
		.en_delay_ms = o.en_delay_ms,
		.line_latency_ms = o.line_latency_ms, .line_jitter_ms = o.line_jitter_ms, .seed = o.seed, .verbose = o.verbose,
		.stop_fd = stop[0], .ctx = &a, .log = log_line, .announce = announce,
	};
	int status = 0;
	unsigned opened = 0;
	for (; opened < o.ndevices; opened++) {
		if (sim_device_open(&o.devices[opened], &so, &devs[opened], err, sizeof err) < 0) {
			fprintf(stderr, "espline-sim: %s\n", err);
			status = 1;
			break;
		}
		sim_device_describe(devs[opened], a.lines[opened], sizeof a.lines[opened]);
	}
	unsigned started = 0;
	for (; status == 0 && started < opened; started++)
		if (sim_device_start(devs[started]) < 0) {
			fprintf(stderr, "espline-sim: cannot start device %u's thread\n", started);
			status = 1;
		}
	if (status == 0) {
		pthread_mutex_lock(&a.lock);
		for (unsigned i = 0; i < o.ndevices; i++)
			printf("%s\n", a.lines[i]);
		fflush(stdout);
		a.ready = 1;
		write_ready_file(&a);
		pthread_mutex_unlock(&a.lock);
		wait_for_end(&o, devs, &sigs);
	}
	if (write(stop[1], "x", 1) < 0)
		perror("espline-sim: stop");
	for (unsigned i = 0; i < opened; i++)
		sim_device_close(devs[i]); /* joins, saves flash, logs the fault summary */
	if (o.ready_file)
		unlink(o.ready_file);
	free(devs);
	free(a.lines);
	sim_options_free(&o);
	return status;
}
