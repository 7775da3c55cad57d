/*
 * sim_saver.h - writes a simulated device's flash to its file in the
 * background.
 *
 * Why: the device thread used to write its whole flash (4 MB or more) to
 * --flash-dir at every reset, and a busy disk held that thread for longer
 * than the 10 ms EN rise.  The DTR/RTS changes that arrived meanwhile were
 * then applied all at once, after GPIO0 had already been released, and the
 * chip booted from flash: a failed reset that a real chip, whose strapping
 * pins do not wait for a file write, would not see.  Now the device thread
 * only compares the flash with the last snapshot and, when it changed,
 * copies it into a buffer that was allocated (and paged in) before; a
 * saver thread writes the copy.  (Fresh 4 MB buffers cost up to 200 ms of
 * page faults each at load 4: as bad as the write.)
 *
 * Contract: the file is replaced atomically (sim_flash_save: a temporary
 * file, then rename), so a reader sees one whole snapshot, never half of
 * one.  Snapshots are written in order; one that is still waiting when a
 * newer one is posted is dropped (only the newest matters); a snapshot
 * equal to the last one is not written again.  After sim_saver_close the
 * file holds the last snapshot posted.  Memory: two copies of the flash.
 *
 * Threads: post and close from one thread (the device's owner); the saver
 * has its own thread.  on_saved is called from the saver thread.
 */
#ifndef ESPLINE_SIM_SAVER_H
#define ESPLINE_SIM_SAVER_H

#include <stddef.h>
#include <stdint.h>

typedef struct sim_saver sim_saver;

/* Called after each write: errnum 0 = saved, else the errno that failed it. */
typedef void (*sim_saver_done_fn)(void *ctx, const char *path, int errnum);

/* Start a saver for path (copied) with the flash as the device starts,
 * data[0..n), which is written at once (a file shorter than the flash was
 * only partly loaded from, or there was none).  on_saved may be NULL.
 * 0, or -errno. */
int sim_saver_new(const char *path, const uint8_t *data, size_t n, sim_saver_done_fn on_saved,
                  void *ctx, sim_saver **out);

/* The flash is now data[0..n) (n as given to sim_saver_new): queue a copy
 * to be written, unless it equals the last one.  Returns after the copy. */
void sim_saver_post(sim_saver *s, const uint8_t *data);

/* Write what is still queued, stop the thread and free s.  NULL is a no-op. */
void sim_saver_close(sim_saver *s);

#endif /* ESPLINE_SIM_SAVER_H */
