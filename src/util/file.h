/*
 * file.h - read a whole file that must be a bounded regular file
 * (internal: not part of the public API; private names start with espl__).
 *
 * Every file espline reads (images, recipes, the flasher stub, spool files)
 * goes through here, so no input can hang a worker or exhaust memory: a
 * FIFO, a terminal, /dev/zero or a directory is refused before any byte is
 * read, and a file larger than the caller's bound (a sparse 20 GB file as
 * well) is refused from its size before anything is allocated.  The file is
 * opened O_NONBLOCK so that opening a FIFO with no writer cannot block.
 *
 * Errors: ESPL_ENOTFOUND / ESPL_EPERM / ESPL_ESYS from the OS, ESPL_EARG for
 * a file that is not regular or is over the bound (the message names the
 * file and the limit), ESPL_ENOMEM.  Thread-safe, no state.
 */
#ifndef ESPLINE_UTIL_FILE_H
#define ESPLINE_UTIL_FILE_H

#include <stddef.h>

#include <espline/error.h>

/* Read path whole into *data (malloc'd, with a NUL byte after the last one
 * so text can be used as a string; the caller frees it) and its length
 * into *len.  what names the file's role in messages ("image", "recipe",
 * "stub", "spool").  A file longer than max bytes is refused; so is one
 * that grows or shrinks while it is read.  On failure *data is NULL. */
int espl__file_read(const char *path, size_t max, const char *what, char **data, size_t *len,
                    espl_error *err);

/* Format a byte count the way the limits are stated: "16 MB", "64 KB" or
 * "100 bytes".  Returns buf. */
const char *espl__file_size_text(size_t bytes, char *buf, size_t cap);

#endif /* ESPLINE_UTIL_FILE_H */
