/* image.c - ESP8266 image headers and prepared images; see
 * include/espline/image.h. */
#include "espline/image.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "device/dev_bytes.h"
#include "util/file.h"
#include "espline/loader.h"

#define HEADER_LEN 8
#define SEGMENT_HEADER_LEN 8
#define MAX_VARIANTS 16

/* ---- names and codes ---------------------------------------------------- */

typedef struct code_name {
	int code;
	const char *name;
} code_name;

static const code_name modes[] = {
	{ ESPL_FLASH_QIO, "qio" }, { ESPL_FLASH_QOUT, "qout" }, { ESPL_FLASH_DIO, "dio" }, { ESPL_FLASH_DOUT, "dout" },
};
static const code_name freqs[] = {
	{ ESPL_FREQ_40M, "40m" }, { ESPL_FREQ_26M, "26m" }, { ESPL_FREQ_20M, "20m" }, { ESPL_FREQ_80M, "80m" },
};
static const code_name sizes[] = {
	{ 0x10, "256KB" }, { 0x00, "512KB" }, { 0x20, "1MB" }, { 0x30, "2MB" }, { 0x40, "4MB" },
	{ 0x50, "2MB-c1" }, { 0x60, "4MB-c1" }, { 0x80, "8MB" }, { 0x90, "16MB" },
};

#define COUNT(a) (sizeof(a) / sizeof *(a))

static int lookup(const code_name *t, size_t n, const char *s, int *code)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(t[i].name, s) == 0) {
			*code = t[i].code;
			return 1;
		}
	return 0;
}

static const char *name_of(const code_name *t, size_t n, int code)
{
	if (code == ESPL_PARAM_KEEP)
		return "keep";
	if (code == ESPL_PARAM_DETECT)
		return "detect";
	for (size_t i = 0; i < n; i++)
		if (t[i].code == code)
			return t[i].name;
	return "?";
}

static int parse_param(const code_name *t, size_t n, const char *what, const char *s,
		       int allow_detect, int *code, espl_error *err)
{
	if (strcmp(s, "keep") == 0) {
		*code = ESPL_PARAM_KEEP;
		return 0;
	}
	if (allow_detect && strcmp(s, "detect") == 0) {
		*code = ESPL_PARAM_DETECT;
		return 0;
	}
	if (lookup(t, n, s, code))
		return 0;
	char list[160];
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(list + len, sizeof list - len, "%s, ", t[i].name);
	return espl_fail(err, ESPL_EARG, "unknown flash %s '%s' (use %skeep%s)", what, s, list,
			 allow_detect ? " or detect" : "");
}

void espl_flash_params_keep(espl_flash_params *p)
{
	p->mode = ESPL_FLASH_MODE_KEEP;
	p->size = ESPL_PARAM_KEEP;
	p->freq = ESPL_FREQ_KEEP;
}

int espl_flash_mode_parse(const char *s, enum espl_flash_mode *code, espl_error *err)
{
	int v;
	ESPL_TRY(parse_param(modes, COUNT(modes), "mode", s, 0, &v, err));
	*code = (enum espl_flash_mode)v;
	return ESPL_OK;
}

int espl_flash_size_parse(const char *s, int *code, espl_error *err)
{
	return parse_param(sizes, COUNT(sizes), "size", s, 1, code, err);
}

int espl_flash_freq_parse(const char *s, enum espl_flash_freq *code, espl_error *err)
{
	int v;
	ESPL_TRY(parse_param(freqs, COUNT(freqs), "frequency", s, 0, &v, err));
	*code = (enum espl_flash_freq)v;
	return ESPL_OK;
}

const char *espl_flash_mode_name(enum espl_flash_mode code) { return name_of(modes, COUNT(modes), (int)code); }
const char *espl_flash_size_name(int code) { return name_of(sizes, COUNT(sizes), code); }
const char *espl_flash_freq_name(enum espl_flash_freq code) { return name_of(freqs, COUNT(freqs), (int)code); }

int espl_flash_size_code(size_t bytes)
{
	switch (bytes) {
	case 256u << 10: return 0x10;
	case 512u << 10: return 0x00;
	case 1u << 20: return 0x20;
	case 2u << 20: return 0x30;
	case 4u << 20: return 0x40;
	case 8u << 20: return 0x80;
	case 16u << 20: return 0x90;
	default: return -1;
	}
}

/* ---- parsing and patching ----------------------------------------------- */

