/*
 * sim_saver.c - the flash file written by a thread of its own; see
 * sim_saver.h.
 *
 * Two buffers, both paged in before they are needed.  `latest` holds the
 * newest snapshot; the saver writes one buffer at a time.  A post that
 * finds `latest` still queued overwrites it (newest wins); otherwise it
 * fills the other buffer, which the saver is then not writing.
 */
#include "sim_saver.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sim_flash.h"

struct sim_saver {
	char *path;
	sim_saver_done_fn on_saved;
	void *ctx;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	uint8_t *buf[2];
	size_t n;
	int latest;              /* the buffer with the newest snapshot */
	int queued;              /* the buffer waiting to be written, or -1 */
	int closing;
};

static void *saver_main(void *arg)
{
	sim_saver *s = arg;
	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (s->queued < 0 && !s->closing)
			pthread_cond_wait(&s->wake, &s->lock);
		if (s->queued < 0)
			break; /* closing, nothing left */
		int b = s->queued;
		s->queued = -1;
		pthread_mutex_unlock(&s->lock);
		/* the device thread never writes a buffer that is not queued */
		sim_flash image = { .data = s->buf[b], .size = s->n, .stuck_sector = -1 };
		int rc = sim_flash_save(&image, s->path);
		if (s->on_saved)
			s->on_saved(s->ctx, s->path, rc < 0 ? -rc : 0);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void saver_free(sim_saver *s)
{
	free(s->buf[0]);
	free(s->buf[1]);
	free(s->path);
	free(s);
}

int sim_saver_new(const char *path, const uint8_t *data, size_t n, sim_saver_done_fn on_saved,
                  void *ctx, sim_saver **out)
{
	sim_saver *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->path = strdup(path);
	s->buf[0] = malloc(n ? n : 1);
	s->buf[1] = malloc(n ? n : 1);
	if (!s->path || !s->buf[0] || !s->buf[1]) {
		saver_free(s);
		return -ENOMEM;
	}
	/* touch every page now, not in the middle of a reset */
	memcpy(s->buf[0], data, n);
	memcpy(s->buf[1], data, n);
	s->n = n;
	s->queued = 0;
	s->on_saved = on_saved;
	s->ctx = ctx;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	int rc = pthread_create(&s->thread, NULL, saver_main, s);
	if (rc != 0) {
		pthread_cond_destroy(&s->wake);
		pthread_mutex_destroy(&s->lock);
		saver_free(s);
		return -rc;
	}
	*out = s;
	return 0;
}

void sim_saver_post(sim_saver *s, const uint8_t *data)
{
	/* latest is only written by this thread, and only while it is queued:
	 * reading it here without the lock races with nothing */
	if (memcmp(s->buf[s->latest], data, s->n) == 0)
		return;
	pthread_mutex_lock(&s->lock);
	int b = s->queued == s->latest ? s->latest : 1 - s->latest;
	memcpy(s->buf[b], data, s->n);
	s->latest = b;
	s->queued = b;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

void sim_saver_close(sim_saver *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->closing = 1;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	saver_free(s);
}
