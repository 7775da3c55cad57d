/* flash.c - erase, write, verify and read flash through a loader; see
 * include/espline/flash.h. */
#include "espline/flash.h"
#include "util/clock.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/dev_bytes.h"

#define READ_PACKET 0x1000
#define READ_WINDOW 64

void espl_md5_hex(const uint8_t md5[16], char out[33])
{
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", md5[i]);
}

/* Progress bookkeeping for one step. */
typedef struct step {
	espl_loader *l;
	espl_progress p;
	double started;
} step;

static void step_start(step *s, espl_loader *l, const char *name, uint32_t addr, size_t total)
{
	memset(s, 0, sizeof *s);
	s->l = l;
	s->p.step = name;
	s->p.address = addr;
	s->p.total = total;
	s->started = espl__now_s();
	espl_loader_progress(l, &s->p);
}

static void step_update(step *s, size_t done)
{
	s->p.done = done;
	s->p.elapsed_s = espl__now_s() - s->started;
	s->p.rate = s->p.elapsed_s > 0 ? (double)done / s->p.elapsed_s : 0;
	espl_loader_progress(s->l, &s->p);
}

static int require_stub(espl_loader *l, const char *what, espl_error *err)
{
	if (espl_loader_mode(l) == ESPL_MODE_STUB)
		return 0;
	return espl_fail(err, ESPL_EUNSUPPORTED, "%s needs the flasher stub; the ESP8266 ROM loader "
			 "cannot do it (run without --no-stub)", what);
}

/* ---- erase -------------------------------------------------------------- */

int espl_flash_erase_chip(espl_loader *l, espl_error *err)
{
	step s;
	ESPL_TRY(require_stub(l, "erasing the chip", err));
	step_start(&s, l, "erase", 0, espl_loader_flash_size(l));
	if (espl_loader_command(l, ESPL_OP_ERASE_FLASH, NULL, 0, 0, ESPL_TIMEOUT_CHIP_ERASE_MS, NULL,
				NULL, 0, NULL, err) < 0) {
		espl_error_prefix(err, "erasing the whole flash");
		return err->code;
	}
	step_update(&s, espl_loader_flash_size(l));
	espl_loader_log(l, ESPL_LOG_INFO, "flash erased in %.1f s", s.p.elapsed_s);
	return 0;
}

int espl_flash_erase_region(espl_loader *l, uint32_t addr, uint32_t len, espl_error *err)
{
	uint8_t p[8];
	size_t fsize = espl_loader_flash_size(l);
	step s;

	ESPL_TRY(require_stub(l, "erasing a region", err));
	if (addr % ESPL_SECTOR_SIZE || len % ESPL_SECTOR_SIZE)
		return espl_fail(err, ESPL_EARG, "erase region 0x%X+0x%X: address and length must be "
				 "multiples of 4096 (0x1000)", addr, len);
	if (fsize && (uint64_t)addr + len > fsize)
		return espl_fail(err, ESPL_EARG, "erase region 0x%X+0x%X lies beyond the end of the "
				 "%zu-byte flash", addr, len, fsize);
	espl__put_le32(p, addr);
	espl__put_le32(p + 4, len);
	step_start(&s, l, "erase", addr, len);
	if (espl_loader_command(l, ESPL_OP_ERASE_REGION, p, sizeof p, 0,
				espl_timeout_for(ESPL_ERASE_MS_PER_MB, len), NULL, NULL, 0, NULL, err) < 0) {
		espl_error_prefix(err, "erasing 0x%X..0x%X", addr, addr + len);
		return err->code;
	}
	step_update(&s, len);
	return 0;
}

/* The MD5 of one 64 KiB block of 0xFF (no static buffer: workers share this). */
static int blank_block_md5(uint8_t md5[16], espl_error *err)
{
	uint8_t ff[ESPL_SECTOR_SIZE];
	unsigned n = 16;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok = c && EVP_DigestInit_ex(c, EVP_md5(), NULL);
	memset(ff, 0xFF, sizeof ff);
	for (unsigned i = 0; ok && i < ESPL_FLASH_BLOCK / sizeof ff; i++)
		ok = EVP_DigestUpdate(c, ff, sizeof ff);
	ok = ok && EVP_DigestFinal_ex(c, md5, &n);
	EVP_MD_CTX_free(c);
	return ok ? ESPL_OK : espl_fail(err, ESPL_ENOMEM, "computing the MD5 of a blank block failed");
}

