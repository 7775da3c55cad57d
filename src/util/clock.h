/*
 * clock.h - monotonic time, wall time and sleeping, for every layer
 * (internal: not part of the public API; private names start with espl__).
 *
 * One implementation serves the port backends, the loader, the runner, the
 * station and the central sender, so a deadline means the same thing
 * everywhere.  No state; every function is thread-safe and cannot fail
 * (CLOCK_MONOTONIC and CLOCK_REALTIME always exist on Linux).
 */
#ifndef ESPLINE_UTIL_CLOCK_H
#define ESPLINE_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic milliseconds (CLOCK_MONOTONIC), for deadlines and durations. */
int64_t espl__now_ms(void);
/* Monotonic seconds as a double, for durations shown with decimals. */
double espl__now_s(void);
/* Milliseconds left until a deadline from espl__now_ms(), never negative. */
int espl__ms_left(int64_t deadline);
/* Wall-clock milliseconds since the Unix epoch (CLOCK_REALTIME), for
 * timestamps that are stored or shown, never for deadlines. */
int64_t espl__wall_ms(void);
/* Sleep ms milliseconds; an interrupting signal does not cut it short. */
void espl__sleep_ms(unsigned ms);
/* The CLOCK_MONOTONIC instant ms milliseconds from now, for
 * pthread_cond_timedwait on a condition variable set to CLOCK_MONOTONIC. */
struct timespec espl__mono_after_ms(int ms);
/* Whether a CLOCK_MONOTONIC instant has passed. */
int espl__mono_past(const struct timespec *t);

#endif /* ESPLINE_UTIL_CLOCK_H */
