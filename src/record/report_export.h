/* report_export.h - the end of an export, shared by the local (report.c)
 * and the central (central_query.c) export (internal to libespline, not
 * installed).  It writes nothing but the closing footer.
 *
 * Thread-safety: uses only the stream it is given.
 */
#ifndef ESPLINE_REPORT_EXPORT_H
#define ESPLINE_REPORT_EXPORT_H

#include "espline/report.h"

/* Close an export of count units: the footer, then a flush.  Returns the
 * count (capped at INT32_MAX), or ESPL_ESYS when the stream failed. */
int espl__report_export_finish(FILE *out, enum espl_export_format format, int64_t count, espl_error *err);

#endif /* ESPLINE_REPORT_EXPORT_H */
