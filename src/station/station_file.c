/* station_file.c - the station file; see include/espline/station_file.h.
 * The YAML, the positions and the wording of errors are recipe/yaml.c's, so
 * a station file reads like a recipe when it is wrong. */
#include "espline/station_file.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "espline/port.h"
#include "espline/unitdata.h"
#include "espline/web.h"
#include "recipe/yaml.h"
#include "util/file.h"
#include "util/str.h"

#define STATION_TEXT_MAX (256u << 10)
#define SMALL_FILE_MAX 4096           /* a URL or a token */

typedef struct station_ctx {
	espl__yaml y;
	espl_station_file *sf;
	char *dir;                         /* the file's folder, for relative paths */
} station_ctx;

static char *dup_or_oom(station_ctx *c, const yaml_node_t *at, const char *s)
{
	char *d = strdup(s);
	if (!d)
		espl__yaml_error(&c->y, espl__yaml_pos(at), "out of memory");
	return d;
}

static char *absolute(station_ctx *c, const yaml_node_t *at, const char *p)
{
	while (p[0] == '.' && p[1] == '/')
		p += 2;  /* ./x is x, from the file's folder */
	if (p[0] == '/')
		return dup_or_oom(c, at, p);
	size_t n = strlen(c->dir) + strlen(p) + 2;
	char *out = malloc(n);
	if (!out) {
		espl__yaml_error(&c->y, espl__yaml_pos(at), "out of memory");
		return NULL;
	}
	snprintf(out, n, "%s/%s", c->dir, p);
	return out;
}

/* A path key: a string, resolved from the file's folder. */
static char *get_path(station_ctx *c, const yaml_node_t *n, const char *what)
{
	const char *v;
	if (!espl__yaml_string(&c->y, n, what, &v))
		return NULL;
	return absolute(c, n, v);
}

/* A file that must exist and be readable by this user now. */
static char *get_readable_file(station_ctx *c, const yaml_node_t *n, const char *what, struct stat *st)
{
	char *path = get_path(c, n, what);
	if (!path)
		return NULL;
	const char *given = espl__yaml_scalar(n);
	if (stat(path, st) < 0 || access(path, R_OK) < 0)
		espl__yaml_error(&c->y, espl__yaml_pos(n), "%s: cannot read '%s' (resolved to %s): %s", what,
		                given, path, strerror(errno));
	else if (!S_ISREG(st->st_mode))
		espl__yaml_error(&c->y, espl__yaml_pos(n), "%s: '%s' (resolved to %s) is not a regular file",
		                what, given, path);
	else
		return path;
	free(path);
	return NULL;
}

/* The first line of a small file, trimmed; "" when it has none. */
static int first_line(const char *path, char *buf, size_t len, espl_error *err)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return espl_fail_errno(err, "cannot open %s", path);
	char line[SMALL_FILE_MAX];
	if (!fgets(line, sizeof line, f))
		line[0] = '\0';
	fclose(f);
	char *s = line, *e = line + strlen(line);
	while (*s && isspace((unsigned char)*s))
		s++;
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	if (strlen(s) >= len)
		return espl_fail(err, ESPL_EARG, "%s: the first line is too long", path);
	memcpy(buf, s, strlen(s) + 1);
	return ESPL_OK;
}

/* ------------------------------------------------------------------ */
/* keys                                                                 */

static void parse_recipe(station_ctx *c, const yaml_node_t *n)
{
	struct stat st;
	c->sf->recipe = get_readable_file(c, n, "recipe", &st);
}

static bool slot_name_ok(station_ctx *c, const yaml_node_t *n, const char *v)
{
	size_t len = strlen(v);
	bool ok = len <= ESPL_STATION_SLOT_MAX;
	for (size_t i = 0; ok && i < len; i++)
		ok = isalnum((unsigned char)v[i]) || strchr("_.-", v[i]);
	if (!ok)
		espl__yaml_error(&c->y, espl__yaml_pos(n), "slot: '%s' is not a slot name: use up to %d letters, "
		                "digits, '_', '.' or '-', such as A1", v, ESPL_STATION_SLOT_MAX);
	return ok;
}

