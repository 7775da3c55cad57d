/*
 * sim_ram.c - what the host uploads into the simulated chip's RAM with
 * MEM_BEGIN/MEM_DATA, and what the CPU finds when MEM_END jumps to an entry
 * point.  A flasher stub is recognised by its entry point and the SHA-256 of
 * the region holding it, so the simulated stub answers as the build that was
 * really uploaded (docs/simulator-fidelity.md).  Only hashes are kept here,
 * never a stub.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_chip_int.h"

typedef struct known_stub {
	uint32_t entry;
	const char *sha256;  /* of the text segment, as uploaded */
	enum sim_stub_kind kind;
	const char *what;
} known_stub;

/* Where each hash comes from: docs/simulator-fidelity.md, "Stub builds". */
static const known_stub known[] = {
	{ 0x4010D004, "9c3813f9ba2961606809e106a0d736a490c500808b8c059667015ce3ddcd5b8c",
	  SIM_STUB_LEGACY_OLD, "legacy stub of esptool v4.5-v4.6.1 (esptool-js 0.4.x)" },
	{ 0x4010D004, "0914cbde7b50fb4a4648795d83d4181f808a99073640cdcee6e4dfa958855cef",
	  SIM_STUB_LEGACY_OLD, "legacy stub of esptool v4.6.2-v5.1 (legacy-flasher-stub <= v1.8)" },
	{ 0x4010D004, "4dd755cefff7947b6a93f3acabcf7bda1b06630d5ad324022a7cfe4f07114ea8",
	  SIM_STUB_LEGACY, "legacy-flasher-stub v1.11.1 (esptool v5.3)" },
	{ 0x4010C504, "37c16091ff165ffe760353a8e92d07f55927e34d01fb5fc04c18b5525c13f8f6",
	  SIM_STUB_EFS, "esp-flasher-stub v1.2.2 (esptool-js 0.7.0)" },
};

void sim_log(sim_chip *c, const char *fmt, ...)
{
	if (!c->io.log)
		return;
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	c->io.log(c->io.ctx, line);
}

void sim_ram_free(sim_chip *c)
{
	for (int i = 0; i < SIM_RAM_SEGMENTS; i++) {
		free(c->ram.seg[i].bytes);
		memset(&c->ram.seg[i], 0, sizeof c->ram.seg[i]);
	}
	c->ram.cur = -1;
}

static int segment_for(sim_chip *c, uint32_t addr)
{
	int empty = -1;
	for (int i = 0; i < SIM_RAM_SEGMENTS; i++) {
		if (c->ram.seg[i].bytes && c->ram.seg[i].addr == addr)
			return i;
		if (!c->ram.seg[i].bytes && empty < 0)
			empty = i;
	}
	if (empty >= 0)
		return empty;
	/* all taken: the oldest upload goes (a host rarely uses more than two) */
	free(c->ram.seg[0].bytes);
	memmove(&c->ram.seg[0], &c->ram.seg[1], sizeof c->ram.seg[0] * (SIM_RAM_SEGMENTS - 1));
	memset(&c->ram.seg[SIM_RAM_SEGMENTS - 1], 0, sizeof c->ram.seg[0]);
	return SIM_RAM_SEGMENTS - 1;
}

void sim_ram_begin(sim_chip *c, uint32_t addr, uint32_t size)
{
	int i = segment_for(c, addr);
	sim_ram_seg *s = &c->ram.seg[i];
	uint32_t keep = size < SIM_RAM_SEGMENT_MAX ? size : SIM_RAM_SEGMENT_MAX;
	uint8_t *bytes = realloc(s->bytes, keep ? keep : 1);
	if (!bytes) {
		c->ram.cur = -1;  /* out of memory: the upload is not remembered */
		return;
	}
	s->bytes = bytes;
	s->addr = addr;
	s->size = keep;
	s->filled = 0;
	c->ram.cur = i;
}

void sim_ram_append(sim_chip *c, const uint8_t *p, size_t n)
{
	if (c->ram.cur < 0)
		return;
	sim_ram_seg *s = &c->ram.seg[c->ram.cur];
	size_t room = s->size - s->filled;
	if (n > room)
		n = room;
	memcpy(s->bytes + s->filled, p, n);
	s->filled += (uint32_t)n;
}

static void sha256_hex(const uint8_t *p, size_t n, char out[65])
{
	uint8_t digest[32];
	unsigned len = 0;
	EVP_Digest(p, n, digest, &len, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

int sim_ram_identify(sim_chip *c, uint32_t entry, enum sim_stub_kind *kind)
{
	const sim_ram_seg *s = NULL;
	for (int i = 0; i < SIM_RAM_SEGMENTS && !s; i++) {
		const sim_ram_seg *t = &c->ram.seg[i];
		if (t->bytes && t->filled > 0 && entry >= t->addr && entry - t->addr < t->filled)
			s = t;
	}
	if (!s)
		return -1;
	char hex[65];
	sha256_hex(s->bytes, s->filled, hex);
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
		if (known[i].entry == entry && strcmp(known[i].sha256, hex) == 0) {
			*kind = known[i].kind;
			sim_log(c, "stub: %s", known[i].what);
			return 0;
		}
	}
	*kind = SIM_STUB_LEGACY;
	sim_log(c, "stub: unknown build (entry 0x%08x, text sha256 %.16s...): answering as the legacy stub",
		(unsigned)entry, hex);
	return 0;
}
