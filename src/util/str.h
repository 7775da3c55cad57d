/*
 * str.h - make user-supplied text safe to print, and check names
 * (internal: not part of the public API; private names start with espl__).
 *
 * Batch, operator and station names, recipe names, port specs and messages
 * that quote them end up on terminals, in logs and in reports.  A control
 * character in them (a newline, an ANSI escape sequence) could fake a log
 * line or drive the operator's terminal, so every sink that prints such
 * text passes it through espl__str_escape first, and the names an operator
 * types are checked with espl__name_check before anything is recorded.
 *
 * No state, no allocation; thread-safe.
 */
#ifndef ESPLINE_UTIL_STR_H
#define ESPLINE_UTIL_STR_H

#include <stdbool.h>
#include <stddef.h>

#include <espline/error.h>

/* The longest batch, operator or station name accepted, in bytes. */
#define ESPL_NAME_MAX 64

/* Copy in to out (cap bytes, always NUL-terminated) with every byte that
 * could act on a terminal written visibly: \n \r \t as such, other C0
 * controls, DEL, C1 controls (U+0080..U+009F) and bytes that are not valid
 * UTF-8 as \xHH, and a backslash as \\.  Valid UTF-8 text passes through
 * unchanged.  When out is too small the copy ends with "..." and never cuts
 * an escape or a UTF-8 sequence in half.  in NULL is printed as "".
 * Returns out. */
char *espl__str_escape(const char *in, char *out, size_t cap);

/* Whether espl__str_escape would change s (s has something to escape). */
bool espl__str_needs_escape(const char *s);

/* Check a name an operator typed (what: "--batch", "--operator", ...):
 * non-empty, at most ESPL_NAME_MAX bytes, valid UTF-8, no control
 * characters.  ESPL_EARG with a message that names the option and shows
 * the name escaped otherwise. */
int espl__name_check(const char *name, const char *what, espl_error *err);

#endif /* ESPLINE_UTIL_STR_H */
