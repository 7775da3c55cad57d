/*
 * labels.h - the label printed for every PASS unit, and the queue that
 * keeps it until the printer takes it (internal to src/station; names
 * start with espl__).
 *
 * A label is rendered from the station file's ZPL template (unitdata.h,
 * ESPL_TEMPLATE_LABEL) by the worker of the unit, recorded with the unit,
 * and put in the queue: one file per label in the queue folder
 * (NNNNNNNNNNNNN-UUID.zpl, written to a temporary name and renamed, so a
 * crash leaves a whole label or none).  One printer thread sends the oldest
 * label: to a raw TCP printer (HOST:PORT, connect and send within the
 * timeout), appended to a file, or on the stdin of a command (no shell,
 * exit 0 within the timeout, spawn.h); the file is removed once it is sent.
 * A printer that fails never stops programming: the label stays queued and
 * is tried again every retry_ms; labels left at the end are there at the
 * next start (the folder is read then) and sent first.
 *
 * The queue's length and what went wrong come through the on_change
 * callback, from the printer thread and from the worker that enqueued.
 * What happened to each unit's label comes through on_unit, for the unit's
 * record: "label-queued" when it is put in the queue (by the worker),
 * "label-failed" the first time the printer fails to take it (it stays
 * queued), "label-sent" once the printer took it, and "label-queued" again
 * for each label still queued when the queue stops.
 * Thread safety: espl__labels_render / enqueue / queued from any thread.
 */
#ifndef ESPLINE_STATION_LABELS_H
#define ESPLINE_STATION_LABELS_H

#include <stddef.h>

#include "espline/error.h"
#include "espline/station_file.h"
#include "espline/unitdata.h"

typedef struct espl__labels espl__labels;

/* queued: labels waiting; level/message: what happened ("info" a label
 * printed, "warn" the printer failed: why), message may be NULL. */
typedef void (*espl__labels_fn)(void *ctx, int queued, const char *level, const char *message);

/* The hand-off of one unit's label: kind "label-queued", "label-sent" or
 * "label-failed"; level "info" or "warn"; message says to what and how
 * (raw text: the printer's name and errors are not escaped). */
typedef void (*espl__labels_unit_fn)(void *ctx, const char *unit_uuid, const char *kind, const char *level,
                                     const char *message);

/* queue_dir: the station file's label.queue, else db_path + ".labels".
 * on_change and on_unit may be NULL. */
int espl__labels_start(const espl_station_file *sf, const char *db_path, espl__labels_fn on_change,
                       espl__labels_unit_fn on_unit, void *ctx, espl__labels **out, espl_error *err);

/* The label of a unit, as text (malloc'd, NUL-ended). */
int espl__labels_render(const espl__labels *l, const espl_unit_values *v, char **text, espl_error *err);

/* Put a rendered label in the queue (on disk first) and wake the printer. */
int espl__labels_enqueue(espl__labels *l, const char *unit_uuid, const char *text, espl_error *err);

int espl__labels_queued(espl__labels *l);
const char *espl__labels_dir(const espl__labels *l);

/* Try to send what is queued for at most flush_ms, then end the printer
 * thread; returns the labels still queued (kept on disk).  NULL: 0. */
int espl__labels_stop(espl__labels *l, unsigned flush_ms);

#endif /* ESPLINE_STATION_LABELS_H */
