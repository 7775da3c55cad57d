/* fuzz_stub.c - libFuzzer target: the flasher-stub JSON loader and its
 * base64 decoder (include/espline/stub.h).
 *
 * The input is written to a scratch file and loaded with
 * espl_stub_load_file, as `--stub FILE` would.  Checks: success means a
 * non-empty text blob (and data only with data_start); failure leaves
 * nothing allocated and names the file.  The input is also decoded as a
 * base64 string, and encoded to base64 (padded, unpadded, wrapped at 76
 * columns) and decoded back to itself. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "espline/stub.h"
#include "fuzz_util.h"

#define FUZZ_STUB_MAX (64u << 10)

static size_t fuzz_b64_encode(const uint8_t *in, size_t n, int pad, int wrap, char *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0, col = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t left = n - i;
		if (left > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (left > 2)
			v |= in[i + 2];
		char q[4] = { tab[v >> 18 & 63], tab[v >> 12 & 63], tab[v >> 6 & 63], tab[v & 63] };
		size_t keep = left >= 3 ? 4 : left + 1;
		for (size_t k = 0; k < 4; k++) {
			if (k < keep)
				out[o++] = q[k];
			else if (pad)
				out[o++] = '=';
			if (wrap && ++col == 76) {
				out[o++] = '\n';
				col = 0;
			}
		}
	}
	out[o] = '\0';
	return o;
}

static void fuzz_stub_roundtrip(const uint8_t *data, size_t size, int pad, int wrap)
{
	char *enc = malloc(size * 2 + 8);
	uint8_t *back = NULL;
	size_t back_len = 0;
	espl_error err;
	FUZZ_CHECK(enc != NULL);
	fuzz_b64_encode(data, size, pad, wrap, enc);
	FUZZ_CHECK(espl_base64_decode(enc, &back, &back_len, &err) == 0);
	FUZZ_CHECK(back_len == size && (size == 0 || memcmp(back, data, size) == 0));
	free(back);
	free(enc);
}

static int fuzz_stub_one(const uint8_t *data, size_t size)
{
	char path[512];
	espl_stub stub;
	espl_error err;

	if (size > FUZZ_STUB_MAX)
		return 0;
	if (fuzz_write_file("stub.json", data, size, path, sizeof path)) {
		int rc = espl_stub_load_file(path, &stub, &err);
		if (rc == 0) {
			FUZZ_CHECK(stub.text != NULL && stub.text_len > 0);
			FUZZ_CHECK(stub.data_len == 0 || stub.data != NULL);
			FUZZ_CHECK(strcmp(stub.path, path) == 0);
			espl_stub_free(&stub);
			FUZZ_CHECK(stub.text == NULL && stub.data == NULL);
		} else {
			FUZZ_CHECK(rc < 0 && err.code == rc);
			FUZZ_CHECK(strstr(err.msg, path) != NULL);
			FUZZ_CHECK(stub.text == NULL && stub.data == NULL);
		}
	}

	/* The raw input as a base64 string. */
	char *s = malloc(size + 1);
	FUZZ_CHECK(s != NULL);
	memcpy(s, data, size);
	s[size] = '\0';
	uint8_t *out = NULL;
	size_t out_len = 0;
	if (espl_base64_decode(s, &out, &out_len, &err) == 0) {
		FUZZ_CHECK(out != NULL && out_len <= strlen(s) * 3 / 4 + 1);
		free(out);
	}
	free(s);

	fuzz_stub_roundtrip(data, size, 1, 0);
	fuzz_stub_roundtrip(data, size, 0, 1);
	return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_stub_one(data, size);
}
#endif
