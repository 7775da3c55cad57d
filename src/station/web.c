/* web.c - the live station view and the history pages over HTTP; see
 * include/espline/web.h.  HTTP itself is libmicrohttpd's (Debian's
 * libmicrohttpd-dev): no request is parsed here beyond its URL arguments. */
#include "espline/web.h"
#include "station/web_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "espline/db.h"
#include "espline/report.h"
#include "station/web_assets.h"
#include "util/clock.h"
#include "util/file.h"

/* ------------------------------------------------------------------ */
/* addresses and tokens                                                 */

/* "HOST:PORT" or "[V6]:PORT" -> a socket address (numeric or a name). */
static int parse_listen(const char *listen, struct sockaddr_storage *sa, socklen_t *sa_len, espl_error *err)
{
	char host[256];
	const char *colon, *h = listen;
	size_t hlen;
	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');
		if (!close || close[1] != ':')
			return espl_fail(err, ESPL_EARG, "--http %s: expected [ADDRESS]:PORT", listen);
		h = listen + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(listen, ':');
		if (!colon)
			return espl_fail(err, ESPL_EARG, "--http %s: expected HOST:PORT", listen);
		hlen = (size_t)(colon - listen);
	}
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || port < 0 || port > 65535 || hlen == 0 || hlen >= sizeof host)
		return espl_fail(err, ESPL_EARG, "--http %s: expected HOST:PORT with a port 0-65535", listen);
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
	int rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0)
		return espl_fail(err, ESPL_EARG, "--http %s: %s", listen, gai_strerror(rc));
	memcpy(sa, res->ai_addr, res->ai_addrlen);
	*sa_len = res->ai_addrlen;
	freeaddrinfo(res);
	if (sa->ss_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
	return ESPL_OK;
}

static int sockaddr_is_loopback(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (IN6_IS_ADDR_V4MAPPED(a))
		return a->s6_addr[12] == 127;
	return IN6_IS_ADDR_LOOPBACK(a);
}

int espl_web_is_loopback(const char *listen, espl_error *err)
{
	struct sockaddr_storage sa;
	socklen_t len;
	int rc = parse_listen(listen, &sa, &len, err);
	return rc < 0 ? rc : sockaddr_is_loopback(&sa);
}

/* A token travels in a header and a cookie: keep to characters both carry. */
static int token_chars_ok(const char *t)
{
	for (; *t; t++)
		if (!((*t >= 'A' && *t <= 'Z') || (*t >= 'a' && *t <= 'z') || (*t >= '0' && *t <= '9') ||
		      strchr("-._~+/=", *t)))
			return 0;
	return 1;
}

static int check_token(const char *t, const char *where, espl_error *err)
{
	size_t n = strlen(t);
	if (n < ESPL_WEB_TOKEN_MIN || n > ESPL_WEB_TOKEN_MAX)
		return espl_fail(err, ESPL_EARG, "the token in %s must be %d to %d characters long", where,
		                 ESPL_WEB_TOKEN_MIN, ESPL_WEB_TOKEN_MAX);
	if (!token_chars_ok(t))
		return espl_fail(err, ESPL_EARG, "the token in %s may use only A-Z a-z 0-9 - . _ ~ + / =", where);
	return ESPL_OK;
}

static char *trimmed_copy(const char *s, size_t n)
{
	while (n && strchr(" \t\r\n", *s))
		s++, n--;
	while (n && strchr(" \t\r\n", s[n - 1]))
		n--;
	char *out = malloc(n + 1);
	if (out) {
		memcpy(out, s, n);
		out[n] = '\0';
	}
	return out;
}