/* Blocks are hashed in a spread order (a stride coprime with the power-of-
 * two block count), so the first few samples span the chip. */
#define SAMPLE_STRIDE 17u
/* This many samples, all dirty: a used chip; erase it whole at once rather
 * than hash half of it first (a chip erase is always correct). */
#define ALL_DIRTY_SAMPLES 8u

/* Hash blocks until done or a chip erase is decided. */
static int find_dirty_blocks(espl_loader *l, const bool *skip, bool *dirty, espl_erase_check *out,
                             espl_error *err)
{
	uint8_t blank[16], md5[16];
	ESPL_TRY(blank_block_md5(blank, err));
	/* 17 is prime: the stride visits every block unless the count is a multiple */
	unsigned stride = out->blocks % SAMPLE_STRIDE ? SAMPLE_STRIDE : 1;
	for (unsigned i = 0; i < out->blocks; i++) {
		unsigned b = (unsigned)((uint64_t)i * stride % out->blocks);
		if (skip && skip[b])
			continue;
		ESPL_TRY(espl_flash_md5(l, b * ESPL_FLASH_BLOCK, ESPL_FLASH_BLOCK, md5, err));
		out->checked++;
		dirty[b] = memcmp(md5, blank, 16) != 0;
		out->dirty += dirty[b];
		if (out->dirty > out->blocks / 2 || (out->checked >= ALL_DIRTY_SAMPLES && out->dirty == out->checked)) {
			out->chip_erased = true;
			return ESPL_OK;
		}
	}
	return ESPL_OK;
}

static int erase_dirty_runs(espl_loader *l, const bool *dirty, espl_erase_check *out, espl_error *err)
{
	for (unsigned b = 0; b < out->blocks;) {
		unsigned end = b;
		while (end < out->blocks && dirty[end])
			end++;
		if (end == b) {
			b++;
			continue;
		}
		uint32_t len = (end - b) * ESPL_FLASH_BLOCK;
		ESPL_TRY(espl_flash_erase_region(l, b * ESPL_FLASH_BLOCK, len, err));
		out->bytes_erased += len;
		b = end;
	}
	return ESPL_OK;
}

int espl_flash_erase_dirty(espl_loader *l, const bool *skip, espl_erase_check *out, espl_error *err)
{
	size_t fsize = espl_loader_flash_size(l);
	memset(out, 0, sizeof *out);
	ESPL_TRY(require_stub(l, "checking the flash for blank blocks", err));
	if (!fsize || fsize % ESPL_FLASH_BLOCK) { /* unknown size: only a chip erase is sure */
		out->chip_erased = true;
		return espl_flash_erase_chip(l, err);
	}
	out->blocks = (unsigned)(fsize / ESPL_FLASH_BLOCK);
	bool *dirty = calloc(out->blocks, sizeof *dirty);
	if (!dirty)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	int rc = find_dirty_blocks(l, skip, dirty, out, err);
	if (rc == ESPL_OK && out->chip_erased) {
		rc = espl_flash_erase_chip(l, err);
		out->bytes_erased = fsize;
	} else if (rc == ESPL_OK) {
		rc = erase_dirty_runs(l, dirty, out, err);
	}
	free(dirty);
	if (rc == ESPL_OK)
		espl_loader_log(l, ESPL_LOG_INFO, "blank check: %u of %u blocks hashed, %u dirty, %s", out->checked,
		                out->blocks, out->dirty, out->chip_erased ? "chip erased" : "dirty blocks erased");
	return rc;
}

/* ---- write -------------------------------------------------------------- */

