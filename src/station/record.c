/* record.c - unit results to database records; see include/espline/record.h. */
#include "espline/record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int was_stopped(const espl_unit_result *res)
{
	return res->failed_phase == ESPL_PHASE_STOPPED ||
	       res->first_error.code == ESPL_EINTERRUPTED;
}

enum espl_db_result espl_record_result(const espl_unit_result *res)
{
	if (res->pass)
		return ESPL_DB_PASS;
	return was_stopped(res) ? ESPL_DB_INTERRUPTED : ESPL_DB_FAIL;
}

static const espl_step_result *failed_step(const espl_unit_result *res)
{
	for (size_t i = 0; i < res->n_steps; i++)
		if (res->steps[i].status == ESPL_STEP_FAILED)
			return &res->steps[i];
	return NULL;
}

void espl_record_error_kind(const espl_unit_result *res, char *out, size_t len)
{
	const char *phase = res->failed_phase != ESPL_PHASE_NONE ? espl_phase_name(res->failed_phase) : "unit";
	const espl_step_result *sr;

	if (res->pass) {
		snprintf(out, len, "%s", "");
		return;
	}
	if (was_stopped(res)) {
		snprintf(out, len, "%s", "interrupted");
		return;
	}
	sr = res->failed_phase == ESPL_PHASE_STEP ? failed_step(res) : NULL;
	if (sr)
		snprintf(out, len, "%s: %s", espl_step_kind_name(sr->step->kind), espl_strerror(sr->error.code));
	else
		snprintf(out, len, "%s: %s", phase, espl_strerror(res->first_error.code));
}

static int64_t ms_of(double seconds)
{
	return (int64_t)(seconds * 1000.0 + 0.5);
}

void espl_record_begin(const espl_unit_result *res, const espl_record_context *ctx,
                       espl_db_unit *out)
{
	memset(out, 0, sizeof *out);
	snprintf(out->uuid, sizeof out->uuid, "%s", ctx->unit_uuid);
	snprintf(out->batch_uuid, sizeof out->batch_uuid, "%s", ctx->batch_uuid);
	if (res->identified) {
		out->mac = res->chip.mac_str;
		out->chip_id = res->chip.chip_id;
		out->flash_id = res->chip.flash_id;
		out->manufacturer = res->chip.flash_vendor;
		out->flash_size = (uint32_t)res->chip.flash_size;
		out->crystal_mhz = (int)res->chip.xtal_mhz;
	}
	out->port = ctx->port ? ctx->port : res->port;
	out->adapter_serial = ctx->adapter_serial && *ctx->adapter_serial ? ctx->adapter_serial : NULL;
	out->adapter_location = ctx->adapter_location && *ctx->adapter_location ? ctx->adapter_location : NULL;
	out->slot = ctx->slot && *ctx->slot ? ctx->slot : NULL;
	out->barcode = ctx->barcode && *ctx->barcode ? ctx->barcode : NULL;
	out->label = ctx->label && *ctx->label ? ctx->label : NULL;
	out->started_ms = res->started_unix_ms;
	out->result = ESPL_DB_RUNNING;
}

/* The first region a step wrote: what a write step's MD5 columns describe. */
static const espl_written_region *region_of(const espl_unit_result *res, unsigned step)
{
	for (size_t i = 0; i < res->n_regions; i++)
		if (res->regions[i].step == step)
			return &res->regions[i];
	return NULL;
}

static int step_result(const espl_step_result *sr)
{
	if (sr->status == ESPL_STEP_PASSED)
		return sr->bytes == 0 && sr->bytes_skipped > 0 ? ESPL_DB_SKIPPED : ESPL_DB_PASS;
	return sr->error.code == ESPL_EINTERRUPTED ? ESPL_DB_INTERRUPTED : ESPL_DB_FAIL;
}