static int read_token_file(const char *file, char **out, espl_error *err)
{
	struct stat st;
	char *data;
	size_t len;
	/* Advisory: a token others can read is no secret (ssh's rule for keys). */
	if (stat(file, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
		return espl_fail(err, ESPL_EPERM, "token file %s: readable by others (chmod 600 it)", file);
	int rc = espl__file_read(file, ESPL_WEB_TOKEN_MAX + 64, "token", &data, &len, err);
	if (rc < 0)
		return rc;
	*out = trimmed_copy(data, len);
	free(data);
	return *out ? ESPL_OK : espl_fail(err, ESPL_ENOMEM, "out of memory");
}

int espl_web_load_token(const char *file, const char *env_value, char **out, espl_error *err)
{
	*out = NULL;
	int rc;
	if (file) {
		if ((rc = read_token_file(file, out, err)) < 0)
			return rc;
	} else {
		if (!env_value || !*env_value)
			return ESPL_OK;
		if (!(*out = trimmed_copy(env_value, strlen(env_value))))
			return espl_fail(err, ESPL_ENOMEM, "out of memory");
	}
	if ((rc = check_token(*out, file ? file : "$ESPLINE_HTTP_TOKEN", err)) < 0) {
		free(*out);
		*out = NULL;
	}
	return rc;
}

/* Constant time whatever the lengths: compare digests, not the strings. */
static int token_equal(const char *given, const char *expected)
{
	unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
	unsigned la = 0, lb = 0;
	if (!EVP_Digest(given, strlen(given), a, &la, EVP_sha256(), NULL) ||
	    !EVP_Digest(expected, strlen(expected), b, &lb, EVP_sha256(), NULL) || la != lb)
		return 0;
	return CRYPTO_memcmp(a, b, la) == 0;
}

static int authorized(espl_web *w, struct MHD_Connection *c)
{
	if (!w->token)
		return 1;
	const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (auth && strncmp(auth, "Bearer ", 7) == 0)
		return token_equal(auth + 7, w->token);
	const char *cookie = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, COOKIE);
	return cookie && token_equal(cookie, w->token);
}

/* ------------------------------------------------------------------ */
/* responses                                                            */

static void common_headers(struct MHD_Response *r, const char *cache)
{
	MHD_add_response_header(r, "Content-Security-Policy", CSP);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, cache);
}

/* Every response goes out here: the common headers, then queued (r is
 * released; NULL, a response that could not be made, closes the connection). */
enum MHD_Result espl__web_send_response(struct MHD_Connection *c, unsigned status, struct MHD_Response *r,
                                     const char *type, const char *cache)
{
	if (!r)
		return MHD_NO;
	if (type)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	common_headers(r, cache);
	enum MHD_Result rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

/* body is malloc'd and becomes the response's (NULL: out of memory -> 500). */
enum MHD_Result espl__web_reply_owned(struct MHD_Connection *c, unsigned status, const char *type, char *body,
                                   size_t len)
{
	if (!body)
		return espl__web_send_response(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                     MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT), NULL, "no-store");
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r)
		free(body);
	return espl__web_send_response(c, status, r, type, "no-store");
}

enum MHD_Result espl__web_reply_json_text(struct MHD_Connection *c, unsigned status, char *text)
{
	return espl__web_reply_owned(c, status, "application/json; charset=utf-8", text, text ? strlen(text) : 0);
}

enum MHD_Result espl__web_reply_error(struct MHD_Connection *c, unsigned status, const char *message)
{
	json_t *o = json_pack("{s:s}", "error", message);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return espl__web_reply_json_text(c, status, text);
}

static enum MHD_Result reply_asset(struct MHD_Connection *c, const espl_web_asset *a)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(a->size, (void *)a->data, MHD_RESPMEM_PERSISTENT);
	return espl__web_send_response(c, MHD_HTTP_OK, r, a->type, "no-cache");
}