/* Slot names are unique, and so is each way of naming an adapter (what:
 * "port", "usb_serial", "usb_path"; NULL for the slot name). */
static bool slot_unique(station_ctx *c, const yaml_node_t *n, const char *v, const char *what)
{
	for (size_t i = 0; i < c->sf->n_slots; i++) {
		const espl_station_slot *o = &c->sf->slots[i];
		const char *w = o->port ? o->port : o->usb_serial ? o->usb_serial : o->usb_path;
		if (strcmp(what ? w : o->slot, v) == 0) {
			espl__yaml_error(&c->y, espl__yaml_pos(n), "%s: '%s' is given twice (first at line %u)",
			                what ? what : "slot", v, o->pos.line);
			return false;
		}
	}
	return true;
}

/* An adapter's USB serial number or socket path: printable, no spaces. */
static bool usb_id_ok(station_ctx *c, const yaml_node_t *n, const char *what, const char *v)
{
	size_t len = strlen(v);
	bool ok = len > 0 && len < 64;
	for (size_t i = 0; ok && i < len; i++)
		ok = isgraph((unsigned char)v[i]);
	if (!ok)
		espl__yaml_error(&c->y, espl__yaml_pos(n), "%s: '%s' is not a USB %s: up to 63 printable "
		                "characters without spaces (`espline ports` shows them)", what, v,
		                strcmp(what, "usb_path") == 0 ? "socket path such as 1-1.3" : "serial number");
	return ok;
}

/* Where a slot's adapter is: exactly one of port, usb_serial, usb_path. */
static const char *slot_where(station_ctx *c, yaml_node_t *item, espl__yaml_fields *f, const char **key)
{
	static const char *const keys[] = { "port", "usb_serial", "usb_path" };
	const char *found = NULL, *v;
	yaml_node_t *n, *first = NULL;
	espl_error perr;

	for (size_t i = 0; i < 3; i++) {
		if (!(n = espl__yaml_field(f, keys[i])))
			continue;
		if (first) {
			espl__yaml_error(&c->y, espl__yaml_pos(n), "%s: a slot names its adapter one way: port, "
			                "usb_serial or usb_path, not two", keys[i]);
			return NULL;
		}
		first = n;
		*key = keys[i];
		if (!espl__yaml_string(&c->y, n, keys[i], &v))
			return NULL;
		if (i == 0 && espl_port_spec_check(v, &perr) < 0) {
			espl__yaml_error(&c->y, espl__yaml_pos(n), "port: %s", perr.msg);
			return NULL;
		}
		if (i > 0 && !usb_id_ok(c, n, keys[i], v))
			return NULL;
		if (!slot_unique(c, n, v, keys[i]))
			return NULL;
		found = v;
	}
	if (!first)
		espl__yaml_missing_key(&c->y, item, "ports[]", "port", "port: /dev/espline/by-path/...");
	return found;
}

static void parse_slot(station_ctx *c, yaml_node_t *item)
{
	static const char *const names[] = { "slot", "port", "usb_serial", "usb_path" };
	espl__yaml_fields f = { names, 4, { 0 }, { 0 } };
	const char *slot = NULL, *where, *key = NULL;
	yaml_node_t *v;

	if (!espl__yaml_want_mapping(&c->y, item, "ports[]", "{ slot: A1, port: /dev/ttyUSB0 }"))
		return;
	espl__yaml_read_fields(&c->y, item, "in a port", &f, NULL, NULL);
	if (!(v = espl__yaml_field(&f, "slot")))
		espl__yaml_missing_key(&c->y, item, "ports[]", "slot", "slot: A1");
	else if (espl__yaml_string(&c->y, v, "slot", &slot) && (!slot_name_ok(c, v, slot) ||
	                                                       !slot_unique(c, v, slot, NULL)))
		slot = NULL;
	where = slot_where(c, item, &f, &key);
	if (!slot || !where)
		return;
	espl_station_slot *s = &c->sf->slots[c->sf->n_slots];
	s->pos = espl__yaml_pos(item);
	s->slot = dup_or_oom(c, item, slot);
	char *w = dup_or_oom(c, item, where);
	*(strcmp(key, "port") == 0 ? &s->port : strcmp(key, "usb_serial") == 0 ? &s->usb_serial : &s->usb_path) = w;
	if (s->slot && w)
		c->sf->n_slots++;
	else {
		free(s->slot);
		free(w);
		memset(s, 0, sizeof *s);
	}
}

