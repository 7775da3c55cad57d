/* dev_bytes.h - little-endian 32-bit words in protocol buffers, for the
 * device layer (internal; header-only, no state, thread-safe). */
#ifndef ESPLINE_DEV_BYTES_H
#define ESPLINE_DEV_BYTES_H

#include <stdint.h>

static inline uint32_t espl__get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void espl__put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

#endif /* ESPLINE_DEV_BYTES_H */
