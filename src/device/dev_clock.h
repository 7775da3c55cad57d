/* dev_clock.h - monotonic milliseconds and deadlines for the device layer
 * (internal; header-only, no state). */
#ifndef ESPLINE_DEV_CLOCK_H
#define ESPLINE_DEV_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t espl_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline double espl_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Milliseconds left until deadline, never negative. */
static inline int espl_ms_left(int64_t deadline)
{
	int64_t left = deadline - espl_now_ms();
	return left > 0 ? (int)left : 0;
}

#endif /* ESPLINE_DEV_CLOCK_H */
