/* ports.c - the station's adapters: which ports the specs name now
 * (enumeration), the slot each one is (the station file's names), and the
 * events of a port, which carry both; see include/espline/supervisor.h and
 * src/station/station_int.h. */
#include "espline/supervisor.h"
#include "station/station_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const espl_supervisor_default_ports[] = {
	"usb:10c4:ea60", /* Silicon Labs CP210x */
	"usb:1a86:7523", /* WCH CH340 */
	"usb:1a86:55d4", /* WCH CH9102 */
	"usb:0403:6001", /* FTDI FT232R */
	"usb:0403:6010", /* FTDI FT2232 */
	"usb:0403:6014", /* FTDI FT232H */
	"usb:0403:6015", /* FTDI FT-X */
	NULL,
};

/* ------------------------------------------------------------------ */
/* enumeration                                                          */

int espl__station_is_url(const char *spec)
{
	return strstr(spec, "://") != NULL;
}

static int is_plain_path(const char *spec)
{
	return !espl__station_is_url(spec) && strncmp(spec, "usb:", 4) != 0 && !strpbrk(spec, "*?[");
}

static int append_unique(espl_port_info **list, int *n, int *cap, const espl_port_info *info,
                         espl_error *err)
{
	for (int i = 0; i < *n; i++)
		if (strcmp((*list)[i].path, info->path) == 0)
			return ESPL_OK;
	if (*n == *cap) {
		int ncap = *cap ? *cap * 2 : 16;
		espl_port_info *grown = realloc(*list, (size_t)ncap * sizeof *grown);
		if (!grown)
			return espl_fail(err, ESPL_ENOMEM, "listing ports: out of memory");
		*list = grown;
		*cap = ncap;
	}
	(*list)[(*n)++] = *info;
	return ESPL_OK;
}

int espl_supervisor_enumerate(const char *const *specs, size_t n_specs, espl_port_info **list,
                              espl_error *err)
{
	int n = 0, cap = 0;
	*list = NULL;
	if (!specs || n_specs == 0) {
		specs = espl_supervisor_default_ports;
		for (n_specs = 0; specs[n_specs]; n_specs++)
			;
	}
	for (size_t i = 0; i < n_specs; i++) {
		espl_port_info *found = NULL;
		if (is_plain_path(specs[i]) && access(specs[i], F_OK) < 0)
			continue;  /* not plugged in (yet) */
		int k = espl_port_list(specs[i], &found, err);
		if (k < 0) {
			free(*list);
			*list = NULL;
			return k;
		}
		for (int j = 0; j < k; j++)
			if (append_unique(list, &n, &cap, &found[j], err) < 0) {
				free(found);
				free(*list);
				*list = NULL;
				return err->code;
			}
		free(found);
	}
	return n;
}

void espl__station_worker_emit(worker *w, espl_station_event *ev)
{
	ev->port = w->info.path;
	ev->slot = w->slot[0] ? w->slot : NULL;
	espl__station_emit(w->sup, ev);
}

void espl__station_worker_emit_simple(worker *w, enum espl_station_event_kind kind, const char *level,
                                      const char *message)
{
	espl_station_event ev = { .kind = kind, .level = level, .message = message };
	espl__station_worker_emit(w, &ev);
}

/* ------------------------------------------------------------------ */
/* slots                                                                */

/* An adapter that matches none of the station file's slots when slots name
 * their adapters by USB serial or socket: left alone, and said once. */
int espl__station_ignored_adapter(espl_supervisor *s, const espl_port_info *info)
{
	if (!espl_station_slots_need_usb(s->o.slots, s->o.n_slots))
		return 0;
	for (int i = 0; i < s->n_ignored; i++)
		if (strcmp(s->ignored[i], info->path) == 0)
			return 1;
	if (s->n_ignored < (int)(sizeof s->ignored / sizeof s->ignored[0]))
		snprintf(s->ignored[s->n_ignored++], sizeof s->ignored[0], "%s", info->path);
	char msg[512];
	snprintf(msg, sizeof msg, "not one of the station file's slots (USB serial %s, socket %s): left alone",
	         info->serial[0] ? info->serial : "none", info->location[0] ? info->location : "unknown");
	espl__station_emit_simple(s, ESPL_EV_LOG, info->path, "info", msg);
	return 1;
}