static const espl_web_asset *find_asset(const char *url)
{
	if (strcmp(url, "/") == 0)
		url = "/index.html";
	for (size_t i = 0; i < espl_web_n_assets; i++)
		if (strcmp(espl_web_assets[i].path, url) == 0)
			return &espl_web_assets[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* requests                                                             */

static enum MHD_Result serve_info(espl_web *w, struct MHD_Connection *c)
{
	json_t *o = json_pack("{s:b,s:b,s:b,s:b}", "live", w->o.ui != NULL, "history", w->history.batches != NULL,
	                      "stations", w->history.stations != NULL, "control", w->o.control != NULL);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return espl__web_reply_json_text(c, MHD_HTTP_OK, text);
}

static enum MHD_Result serve_login(espl_web *w, struct MHD_Connection *c, request *rq)
{
	rq->body[rq->len] = '\0';
	char *given = trimmed_copy(rq->body, rq->len);
	int ok = given && (!w->token || token_equal(given, w->token));
	free(given);
	if (!ok)
		return espl__web_reply_error(c, MHD_HTTP_UNAUTHORIZED, "wrong token");
	struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (r && w->token) {
		char cookie[ESPL_WEB_TOKEN_MAX + 64];
		snprintf(cookie, sizeof cookie, COOKIE "=%s; HttpOnly; SameSite=Strict; Path=/", w->token);
		MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, cookie);
	}
	return espl__web_send_response(c, MHD_HTTP_NO_CONTENT, r, NULL, "no-store");
}

static enum MHD_Result serve_control(espl_web *w, struct MHD_Connection *c)
{
	const char *action = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "action");
	const char *port = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "port");
	const char *marker = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Espline-Control");
	if (!w->o.control)
		return espl__web_reply_error(c, MHD_HTTP_FORBIDDEN, "read-only: start the station with --http-control");
	if (!marker || strcmp(marker, "1") != 0)
		return espl__web_reply_error(c, MHD_HTTP_FORBIDDEN, "control requests carry X-Espline-Control: 1");
	if (!action || (strcmp(action, "stop") && strcmp(action, "pause") && strcmp(action, "resume")))
		return espl__web_reply_error(c, MHD_HTTP_BAD_REQUEST, "action=stop|pause|resume is needed");
	espl_error err = { 0, "" };
	int rc = w->o.control(w->o.control_ctx, action, port && *port ? port : NULL, &err);
	if (rc == ESPL_OK)
		return espl__web_reply_json_text(c, MHD_HTTP_OK, strdup("{\"ok\":true}"));
	unsigned status = rc == ESPL_EUNSUPPORTED ? MHD_HTTP_NOT_IMPLEMENTED
	                  : rc == ESPL_ENOTFOUND  ? MHD_HTTP_NOT_FOUND
	                  : rc == ESPL_EARG       ? MHD_HTTP_BAD_REQUEST
	                                          : MHD_HTTP_CONFLICT;
	return espl__web_reply_error(c, status, err.msg[0] ? err.msg : espl_strerror(rc));
}

static int is_db_route(const char *url)
{
	static const char *const routes[] = { "/api/batches", "/api/report", "/api/history", "/api/export.csv",
		                              "/api/export.json", "/api/stations" };
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
		if (strcmp(url, routes[i]) == 0)
			return 1;
	return 0;
}