/* Structure only: header, segment table within the data, checksum byte
 * present.  The checksum value is compared by the caller. */
static int parse_structure(const uint8_t *d, size_t len, espl_image_info *info, espl_error *err)
{
	size_t pos = HEADER_LEN;

	memset(info, 0, sizeof *info);
	if (len < HEADER_LEN)
		return espl_fail(err, ESPL_EARG, "not an ESP8266 image: only %zu bytes", len);
	if (d[0] != ESPL_IMAGE_MAGIC)
		return espl_fail(err, ESPL_EARG, "not an ESP8266 image: first byte is 0x%02X, not 0xE9",
				 d[0]);
	if (d[1] == 0 || d[1] > ESPL_IMAGE_MAX_SEGMENTS)
		return espl_fail(err, ESPL_EARG, "not an ESP8266 image: %u segments (1..16 allowed)", d[1]);
	info->nsegments = d[1];
	info->mode = d[2];
	info->size_code = d[3] & 0xF0;
	info->freq = d[3] & 0x0F;
	info->entry = espl__get_le32(d + 4);
	info->computed = 0xEF;
	for (unsigned i = 0; i < info->nsegments; i++) {
		if (len - pos < SEGMENT_HEADER_LEN)
			return espl_fail(err, ESPL_EARG, "not an ESP8266 image: segment %u header beyond "
					 "the end of the file", i);
		info->seg[i].load_addr = espl__get_le32(d + pos);
		info->seg[i].len = espl__get_le32(d + pos + 4);
		pos += SEGMENT_HEADER_LEN;
		if (info->seg[i].len > len - pos)
			return espl_fail(err, ESPL_EARG, "not an ESP8266 image: segment %u (%u bytes at "
					 "0x%08X) runs past the end of the file", i, info->seg[i].len,
					 info->seg[i].load_addr);
		info->seg[i].file_offset = pos;
		for (size_t k = 0; k < info->seg[i].len; k++)
			info->computed ^= d[pos + k];
		pos += info->seg[i].len;
	}
	pos += 15 - pos % 16; /* checksum is the last byte of a 16-byte line */
	if (pos >= len)
		return espl_fail(err, ESPL_EARG, "not an ESP8266 image: checksum byte missing");
	info->checksum = d[pos];
	info->end = pos + 1;
	return 0;
}

int espl_image_parse(const uint8_t *data, size_t len, espl_image_info *info, espl_error *err)
{
	ESPL_TRY(parse_structure(data, len, info, err));
	if (info->checksum != info->computed)
		return espl_fail(err, ESPL_EARG, "ESP8266 image checksum mismatch: stored 0x%02X, "
				 "computed 0x%02X (corrupt file?)", info->checksum, info->computed);
	return 0;
}

static int all_keep(const espl_flash_params *p)
{
	return !p || (p->mode == ESPL_FLASH_MODE_KEEP && p->size == ESPL_PARAM_KEEP &&
		      p->freq == ESPL_FREQ_KEEP);
}

int espl_image_patch(uint8_t *data, size_t len, const espl_flash_params *p, espl_error *err)
{
	espl_image_info info;
	uint8_t b2, b3;

	if (all_keep(p))
		return 0;
	if (p->size == ESPL_PARAM_DETECT)
		return espl_fail(err, ESPL_EARG, "flash size 'detect' must be resolved before patching");
	/* Like esptool: the structure must parse; the checksum covers only
	 * segment data, so it is not affected by the patch. */
	if (parse_structure(data, len, &info, err) < 0) {
		espl_error_prefix(err, "cannot set flash mode/size/frequency");
		return err->code;
	}
	b2 = p->mode == ESPL_FLASH_MODE_KEEP ? data[2] : (uint8_t)p->mode;
	b3 = (uint8_t)((p->size == ESPL_PARAM_KEEP ? (data[3] & 0xF0) : p->size) |
		       (p->freq == ESPL_FREQ_KEEP ? (data[3] & 0x0F) : p->freq));
	if (b2 == data[2] && b3 == data[3])
		return 0;
	data[2] = b2;
	data[3] = b3;
	return 1;
}

/* ---- prepared images ---------------------------------------------------- */

void espl_image_free(espl_image *img)
{
	if (!img)
		return;
	free(img->data);
	free(img->zdata);
	free(img->zblock_out);
	free(img);
}

static void md5_of(const uint8_t *d, size_t n, uint8_t out[16])
{
	unsigned len = 16;
	EVP_Digest(d, n, out, &len, EVP_md5(), NULL);
}

