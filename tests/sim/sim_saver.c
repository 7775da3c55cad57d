/*
 * sim_saver.c - the flash file written by a thread of its own; see
 * sim_saver.h.
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
	uint8_t *queued;         /* the newest snapshot not yet taken, or NULL */
	size_t queued_len;
	int closing;
};

static void write_snapshot(sim_saver *s, uint8_t *data, size_t n)
{
	sim_flash image = { .data = data, .size = n, .stuck_sector = -1 };
	int rc = sim_flash_save(&image, s->path);
	free(data);
	if (s->on_saved)
		s->on_saved(s->ctx, s->path, rc < 0 ? -rc : 0);
}

static void *saver_main(void *arg)
{
	sim_saver *s = arg;
	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->queued && !s->closing)
			pthread_cond_wait(&s->wake, &s->lock);
		if (!s->queued)
			break; /* closing, nothing left */
		uint8_t *data = s->queued;
		size_t n = s->queued_len;
		s->queued = NULL;
		pthread_mutex_unlock(&s->lock);
		write_snapshot(s, data, n);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int sim_saver_new(const char *path, sim_saver_done_fn on_saved, void *ctx, sim_saver **out)
{
	sim_saver *s = calloc(1, sizeof *s);
	if (!s || !(s->path = strdup(path))) {
		free(s);
		return -ENOMEM;
	}
	s->on_saved = on_saved;
	s->ctx = ctx;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	int rc = pthread_create(&s->thread, NULL, saver_main, s);
	if (rc != 0) {
		pthread_cond_destroy(&s->wake);
		pthread_mutex_destroy(&s->lock);
		free(s->path);
		free(s);
		return -rc;
	}
	*out = s;
	return 0;
}

int sim_saver_post(sim_saver *s, const uint8_t *data, size_t n)
{
	uint8_t *copy = malloc(n ? n : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, data, n);
	pthread_mutex_lock(&s->lock);
	uint8_t *dropped = s->queued;   /* never written: this one is newer */
	s->queued = copy;
	s->queued_len = n;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	free(dropped);
	return 0;
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
	free(s->path);
	free(s);
}
