/* error.c - error values with context; see include/espline/error.h. */
#include "espline/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *espl_strerror(int code)
{
	switch (code) {
	case ESPL_OK: return "ok";
	case ESPL_EARG: return "invalid argument";
	case ESPL_ESYS: return "system error";
	case ESPL_ENOMEM: return "out of memory";
	case ESPL_ETIMEOUT: return "timeout";
	case ESPL_EPROTO: return "protocol error";
	case ESPL_EDEVICE: return "device error";
	case ESPL_EUNSUPPORTED: return "not supported";
	case ESPL_ENOTFOUND: return "not found";
	case ESPL_EDISCONNECTED: return "disconnected";
	case ESPL_EMISMATCH: return "mismatch";
	case ESPL_ECHIP: return "wrong chip";
	case ESPL_ERECIPE: return "recipe error";
	case ESPL_EDB: return "database error";
	case ESPL_EINTERRUPTED: return "interrupted";
	case ESPL_EBUSY: return "busy";
	case ESPL_EPERM: return "permission denied";
	case ESPL_EPART: return "wrong part";
	case ESPL_EBOOT: return "did not boot";
	case ESPL_EREFUSED: return "refused";
	default: return "unknown error";
	}
}

static void set_message(espl_error *err, const char *fmt, va_list ap)
{
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

int espl_fail(espl_error *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		err->code = code;
		set_message(err, fmt, ap);
		va_end(ap);
	}
	return code;
}

static int code_from_errno(int e)
{
	switch (e) {
	case ENOENT: case ENODEV: case ENXIO: return ESPL_ENOTFOUND;
	case EACCES: case EPERM: return ESPL_EPERM;
	case EBUSY: return ESPL_EBUSY;
	case ENOMEM: return ESPL_ENOMEM;
	case EIO: case EPIPE: case ECONNRESET: return ESPL_EDISCONNECTED;
	case ETIMEDOUT: return ESPL_ETIMEOUT;
	default: return ESPL_ESYS;
	}
}

int espl_fail_errno(espl_error *err, const char *fmt, ...)
{
	int saved = errno;
	int code = code_from_errno(saved);
	if (err) {
		va_list ap;
		size_t len;
		va_start(ap, fmt);
		err->code = code;
		set_message(err, fmt, ap);
		va_end(ap);
		len = strlen(err->msg);
		snprintf(err->msg + len, sizeof err->msg - len, ": %s", strerror(saved));
	}
	errno = saved;
	return code;
}

void espl_error_prefix(espl_error *err, const char *fmt, ...)
{
	char old[ESPL_ERROR_MAX];
	size_t len;
	va_list ap;

	if (!err)
		return;
	memcpy(old, err->msg, sizeof old);
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	len = strlen(err->msg);
	if (len + 2 < sizeof err->msg) {
		memcpy(err->msg + len, ": ", 2);
		len += 2;
		size_t room = sizeof err->msg - len - 1;
		size_t tail = strnlen(old, room);
		memcpy(err->msg + len, old, tail);
		err->msg[len + tail] = '\0';
	}
}

void espl_error_clear(espl_error *err)
{
	if (err) {
		err->code = ESPL_OK;
		err->msg[0] = '\0';
	}
}
