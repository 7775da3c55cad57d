/*
 * uuid.h - random (version 4) UUIDs for batches, units and spool files
 * (internal: not part of the public API).
 *
 * Thread-safe, no state.  Reads the kernel's random source (getrandom).
 */
#ifndef ESPLINE_UTIL_UUID_H
#define ESPLINE_UTIL_UUID_H

#include "espline/error.h"

/* Text size of a UUID with its terminating NUL: 36 characters + 1. */
#define ESPL__UUID_SIZE 37

/* Write a new random UUID, lower-case with dashes, into out.  0, or
 * ESPL_ESYS when the kernel gives no random bytes (err says why; err may be
 * NULL). */
int espl__uuid4(char out[ESPL__UUID_SIZE], espl_error *err);

#endif /* ESPLINE_UTIL_UUID_H */