/* Deflate once, and learn how many image bytes each 16 KiB piece of the
 * stream expands to (the per-block write timeout depends on it). */
static int compress_image(espl_image *img, espl_error *err)
{
	uLong cap;
	z_stream zs;

	/* Level 9 with the largest window and memory: every byte saved is
	 * wire time on every unit. */
	memset(&zs, 0, sizeof zs);
	if (deflateInit2(&zs, 9, Z_DEFLATED, 15, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return espl_fail(err, ESPL_ENOMEM, "zlib could not start compressing %s", img->name);
	cap = deflateBound(&zs, (uLong)img->size);
	img->zdata = malloc(cap);
	if (!img->zdata) {
		deflateEnd(&zs);
		return espl_fail(err, ESPL_ENOMEM, "out of memory compressing %s", img->name);
	}
	zs.next_in = img->data;
	zs.avail_in = (uInt)img->size;
	zs.next_out = img->zdata;
	zs.avail_out = (uInt)cap;
	int zr = deflate(&zs, Z_FINISH);
	cap = zs.total_out;
	deflateEnd(&zs);
	if (zr != Z_STREAM_END)
		return espl_fail(err, ESPL_ENOMEM, "zlib could not compress %s", img->name);
	img->zsize = cap;
	img->zblocks = (img->zsize + ESPL_STUB_WRITE_BLOCK - 1) / ESPL_STUB_WRITE_BLOCK;
	img->zblock_out = calloc(img->zblocks ? img->zblocks : 1, sizeof *img->zblock_out);
	if (!img->zblock_out)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");

	uint8_t *scratch = malloc(img->size ? img->size : 1);
	if (!scratch)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	memset(&zs, 0, sizeof zs);
	inflateInit(&zs);
	zs.next_out = scratch;
	zs.avail_out = (uInt)img->size;
	for (size_t b = 0; b < img->zblocks; b++) {
		size_t off = b * ESPL_STUB_WRITE_BLOCK;
		size_t n = img->zsize - off < ESPL_STUB_WRITE_BLOCK ? img->zsize - off : ESPL_STUB_WRITE_BLOCK;
		uLong before = zs.total_out;
		zs.next_in = img->zdata + off;
		zs.avail_in = (uInt)n;
		inflate(&zs, Z_SYNC_FLUSH);
		img->zblock_out[b] = (uint32_t)(zs.total_out - before);
	}
	inflateEnd(&zs);
	free(scratch);
	return 0;
}

static int resolve_params(const espl_flash_params *in, size_t flash_size, espl_flash_params *out,
			  espl_error *err)
{
	*out = *in;
	if (in->size != ESPL_PARAM_DETECT)
		return 0;
	if (flash_size == 0)
		return espl_fail(err, ESPL_EARG, "flash size 'detect' needs the chip's flash size, "
				 "which is unknown");
	out->size = espl_flash_size_code(flash_size);
	if (out->size < 0)
		return espl_fail(err, ESPL_EARG, "detected flash size %zu bytes cannot be written in "
				 "an ESP8266 image header (256KB..16MB)", flash_size);
	return 0;
}

static int fill_image(espl_image *img, const uint8_t *data, size_t len, const espl_flash_params *p,
		      size_t flash_size, espl_error *err)
{
	size_t padded = (len + 3) & ~(size_t)3;

	img->data = malloc(padded ? padded : 1);
	if (!img->data)
		return espl_fail(err, ESPL_ENOMEM, "out of memory for %s", img->name);
	memcpy(img->data, data, len);
	memset(img->data + len, 0xFF, padded - len);
	img->size = padded;
	img->file_size = len;
	if (img->address == 0 && !all_keep(p)) {
		espl_flash_params resolved;
		ESPL_TRY(resolve_params(p, flash_size, &resolved, err));
		int rc = espl_image_patch(img->data, img->size, &resolved, err);
		if (rc < 0) {
			espl_error_prefix(err, "%s", img->name);
			return rc;
		}
		img->patched = rc;
	}
	if (img->size >= 4) {
		img->header[0] = img->data[2];
		img->header[1] = img->data[3];
	}
	md5_of(img->data, img->size, img->md5);
	for (int i = 0; i < 16; i++)
		snprintf(img->md5_hex + 2 * i, 3, "%02x", img->md5[i]);
	return compress_image(img, err);
}

int espl_image_prepare(const uint8_t *data, size_t len, uint32_t address,
		       const espl_flash_params *p, size_t flash_size, const char *name,
		       espl_image **out, espl_error *err)
{
	espl_image *img;
	int rc;

	*out = NULL;
	if (len == 0)
		return espl_fail(err, ESPL_EARG, "%s is empty", name ? name : "image");
	img = calloc(1, sizeof *img);
	if (!img)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	snprintf(img->name, sizeof img->name, "%s", name ? name : "image");
	img->address = address;
	rc = fill_image(img, data, len, p, flash_size, err);
	if (rc < 0) {
		espl_image_free(img);
		return rc;
	}
	*out = img;
	return 0;
}

/* ---- sources: one file, prepared once per flash size -------------------- */

typedef struct variant {
	int key;              /* size code it was built for, -1 = any */
	espl_image *img;
} variant;

struct espl_image_source {
	char name[256];
	uint32_t address;
	espl_flash_params params;
	uint8_t *data;
	size_t len;
	pthread_mutex_t lock;
	variant variants[MAX_VARIANTS];
	size_t nvariants;
};

int espl_image_source_needs_size(const espl_image_source *src)
{
	return src->address == 0 && src->params.size == ESPL_PARAM_DETECT;
}

int espl_image_source_new(const uint8_t *data, size_t len, const char *name, uint32_t address,
			  const espl_flash_params *p, espl_image_source **out, espl_error *err)
{
	espl_image_source *src;
	espl_image_info info;

	*out = NULL;
	if (len == 0)
		return espl_fail(err, ESPL_EARG, "%s is empty: nothing to write", name);
	if (address == 0 && !all_keep(p) && parse_structure(data, len, &info, err) < 0) {
		espl_error_prefix(err, "%s: flash mode/size/frequency were given for address 0x0, but "
				  "the file is not a bootable image (write it elsewhere, or use keep)",
				  name);
		return err->code;
	}
	src = calloc(1, sizeof *src);
	if (!src || !(src->data = malloc(len))) {
		free(src);
		return espl_fail(err, ESPL_ENOMEM, "out of memory for %s", name);
	}
	memcpy(src->data, data, len);
	src->len = len;
	snprintf(src->name, sizeof src->name, "%s", name);
	src->address = address;
	if (p)
		src->params = *p;
	else
		espl_flash_params_keep(&src->params);
	pthread_mutex_init(&src->lock, NULL);
	*out = src;
	return 0;
}

int espl_image_source_open(const char *path, uint32_t address, const espl_flash_params *p,
			   espl_image_source **out, espl_error *err)
{
	char *buf;
	size_t len;

	*out = NULL;
	ESPL_TRY(espl__file_read(path, ESPL_IMAGE_MAX, "image", &buf, &len, err));
	int rc = espl_image_source_new((const uint8_t *)buf, len, path, address, p, out, err);
	free(buf);
	return rc;
}

int espl_image_source_get(espl_image_source *src, size_t flash_size, const espl_image **out,
			  espl_error *err)
{
	int key = -1, rc = 0;

	*out = NULL;
	if (espl_image_source_needs_size(src)) {
		if (flash_size == 0)
			return espl_fail(err, ESPL_EARG, "%s: flash size 'detect' needs the chip's flash "
					 "size (identify the chip first)", src->name);
		key = espl_flash_size_code(flash_size);
		if (key < 0)
			return espl_fail(err, ESPL_EARG, "%s: flash size %zu bytes cannot be written in an "
					 "ESP8266 header", src->name, flash_size);
	}
	pthread_mutex_lock(&src->lock);
	for (size_t i = 0; i < src->nvariants; i++)
		if (src->variants[i].key == key)
			*out = src->variants[i].img;
	if (!*out) {
		espl_image *img;
		if (src->nvariants == MAX_VARIANTS)
			rc = espl_fail(err, ESPL_EARG, "%s: too many flash-size variants", src->name);
		else
			rc = espl_image_prepare(src->data, src->len, src->address, &src->params,
						flash_size, src->name, &img, err);
		if (rc == 0) {
			src->variants[src->nvariants].key = key;
			src->variants[src->nvariants++].img = img;
			*out = img;
		}
	}
	pthread_mutex_unlock(&src->lock);
	return rc;
}

void espl_image_source_free(espl_image_source *src)
{
	if (!src)
		return;
	for (size_t i = 0; i < src->nvariants; i++)
		espl_image_free(src->variants[i].img);
	pthread_mutex_destroy(&src->lock);
	free(src->data);
	free(src);
}