int espl_flash_check_fits(espl_loader *l, const espl_image *img, espl_error *err)
{
	size_t fsize = espl_loader_flash_size(l);
	if (fsize && (uint64_t)img->address + img->size > fsize)
		return espl_fail(err, ESPL_ECHIP, "%s (%zu bytes at 0x%X) does not fit: the flash on this "
				 "module is only %zu bytes (%zu KB); use a module with a bigger flash or "
				 "a smaller image", img->name, img->size, img->address, fsize, fsize >> 10);
	return 0;
}

/* Errors at one rate before a write steps down the baud ladder: a block
 * that failed twice in a row, or this many failed sends in the write. */
#define STEP_DOWN_AFTER_ERRORS 3

/* Send one block, again after a timeout or a block the stub rejected
 * (bad length or checksum: a byte lost or changed on the way), never after
 * any other error.  *errors counts failed sends at the current rate in
 * this write: when the line keeps failing and the baud ladder has a lower
 * rate, step down to it and send the block again there (the write goes on
 * where it was). */
static int send_block(espl_loader *l, int compressed, const uint8_t *data, size_t len, uint32_t seq,
		      uint32_t nblocks, int timeout_ms, int *errors, espl_error *err)
{
	int attempts = espl_loader_opts(l)->write_block_attempts;
	int rc = 0;

	for (int a = 1; a <= attempts; a++) {
		rc = espl_loader_flash_data(l, compressed, data, len, seq, timeout_ms, err);
		if (rc == 0)
			return 0;
		int retry = rc == ESPL_ETIMEOUT ||
			    (rc == ESPL_EDEVICE && espl_loader_last_was_rejected_block(l));
		if (!retry)
			break;
		++*errors;
		if ((a >= 2 || *errors >= STEP_DOWN_AFTER_ERRORS) && espl_loader_can_step_down(l)) {
			espl_loader_log(l, ESPL_LOG_DEBUG, "block %u/%u: %s", seq + 1, nblocks, err->msg);
			rc = espl_loader_step_down(l, err);
			if (rc < 0)
				break;
			*errors = 0;
			a = 0; /* the block starts its tries afresh at the lower rate */
			continue;
		}
		if (a == attempts)
			break;
		espl_loader_log(l, ESPL_LOG_WARN, "block %u/%u: %s; retrying (%d/%d)", seq + 1, nblocks,
				err->msg, a + 1, attempts);
	}
	espl_error_prefix(err, "writing block %u/%u", seq + 1, nblocks);
	return rc;
}

static int write_compressed(espl_loader *l, const espl_image *img, step *s, espl_error *err)
{
	uint32_t n = (uint32_t)img->zblocks;
	int prev_timeout = ESPL_TIMEOUT_DEFAULT_MS, errors = 0;
	size_t done = 0;

	ESPL_TRY(espl_loader_flash_begin(l, 1, (uint32_t)img->size, n, ESPL_STUB_WRITE_BLOCK,
					 img->address, err));
	for (uint32_t seq = 0; seq < n; seq++) {
		size_t off = (size_t)seq * ESPL_STUB_WRITE_BLOCK;
		size_t len = img->zsize - off < ESPL_STUB_WRITE_BLOCK ? img->zsize - off : ESPL_STUB_WRITE_BLOCK;
		/* The stub is still writing the previous block while it reads
		 * this one, so allow for the larger of the two. */
		int t = espl_timeout_for(ESPL_WRITE_MS_PER_MB, img->zblock_out[seq]);
		int timeout = t > prev_timeout ? t : prev_timeout;
		ESPL_TRY(send_block(l, 1, img->zdata + off, len, seq, n, timeout, &errors, err));
		prev_timeout = t;
		done += img->zblock_out[seq];
		step_update(s, done);
	}
	/* FLASH_DEFL_END waits for the last write and reports any deferred
	 * error (inflate, flash write). */
	return espl_loader_flash_end(l, 1, 0, prev_timeout, err);
}

