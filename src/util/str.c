/* str.c - escape text for printing, check names; see str.h. */
#include "util/str.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when s does not
 * start one (a stray continuation byte, an overlong form, a surrogate, a
 * code point past U+10FFFF, or a sequence cut short). */
static size_t utf8_len(const unsigned char *s)
{
	unsigned c = s[0];
	size_t n;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2, cp = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3, cp = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

/* Whether the valid sequence of n bytes at s is a control character. */
static bool is_control(const unsigned char *s, size_t n)
{
	if (n == 1)
		return s[0] < 0x20 || s[0] == 0x7F;
	return n == 2 && s[0] == 0xC2 && s[1] < 0xA0;  /* C1: U+0080..U+009F */
}

/* The visible form of the n bytes at s, into buf (at least 9 bytes);
 * returns its length. */
static size_t visible(const unsigned char *s, size_t n, char *buf)
{
	if (n == 0)
		return (size_t)snprintf(buf, 9, "\\x%02X", s[0]);
	if (n == 1 && s[0] == '\\')
		return (size_t)snprintf(buf, 9, "\\\\");
	if (n == 1 && (s[0] == '\n' || s[0] == '\r' || s[0] == '\t'))
		return (size_t)snprintf(buf, 9, "\\%c", s[0] == '\n' ? 'n' : s[0] == '\r' ? 'r' : 't');
	if (is_control(s, n))
		return n == 1 ? (size_t)snprintf(buf, 9, "\\x%02X", s[0])
		              : (size_t)snprintf(buf, 9, "\\x%02X\\x%02X", s[0], s[1]);
	memcpy(buf, s, n);
	return n;
}

/* The length of s escaped. */
static size_t escaped_len(const unsigned char *s)
{
	char piece[9];
	size_t total = 0;
	while (*s) {
		size_t n = utf8_len(s);
		total += visible(s, n, piece);
		s += n ? n : 1;
	}
	return total;
}

char *espl__str_escape(const char *in, char *out, size_t cap)
{
	const unsigned char *s = (const unsigned char *)(in ? in : "");
	size_t used = 0;
	char piece[9];

	if (cap == 0)
		return out;
	/* when it does not all fit, keep room for "..." */
	size_t limit = escaped_len(s) <= cap - 1 ? cap - 1 : cap - 1 < 3 ? 0 : cap - 4;
	while (*s) {
		size_t n = utf8_len(s);
		size_t len = visible(s, n, piece);
		if (used + len > limit) {
			if (cap - 1 - used >= 3)
				memcpy(out + used, "...", 3), used += 3;
			break;
		}
		memcpy(out + used, piece, len);
		used += len;
		s += n ? n : 1;
	}
	out[used] = '\0';
	return out;
}

bool espl__str_needs_escape(const char *in)
{
	const unsigned char *s = (const unsigned char *)(in ? in : "");
	char piece[9];
	while (*s) {
		size_t n = utf8_len(s);
		if (n == 0 || visible(s, n, piece) != n || memcmp(piece, s, n) != 0)
			return true;
		s += n;
	}
	return false;
}

int espl__name_check(const char *name, const char *what, espl_error *err)
{
	char shown[96];
	size_t len = name ? strlen(name) : 0;

	if (len == 0)
		return espl_fail(err, ESPL_EARG, "%s: the name is empty", what);
	if (len > ESPL_NAME_MAX)
		return espl_fail(err, ESPL_EARG, "%s: the name is %zu bytes long, over the limit of %d (%s)", what, len,
		                 ESPL_NAME_MAX, espl__str_escape(name, shown, 40));
	for (const unsigned char *s = (const unsigned char *)name; *s;) {
		size_t n = utf8_len(s);
		if (n == 0)
			return espl_fail(err, ESPL_EARG, "%s: the name is not valid UTF-8 (byte 0x%02X at offset %zu): %s",
			                 what, *s, (size_t)(s - (const unsigned char *)name),
			                 espl__str_escape(name, shown, sizeof shown));
		if (is_control(s, n))
			return espl_fail(err, ESPL_EARG, "%s: the name holds a control character at offset %zu: %s", what,
			                 (size_t)(s - (const unsigned char *)name), espl__str_escape(name, shown, sizeof shown));
		s += n;
	}
	return ESPL_OK;
}
