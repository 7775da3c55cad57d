/*
 * flash.h - flash operations on a connected loader: erase, write, verify,
 * read.
 *
 * Works on an espl_loader (loader.h) and prepared images (image.h).  Writes
 * take an image that was padded, patched, deflated and hashed once, so a
 * station with many workers does that work once per recipe.  Every block is
 * retried a bounded number of times on a timeout or a checksum error; every
 * failure says which block, what the chip said, and what to do.  Progress is
 * reported through the loader's events.
 *
 * With the ROM loader (no stub) only uncompressed writes work; erase, verify
 * and read need the stub and fail with ESPL_EUNSUPPORTED.
 *
 * Thread safety: as the loader's (one thread per loader); images are only
 * read.
 */
#ifndef ESPLINE_FLASH_H
#define ESPLINE_FLASH_H

#include <stddef.h>
#include <stdint.h>

#include <stdbool.h>

#include "espline/error.h"
#include "espline/image.h"
#include "espline/loader.h"

/* Erase the whole chip (ERASE_FLASH, up to 120 s). */
int espl_flash_erase_chip(espl_loader *l, espl_error *err);

/* Erase [addr, addr+len); both must be multiples of 4096. */
int espl_flash_erase_region(espl_loader *l, uint32_t addr, uint32_t len, espl_error *err);

#define ESPL_FLASH_BLOCK (64u * 1024u)

/* What espl_flash_erase_dirty found and did. */
typedef struct espl_erase_check {
	unsigned blocks;          /* 64 KiB blocks on the chip */
	unsigned checked;         /* blocks hashed (fewer once a chip erase was decided) */
	unsigned dirty;           /* of those, not all 0xFF */
	bool chip_erased;         /* most blocks were dirty: one chip erase instead */
	uint64_t bytes_erased;
} espl_erase_check;

/* The guarantee of espl_flash_erase_chip, without erasing what is blank:
 * every 64 KiB block whose index has skip[i] false is hashed on the chip
 * (stub MD5) and erased only if it is not all 0xFF; consecutive dirty blocks
 * go in one region erase.  Blocks are sampled spread over the chip; once
 * more than half of its blocks, or the first 8 samples, are dirty it stops
 * hashing and erases the whole chip.  skip (may be NULL = none)
 * has one entry per block: blocks the caller will overwrite entirely
 * anyway (the stub erases ahead of a write), so their bytes do not matter.
 * Needs the stub.  out is filled also on error (as far as it got). */
int espl_flash_erase_dirty(espl_loader *l, const bool *skip, espl_erase_check *out, espl_error *err);

enum espl_write_flags {
	ESPL_WRITE_COMPRESS = 1, /* use the image's deflate stream (stub only; ignored in ROM mode) */
};

/* ESPL_ECHIP with an explanation if the loader knows the flash size and the
 * image does not fit; 0 otherwise.  Lets a caller check every file before
 * writing any. */
int espl_flash_check_fits(espl_loader *l, const espl_image *img, espl_error *err);

/* Write img->data at img->address.  Fails with ESPL_ECHIP before sending
 * anything if the loader knows the flash size and the image does not fit. */
int espl_flash_write(espl_loader *l, const espl_image *img, int flags, espl_error *err);

/* skip_unchanged at a finer grain.  chip_md5 is the chip's MD5 of the
 * image's region (already asked for).  Equal: writes nothing.  Otherwise
 * hashes the region on the chip in chunks of `chunk` bytes (a multiple of
 * 4096) and writes, compressed, only the runs of chunks that differ; a blank
 * region, a chunk of 0 or one not smaller than the image writes it all.
 * *written gets the image bytes sent.  Needs the stub.  The caller still
 * verifies the whole image afterwards. */
int espl_flash_write_changed(espl_loader *l, const espl_image *img, const uint8_t chip_md5[16],
			     uint32_t chunk, size_t *written, espl_error *err);

/* MD5 of [addr, addr+len) computed by the chip (SPI_FLASH_MD5). */
int espl_flash_md5(espl_loader *l, uint32_t addr, uint32_t len, uint8_t md5[16],
		   espl_error *err);

/* The same, reported to the loader's progress callback as a "verify"
 * step: done 0 before, done len when the chip answers.  The stub hashes
 * the whole region in one command, so there is nothing in between; for
 * the operator it is one line per region checked. */
int espl_flash_md5_shown(espl_loader *l, uint32_t addr, uint32_t len, uint8_t md5[16],
			 espl_error *err);

/* Compare the chip's MD5 of the image's region with img->md5.  A mismatch is
 * ESPL_EMISMATCH with both hashes (and a hint when the flash is blank). */
int espl_flash_verify(espl_loader *l, const espl_image *img, espl_error *err);

/* Read [addr, addr+len) into buf (READ_FLASH with its acknowledgement window),
 * checking the MD5 the stub sends at the end. */
int espl_flash_read(espl_loader *l, uint32_t addr, uint32_t len, uint8_t *buf,
		    espl_error *err);

/* Lower-case hex of a 16-byte MD5 into out[33]. */
void espl_md5_hex(const uint8_t md5[16], char out[33]);

#endif /* ESPLINE_FLASH_H */
