/*
 * image.h - ESP8266 firmware images: header parsing, flash-parameter
 * patching, and "prepared" images ready to send.
 *
 * A prepared image (espl_image) is what a write needs: the bytes exactly as
 * they go to flash (patched header at 0x0, 0xFF-padded to 4 bytes), their MD5
 * (the value the chip must report afterwards), and the zlib stream of those
 * bytes.  It is built once and is read-only afterwards, so any number of
 * worker threads may share it.
 *
 * An espl_image_source holds one file's bytes and the requested flash
 * parameters; espl_image_source_get() hands out the prepared image for a
 * given detected flash size, building it on first use (once per distinct
 * size when the size is "detect", once in total otherwise).
 *
 * No I/O except espl_image_source_open reading its file.
 *
 * Thread safety: parse/patch functions are pure.  espl_image_source_get may
 * be called from many threads at once (an internal mutex guards its cache);
 * returned images stay valid until espl_image_source_free.
 */
#ifndef ESPLINE_IMAGE_H
#define ESPLINE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "espline/error.h"

#define ESPL_IMAGE_MAGIC 0xE9
#define ESPL_IMAGE_MAX_SEGMENTS 16

/* Values for espl_flash_params fields besides the header codes. */
enum { ESPL_PARAM_KEEP = -1, ESPL_PARAM_DETECT = -2 };

/* Image-header codes (protocol notes 8.2): the SPI mode (byte 2) and the
 * flash frequency (byte 3, low nibble); KEEP leaves the header's value. */
enum espl_flash_mode {
	ESPL_FLASH_MODE_KEEP = ESPL_PARAM_KEEP,
	ESPL_FLASH_QIO = 0, ESPL_FLASH_QOUT = 1, ESPL_FLASH_DIO = 2, ESPL_FLASH_DOUT = 3,
};
enum espl_flash_freq {
	ESPL_FREQ_KEEP = ESPL_PARAM_KEEP,
	ESPL_FREQ_40M = 0x0, ESPL_FREQ_26M = 0x1, ESPL_FREQ_20M = 0x2, ESPL_FREQ_80M = 0xF,
};

/* size = byte-3 high nibble value (0x00 512KB, 0x10 256KB, 0x20 1MB, ...
 * 0x90 16MB), or KEEP, or DETECT. */
typedef struct espl_flash_params {
	enum espl_flash_mode mode;
	int size;
	enum espl_flash_freq freq;
} espl_flash_params;

/* All KEEP. */
void espl_flash_params_keep(espl_flash_params *p);

/* Parse option values ("dio", "4MB", "40m", "keep", "detect" for size). */
int espl_flash_mode_parse(const char *s, enum espl_flash_mode *code, espl_error *err);
int espl_flash_size_parse(const char *s, int *code, espl_error *err);
int espl_flash_freq_parse(const char *s, enum espl_flash_freq *code, espl_error *err);
const char *espl_flash_mode_name(enum espl_flash_mode code);
const char *espl_flash_size_name(int code);
const char *espl_flash_freq_name(enum espl_flash_freq code);
/* Header size code for a flash size in bytes (plain names only), -1 if the
 * header cannot express it. */
int espl_flash_size_code(size_t bytes);

typedef struct espl_image_segment {
	uint32_t load_addr;
	uint32_t len;
	size_t file_offset; /* of the segment data */
} espl_image_segment;

typedef struct espl_image_info {
	uint8_t mode, size_code, freq;
	uint32_t entry;
	unsigned nsegments;
	espl_image_segment seg[ESPL_IMAGE_MAX_SEGMENTS];
	uint8_t checksum;       /* stored */
	uint8_t computed;       /* over the segment data */
	size_t end;             /* offset just past the checksum byte */
} espl_image_info;

/* Parse an ESP8266 v1 image (magic 0xE9, segments, checksum).  Fails with
 * ESPL_EARG and the reason if it is not one or the checksum is wrong. */
int espl_image_parse(const uint8_t *data, size_t len, espl_image_info *info, espl_error *err);

/* Patch header bytes 2..3 in place (fields set to KEEP stay; DETECT must have
 * been resolved by the caller).  Returns 1 if a byte changed, 0 if not, or
 * ESPL_EARG when data is not a valid image. */
int espl_image_patch(uint8_t *data, size_t len, const espl_flash_params *p, espl_error *err);

/* A prepared image; read-only once built. */
typedef struct espl_image {
	char name[256];          /* file name, for messages */
	uint32_t address;        /* flash offset */
	uint8_t *data;           /* bytes to write: patched, padded to 4 with 0xFF */
	size_t size;
	size_t file_size;        /* before padding */
	uint8_t md5[16];         /* of data[0..size) */
	char md5_hex[33];
	int patched;             /* header bytes changed */
	uint8_t header[2];       /* bytes 2..3 as written (if size >= 4) */
	uint8_t *zdata;          /* zlib stream (RFC 1950) of data, level 9 */
	size_t zsize;
	size_t zblocks;          /* ceil(zsize / ESPL_STUB_WRITE_BLOCK) */
	uint32_t *zblock_out;    /* uncompressed bytes each compressed block yields */
} espl_image;

/* Build a prepared image from data (copied).  Header patching happens only at
 * address 0 and only when some param is not KEEP; then data must be a valid
 * image (ESPL_EARG otherwise).  A DETECT size is replaced by the code for
 * flash_size (bytes; must be known then). */
int espl_image_prepare(const uint8_t *data, size_t len, uint32_t address,
		       const espl_flash_params *p, size_t flash_size, const char *name,
		       espl_image **out, espl_error *err);
void espl_image_free(espl_image *img);

typedef struct espl_image_source espl_image_source;

/* The largest file accepted as an image: the largest ESP8266 flash. */
#define ESPL_IMAGE_MAX (16u << 20)

/* Read path, a regular file of at most ESPL_IMAGE_MAX bytes (anything else
 * is refused before it is read, see util/file.h); check it is non-empty
 * and, if it will be patched, an image. */
int espl_image_source_open(const char *path, uint32_t address, const espl_flash_params *p,
			   espl_image_source **out, espl_error *err);
/* Same from memory (copied). */
int espl_image_source_new(const uint8_t *data, size_t len, const char *name, uint32_t address,
			  const espl_flash_params *p, espl_image_source **out, espl_error *err);
/* The prepared image for a chip with flash_size bytes (0 = unknown, allowed
 * unless the size is DETECT and the image is patched). */
int espl_image_source_get(espl_image_source *src, size_t flash_size, const espl_image **out,
			  espl_error *err);
/* Does the prepared data depend on the flash size (patched with DETECT)? */
int espl_image_source_needs_size(const espl_image_source *src);
void espl_image_source_free(espl_image_source *src);

#endif /* ESPLINE_IMAGE_H */
