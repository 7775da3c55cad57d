/* report_time.c - the times reports and exports read and write (UTC, ISO
 * 8601); see include/espline/report.h.  Pure functions: thread-safe. */
#include "espline/report.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void espl_report_format_time(int64_t ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

int espl_report_parse_time(const char *text, int64_t *ms)
{
	int y, mo, d, h = 0, mi = 0, s = 0, frac = 0, used = 0;
	if (!text || sscanf(text, "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3)
		return ESPL_EARG;
	const char *p = text + used;
	if (*p == 'T' || *p == ' ') {
		int n = 0;
		if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &n) != 2)
			return ESPL_EARG;
		p += 1 + n;
		if (*p == ':') {
			if (sscanf(p + 1, "%2d%n", &s, &n) != 1)
				return ESPL_EARG;
			p += 1 + n;
			if (*p == '.') {
				int digits = 0;
				for (p++; isdigit((unsigned char)*p); p++, digits++)
					if (digits < 3)
						frac = frac * 10 + (*p - '0');
				for (; digits < 3; digits++)
					frac *= 10;
			}
		}
	}
	if (*p == 'Z')
		p++;
	if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
		return ESPL_EARG;
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
			 .tm_min = mi, .tm_sec = s };
	*ms = (int64_t)timegm(&tm) * 1000 + frac;
	return ESPL_OK;
}