static enum MHD_Result route(espl_web *w, struct MHD_Connection *c, const char *url, int post, request *rq)
{
	const espl_web_asset *asset = post ? NULL : find_asset(url);
	if (asset)
		return reply_asset(c, asset);
	if (post && strcmp(url, "/api/login") == 0)
		return serve_login(w, c, rq);
	if (strncmp(url, "/api/", 5) != 0 && strcmp(url, "/events") != 0)
		return espl__web_reply_error(c, MHD_HTTP_NOT_FOUND, "no such page");
	if (!authorized(w, c))
		return espl__web_reply_error(c, MHD_HTTP_UNAUTHORIZED, "a token is needed");
	if (strcmp(url, "/api/control") == 0)
		return post ? serve_control(w, c) : espl__web_reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "POST only");
	if (post)
		return espl__web_reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only");
	if (strcmp(url, "/api/info") == 0)
		return serve_info(w, c);
	if (strcmp(url, "/events") == 0 || strcmp(url, "/api/state") == 0) {
		if (!w->o.ui)
			return espl__web_reply_error(c, MHD_HTTP_NOT_FOUND, "no live station here (espline serve)");
		if (url[1] == 'e')
			return espl__web_serve_events(w, c);
		return espl__web_reply_json_text(c, MHD_HTTP_OK, espl_ui_snapshot_text(w->o.ui));
	}
	if (is_db_route(url))
		return espl__web_serve_db(w, c, url);
	return espl__web_reply_error(c, MHD_HTTP_NOT_FOUND, "no such page");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **req_cls)
{
	espl_web *w = cls;
	request *rq = *req_cls;
	int post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
	(void)version;
	if (!rq) {
		if (!post && strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
			return espl__web_reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET, HEAD or POST");
		if (!(rq = calloc(1, sizeof *rq)))
			return MHD_NO;
		*req_cls = rq;
		const char *length = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (length && strtoull(length, NULL, 10) > BODY_MAX)
			return espl__web_reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large");
		if (!post)
			return route(w, c, url, 0, rq);
		return MHD_YES;
	}
	if (*upload_size) {
		if (rq->len + *upload_size > BODY_MAX)
			rq->too_big = 1;
		else
			memcpy(rq->body + rq->len, upload, *upload_size), rq->len += *upload_size;
		*upload_size = 0;
		return MHD_YES;
	}
	if (rq->too_big)
		return espl__web_reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large");
	return route(w, c, url, post, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode why)
{
	(void)cls, (void)c, (void)why;
	free(*req_cls);
	*req_cls = NULL;
}

/* Bound what the kernel holds for a browser that stops reading, as the
 * stream buffer bounds what we hold: loopback send buffers grow to
 * megabytes otherwise, and a hung tab would take that much per connection
 * before its events start being dropped. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode toe)
{
	(void)cls, (void)socket_ctx;
	if (toe != MHD_CONNECTION_NOTIFY_STARTED)
		return;
	const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	int size = SOCKET_SEND_BUFFER;
	if (info)
		setsockopt(info->connect_fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}

/* ------------------------------------------------------------------ */
/* start and stop                                                       */

static int check_options(espl_web *w, const struct sockaddr_storage *sa, espl_error *err)
{
	if (!w->token && !sockaddr_is_loopback(sa))
		return espl_fail(err, ESPL_EARG,
		                 "--http %s is not a loopback address: a token is needed "
		                 "(--http-token-file FILE or $ESPLINE_HTTP_TOKEN)", w->o.listen);
	if (!w->token && w->o.control)
		return espl_fail(err, ESPL_EARG,
		                 "--http-control needs a token (--http-token-file FILE or $ESPLINE_HTTP_TOKEN)");
	if (w->token)
		return check_token(w->token, "the options", err);
	return ESPL_OK;
}

static int copy_strings(espl_web *w, const espl_web_options *opts)
{
	w->token = opts->token ? strdup(opts->token) : NULL;
	w->db_path = opts->db_path ? strdup(opts->db_path) : NULL;
	if (opts->history)
		w->history = *opts->history;
	else if (w->db_path)
		espl__web_history_local(&w->history, w->db_path);
	return (opts->token && !w->token) || (opts->db_path && !w->db_path) ? -1 : 0;
}

int espl_web_start(const espl_web_options *opts, espl_web **out, espl_error *err)
{
	struct sockaddr_storage sa;
	socklen_t sa_len;
	*out = NULL;
	espl_web *w = calloc(1, sizeof *w);
	if (!w)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	pthread_condattr_init(&w->mono);
	pthread_condattr_setclock(&w->mono, CLOCK_MONOTONIC);
	pthread_mutex_init(&w->lock, NULL);
	if (copy_strings(w, opts) < 0) {
		espl_web_stop(w);
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	}
	w->o = *opts;
	if (!w->o.listen)
		w->o.listen = "127.0.0.1:8080";
	w->o.max_connections = w->o.max_connections ? w->o.max_connections : 64;
	w->o.max_streams = w->o.max_streams ? w->o.max_streams : 32;
	w->o.stream_buffer = w->o.stream_buffer ? w->o.stream_buffer : 64 * 1024;
	int rc = parse_listen(w->o.listen, &sa, &sa_len, err);
	if (rc == ESPL_OK)
		rc = check_options(w, &sa, err);
	if (rc < 0) {
		espl_web_stop(w);
		return rc;
	}
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
	if (sa.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	w->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, w,
	                             MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
	                             MHD_OPTION_CONNECTION_LIMIT, w->o.max_connections,
	                             MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HEADER_MEMORY,
	                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(2 * KEEPALIVE_S),
	                             MHD_OPTION_NOTIFY_COMPLETED, on_completed, w,
	                             MHD_OPTION_NOTIFY_CONNECTION, on_connection, w,
	                             MHD_OPTION_END);
	if (!w->daemon) {
		espl_web_stop(w);
		return espl_fail(err, ESPL_ESYS, "--http %s: cannot listen there (in use, or not this host's address?)",
		                 opts->listen ? opts->listen : "127.0.0.1:8080");
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(w->daemon, MHD_DAEMON_INFO_BIND_PORT);
	w->port = info ? info->port : 0;
	(void)sa_len;
	*out = w;
	return ESPL_OK;
}

unsigned espl_web_port(const espl_web *w)
{
	return w->port;
}

void espl_web_stats(espl_web *w, unsigned long long *streams, unsigned long long *overflows)
{
	pthread_mutex_lock(&w->lock);
	*streams = w->streams_served;
	*overflows = w->overflows;
	pthread_mutex_unlock(&w->lock);
}

void espl_web_stop(espl_web *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = 1;
	for (stream *s = w->streams; s; s = s->next)
		pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&w->lock);
	if (w->daemon)
		MHD_stop_daemon(w->daemon);
	pthread_condattr_destroy(&w->mono);
	pthread_mutex_destroy(&w->lock);
	free(w->token);
	free(w->db_path);
	free(w);
}