static int write_plain(espl_loader *l, const espl_image *img, step *s, espl_error *err)
{
	int stub = espl_loader_mode(l) == ESPL_MODE_STUB;
	size_t bs = stub ? ESPL_STUB_WRITE_BLOCK : ESPL_ROM_WRITE_BLOCK;
	uint32_t n = (uint32_t)((img->size + bs - 1) / bs);
	uint8_t *pad = malloc(bs);
	int rc, errors = 0;

	if (!pad)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	rc = espl_loader_flash_begin(l, 0, (uint32_t)img->size, n, (uint32_t)bs, img->address, err);
	for (uint32_t seq = 0; rc == 0 && seq < n; seq++) {
		size_t off = (size_t)seq * bs;
		size_t len = img->size - off < bs ? img->size - off : bs;
		const uint8_t *p = img->data + off;
		if (len < bs) {
			/* The last block is padded with 0xFF to the full size. */
			memcpy(pad, p, len);
			memset(pad + len, 0xFF, bs - len);
			p = pad;
		}
		rc = send_block(l, 0, p, bs, seq, n, espl_timeout_for(ESPL_WRITE_MS_PER_MB, bs), &errors, err);
		if (rc == 0)
			step_update(s, off + len);
	}
	free(pad);
	/* The ROM would leave the loader on FLASH_END; the stub just reports
	 * deferred errors. */
	if (rc == 0 && stub)
		rc = espl_loader_flash_end(l, 0, 0, ESPL_TIMEOUT_DEFAULT_MS, err);
	return rc;
}

int espl_flash_write(espl_loader *l, const espl_image *img, int flags, espl_error *err)
{
	int compressed = (flags & ESPL_WRITE_COMPRESS) && espl_loader_mode(l) == ESPL_MODE_STUB;
	step s;
	int rc;

	ESPL_TRY(espl_flash_check_fits(l, img, err));
	step_start(&s, l, "write", img->address, img->size);
	rc = compressed ? write_compressed(l, img, &s, err) : write_plain(l, img, &s, err);
	if (rc < 0) {
		espl_error_prefix(err, "writing %s at 0x%X", img->name, img->address);
		return rc;
	}
	espl_loader_log(l, ESPL_LOG_INFO, "wrote %zu bytes (%zu on the wire) at 0x%08X in %.1f s",
			img->size, compressed ? img->zsize : img->size, img->address, s.p.elapsed_s);
	return 0;
}

/* ---- write only what differs -------------------------------------------- */

static int is_blank_md5(const uint8_t md5[16], size_t len);

/* Mark in diff[] the chunks of img whose MD5 on the chip differs from the
 * image's.  One SPI_FLASH_MD5 round trip per chunk.  A garbled reply can
 * only make a chunk look different (and be written again), never equal. */
static int find_changed_chunks(espl_loader *l, const espl_image *img, uint32_t chunk, bool *diff,
			       size_t n, espl_error *err)
{
	for (size_t i = 0; i < n; i++) {
		size_t off = i * chunk;
		uint32_t len = (uint32_t)(img->size - off < chunk ? img->size - off : chunk);
		uint8_t chip[16], mine[16];
		unsigned mlen = 16;
		ESPL_TRY(espl_flash_md5(l, img->address + (uint32_t)off, len, chip, err));
		EVP_Digest(img->data + off, len, mine, &mlen, EVP_md5(), NULL);
		diff[i] = memcmp(chip, mine, 16) != 0;
	}
	return 0;
}

/* Write img->data[off, off+len) compressed, as an image of its own (the
 * header was patched in img already, so its bytes are taken as they are). */
static int write_run(espl_loader *l, const espl_image *img, size_t off, size_t len, espl_error *err)
{
	espl_flash_params keep;
	espl_image *run;
	espl_flash_params_keep(&keep);
	ESPL_TRY(espl_image_prepare(img->data + off, len, img->address + (uint32_t)off, &keep, 0,
				    img->name, &run, err));
	int rc = espl_flash_write(l, run, ESPL_WRITE_COMPRESS, err);
	espl_image_free(run);
	return rc;
}