static void map_step(const espl_unit_result *res, size_t i, espl_db_step *out)
{
	const espl_step_result *sr = &res->steps[i];
	const espl_step *s = sr->step;
	const espl_written_region *w = region_of(res, s->number);

	memset(out, 0, sizeof *out);
	out->index = (int)i;
	out->kind = espl_step_kind_name(s->kind);
	out->bytes = sr->bytes;
	out->duration_ms = ms_of(sr->duration_s);
	out->retries = sr->attempts > 0 ? (int)sr->attempts - 1 : 0;
	out->result = step_result(sr);
	out->error = sr->status == ESPL_STEP_FAILED ? sr->error.msg : NULL;
	out->detail = sr->detail;
	switch (s->kind) {
	case ESPL_STEP_WRITE:
	case ESPL_STEP_WRITE_INIT_DATA:
	case ESPL_STEP_WRITE_UNIT_DATA:
		if (w) {
			out->address = w->address;
			out->length = w->length;
			out->expected_md5 = w->expected_md5[0] ? w->expected_md5 : NULL;
			out->actual_md5 = w->actual_md5[0] ? w->actual_md5 : NULL;
		}
		break;
	case ESPL_STEP_VERIFY:
		out->address = sr->md5_address;
		out->length = sr->md5_length;
		out->expected_md5 = sr->expected_md5[0] ? sr->expected_md5 : NULL;
		out->actual_md5 = sr->actual_md5[0] ? sr->actual_md5 : NULL;
		break;
	case ESPL_STEP_ERASE:
		if (s->erase.chip) {
			out->length = res->identified ? (uint32_t)res->chip.flash_size : 0;
		} else if (s->erase.n_regions) {
			out->address = s->erase.regions[0].address;
			out->length = (uint32_t)sr->bytes;
		}
		break;
	case ESPL_STEP_READ:
		out->address = s->read.address;
		out->length = s->read.length;
		break;
	case ESPL_STEP_RESET:
	case ESPL_STEP_BOOT_CHECK:
		break;
	}
}

int espl_record_step(const espl_unit_result *res, const espl_step_result *sr, espl_db_step *out)
{
	if (!sr || sr < res->steps || sr >= res->steps + res->n_steps || sr->attempts == 0)
		return ESPL_EARG;
	map_step(res, (size_t)(sr - res->steps), out);
	return ESPL_OK;
}

int espl_record_from_result(const espl_unit_result *res, const espl_record_context *ctx,
                            espl_record *out, espl_error *err)
{
	size_t ran = 0;

	memset(out, 0, sizeof *out);
	espl_record_begin(res, ctx, &out->unit);
	out->unit.duration_ms = ms_of(res->duration_s);
	/* what the unit was given, whatever its result: its flash may hold it */
	out->unit.serial = res->reserved && res->identity.serial[0] ? res->identity.serial : NULL;
	/* the operator's wait (a scan) is in the unit's span, not its duration */
	out->unit.ended_ms = out->unit.started_ms + out->unit.duration_ms + ms_of(res->operator_wait_s);
	out->unit.result = espl_record_result(res);
	espl_record_error_kind(res, out->error_kind, sizeof out->error_kind);
	if (!res->pass) {
		snprintf(out->error, sizeof out->error, "%s",
		         res->first_error.msg[0] ? res->first_error.msg : "failed (no detail)");
		out->unit.error = out->error;
		out->unit.error_kind = out->error_kind;
	}
	for (size_t i = 0; i < res->n_steps; i++)
		ran += res->steps[i].attempts > 0;
	if (ran) {
		out->steps = calloc(ran, sizeof *out->steps);
		if (!out->steps)
			return espl_fail(err, ESPL_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < res->n_steps; i++)
		if (res->steps[i].attempts > 0)
			map_step(res, i, &out->steps[out->n_steps++]);
	return ESPL_OK;
}

void espl_record_interrupted(const espl_db_unit *begin, int64_t now_ms, const char *reason,
                             espl_record *out)
{
	memset(out, 0, sizeof *out);
	out->unit = *begin;
	out->unit.ended_ms = now_ms;
	out->unit.duration_ms = now_ms > begin->started_ms ? now_ms - begin->started_ms : 0;
	out->unit.result = ESPL_DB_INTERRUPTED;
	snprintf(out->error_kind, sizeof out->error_kind, "%s", "interrupted");
	snprintf(out->error, sizeof out->error, "%s", reason ? reason : "interrupted");
	out->unit.error_kind = out->error_kind;
	out->unit.error = out->error;
}

void espl_record_free(espl_record *rec)
{
	free(rec->steps);
	rec->steps = NULL;
	rec->n_steps = 0;
}
