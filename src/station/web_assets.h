/* web_assets.h - the page's files (web/), built into the binary by
 * scripts/embed-web.sh (internal to libespline; the generated web_assets.c
 * lives in the build folder).  Read-only data, any thread. */
#ifndef ESPLINE_WEB_ASSETS_H
#define ESPLINE_WEB_ASSETS_H

#include <stddef.h>

typedef struct espl_web_asset {
	const char *path;          /* "/app.js" */
	const char *type;          /* Content-Type */
	const unsigned char *data;
	size_t size;
} espl_web_asset;

extern const espl_web_asset espl_web_assets[];
extern const size_t espl_web_n_assets;

#endif /* ESPLINE_WEB_ASSETS_H */
