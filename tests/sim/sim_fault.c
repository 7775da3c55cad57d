/*
 * sim_fault.c - fault specs and the per-byte fault engine.
 */
#include "sim_fault.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ESP32_MAGIC 0x00F01D83u
#define DEFAULT_UNPLUG_MS 1000u

static const char *const kind_names[SIM_FAULT_KINDS] = {
	[SIM_FAULT_DROP] = "drop",
	[SIM_FAULT_CORRUPT] = "corrupt",
	[SIM_FAULT_STALL] = "stall",
	[SIM_FAULT_UNPLUG] = "unplug",
	[SIM_FAULT_RESET] = "reset",
	[SIM_FAULT_FLASH_UNPLUG] = "unplug@flash",
	[SIM_FAULT_FLASH_RESET] = "reset@flash",
	[SIM_FAULT_STUCK] = "stuck",
	[SIM_FAULT_SILENT] = "silent",
	[SIM_FAULT_MAGIC] = "magic",
};

const char *sim_fault_kind_name(enum sim_fault_kind kind)
{
	return (unsigned)kind < SIM_FAULT_KINDS ? kind_names[kind] : "?";
}

int sim_parse_size(const char *s, uint64_t *out)
{
	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -1;
	uint64_t mult = 1;
	if (*end == 'K' || *end == 'k')
		mult = 1024, end++;
	else if (*end == 'M' || *end == 'm')
		mult = 1024 * 1024, end++;
	if (mult != 1 && (*end == 'B' || *end == 'b'))
		end++;
	if (*end)
		return -1;
	if (v > UINT64_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

static int fail(char *err, size_t errlen, const char *spec, const char *why)
{
	snprintf(err, errlen, "bad fault \"%s\": %s", spec, why);
	return -1;
}

/* "[rx:|tx:]REST": strip the direction, default rx. */
static const char *parse_dir(const char *s, enum sim_dir *dir)
{
	*dir = SIM_RX;
	if (!strncmp(s, "rx:", 3))
		return s + 3;
	if (!strncmp(s, "tx:", 3)) {
		*dir = SIM_TX;
		return s + 3;
	}
	return s;
}

/* "N[:MS]" into at and ms; ms_required says whether ":MS" must be there. */
static int parse_at_ms(const char *s, sim_fault *f, int ms_allowed, int ms_required)
{
	char buf[64];
	if (strlen(s) >= sizeof buf)
		return -1;
	strcpy(buf, s);
	char *colon = strchr(buf, ':');
	if (colon)
		*colon = '\0';
	if (sim_parse_size(buf, &f->at))
		return -1;
	if (!colon)
		return ms_required ? -1 : 0;
	if (!ms_allowed)
		return -1;
	uint64_t ms;
	if (sim_parse_size(colon + 1, &ms) || ms > 3600u * 1000u)
		return -1;
	f->ms = (unsigned)ms;
	return 0;
}

static int parse_probability(const char *s, double *p)
{
	if (!*s)
		return -1;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || !(v > 0.0) || v > 1.0)
		return -1;
	*p = v;
	return 0;
}

static int parse_positional(const char *spec, const char *rest, enum sim_fault_kind kind,
                            sim_fault *f, char *err, size_t errlen)
{
	f->kind = kind;
	if (!strncmp(rest, "flash:", 6)) {
		if (kind != SIM_FAULT_UNPLUG && kind != SIM_FAULT_RESET)
			return fail(err, errlen, spec, "only unplug and reset take @flash:OFFSET");
		f->kind = kind == SIM_FAULT_UNPLUG ? SIM_FAULT_FLASH_UNPLUG : SIM_FAULT_FLASH_RESET;
		f->ms = DEFAULT_UNPLUG_MS;
		if (parse_at_ms(rest + 6, f, kind == SIM_FAULT_UNPLUG, 0))
			return fail(err, errlen, spec, "expected @flash:OFFSET[:MS]");
		return 0;
	}
	rest = parse_dir(rest, &f->dir);
	switch (kind) {
	case SIM_FAULT_STALL:
		if (parse_at_ms(rest, f, 1, 1))
			return fail(err, errlen, spec, "expected stall@[rx:|tx:]N:MS");
		return 0;
	case SIM_FAULT_UNPLUG:
		f->ms = DEFAULT_UNPLUG_MS;
		if (parse_at_ms(rest, f, 1, 0))
			return fail(err, errlen, spec, "expected unplug@[rx:|tx:]N[:MS]");
		return 0;
	default:
		if (parse_at_ms(rest, f, 0, 0))
			return fail(err, errlen, spec, "expected a byte number after @ (e.g. drop@2000, drop@tx:17)");
		return 0;
	}
}

int sim_fault_parse(const char *spec, sim_fault *out, char *err, size_t errlen)
{
	sim_fault f = { .dir = SIM_RX };
	static const struct { const char *name; enum sim_fault_kind kind; } byte_kinds[] = {
		{ "drop", SIM_FAULT_DROP }, { "corrupt", SIM_FAULT_CORRUPT },
		{ "stall", SIM_FAULT_STALL }, { "unplug", SIM_FAULT_UNPLUG },
		{ "reset", SIM_FAULT_RESET },
	};
	if (!strcmp(spec, "silent")) {
		f.kind = SIM_FAULT_SILENT;
	} else if (!strcmp(spec, "wrong-chip")) {
		f.kind = SIM_FAULT_MAGIC;
		f.magic = ESP32_MAGIC;
	} else if (!strncmp(spec, "magic:", 6)) {
		uint64_t v;
		if (sim_parse_size(spec + 6, &v) || v > 0xFFFFFFFFu || v == 0)
			return fail(err, errlen, spec, "expected magic:HEX (non-zero 32-bit)");
		f.kind = SIM_FAULT_MAGIC;
		f.magic = (uint32_t)v;
	} else if (!strncmp(spec, "stuck@", 6)) {
		f.kind = SIM_FAULT_STUCK;
		if (sim_parse_size(spec + 6, &f.at))
			return fail(err, errlen, spec, "expected stuck@FLASH_OFFSET");
	} else {
		size_t i;
		for (i = 0; i < sizeof byte_kinds / sizeof byte_kinds[0]; i++) {
			size_t len = strlen(byte_kinds[i].name);
			if (strncmp(spec, byte_kinds[i].name, len) || (spec[len] != '@' && spec[len] != '~'))
				continue;
			const char *rest = spec + len + 1;
			if (spec[len] == '@') {
				if (parse_positional(spec, rest, byte_kinds[i].kind, &f, err, errlen))
					return -1;
			} else {
				if (byte_kinds[i].kind != SIM_FAULT_DROP && byte_kinds[i].kind != SIM_FAULT_CORRUPT)
					return fail(err, errlen, spec, "only drop and corrupt can be random (~P)");
				f.kind = byte_kinds[i].kind;
				f.random = 1;
				if (parse_probability(parse_dir(rest, &f.dir), &f.p))
					return fail(err, errlen, spec, "expected a probability 0 < P <= 1 after ~");
			}
			break;
		}
		if (i == sizeof byte_kinds / sizeof byte_kinds[0])
			return fail(err, errlen, spec, "unknown fault (see espline-sim --help)");
	}
	*out = f;
	return 0;
}

void sim_fault_chip_faults(const sim_fault *faults, size_t n, sim_chip_faults *out)
{
	out->silent = 0;
	out->chip_magic = 0;
	out->stuck_sector = -1;
	out->unplug_at_flash_offset = -1;
	out->reset_at_flash_offset = -1;
	for (size_t i = 0; i < n; i++) {
		const sim_fault *f = &faults[i];
		switch (f->kind) {
		case SIM_FAULT_SILENT: out->silent = 1; break;
		case SIM_FAULT_MAGIC: out->chip_magic = f->magic; break;
		case SIM_FAULT_STUCK: out->stuck_sector = (long)(f->at / 4096); break;
		case SIM_FAULT_FLASH_UNPLUG: out->unplug_at_flash_offset = (long)f->at; break;
		case SIM_FAULT_FLASH_RESET: out->reset_at_flash_offset = (long)f->at; break;
		default: break;
		}
	}
}

uint64_t sim_rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rng_unit(uint64_t *state)
{
	return (double)(sim_rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

void sim_fault_engine_init(sim_fault_engine *e, const sim_fault *faults, size_t n, uint64_t seed)
{
	memset(e, 0, sizeof *e);
	if (n > SIM_FAULTS_MAX)
		n = SIM_FAULTS_MAX;
	memcpy(e->faults, faults, n * sizeof *faults);
	e->n = n;
	e->rng = seed;
}

static uint8_t flip_one_bit(sim_fault_engine *e, uint8_t b)
{
	return (uint8_t)(b ^ (1u << (sim_rng_next(&e->rng) % 8)));
}

void sim_fault_byte(sim_fault_engine *e, enum sim_dir dir, uint8_t byte, sim_byte_verdict *v)
{
	memset(v, 0, sizeof *v);
	v->pass = 1;
	v->byte = byte;
	v->fault_index = -1;
	uint64_t index = e->count[dir]++;
	for (size_t i = 0; i < e->n; i++) {
		const sim_fault *f = &e->faults[i];
		if (f->kind > SIM_FAULT_RESET || f->dir != dir)
			continue;
		if (f->random) {
			/* Draw for every byte, hit or not, so the sequence of
			 * decisions depends only on the seed and byte count. */
			if (rng_unit(&e->rng) >= f->p || !v->pass)
				continue;
		} else {
			if (e->fired[i] || f->at != index)
				continue;
			e->fired[i] = 1;
			v->fault_index = (int)i;
		}
		e->injected[dir][f->kind]++;
		switch (f->kind) {
		case SIM_FAULT_DROP: v->pass = 0; v->dropped = 1; break;
		case SIM_FAULT_CORRUPT: v->byte = flip_one_bit(e, v->byte); v->corrupted = 1; break;
		case SIM_FAULT_STALL: v->stall_ms += f->ms; break;
		case SIM_FAULT_UNPLUG: v->pass = 0; v->unplug = 1; v->unplug_ms = f->ms; break;
		case SIM_FAULT_RESET: v->pass = 0; v->reset = 1; break;
		default: break;
		}
	}
}

unsigned long sim_fault_total(const sim_fault_engine *e)
{
	unsigned long total = 0;
	for (int d = 0; d < 2; d++)
		for (int k = 0; k < SIM_FAULT_KINDS; k++)
			total += e->injected[d][k];
	return total;
}