/* Write each maximal run of differing chunks; *written counts their bytes. */
static int write_changed_runs(espl_loader *l, const espl_image *img, uint32_t chunk,
			      const bool *diff, size_t n, size_t *written, espl_error *err)
{
	for (size_t i = 0; i < n;) {
		if (!diff[i]) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < n && diff[j])
			j++;
		size_t off = i * chunk, end = j * (size_t)chunk < img->size ? j * (size_t)chunk : img->size;
		ESPL_TRY(write_run(l, img, off, end - off, err));
		*written += end - off;
		i = j;
	}
	return 0;
}

int espl_flash_write_changed(espl_loader *l, const espl_image *img, const uint8_t chip_md5[16],
			     uint32_t chunk, size_t *written, espl_error *err)
{
	*written = 0;
	if (memcmp(chip_md5, img->md5, 16) == 0)
		return 0;
	/* A blank region (a new module) differs everywhere: hashing it chunk
	 * by chunk would only cost time. */
	if (chunk == 0 || chunk % ESPL_SECTOR_SIZE || chunk >= img->size ||
	    espl_loader_mode(l) != ESPL_MODE_STUB || is_blank_md5(chip_md5, img->size)) {
		ESPL_TRY(espl_flash_write(l, img, ESPL_WRITE_COMPRESS, err));
		*written = img->size;
		return 0;
	}
	ESPL_TRY(espl_flash_check_fits(l, img, err));
	size_t n = (img->size + chunk - 1) / chunk, nd = 0;
	bool *diff = calloc(n, sizeof *diff);
	if (!diff)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	int rc = find_changed_chunks(l, img, chunk, diff, n, err);
	for (size_t i = 0; i < n; i++)
		nd += diff[i];
	if (rc == 0) {
		espl_loader_log(l, ESPL_LOG_INFO, "%s: %zu of %zu chunks of %u KiB differ on the chip; "
				"writing only those", img->name, nd, n, chunk >> 10);
		rc = write_changed_runs(l, img, chunk, diff, n, written, err);
	}
	free(diff);
	return rc;
}

/* ---- verify ------------------------------------------------------------- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

int espl_flash_md5(espl_loader *l, uint32_t addr, uint32_t len, uint8_t md5[16], espl_error *err)
{
	uint8_t p[16], out[32];
	size_t n = 0;

	ESPL_TRY(require_stub(l, "MD5 verification", err));
	memset(p, 0, sizeof p);
	espl__put_le32(p, addr);
	espl__put_le32(p + 4, len);
	if (espl_loader_command_idempotent(l, ESPL_OP_SPI_FLASH_MD5, p, sizeof p, 0,
					   espl_timeout_for(ESPL_MD5_MS_PER_MB, len), NULL, out,
					   sizeof out, &n, err) < 0) {
		espl_error_prefix(err, "MD5 of flash 0x%X+0x%X", addr, len);
		return err->code;
	}
	if (n == 16) {
		memcpy(md5, out, 16);
		return 0;
	}
	if (n == 32) { /* ESP32-style ROMs answer in hex */
		for (int i = 0; i < 16; i++) {
			int hi = hexval(out[2 * i]), lo = hexval(out[2 * i + 1]);
			if (hi < 0 || lo < 0)
				break;
			md5[i] = (uint8_t)(hi << 4 | lo);
			if (i == 15)
				return 0;
		}
	}
	return espl_fail(err, ESPL_EPROTO, "MD5 of flash 0x%X+0x%X: reply carries %zu bytes, not an MD5",
			 addr, len, n);
}

int espl_flash_md5_shown(espl_loader *l, uint32_t addr, uint32_t len, uint8_t md5[16],
			 espl_error *err)
{
	step s;
	step_start(&s, l, "verify", addr, len);
	ESPL_TRY(espl_flash_md5(l, addr, len, md5, err));
	step_update(&s, len);
	return ESPL_OK;
}

static int is_blank_md5(const uint8_t md5[16], size_t len)
{
	uint8_t *ff = malloc(len ? len : 1), blank[16];
	unsigned n = 16;
	if (!ff)
		return 0;
	memset(ff, 0xFF, len);
	EVP_Digest(ff, len, blank, &n, EVP_md5(), NULL);
	free(ff);
	return memcmp(blank, md5, 16) == 0;
}