static void parse_ports(station_ctx *c, yaml_node_t *n)
{
	char buf[64];
	if (n->type != YAML_SEQUENCE_NODE) {
		espl__yaml_error(&c->y, espl__yaml_pos(n), "ports: expected a list such as "
		                "[ { slot: A1, port: /dev/ttyUSB0 } ], got %s",
		                espl__yaml_describe(n, buf, sizeof buf));
		return;
	}
	size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (count == 0) {
		espl__yaml_error(&c->y, espl__yaml_pos(n), "ports: the list is empty; leave the key out to "
		                "use every supported adapter");
		return;
	}
	if (count > ESPL_STATION_MAX_SLOTS) {
		espl__yaml_error(&c->y, espl__yaml_pos(n), "ports: %zu ports, at most %d", count,
		                ESPL_STATION_MAX_SLOTS);
		return;
	}
	c->sf->slots = calloc(count, sizeof *c->sf->slots);
	if (!c->sf->slots) {
		espl__yaml_error(&c->y, espl__yaml_pos(n), "out of memory");
		return;
	}
	for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++)
		parse_slot(c, espl__yaml_node(&c->y, *i));
}

static void parse_central(station_ctx *c, const yaml_node_t *n)
{
	struct stat st;
	char url[SMALL_FILE_MAX];
	espl_error ferr;
	char *path = get_readable_file(c, n, "central_url_file", &st);
	if (!path)
		return;
	c->sf->central_url_file = path;
	if (first_line(path, url, sizeof url, &ferr) < 0)
		espl__yaml_error(&c->y, espl__yaml_pos(n), "central_url_file: %s", ferr.msg);
	else if (strncmp(url, "postgresql://", 13) != 0 && strncmp(url, "postgres://", 11) != 0)
		espl__yaml_error(&c->y, espl__yaml_pos(n), "central_url_file: %s does not start with a "
		                "postgresql:// URL on its first line", path);
	else if (st.st_mode & 077)  /* the rule of espline run --central-file */
		espl__yaml_error(&c->y, espl__yaml_pos(n), "central_url_file: %s can be read by other users "
		                 "(mode %04o); it holds a password: chmod 600 %s", path,
		                 (unsigned)(st.st_mode & 07777), path);
}

/* The same rules as `espline run --http` and --http-token-file (web.c):
 * an address to listen on, and a token file only its owner can read. */
static void parse_web(station_ctx *c, yaml_node_t *key, yaml_node_t *n)
{
	static const char *const names[] = { "bind", "token_file" };
	espl__yaml_fields f = { names, 2, { 0 }, { 0 } };
	yaml_node_t *v;
	const char *bind;
	int loopback = 1;
	espl_error werr;

	if (!espl__yaml_want_mapping(&c->y, n, "web", "{ bind: 127.0.0.1:8080 }"))
		return;
	espl__yaml_read_fields(&c->y, n, "in web", &f, NULL, NULL);
	if ((v = espl__yaml_field(&f, "bind")) && espl__yaml_string(&c->y, v, "web.bind", &bind)) {
		loopback = espl_web_is_loopback(bind, &werr);
		if (loopback < 0)
			espl__yaml_error(&c->y, espl__yaml_pos(v), "web.bind: %s", werr.msg);
		else
			c->sf->web_bind = dup_or_oom(c, v, bind);
	}
	if ((v = espl__yaml_field(&f, "token_file"))) {
		char *token = NULL;
		c->sf->web_token_file = get_path(c, v, "web.token_file");
		if (c->sf->web_token_file && espl_web_load_token(c->sf->web_token_file, NULL, &token, &werr) < 0)
			espl__yaml_error(&c->y, espl__yaml_pos(v), "web.token_file: %s", werr.msg);
		free(token);
	} else if (loopback == 0) {
		espl__yaml_error(&c->y, espl__yaml_pos(key), "web: binding to %s (not loopback) needs "
		                "token_file: a file holding the access token", c->sf->web_bind);
	}
}

