/* sim_flash.c - SPI NOR flash model (see sim_flash.h). */
#include "sim_flash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint8_t xorshift_byte(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return (uint8_t)*x;
}

void sim_flash_dirty_sector(sim_flash *f, uint32_t sector, uint32_t *x)
{
	uint64_t addr = (uint64_t)sector * SIM_FLASH_SECTOR;
	if (addr + SIM_FLASH_SECTOR > f->size)
		return;
	for (size_t i = 0; i < SIM_FLASH_SECTOR; i++)
		f->data[addr + i] = xorshift_byte(x);
}

int sim_flash_init(sim_flash *f, size_t size, int random, uint32_t seed)
{
	f->data = malloc(size ? size : 1);
	if (!f->data)
		return -ENOMEM;
	f->size = size;
	f->stuck_sector = -1;
	f->wrap = 0;
	if (!random) {
		memset(f->data, 0xFF, size);
		return 0;
	}
	/* xorshift32: deterministic per seed so a failing test can be replayed */
	uint32_t x = seed ? seed : 0x2545F491u;
	for (size_t i = 0; i < size; i++)
		f->data[i] = xorshift_byte(&x);
	return 0;
}

void sim_flash_free(sim_flash *f)
{
	free(f->data);
	f->data = NULL;
	f->size = 0;
}

int sim_flash_claims_more(uint32_t jedec_id, size_t size)
{
	unsigned cap = (jedec_id >> 16) & 0xFF;
	/* capacity bytes outside 2^16..2^28 are not sizes (0xFF from a dead bus) */
	return cap >= 0x10 && cap <= 0x1C && ((uint64_t)1 << cap) > size;
}

uint64_t sim_flash_alias(const sim_flash *f, uint64_t addr)
{
	return f->wrap && f->size ? addr % f->size : addr;
}

/* A wrapping part has no out-of-range addresses, only aliases; callers
 * split accesses that cross its end (see sim_flash_alias). */
static int in_range(const sim_flash *f, uint64_t addr, uint64_t n)
{
	if (f->wrap)
		return n <= f->size;
	return addr <= f->size && n <= f->size - addr;
}

int sim_flash_erase_sector(sim_flash *f, uint32_t sector, uint64_t *us)
{
	uint64_t addr = sim_flash_alias(f, (uint64_t)sector * SIM_FLASH_SECTOR);
	if (!in_range(f, addr, SIM_FLASH_SECTOR))
		return SIM_FLASH_OUT_OF_RANGE;
	memset(f->data + addr, 0xFF, SIM_FLASH_SECTOR);
	*us += SIM_FLASH_SECTOR_ERASE_US;
	return SIM_FLASH_OK;
}

int sim_flash_erase_block(sim_flash *f, uint32_t block, uint64_t *us)
{
	uint64_t addr = sim_flash_alias(f, (uint64_t)block * SIM_FLASH_BLOCK);
	if (!in_range(f, addr, SIM_FLASH_BLOCK))
		return SIM_FLASH_OUT_OF_RANGE;
	memset(f->data + addr, 0xFF, SIM_FLASH_BLOCK);
	*us += SIM_FLASH_BLOCK_ERASE_US;
	return SIM_FLASH_OK;
}

void sim_flash_erase_chip(sim_flash *f, uint64_t *us)
{
	memset(f->data, 0xFF, f->size);
	*us += (uint64_t)SIM_FLASH_CHIP_ERASE_US_PER_4MB * f->size / (4u << 20);
}

int sim_flash_erase_range(sim_flash *f, uint32_t start_sector, uint32_t count, uint64_t *us)
{
	const uint32_t per_block = SIM_FLASH_BLOCK / SIM_FLASH_SECTOR;
	uint32_t s = start_sector;
	while (count > 0) {
		int rc;
		if (s % per_block == 0 && count >= per_block) {
			rc = sim_flash_erase_block(f, s / per_block, us);
			s += per_block;
			count -= per_block;
		} else {
			rc = sim_flash_erase_sector(f, s, us);
			s++;
			count--;
		}
		if (rc)
			return rc;
	}
	return SIM_FLASH_OK;
}

int sim_flash_program(sim_flash *f, uint32_t addr, const uint8_t *src, size_t n, uint64_t *us)
{
	if (n == 0)
		return SIM_FLASH_OK;
	if (!in_range(f, addr, n))
		return SIM_FLASH_OUT_OF_RANGE;
	uint64_t pages = ((uint64_t)addr + n - 1) / SIM_FLASH_PAGE - addr / SIM_FLASH_PAGE + 1;
	*us += pages * SIM_FLASH_PAGE_PROGRAM_US;
	int rc = SIM_FLASH_OK;
	for (size_t i = 0; i < n; i++) {
		uint64_t a = sim_flash_alias(f, (uint64_t)addr + i);
		uint8_t want = f->data[a] & src[i];
		uint8_t got = want;
		if (f->stuck_sector >= 0 && a / SIM_FLASH_SECTOR == (uint64_t)f->stuck_sector)
			got |= SIM_FLASH_STUCK_MASK;
		f->data[a] = got;
		if (got != want)
			rc = SIM_FLASH_VERIFY_FAILED;
	}
	return rc;
}

int sim_flash_read(const sim_flash *f, uint32_t addr, uint8_t *dst, size_t n)
{
	if (!in_range(f, addr, n))
		return SIM_FLASH_OUT_OF_RANGE;
	for (size_t done = 0; done < n;) {
		uint64_t a = sim_flash_alias(f, (uint64_t)addr + done);
		size_t run = n - done;
		if (run > f->size - a)
			run = (size_t)(f->size - a); /* up to the die's end, then wrap */
		memcpy(dst + done, f->data + a, run);
		done += run;
	}
	return SIM_FLASH_OK;
}

int sim_flash_load(sim_flash *f, const char *path)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return -errno;
	size_t got = fread(f->data, 1, f->size, fp);
	int err = ferror(fp) ? -EIO : 0;
	fclose(fp);
	(void)got;
	return err;
}

int sim_flash_save(const sim_flash *f, const char *path)
{
	/* write a temporary file and rename it, so a crash never leaves half an image */
	size_t len = strlen(path);
	char *tmp = malloc(len + 16);
	if (!tmp)
		return -ENOMEM;
	snprintf(tmp, len + 16, "%s.tmp%ld", path, (long)getpid());
	FILE *fp = fopen(tmp, "wb");
	int err = 0;
	if (!fp) {
		err = -errno;
		free(tmp);
		return err;
	}
	if (fwrite(f->data, 1, f->size, fp) != f->size)
		err = -EIO;
	if (fclose(fp) != 0 && !err)
		err = -errno;
	if (!err && rename(tmp, path) != 0)
		err = -errno;
	if (err)
		unlink(tmp);
	free(tmp);
	return err;
}
