/* flashmap.c - SDK system sector addresses; see include/espline/flashmap.h. */
#include "espline/flashmap.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#define MIN_SIZE (256u << 10)
#define MAX_SIZE (16u << 20)

int espl_flashmap_for_size(size_t flash_size, espl_flashmap *map, espl_error *err)
{
	if (flash_size < MIN_SIZE || flash_size > MAX_SIZE || (flash_size & (flash_size - 1)) != 0)
		return espl_fail(err, ESPL_EARG, "flash size %zu bytes is not one the ESP8266 SDK "
				 "supports (256KB..16MB, a power of two)", flash_size);
	espl_flashmap_layout(flash_size, map);
	return 0;
}

void espl_flashmap_layout(size_t flash_size, espl_flashmap *map)
{
	map->flash_size = flash_size;
	map->rf_cal = (uint32_t)(flash_size - ESPL_FLASHMAP_RF_CAL_FROM_END);
	map->init_data = (uint32_t)(flash_size - ESPL_FLASHMAP_INIT_DATA_FROM_END);
	map->blank = (uint32_t)(flash_size - ESPL_FLASHMAP_BLANK_FROM_END);
}

int espl_size_parse(const char *s, size_t *bytes, espl_error *err)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (end == s || errno)
		return espl_fail(err, ESPL_EARG, "'%s' is not a size (e.g. 4MB, 512KB, 0x400000)", s);
	while (isspace((unsigned char)*end))
		end++;
	if (strcasecmp(end, "MB") == 0 || strcasecmp(end, "M") == 0 || strcasecmp(end, "MiB") == 0)
		v <<= 20;
	else if (strcasecmp(end, "KB") == 0 || strcasecmp(end, "K") == 0 || strcasecmp(end, "KiB") == 0)
		v <<= 10;
	else if (*end)
		return espl_fail(err, ESPL_EARG, "'%s' is not a size (e.g. 4MB, 512KB, 0x400000)", s);
	*bytes = (size_t)v;
	return 0;
}

const char *espl_size_name(size_t bytes, char *buf, size_t cap)
{
	if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
		snprintf(buf, cap, "%zuMB", bytes >> 20);
	else if (bytes >= 1024 && bytes % 1024 == 0)
		snprintf(buf, cap, "%zuKB", bytes >> 10);
	else
		snprintf(buf, cap, "%zuB", bytes);
	return buf;
}