/* ------------------------------------------------------------------ */
/* operator I/O: scan, label, hooks                                     */

#define MAX_ARGS 32

static bool get_duration(station_ctx *c, const yaml_node_t *n, const char *what, unsigned max_ms, unsigned *out)
{
	const char *v = espl__yaml_scalar(n);
	unsigned ms;
	if (!v || espl_recipe_parse_duration_ms(v, &ms) < 0 || ms == 0 || ms > max_ms) {
		char buf[64];
		espl__yaml_error(&c->y, espl__yaml_pos(n), "%s: expected a duration from 1ms to %us such as 5s "
		                "or 500ms, got %s", what, max_ms / 1000, espl__yaml_describe(n, buf, sizeof buf));
		return false;
	}
	*out = ms;
	return true;
}

/* run: [PROGRAM, ARG, ...]: a list of strings, no shell; a program path
 * with a '/' is taken from the station file's folder. */
static void get_argv(station_ctx *c, yaml_node_t *n, const char *what, espl_station_command *cmd)
{
	char buf[64];
	size_t count = n->type == YAML_SEQUENCE_NODE ? (size_t)(n->data.sequence.items.top - n->data.sequence.items.start) : 0;
	if (count == 0 || count > MAX_ARGS) {
		espl__yaml_error(&c->y, espl__yaml_pos(n), "%s: expected a list of 1 to %d strings, the program and "
		                "its arguments (no shell), such as [/usr/local/bin/mes-report, --line, \"1\"], got %s",
		                what, MAX_ARGS, espl__yaml_describe(n, buf, sizeof buf));
		return;
	}
	char **argv = calloc(count + 1, sizeof *argv);
	if (!argv) {
		espl__yaml_error(&c->y, espl__yaml_pos(n), "out of memory");
		return;
	}
	for (size_t i = 0; i < count; i++) {
		yaml_node_t *e = espl__yaml_node(&c->y, n->data.sequence.items.start[i]);
		const char *v = e->type == YAML_SCALAR_NODE ? espl__yaml_scalar(e) : NULL;
		if (!v || (i == 0 && !*v)) {
			espl__yaml_error(&c->y, espl__yaml_pos(e), "%s[%zu]: expected a string, got %s", what, i + 1,
			                espl__yaml_describe(e, buf, sizeof buf));
			break;
		}
		argv[i] = i == 0 && strchr(v, '/') ? absolute(c, e, v) : dup_or_oom(c, e, v);
		if (!argv[i])
			break;
	}
	cmd->argv = argv;  /* freed whole (NULL-ended) even when cut short */
}

/* route_check / on_unit_done: { run: [...], timeout: 5s } */
static void parse_command(station_ctx *c, yaml_node_t *n, const char *what, espl_station_command *cmd)
{
	static const char *const names[] = { "run", "timeout" };
	espl__yaml_fields f = { names, 2, { 0 }, { 0 } };
	yaml_node_t *v;
	cmd->timeout_ms = 5000;
	if (!espl__yaml_want_mapping(&c->y, n, what, "{ run: [/usr/local/bin/mes-report], timeout: 5s }"))
		return;
	espl__yaml_read_fields(&c->y, n, what, &f, NULL, NULL);
	if (!(v = espl__yaml_field(&f, "run")))
		espl__yaml_missing_key(&c->y, n, what, "run", "run: [/usr/local/bin/mes-report]");
	else
		get_argv(c, v, what, cmd);
	if ((v = espl__yaml_field(&f, "timeout")))
		get_duration(c, v, what, 600000, &cmd->timeout_ms);
}