int espl_flash_verify(espl_loader *l, const espl_image *img, espl_error *err)
{
	uint8_t md5[16];
	char got[33];
	step s;

	step_start(&s, l, "verify", img->address, img->size);
	ESPL_TRY(espl_flash_md5(l, img->address, (uint32_t)img->size, md5, err));
	/* The reply carries no checksum: a garbled byte looks like a mismatch.
	 * Ask once more; only a second answer equal to the expected hash (which
	 * no garbling produces) turns a mismatch into a pass. */
	if (memcmp(md5, img->md5, 16) != 0)
		ESPL_TRY(espl_flash_md5(l, img->address, (uint32_t)img->size, md5, err));
	step_update(&s, img->size);
	if (memcmp(md5, img->md5, 16) == 0)
		return 0;
	espl_md5_hex(md5, got);
	return espl_fail(err, ESPL_EMISMATCH, "verify failed for %s at 0x%X (%zu bytes): expected MD5 %s, "
			 "flash has %s%s. Erase and write again; if it fails again the flash is faulty: "
			 "reject the module", img->name, img->address, img->size, img->md5_hex, got,
			 is_blank_md5(md5, img->size) ? " (= blank flash, all 0xFF: nothing was written)" : "");
}

/* ---- read --------------------------------------------------------------- */

static int read_stream(espl_loader *l, uint32_t addr, uint32_t len, uint8_t *buf, step *s,
		       espl_error *err)
{
	size_t got = 0;
	const uint8_t *f;
	size_t flen;
	uint8_t ack[4];

	while (got < len) {
		if (espl_loader_read_frame(l, ESPL_TIMEOUT_DEFAULT_MS, &f, &flen, err) < 0) {
			espl_error_prefix(err, "reading flash at 0x%zX", addr + got);
			return err->code;
		}
		if (flen > len - got)
			return espl_fail(err, ESPL_EPROTO, "reading flash: %zu bytes arrived where at most "
					 "%zu were left", flen, len - got);
		memcpy(buf + got, f, flen);
		got += flen;
		espl__put_le32(ack, (uint32_t)got);
		ESPL_TRY(espl_loader_write_frame(l, ack, sizeof ack, err));
		step_update(s, got);
	}
	return 0;
}

int espl_flash_read(espl_loader *l, uint32_t addr, uint32_t len, uint8_t *buf, espl_error *err)
{
	uint8_t p[16], mine[16];
	const uint8_t *f;
	size_t flen;
	unsigned n = 16;
	size_t fsize = espl_loader_flash_size(l);
	step s;

	ESPL_TRY(require_stub(l, "reading flash", err));
	if (fsize && (uint64_t)addr + len > fsize)
		return espl_fail(err, ESPL_EARG, "read 0x%X+0x%X lies beyond the end of the %zu-byte flash",
				 addr, len, fsize);
	espl__put_le32(p, addr);
	espl__put_le32(p + 4, len);
	espl__put_le32(p + 8, READ_PACKET);
	espl__put_le32(p + 12, READ_WINDOW);
	step_start(&s, l, "read", addr, len);
	if (espl_loader_command(l, ESPL_OP_READ_FLASH, p, sizeof p, 0, ESPL_TIMEOUT_DEFAULT_MS, NULL,
				NULL, 0, NULL, err) < 0) {
		espl_error_prefix(err, "reading flash 0x%X+0x%X", addr, len);
		return err->code;
	}
	ESPL_TRY(read_stream(l, addr, len, buf, &s, err));
	if (espl_loader_read_frame(l, ESPL_TIMEOUT_DEFAULT_MS, &f, &flen, err) < 0) {
		espl_error_prefix(err, "reading flash: waiting for the final MD5");
		return err->code;
	}
	EVP_Digest(buf, len, mine, &n, EVP_md5(), NULL);
	if (flen != 16 || memcmp(f, mine, 16) != 0)
		return espl_fail(err, ESPL_EMISMATCH, "reading flash 0x%X+0x%X: the data arrived corrupted "
				 "(MD5 from the chip does not match what was received); retry, or lower "
				 "--flash-baud", addr, len);
	return 0;
}