static void parse_hooks(station_ctx *c, yaml_node_t *n)
{
	static const char *const names[] = { "route_check", "on_unit_done" };
	espl__yaml_fields f = { names, 2, { 0 }, { 0 } };
	yaml_node_t *v;
	if (!espl__yaml_want_mapping(&c->y, n, "hooks", "{ on_unit_done: { run: [mes-report] } }"))
		return;
	espl__yaml_read_fields(&c->y, n, "in hooks", &f, NULL, NULL);
	if ((v = espl__yaml_field(&f, "route_check")))
		parse_command(c, v, "hooks.route_check", &c->sf->route_check);
	if ((v = espl__yaml_field(&f, "on_unit_done")))
		parse_command(c, v, "hooks.on_unit_done", &c->sf->on_unit_done);
}

static void parse_scan(station_ctx *c, yaml_node_t *n)
{
	static const char *const names[] = { "from", "map", "timeout" };
	static const char *const maps[] = { "slot_label", "next_waiting" };
	espl__yaml_fields f = { names, 3, { 0 }, { 0 } };
	yaml_node_t *v;
	const char *from;
	espl_error perr;
	if (!espl__yaml_want_mapping(&c->y, n, "scan", "{ from: terminal, map: slot_label }"))
		return;
	espl__yaml_read_fields(&c->y, n, "in scan", &f, NULL, NULL);
	if (!(v = espl__yaml_field(&f, "from")))
		espl__yaml_missing_key(&c->y, n, "scan", "from", "from: terminal (or a serial port such as /dev/ttyACM0)");
	else if (espl__yaml_string(&c->y, v, "scan.from", &from)) {
		if (strcmp(from, "terminal") != 0 && espl_port_spec_check(from, &perr) < 0)
			espl__yaml_error(&c->y, espl__yaml_pos(v), "scan.from: terminal, or a serial port: %s", perr.msg);
		else
			c->sf->scan_from = dup_or_oom(c, v, from);
	}
	c->sf->scan_map = c->sf->n_slots ? ESPL_SCAN_SLOT_LABEL : ESPL_SCAN_NEXT_WAITING;
	if ((v = espl__yaml_field(&f, "map"))) {
		int i = espl__yaml_choice(&c->y, v, "scan.map", maps, 2);
		if (i == ESPL_SCAN_SLOT_LABEL && c->sf->n_slots == 0)
			espl__yaml_error(&c->y, espl__yaml_pos(v), "scan.map: slot_label needs slot names: list the "
			                "ports with { slot: A1, port: ... }, or use map: next_waiting");
		else if (i >= 0)
			c->sf->scan_map = (enum espl_scan_map)i;
	}
	if ((v = espl__yaml_field(&f, "timeout")))
		get_duration(c, v, "scan.timeout", 24 * 3600 * 1000u, &c->sf->scan_timeout_ms);
}

/* The template is read now (a bounded regular file) and its fields checked
 * at their line and column. */
static void label_template(station_ctx *c, yaml_node_t *v)
{
	espl_error e;
	size_t len;
	char *path = get_path(c, v, "label.on_pass");
	if (!path)
		return;
	c->sf->label_template_path = path;
	if (espl__file_read(path, ESPL_LABEL_TEMPLATE_MAX, "label template", &c->sf->label_template, &len, &e) < 0)
		espl__yaml_error(&c->y, espl__yaml_pos(v), "label.on_pass: %s", e.msg);
	else if (strlen(c->sf->label_template) != len)
		espl__yaml_error(&c->y, espl__yaml_pos(v), "label.on_pass: %s holds a NUL byte: a ZPL label is text", path);
	else if (espl_template_check(c->sf->label_template, len, ESPL_TEMPLATE_LABEL, NULL, &e) < 0)
		espl__yaml_error(&c->y, espl__yaml_pos(v), "label.on_pass: %s: %s", path, e.msg);
}

static void parse_label(station_ctx *c, yaml_node_t *n)
{
	static const char *const names[] = { "on_pass", "printer", "file", "command", "queue", "timeout", "retry" };
	espl__yaml_fields f = { names, 7, { 0 }, { 0 } };
	yaml_node_t *v;
	const char *printer;
	espl_station_command cmd = { NULL, 0 };
	int sinks = 0;
	espl_station_file *sf = c->sf;
	if (!espl__yaml_want_mapping(&c->y, n, "label", "{ on_pass: unit.zpl, printer: 10.0.0.7:9100 }"))
		return;
	espl__yaml_read_fields(&c->y, n, "in label", &f, NULL, NULL);
	sf->label_timeout_ms = 3000;
	sf->label_retry_ms = 5000;
	if (!(v = espl__yaml_field(&f, "on_pass")))
		espl__yaml_missing_key(&c->y, n, "label", "on_pass", "on_pass: unit.zpl");
	else
		label_template(c, v);
	if ((v = espl__yaml_field(&f, "printer")) && ++sinks && espl__yaml_string(&c->y, v, "label.printer", &printer)) {
		const char *colon = strrchr(printer, ':');
		if (!colon || colon == printer || atoi(colon + 1) <= 0 || atoi(colon + 1) > 65535)
			espl__yaml_error(&c->y, espl__yaml_pos(v), "label.printer: expected HOST:PORT of a raw TCP "
			                "printer, such as 10.0.0.7:9100, got '%s'", printer);
		else
			sf->label_printer = dup_or_oom(c, v, printer);
	}
	if ((v = espl__yaml_field(&f, "file")) && ++sinks)
		sf->label_file = get_path(c, v, "label.file");
	if ((v = espl__yaml_field(&f, "command")) && ++sinks) {
		get_argv(c, v, "label.command", &cmd);
		sf->label_command.argv = cmd.argv;
	}
	if (sinks != 1)
		espl__yaml_error(&c->y, espl__yaml_pos(n), "label: name one place to send labels: printer: "
		                "HOST:9100, file: PATH or command: [PROGRAM, ...]%s", sinks ? " (not several)" : "");
	if ((v = espl__yaml_field(&f, "queue")))
		sf->label_queue = get_path(c, v, "label.queue");
	if ((v = espl__yaml_field(&f, "timeout")))
		get_duration(c, v, "label.timeout", 600000, &sf->label_timeout_ms);
	sf->label_command.timeout_ms = sf->label_timeout_ms;
	if ((v = espl__yaml_field(&f, "retry")))
		get_duration(c, v, "label.retry", 3600000, &sf->label_retry_ms);
}

static void parse_root(espl__yaml *y, yaml_node_t *root, void *ctx)
{
	static const char *const names[] = { "station", "recipe", "ports", "operator_required",
	                                     "database", "central_url_file", "web", "scan", "label", "hooks" };
	station_ctx *c = ctx;
	espl__yaml_fields f = { names, 10, { 0 }, { 0 } };
	yaml_node_t *v;
	const char *name;

	if (!espl__yaml_want_mapping(y, root, "station file", "recipe: ..., ports: [...]"))
		return;
	espl__yaml_read_fields(y, root, "at the top level", &f, NULL, NULL);
	if ((v = espl__yaml_field(&f, "station")) && espl__yaml_string(y, v, "station", &name)) {
		espl_error nerr;
		if (espl__name_check(name, "station", &nerr) < 0)
			espl__yaml_error(y, espl__yaml_pos(v), "%s", nerr.msg);
		else
			c->sf->name = dup_or_oom(c, v, name);
	}
	if (!(v = espl__yaml_field(&f, "recipe")))
		espl__yaml_missing_key(y, root, "station file", "recipe",
		                      "recipe: /usr/share/espline/recipes/nodemcu-4mb.yaml");
	else
		parse_recipe(c, v);
	if ((v = espl__yaml_field(&f, "ports")))
		parse_ports(c, v);
	if ((v = espl__yaml_field(&f, "operator_required")))
		espl__yaml_bool(y, v, "operator_required", &c->sf->operator_required);
	if ((v = espl__yaml_field(&f, "database")))
		c->sf->database = get_path(c, v, "database");
	if ((v = espl__yaml_field(&f, "central_url_file")))
		parse_central(c, v);
	if ((v = espl__yaml_field(&f, "web")))
		parse_web(c, espl__yaml_field_key(&f, "web"), v);
	if ((v = espl__yaml_field(&f, "scan")))
		parse_scan(c, v);
	if ((v = espl__yaml_field(&f, "label")))
		parse_label(c, v);
	if ((v = espl__yaml_field(&f, "hooks")))
		parse_hooks(c, v);
}

/* ------------------------------------------------------------------ */
/* the file                                                             */

static int locate(const char *path, espl_station_file *sf, char **dir, espl_error *err)
{
	sf->path = realpath(path, NULL);
	if (!sf->path)
		return espl_fail_errno(err, "cannot open station file %s", path);
	*dir = strdup(sf->path);
	if (!*dir)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	char *slash = strrchr(*dir, '/');
	if (slash == *dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	return ESPL_OK;
}

int espl_station_file_load(const char *path, espl_recipe_diag_fn diag_fn, void *diag_ctx,
                           espl_station_file **out, espl_error *err)
{
	espl_station_file *sf = calloc(1, sizeof *sf);
	station_ctx c = { { path, "station file", NULL, diag_fn, diag_ctx, err, ESPL_ERECIPE, 0, 0 }, sf, NULL };
	char *text = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if (!sf)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	rc = locate(path, sf, &c.dir, err);
	if (rc == ESPL_OK)
		rc = espl__file_read(path, STATION_TEXT_MAX, "station file", &text, &len, err);
	if (rc == ESPL_OK && espl__yaml_parse(&c.y, text, len, "the station file is empty; expected a "
	                                     "mapping with at least recipe: FILE", parse_root, &c) > 0)
		rc = ESPL_ERECIPE;
	free(text);
	free(c.dir);
	if (rc < 0) {
		espl_station_file_free(sf);
		return rc;
	}
	*out = sf;
	return ESPL_OK;
}

static void free_argv(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

void espl_station_file_free(espl_station_file *sf)
{
	if (!sf)
		return;
	for (size_t i = 0; i < sf->n_slots; i++) {
		free(sf->slots[i].slot);
		free(sf->slots[i].port);
		free(sf->slots[i].usb_serial);
		free(sf->slots[i].usb_path);
	}
	free(sf->slots);
	free(sf->path);
	free(sf->name);
	free(sf->recipe);
	free(sf->database);
	free(sf->central_url_file);
	free(sf->web_bind);
	free(sf->web_token_file);
	free(sf->scan_from);
	free(sf->label_template);
	free(sf->label_template_path);
	free(sf->label_printer);
	free(sf->label_file);
	free(sf->label_queue);
	free_argv(sf->label_command.argv);
	free_argv(sf->route_check.argv);
	free_argv(sf->on_unit_done.argv);
	free(sf);
}

/* ------------------------------------------------------------------ */
/* slots and adapters                                                   */

const espl_station_slot *espl_station_slot_find(const espl_station_slot *slots, size_t n,
                                                const char *path, const char *usb_serial,
                                                const char *usb_location)
{
	for (size_t i = 0; i < n; i++) {
		const espl_station_slot *s = &slots[i];
		if (s->port && path && (strcmp(s->port, path) == 0 || fnmatch(s->port, path, FNM_PATHNAME) == 0))
			return s;
		if (s->usb_serial && usb_serial && strcmp(s->usb_serial, usb_serial) == 0)
			return s;
		if (s->usb_path && usb_location && strcmp(s->usb_path, usb_location) == 0)
			return s;
	}
	return NULL;
}

int espl_station_slots_need_usb(const espl_station_slot *slots, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!slots[i].port)
			return 1;
	return 0;
}
