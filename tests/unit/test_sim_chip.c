/*
 * test_sim_chip.c - the simulated ESP8266 driven frame by frame through a
 * fake transport (sim_fixture.h): virtual clock, captured frames, recorded
 * baud changes, reboots and faults.  Frames are given already SLIP-decoded.
 * Reply-by-reply fidelity to the real ROM and stubs: test_sim_fidelity.c.
 */
#include <unistd.h>
#include <zlib.h>

#include "sim_fixture.h"

/* ---- ROM ------------------------------------------------------------------ */

static void test_rom_sync_eight_replies(void **state)
{
	(void)state;
	fixture *fx = fixture_new(NULL);
	send_cmd(fx, 0x08, sync_payload, sizeof sync_payload, 0);
	assert_int_equal(fx->io.n, 8);
	for (size_t i = 0; i < 8; i++) {
		assert_int_equal(fx->io.frames[i].len, 10);
		assert_int_equal(get32(fx->io.frames[i].data + 2) & 0xFFFF, 2);
		assert_int_not_equal(expect_resp(fx, i, 0x08, 0, 0), 0);
	}
	/* a corrupted payload is not a sync */
	uint8_t bad[36];
	memcpy(bad, sync_payload, sizeof bad);
	bad[20] = 0x54;
	send_cmd(fx, 0x08, bad, sizeof bad, 0);
	assert_int_equal(fx->io.n, 1);
	expect_resp(fx, 0, 0x08, 1, 0x05);
	fixture_free(fx);
}

/* esptool's MAC rule (protocol notes 4.2), applied to what the chip returns */
static void mac_from_efuse(fixture *fx, uint8_t mac[6])
{
	uint32_t mac0 = read_reg(fx, 0x3FF00050), mac1 = read_reg(fx, 0x3FF00054);
	uint32_t mac3 = read_reg(fx, 0x3FF0005C);
	if (mac3) {
		mac[0] = (uint8_t)(mac3 >> 16);
		mac[1] = (uint8_t)(mac3 >> 8);
		mac[2] = (uint8_t)mac3;
	} else if (((mac1 >> 16) & 0xFF) == 0) {
		mac[0] = 0x18, mac[1] = 0xFE, mac[2] = 0x34;
	} else if (((mac1 >> 16) & 0xFF) == 1) {
		mac[0] = 0xAC, mac[1] = 0xD0, mac[2] = 0x74;
	} else {
		fail_msg("Unknown OUI");
	}
	mac[3] = (uint8_t)(mac1 >> 8);
	mac[4] = (uint8_t)mac1;
	mac[5] = (uint8_t)(mac0 >> 24);
}

static void test_rom_read_reg_identity(void **state)
{
	(void)state;
	static const uint8_t macs[3][6] = {
		{ 0x18, 0xFE, 0x34, 0x12, 0x34, 0x56 },
		{ 0xAC, 0xD0, 0x74, 0xAB, 0xCD, 0xEF },
		{ 0x84, 0x0D, 0x8E, 0x01, 0x02, 0x03 },
	};
	for (int i = 0; i < 3; i++) {
		sim_chip_config cfg;
		sim_chip_config_defaults(&cfg);
		memcpy(cfg.mac, macs[i], 6);
		fixture *fx = fixture_new(&cfg);
		assert_int_equal(read_reg(fx, 0x40001000), 0xFFF0C101u);
		assert_int_equal(read_reg(fx, 0x60000078), 0x00062000u);
		uint8_t mac[6];
		mac_from_efuse(fx, mac);
		assert_memory_equal(mac, macs[i], 6);
		/* ESP8266EX, not ESP8285: efuse bit 4 and bit 80 clear */
		assert_int_equal(read_reg(fx, 0x3FF00050) & 0x10, 0);
		assert_int_equal(read_reg(fx, 0x3FF00058) & 0x10000, 0);
		fixture_free(fx);
	}
}

/* esptool-js getCrystalFreq, with the host at baud */
static unsigned crystal_seen(fixture *fx, unsigned baud)
{
	sim_chip_set_host_baud(fx->chip, baud);
	uint32_t div = read_reg(fx, 0x60000014) & 0xFFFFF;
	double est = (double)baud * div / 1e6 / 2;
	unsigned norm = est > 33 ? 40 : 26;
	assert_true(est > norm - 1.0 && est < norm + 1.0);
	return norm;
}

static void test_rom_crystal_detection(void **state)
{
	(void)state;
	for (unsigned xtal = 26; xtal <= 40; xtal += 14) {
		sim_chip_config cfg;
		sim_chip_config_defaults(&cfg);
		cfg.xtal_mhz = xtal;
		fixture *fx = fixture_new(&cfg);
		assert_int_equal(crystal_seen(fx, 115200), xtal);
		assert_int_equal(crystal_seen(fx, 74880), xtal);
		assert_int_equal(crystal_seen(fx, 57600), xtal);
		fixture_free(fx);
	}
}

static void test_chip_magic_fault(void **state)
{
	(void)state;
	sim_chip_config cfg;
	sim_chip_config_defaults(&cfg);
	cfg.faults.chip_magic = 0x00F01D83;
	fixture *fx = fixture_new(&cfg);
	assert_int_equal(read_reg(fx, 0x40001000), 0x00F01D83u);
	fixture_free(fx);
}

/* esptool's run_spiflash_command for RDID / SFDP, step by step (notes 4.4) */
static uint32_t spiflash_command(fixture *fx, uint8_t cmd, unsigned read_bits, uint32_t addr, unsigned addr_len,
				 unsigned dummy_len)
{
	uint32_t old_usr = read_reg(fx, 0x6000021C), old_usr2 = read_reg(fx, 0x60000224);
	uint32_t flags = (read_bits - 1) << 8;
	if (dummy_len)
		flags |= dummy_len - 1;
	if (addr_len)
		flags |= (addr_len - 1) << 26;
	write_reg(fx, 0x60000220, flags);
	uint32_t usr = 1u << 31 | 1u << 28;
	if (addr_len)
		usr |= 1u << 30;
	if (dummy_len)
		usr |= 1u << 29;
	write_reg(fx, 0x6000021C, usr);
	write_reg(fx, 0x60000224, 7u << 28 | cmd);
	if (addr_len)
		write_reg(fx, 0x60000204, addr << (32 - addr_len));
	write_reg(fx, 0x60000240, 0);
	write_reg(fx, 0x60000200, 1u << 18);
	int i;
	for (i = 0; i < 10; i++)
		if ((read_reg(fx, 0x60000200) & (1u << 18)) == 0)
			break;
	assert_true(i < 10);
	uint32_t v = read_reg(fx, 0x60000240);
	write_reg(fx, 0x6000021C, old_usr);
	write_reg(fx, 0x60000224, old_usr2);
	return v;
}

static void test_rom_jedec_register_dance(void **state)
{
	(void)state;
	fixture *fx = fixture_new(NULL);
	/* before FLASH_BEGIN(0,0) the ROM has not attached the flash */
	assert_int_equal(spiflash_command(fx, 0x9F, 24, 0, 0, 0), 0);
	CMD(fx, 0x02, 0, 0, 0x400, 0);
	expect_resp(fx, 0, 0x02, 0, 0);
	assert_int_equal(fx->io.now, 0);  /* nothing to erase */
	assert_int_equal(spiflash_command(fx, 0x9F, 24, 0, 0, 0), 0x1640EF);
	uint32_t sfdp = spiflash_command(fx, 0x5A, 8, 0x10, 24, 8);
	assert_int_not_equal(sfdp & 0xFF, 0x20);
	assert_int_equal(sfdp & 0xFFFFFF00u, 0);
	/* status register 1: idle, not write-enabled */
	assert_int_equal(spiflash_command(fx, 0x05, 8, 0, 0, 0) & 0xFF, 0);
	fixture_free(fx);

	sim_chip_config cfg;
	sim_chip_config_defaults(&cfg);
	cfg.jedec_id = 0x14405E;  /* a 1 MB part */
	cfg.flash_size = 0;
	fx = stub_fixture(&cfg);  /* the stub attaches the flash by itself */
	/* esptool-js 0.7 on the ESP8266: writes the MISO length (23) to
	 * 0x60000200 and leaves USER1 alone; the ID must still come out whole */
	uint32_t old_usr = read_reg(fx, 0x6000021C), old_usr2 = read_reg(fx, 0x60000224);
	write_reg(fx, 0x60000200, 23);
	write_reg(fx, 0x6000021C, 1u << 31 | 1u << 28);
	write_reg(fx, 0x60000224, 7u << 28 | 0x9F);
	write_reg(fx, 0x60000240, 0);
	write_reg(fx, 0x60000200, 1u << 18);
	assert_int_equal(read_reg(fx, 0x60000200) & (1u << 18), 0);
	assert_int_equal(read_reg(fx, 0x60000240), 0x14405E);
	write_reg(fx, 0x6000021C, old_usr);
	write_reg(fx, 0x60000224, old_usr2);
	assert_int_equal(spiflash_command(fx, 0x9F, 24, 0, 0, 0), 0x14405E);
	size_t size = 0;
	sim_chip_flash(fx->chip, &size);
	assert_int_equal(size, 1u << 20);
	fixture_free(fx);
}

static void test_rom_unsupported_opcodes(void **state)
{
	(void)state;
	static const uint8_t ops[] = { 0x0B, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0x12, 0x13, 0x14,
				       0xD0, 0xD1, 0xD2, 0xD3, 0x42 };
	fixture *fx = fixture_new(NULL);
	for (size_t i = 0; i < sizeof ops; i++) {
		uint8_t payload[16] = { 0 };
		send_cmd(fx, ops[i], payload, ops[i] == 0x14 ? 0 : sizeof payload, 0);
		/* eight copies under an op that is not the request's: how
		 * esptool and esptool-js recognise "unsupported" */
		assert_int_equal(fx->io.n, 8);
		for (size_t k = 0; k < 8; k++)
			assert_int_not_equal(fx->io.frames[k].data[1], ops[i]);
		expect_resp(fx, 7, 0x00, 1, 0x05);
	}
	assert_int_equal(sim_chip_mode(fx->chip), SIM_MODE_ROM);
	fixture_free(fx);
}

static void fill_flash(fixture *fx, uint32_t addr, size_t n, uint8_t v)
{
	size_t size;
	uint8_t *flash = sim_chip_flash(fx->chip, &size);
	assert_true(addr + n <= size);
	memset(flash + addr, v, n);
}

static int all_bytes(fixture *fx, uint32_t addr, size_t n, uint8_t v)
{
	uint8_t *flash = sim_chip_flash(fx->chip, NULL);
	for (size_t i = 0; i < n; i++)
		if (flash[addr + i] != v)
			return 0;
	return 1;
}

static void test_rom_flash_begin_erase_quirk(void **state)
{
	(void)state;
	fixture *fx = fixture_new(NULL);
	/* one sector at 0x3FC000: the ROM erases two (notes 5.4 table) */
	fill_flash(fx, 0x3F0000, 0x10000, 0x00);
	CMD(fx, 0x02, 0x1000, 4, 0x400, 0x3FC000);
	expect_resp(fx, 0, 0x02, 0, 0);
	assert_true(all_bytes(fx, 0x3FC000, 0x2000, 0xFF));
	assert_true(all_bytes(fx, 0x3FB000, 0x1000, 0x00));
	assert_true(all_bytes(fx, 0x3FE000, 0x1000, 0x00));
	assert_int_equal(fx->io.now, 2 * 45000);  /* erased before the reply */

	/* esptool's corrected 0x8000 for 64 KiB at 0: exactly 16 sectors */
	fill_flash(fx, 0, 0x20000, 0x00);
	uint64_t t0 = fx->io.now;
	CMD(fx, 0x02, 0x8000, 64, 0x400, 0);
	expect_resp(fx, 0, 0x02, 0, 0);
	assert_true(all_bytes(fx, 0, 0x10000, 0xFF));
	assert_true(all_bytes(fx, 0x10000, 0x10000, 0x00));
	assert_int_equal(fx->io.now - t0, 150000);  /* one aligned block erase */

	/* esptool-js sends the uncorrected size plus a 5th word: over-erase */
	fill_flash(fx, 0, 0x20000, 0x00);
	CMD(fx, 0x02, 0x10000, 64, 0x400, 0, 0);
	expect_resp(fx, 0, 0x02, 0, 0);
	assert_true(all_bytes(fx, 0, 0x20000, 0xFF));
	fixture_free(fx);
}

static void test_rom_flash_data(void **state)
{
	(void)state;
	fixture *fx = fixture_new(NULL);
	uint8_t block[0x400];
	fill_pattern(block, sizeof block, 7);

	send_data(fx, 0x03, 0, block, sizeof block);  /* before FLASH_BEGIN */
	expect_resp(fx, 0, 0x03, 1, 0x06);

	CMD(fx, 0x02, 0x1000, 2, 0x400, 0x20000);
	uint64_t t0 = fx->io.now;
	send_data(fx, 0x03, 0, block, sizeof block);
	expect_resp(fx, 0, 0x03, 0, 0);
	assert_memory_equal(sim_chip_flash(fx->chip, NULL) + 0x20000, block, sizeof block);
	assert_int_equal(fx->io.now - t0, 4 * 700);  /* four pages programmed */

	/* bad checksum */
	uint8_t buf[16 + 0x400] = { 0 };
	put32(buf, 0x400);
	put32(buf + 4, 1);
	memcpy(buf + 16, block, 0x400);
	send_cmd(fx, 0x03, buf, sizeof buf, xsum(block, 0x400) ^ 0x5A);
	assert_int_equal(fx->io.n, 1);
	expect_resp(fx, 0, 0x03, 1, 0x07);
	assert_true(all_bytes(fx, 0x20400, 0x400, 0xFF));
	/* length word disagrees with the payload */
	put32(buf, 0x3FF);
	send_cmd(fx, 0x03, buf, sizeof buf, xsum(block, 0x400));
	expect_resp(fx, 0, 0x03, 1, 0x05);
	/* short block (hosts must pad to the FLASH_BEGIN block size) */
	send_data(fx, 0x03, 1, block, 0x100);
	expect_resp(fx, 0, 0x03, 1, 0x05);
	/* sequence number places the block */
	send_data(fx, 0x03, 1, block, sizeof block);
	expect_resp(fx, 0, 0x03, 0, 0);
	assert_memory_equal(sim_chip_flash(fx->chip, NULL) + 0x20400, block, sizeof block);
	fixture_free(fx);
}

static void test_nor_write_without_erase_ands(void **state)
{
	(void)state;
	fixture *fx = fixture_new(NULL);
	uint8_t a[0x400], b[0x400], both[0x400];
	fill_pattern(a, sizeof a, 11);
	fill_pattern(b, sizeof b, 12);
	for (size_t i = 0; i < sizeof a; i++)
		both[i] = a[i] & b[i];
	CMD(fx, 0x02, 0x1000, 1, 0x400, 0x8000);
	send_data(fx, 0x03, 0, a, sizeof a);
	expect_resp(fx, 0, 0x03, 0, 0);
	CMD(fx, 0x02, 0, 1, 0x400, 0x8000);  /* no erase this time */
	send_data(fx, 0x03, 0, b, sizeof b);
	expect_resp(fx, 0, 0x03, 0, 0);
	uint8_t *flash = sim_chip_flash(fx->chip, NULL);
	uint8_t want[16], got[16], and_md5[16];
	md5_of(b, sizeof b, want);
	md5_of(flash + 0x8000, sizeof b, got);
	md5_of(both, sizeof both, and_md5);
	assert_memory_not_equal(got, want, 16);
	assert_memory_equal(got, and_md5, 16);
	fixture_free(fx);
}

static void test_rom_stuck_sector_fails_verify(void **state)
{
	(void)state;
	sim_chip_config cfg;
	sim_chip_config_defaults(&cfg);
	cfg.faults.stuck_sector = 3;
	fixture *fx = fixture_new(&cfg);
	uint8_t block[0x400];
	memset(block, 0x00, sizeof block);
	CMD(fx, 0x02, 0x1000, 1, 0x400, 0x3000);
	send_data(fx, 0x03, 0, block, sizeof block);
	expect_resp(fx, 0, 0x03, 1, 0x08);
	fixture_free(fx);
}

static void test_rom_flash_end(void **state)
{
	(void)state;
	fixture *fx = fixture_new(NULL);
	CMD(fx, 0x04, 1);  /* run user code */
	expect_resp(fx, 0, 0x04, 0, 0);
	assert_int_equal(fx->io.reboots, 1);
	assert_int_equal(fx->io.last_reboot_to_app, 1);
	assert_int_equal(sim_chip_mode(fx->chip), SIM_MODE_APP);
	send_cmd(fx, 0x08, sync_payload, sizeof sync_payload, 0);
	assert_int_equal(fx->io.n, 0);  /* the application ignores SLIP */

	sim_chip_boot(fx->chip, 1);
	CMD(fx, 0x04, 0);  /* reboot: straps still say download */
	expect_resp(fx, 0, 0x04, 0, 0);
	assert_int_equal(fx->io.reboots, 2);
	assert_int_equal(fx->io.last_reboot_to_app, 0);
	assert_int_equal(sim_chip_mode(fx->chip), SIM_MODE_ROM);
	fixture_free(fx);
}

static void test_rom_unplug_fault(void **state)
{
	(void)state;
	sim_chip_config cfg;
	sim_chip_config_defaults(&cfg);
	cfg.faults.unplug_at_flash_offset = 0x10800;
	fixture *fx = fixture_new(&cfg);
	uint8_t block[0x400];
	memset(block, 0x00, sizeof block);
	CMD(fx, 0x02, 0x1000, 4, 0x400, 0x10000);
	send_data(fx, 0x03, 0, block, sizeof block);
	expect_resp(fx, 0, 0x03, 0, 0);
	send_data(fx, 0x03, 1, block, sizeof block);
	expect_resp(fx, 0, 0x03, 0, 0);
	assert_int_equal(fx->io.faults, 0);
	send_data(fx, 0x03, 2, block, sizeof block);
	assert_int_equal(fx->io.n, 0);  /* no reply: the chip is gone */
	assert_int_equal(fx->io.faults, 1);
	assert_string_equal(fx->io.last_fault, "unplug");
	fixture_free(fx);
}

static void test_silent_fault(void **state)
{
	(void)state;
	sim_chip_config cfg;
	sim_chip_config_defaults(&cfg);
	cfg.faults.silent = 1;
	fixture *fx = fixture_new(&cfg);
	send_cmd(fx, 0x08, sync_payload, sizeof sync_payload, 0);
	CMD(fx, 0x0A, 0x40001000);
	assert_int_equal(fx->io.n, 0);
	fixture_free(fx);
}

/* ---- stub ----------------------------------------------------------------- */

static void test_stub_upload_ohai(void **state)
{
	(void)state;
	fixture *fx = fixture_new(NULL);
	upload_stub(fx);
	assert_int_equal(fx->io.n, 2);
	expect_resp(fx, 0, 0x06, 0, 0);  /* the reply comes before OHAI */
	assert_int_equal(fx->io.frames[1].len, 4);
	assert_memory_equal(fx->io.frames[1].data, "OHAI", 4);
	assert_int_equal(sim_chip_mode(fx->chip), SIM_MODE_STUB);

	send_cmd(fx, 0x08, sync_payload, sizeof sync_payload, 0);
	assert_int_equal(fx->io.n, 8);
	for (size_t i = 0; i < 8; i++)
		assert_int_equal(expect_resp(fx, i, 0x08, 0, 0), 0);  /* stub: value 0 */
	assert_int_equal(read_reg(fx, 0x40001000), 0xFFF0C101u);

	/* MEM_END(1, 0) on the ROM just acknowledges */
	sim_chip_boot(fx->chip, 1);
	CMD(fx, 0x06, 1, 0);
	assert_int_equal(fx->io.n, 1);
	assert_int_equal(sim_chip_mode(fx->chip), SIM_MODE_ROM);
	fixture_free(fx);
}

static void test_stub_status_bytes_and_lengths(void **state)
{
	(void)state;
	fixture *fx = stub_fixture(NULL);
	CMD(fx, 0x0A, 0x40001000, 0);  /* READ_REG with 8 bytes */
	expect_resp(fx, 0, 0x0A, 0xC0, 0);
	CMD(fx, 0x10, 0x1000, 1, 0x8000, 0);  /* block size > 0x4000 */
	expect_resp(fx, 0, 0x10, 0xC2, 0);
	CMD(fx, 0x02, 0x1000, 1, 0x4000);  /* 12 bytes */
	expect_resp(fx, 0, 0x02, 0xC0, 0);
	CMD(fx, 0x42, 0);
	expect_resp(fx, 0, 0x42, 0xFF, 0);
	CMD(fx, 0x14);
	expect_resp(fx, 0, 0x14, 0xFF, 0);
	uint8_t block[64] = { 0 };
	send_data(fx, 0x03, 0, block, sizeof block);  /* not in flash mode */
	expect_resp(fx, 0, 0x03, 0xC6, 0);
	CMD(fx, 0x04, 1);
	expect_resp(fx, 0, 0x04, 0xC6, 0);
	CMD(fx, 0x0D, 0);
	expect_resp(fx, 0, 0x0D, 0, 0);
	CMD(fx, 0x0B, 0, 4u << 20, 0x10000, 0x1000, 0x100, 0xFFFF);
	expect_resp(fx, 0, 0x0B, 0, 0);
	/* oversized frame: C0 EE */
	size_t big = 0x4000 + 17;
	uint8_t *huge = calloc(1, big);
	send_cmd(fx, 0x03, huge, big, 0);
	free(huge);
	expect_resp(fx, 0, 0x03, 0xC0, 0xEE);
	/* the MD5 header length is 18 even on failure, and the legacy stub's
	 * `verify_data_len(...) || handler(...)` turns every failure into 1 */
	CMD(fx, 0x13, 0, 16);  /* 8 bytes: bad length */
	assert_int_equal(fx->io.frames[0].len, 10);
	assert_int_equal(fx->io.frames[0].data[2], 18);
	expect_resp(fx, 0, 0x13, 0x01, 0);
	CMD(fx, 0x13, 0x3FFFF0, 0x20, 0, 0);  /* beyond the 4 MB SPI_SET_PARAMS said */
	assert_int_equal(fx->io.frames[0].len, 10);
	assert_int_equal(fx->io.frames[0].data[2], 18);
	expect_resp(fx, 0, 0x13, 0x01, 0);
	fixture_free(fx);
}

static uint8_t *deflate_buf(const uint8_t *in, size_t n, size_t *out_n)
{
	uLongf cap = compressBound(n);
	uint8_t *out = malloc(cap);
	assert_int_equal(compress2(out, &cap, in, n, 9), Z_OK);
	*out_n = cap;
	return out;
}

static void stub_md5(fixture *fx, uint32_t addr, uint32_t len, uint8_t out[16])
{
	CMD(fx, 0x13, addr, len, 0, 0);
	assert_int_equal(fx->io.n, 1);
	assert_int_equal(fx->io.frames[0].len, 8 + 18);
	expect_resp(fx, 0, 0x13, 0, 0);
	memcpy(out, fx->io.frames[0].data + 8, 16);
}

static void test_stub_deflate_roundtrip_md5(void **state)
{
	(void)state;
	fixture *fx = stub_fixture(NULL);
	const size_t size = 200000;
	uint8_t *img = malloc(size);
	fill_pattern(img, size, 42);
	size_t zn;
	uint8_t *z = deflate_buf(img, size, &zn);
	uint32_t blocks = (uint32_t)((zn + 0x3FFF) / 0x4000);
	assert_true(blocks >= 2);  /* the stream must span blocks */
	CMD(fx, 0x10, (uint32_t)size, blocks, 0x4000, 0x10000);
	expect_resp(fx, 0, 0x10, 0, 0);
	for (uint32_t seq = 0; seq < blocks; seq++) {
		size_t off = (size_t)seq * 0x4000, n = zn - off < 0x4000 ? zn - off : 0x4000;
		send_data(fx, 0x11, seq, z + off, n);
		assert_int_equal(fx->io.n, 1);
		expect_resp(fx, 0, 0x11, 0, 0);
	}
	uint64_t before_barrier = fx->io.now;
	assert_int_equal(read_reg(fx, 0x40001000), 0xFFF0C101u);
	assert_true(fx->io.now > before_barrier);  /* the barrier waited for the write */
	uint8_t want[16], got[16];
	md5_of(img, size, want);
	stub_md5(fx, 0x10000, (uint32_t)size, got);
	assert_memory_equal(got, want, 16);
	assert_memory_equal(sim_chip_flash(fx->chip, NULL) + 0x10000, img, size);
	CMD(fx, 0x02, 0, 0, 0x4000, 0);
	expect_resp(fx, 0, 0x02, 0, 0);
	CMD(fx, 0x12, 1);
	expect_resp(fx, 0, 0x12, 0, 0);
	assert_int_equal(sim_chip_mode(fx->chip), SIM_MODE_STUB);

	/* a second file whose stream ends early: END says "not enough data" */
	CMD(fx, 0x10, (uint32_t)size + 100, blocks, 0x4000, 0x100000);
	for (uint32_t seq = 0; seq < blocks; seq++) {
		size_t off = (size_t)seq * 0x4000, n = zn - off < 0x4000 ? zn - off : 0x4000;
		send_data(fx, 0x11, seq, z + off, n);
	}
	CMD(fx, 0x12, 1);
	expect_resp(fx, 0, 0x12, 0xC8, 0);
	/* garbage instead of a zlib stream: inflate error on the next command */
	uint8_t junk[0x100];
	memset(junk, 0x5A, sizeof junk);
	CMD(fx, 0x10, 0x1000, 1, 0x4000, 0x200000);
	send_data(fx, 0x11, 0, junk, sizeof junk);
	expect_resp(fx, 0, 0x11, 0, 0);
	send_data(fx, 0x11, 1, junk, sizeof junk);
	expect_resp(fx, 0, 0x11, 0xC7, 0);
	free(z);
	free(img);
	fixture_free(fx);
}

static void test_stub_deflate_lone_adler_and_too_much(void **state)
{
	(void)state;
	fixture *fx = stub_fixture(NULL);
	const size_t size = 15000;
	uint8_t *img = malloc(size);
	fill_pattern(img, size, 8);
	size_t zn;
	uint8_t *z = deflate_buf(img, size, &zn);
	assert_true(zn <= 0x4000);
	/* everything but the Adler-32 trailer, then the trailer on its own */
	CMD(fx, 0x10, (uint32_t)size, 2, 0x4000, 0);
	send_data(fx, 0x11, 0, z, zn - 4);
	expect_resp(fx, 0, 0x11, 0, 0);
	send_data(fx, 0x11, 1, z + zn - 4, 4);
	expect_resp(fx, 0, 0x11, 0, 0);
	CMD(fx, 0x12, 1);
	expect_resp(fx, 0, 0x12, 0, 0);
	assert_memory_equal(sim_chip_flash(fx->chip, NULL), img, size);
	/* more than a trailer after the data is complete: 0xC9 */
	CMD(fx, 0x10, (uint32_t)size, 2, 0x4000, 0x20000);
	send_data(fx, 0x11, 0, z, zn);
	expect_resp(fx, 0, 0x11, 0, 0);
	send_data(fx, 0x11, 1, z, 64);
	expect_resp(fx, 0, 0x11, 0, 0);
	CMD(fx, 0x12, 1);
	expect_resp(fx, 0, 0x12, 0xC9, 0);
	free(z);
	free(img);
	fixture_free(fx);
}

static void test_stub_reset_fault_after_ack(void **state)
{
	(void)state;
	sim_chip_config cfg;
	sim_chip_config_defaults(&cfg);
	cfg.faults.reset_at_flash_offset = 0x2100;
	fixture *fx = stub_fixture(&cfg);
	uint8_t *block = calloc(1, 0x4000);
	CMD(fx, 0x02, 0x4000, 1, 0x4000, 0);
	send_data(fx, 0x03, 0, block, 0x4000);
	assert_int_equal(fx->io.n, 1);
	expect_resp(fx, 0, 0x03, 0, 0);  /* the stub had already ACKed */
	assert_int_equal(fx->io.faults, 1);
	assert_string_equal(fx->io.last_fault, "reset");
	assert_true(all_bytes(fx, 0, 0x2100, 0x00));     /* written up to the offset */
	assert_true(all_bytes(fx, 0x2100, 0x100, 0xFF)); /* not beyond */
	/* the fault fires once: after the reset the retry goes through */
	sim_chip_boot(fx->chip, 1);
	clear_frames(&fx->io);
	upload_stub(fx);
	CMD(fx, 0x02, 0x4000, 1, 0x4000, 0);
	send_data(fx, 0x03, 0, block, 0x4000);
	CMD(fx, 0x04, 1);
	expect_resp(fx, 0, 0x04, 0, 0);
	assert_int_equal(fx->io.faults, 1);
	assert_true(all_bytes(fx, 0, 0x4000, 0x00));
	free(block);
	fixture_free(fx);
}

static void test_stub_flash_data_trims_padding(void **state)
{
	(void)state;
	fixture *fx = stub_fixture(NULL);
	fill_flash(fx, 0x1000, 0x1000, 0x00);
	uint8_t *block = malloc(0x4000);
	memset(block, 0xFF, 0x4000);
	fill_pattern(block, 0x800, 3);
	CMD(fx, 0x02, 0x800, 1, 0x4000, 0);  /* 2 KiB file, padded block */
	send_data(fx, 0x03, 0, block, 0x4000);
	expect_resp(fx, 0, 0x03, 0, 0);
	CMD(fx, 0x04, 1);
	expect_resp(fx, 0, 0x04, 0, 0);
	assert_memory_equal(sim_chip_flash(fx->chip, NULL), block, 0x800);
	assert_true(all_bytes(fx, 0x1000, 0x1000, 0x00));  /* only one sector erased */
	free(block);
	fixture_free(fx);
}

/* The real stub never reads back what it programmed: a stuck sector takes
 * the write silently, and the flash holds the stuck bits for MD5 to find. */
static void test_stub_stuck_sector_is_silent(void **state)
{
	(void)state;
	sim_chip_config cfg;
	sim_chip_config_defaults(&cfg);
	cfg.faults.stuck_sector = 0x11;
	fixture *fx = stub_fixture(&cfg);
	uint8_t *block = calloc(1, 0x4000);  /* zeros: every stuck bit shows */
	CMD(fx, 0x02, 0x8000, 2, 0x4000, 0x10000);
	expect_resp(fx, 0, 0x02, 0, 0);
	send_data(fx, 0x03, 0, block, 0x4000);
	expect_resp(fx, 0, 0x03, 0, 0);
	send_data(fx, 0x03, 1, block, 0x4000);
	expect_resp(fx, 0, 0x03, 0, 0);  /* no error: nothing was read back */
	CMD(fx, 0x04, 1);
	expect_resp(fx, 0, 0x04, 0, 0);
	const uint8_t *flash = sim_chip_flash(fx->chip, NULL);
	assert_int_equal(flash[0x10000], 0x00);          /* sector 0x10 took the zeros */
	assert_int_not_equal(flash[0x11000], 0x00);      /* sector 0x11 kept stuck bits */
	assert_int_equal(flash[0x11000] & 0xFE, 0x00);   /* ... only those */
	free(block);
	fixture_free(fx);
}

static void test_stub_erase_region(void **state)
{
	(void)state;
	fixture *fx = stub_fixture(NULL);
	/* 0x32, 0x33 and 0xC0 inside; `||` makes each 1 on the wire */
	CMD(fx, 0xD1, 0x800, 0x1000);
	expect_resp(fx, 0, 0xD1, 0x01, 0);
	CMD(fx, 0xD1, 0x1000, 0x800);
	expect_resp(fx, 0, 0xD1, 0x01, 0);
	CMD(fx, 0xD1, 0x1000);
	expect_resp(fx, 0, 0xD1, 0x01, 0);
	fill_flash(fx, 0, 0x40000, 0x00);
	uint64_t t0 = fx->io.now;
	CMD(fx, 0xD1, 0x10000, 0x20000);
	expect_resp(fx, 0, 0xD1, 0, 0);
	assert_true(all_bytes(fx, 0x10000, 0x20000, 0xFF));
	assert_true(all_bytes(fx, 0, 0x10000, 0x00));
	assert_true(all_bytes(fx, 0x30000, 0x10000, 0x00));
	/* the stub erases blocks only while MORE than 64 KiB remain: 1 block + 16 sectors */
	assert_int_equal(fx->io.now - t0, 150000 + 16 * 45000);
	CMD(fx, 0xD1, 0xFFF000, 0x2000);  /* runs past the 16 MiB the stub starts with */
	expect_resp(fx, 0, 0xD1, 0x01, 0);
	fixture_free(fx);
}

static void test_stub_read_flash_ack_flow(void **state)
{
	(void)state;
	fixture *fx = stub_fixture(NULL);
	const uint32_t addr = 0x30000, len = 10000;
	uint8_t *flash = sim_chip_flash(fx->chip, NULL);
	fill_pattern(flash + addr, len, 99);
	CMD(fx, 0xD2, addr, len, 0x1000, 1024);  /* esptool-js parameters */
	assert_int_equal(fx->io.n, 2);
	expect_resp(fx, 0, 0xD2, 0, 0);
	assert_int_equal(fx->io.frames[1].len, 0x1000);
	assert_memory_equal(fx->io.frames[1].data, flash + addr, 0x1000);
	uint32_t got = 0x1000;
	uint8_t ack[4];
	while (got < len) {
		put32(ack, got);
		clear_frames(&fx->io);
		sim_chip_handle_frame(fx->chip, ack, sizeof ack);
		assert_int_equal(fx->io.n, 1);
		uint32_t n = len - got < 0x1000 ? len - got : 0x1000;
		assert_int_equal(fx->io.frames[0].len, n);
		assert_memory_equal(fx->io.frames[0].data, flash + addr + got, n);
		got += n;
	}
	put32(ack, got);
	clear_frames(&fx->io);
	sim_chip_handle_frame(fx->chip, ack, sizeof ack);
	assert_int_equal(fx->io.n, 1);
	assert_int_equal(fx->io.frames[0].len, 16);
	uint8_t want[16];
	md5_of(flash + addr, len, want);
	assert_memory_equal(fx->io.frames[0].data, want, 16);
	/* back to commands */
	assert_int_equal(read_reg(fx, 0x40001000), 0xFFF0C101u);

	/* a bigger window lets several packets out before the first ACK */
	CMD(fx, 0xD2, addr, len, 0x1000, 0x3000);
	assert_int_equal(fx->io.n, 1 + 3);
	put32(ack, 0x1000);
	clear_frames(&fx->io);
	sim_chip_handle_frame(fx->chip, ack, sizeof ack);
	assert_int_equal(fx->io.n, 0);  /* everything is already in flight */
	/* a non-ACK frame ends the read with the MD5 */
	sim_chip_handle_frame(fx->chip, (const uint8_t *)"xyz", 3);
	assert_int_equal(fx->io.n, 1);
	assert_int_equal(fx->io.frames[0].len, 16);
	fixture_free(fx);
}

static void test_stub_change_baudrate(void **state)
{
	(void)state;
	fixture *fx = stub_fixture(NULL);
	CMD(fx, 0x0F, 460800, 115200);
	assert_int_equal(fx->io.n, 1);
	expect_resp(fx, 0, 0x0F, 0, 0);
	assert_int_equal(fx->io.baud, 460800);
	assert_int_equal(fx->io.frames_at_baud_change, 1);  /* reply went out first */
	assert_true(fx->io.now >= 10000);
	/* the divider follows, so the crystal still reads 26 MHz at the new rate */
	uint32_t div = read_reg(fx, 0x60000014) & 0xFFFFF;
	double est = 460800.0 * div / 1e6 / 2;
	assert_true(est > 25 && est < 27);
	/* a host lying about its old rate gets a wrong line rate */
	CMD(fx, 0x0F, 921600, 115200);
	assert_int_not_equal(fx->io.baud, 921600);
	CMD(fx, 0x0F, 921600);
	expect_resp(fx, 0, 0x0F, 0xC0, 0);
	fixture_free(fx);
}

static void test_stub_flash_end_reboot_and_run(void **state)
{
	(void)state;
	fixture *fx = stub_fixture(NULL);
	CMD(fx, 0x02, 0, 0, 0x4000, 0);
	CMD(fx, 0x04, 0);
	expect_resp(fx, 0, 0x04, 0, 0);
	assert_int_equal(fx->io.reboots, 1);
	assert_int_equal(fx->io.last_reboot_to_app, 0);
	assert_int_equal(sim_chip_mode(fx->chip), SIM_MODE_ROM);  /* straps latched */
	fixture_free(fx);

	fx = stub_fixture(NULL);
	CMD(fx, 0xD3);
	assert_int_equal(fx->io.n, 0);  /* RUN_USER_CODE never answers */
	assert_int_equal(fx->io.last_reboot_to_app, 1);
	assert_int_equal(sim_chip_mode(fx->chip), SIM_MODE_APP);
	fixture_free(fx);
}

/* ---- timing --------------------------------------------------------------- */

static void test_timing_chip_erase(void **state)
{
	(void)state;
	fixture *fx = stub_fixture(NULL);
	fill_flash(fx, 0x123000, 0x1000, 0x00);
	uint64_t t0 = fx->io.now;
	send_cmd(fx, 0xD0, NULL, 0, 0);
	expect_resp(fx, 0, 0xD0, 0, 0);
	uint64_t took = fx->io.now - t0;
	assert_true(took >= 8000000 && took <= 10000000);
	assert_true(all_bytes(fx, 0, 4u << 20, 0xFF));
	fixture_free(fx);
}

static void test_timing_stub_write_overlaps(void **state)
{
	(void)state;
	fixture *fx = stub_fixture(NULL);
	uint8_t *block = malloc(0x4000);
	fill_pattern(block, 0x4000, 5);
	CMD(fx, 0x02, 0x8000, 2, 0x4000, 0);
	uint64_t t0 = fx->io.now;
	send_data(fx, 0x03, 0, block, 0x4000);
	expect_resp(fx, 0, 0x03, 0, 0);
	assert_int_equal(fx->io.frames[0].at, t0);  /* ACK without waiting */
	/* sent at once, the next block waits for erase (5 sectors up to the
	 * block's end) and 64 page programs */
	send_data(fx, 0x03, 1, block, 0x4000);
	expect_resp(fx, 0, 0x03, 0, 0);
	uint64_t busy = 5 * 45000 + 64 * 700;
	assert_int_equal(fx->io.frames[0].at - t0, busy);
	/* if the host takes longer to send than the flash to program, no wait */
	fx->io.now += 400000;
	uint64_t t1 = fx->io.now;
	CMD(fx, 0x04, 1);
	expect_resp(fx, 0, 0x04, 0, 0);
	assert_int_equal(fx->io.frames[0].at, t1);
	uint8_t want[16], got[16];
	md5_of(block, 0x4000, want);
	stub_md5(fx, 0x4000, 0x4000, got);
	assert_memory_equal(got, want, 16);
	free(block);
	fixture_free(fx);
}

/* ---- persistence, robustness -------------------------------------------- */

static void test_persistence_roundtrip(void **state)
{
	(void)state;
	sim_chip_config cfg;
	sim_chip_config_defaults(&cfg);
	cfg.jedec_id = 0x1340EF;
	cfg.flash_size = 512 * 1024;
	fixture *a = fixture_new(&cfg);
	size_t size;
	uint8_t *fa = sim_chip_flash(a->chip, &size);
	assert_int_equal(size, 512 * 1024);
	fill_pattern(fa, size, 77);
	char path[] = "/tmp/test_sim_chip_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(sim_chip_save_flash(a->chip, path), 0);
	fixture *b = fixture_new(&cfg);
	assert_true(all_bytes(b, 0, size, 0xFF));
	assert_int_equal(sim_chip_load_flash(b->chip, path), 0);
	assert_memory_equal(sim_chip_flash(b->chip, NULL), fa, size);
	unlink(path);
	assert_true(sim_chip_load_flash(b->chip, path) < 0);
	assert_true(sim_chip_save_flash(b->chip, "/nonexistent-dir/x.bin") < 0);
	fixture_free(a);
	fixture_free(b);

	/* random initial contents */
	sim_chip_config_defaults(&cfg);
	cfg.flash_random = 1;
	cfg.flash_seed = 5;
	a = fixture_new(&cfg);
	assert_false(all_bytes(a, 0, 4096, 0xFF));
	fixture_free(a);
}

static void garbage_storm(fixture *fx, uint32_t seed)
{
	uint8_t buf[300];
	uint32_t x = seed;
	for (int i = 0; i < 3000; i++) {
		x = x * 1664525u + 1013904223u;
		size_t len = (x >> 8) % sizeof buf;
		for (size_t j = 0; j < len; j++) {
			x = x * 1664525u + 1013904223u;
			buf[j] = (uint8_t)(x >> 24);
		}
		if (len >= 4 && (i % 3) == 0) {
			buf[0] = 0;  /* a plausible header with a lying size */
			buf[1] = (uint8_t)(x % 0x16);
		}
		if (i % 7 == 0 && len >= 4)
			buf[1] = 0xD2;  /* READ_FLASH with random parameters */
		if (buf[1] == 0x04 || buf[1] == 0x06 || buf[1] == 0xD3 || buf[1] == 0x12)
			buf[1] = 0x0A;  /* keep the chip in its loader */
		sim_chip_handle_frame(fx->chip, buf, len);
		if (fx->io.n > MAX_FRAMES / 2)
			clear_frames(&fx->io);
	}
}

static void test_garbage_frames(void **state)
{
	(void)state;
	fixture *fx = fixture_new(NULL);
	clear_frames(&fx->io);
	sim_chip_handle_frame(fx->chip, (const uint8_t *)"\x00\x08\x24", 3);
	assert_int_equal(fx->io.n, 0);  /* shorter than a header: ignored */
	uint8_t hdr[8] = { 0x00, 0x0A, 0x04, 0x00 };
	sim_chip_handle_frame(fx->chip, hdr, 8);  /* size says 4, none given */
	assert_int_equal(fx->io.n, 1);
	expect_resp(fx, 0, 0x0A, 1, 0x05);
	uint8_t dir1[12] = { 0x01, 0x0A, 0x04, 0x00, 0, 0, 0, 0, 0x00, 0x10, 0x00, 0x40 };
	clear_frames(&fx->io);
	sim_chip_handle_frame(fx->chip, dir1, sizeof dir1);
	expect_resp(fx, 0, 0x0A, 1, 0x05);
	garbage_storm(fx, 1);
	assert_int_equal(sim_chip_mode(fx->chip), SIM_MODE_ROM);
	assert_int_equal(read_reg(fx, 0x40001000), 0xFFF0C101u);
	fixture_free(fx);

	fx = stub_fixture(NULL);
	clear_frames(&fx->io);
	/* the legacy stub believes the header and reads a stale address */
	sim_chip_handle_frame(fx->chip, hdr, 8);
	expect_resp(fx, 0, 0x0A, 0, 0);
	garbage_storm(fx, 2);
	/* a READ_FLASH may be streaming: any non-ACK frame ends it */
	sim_chip_handle_frame(fx->chip, (const uint8_t *)"x", 1);
	assert_int_equal(read_reg(fx, 0x40001000), 0xFFF0C101u);
	fixture_free(fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rom_sync_eight_replies),
		cmocka_unit_test(test_rom_read_reg_identity),
		cmocka_unit_test(test_rom_crystal_detection),
		cmocka_unit_test(test_chip_magic_fault),
		cmocka_unit_test(test_rom_jedec_register_dance),
		cmocka_unit_test(test_rom_unsupported_opcodes),
		cmocka_unit_test(test_rom_flash_begin_erase_quirk),
		cmocka_unit_test(test_rom_flash_data),
		cmocka_unit_test(test_nor_write_without_erase_ands),
		cmocka_unit_test(test_rom_stuck_sector_fails_verify),
		cmocka_unit_test(test_rom_flash_end),
		cmocka_unit_test(test_rom_unplug_fault),
		cmocka_unit_test(test_silent_fault),
		cmocka_unit_test(test_stub_upload_ohai),
		cmocka_unit_test(test_stub_status_bytes_and_lengths),
		cmocka_unit_test(test_stub_deflate_roundtrip_md5),
		cmocka_unit_test(test_stub_deflate_lone_adler_and_too_much),
		cmocka_unit_test(test_stub_reset_fault_after_ack),
		cmocka_unit_test(test_stub_flash_data_trims_padding),
		cmocka_unit_test(test_stub_stuck_sector_is_silent),
		cmocka_unit_test(test_stub_erase_region),
		cmocka_unit_test(test_stub_read_flash_ack_flow),
		cmocka_unit_test(test_stub_change_baudrate),
		cmocka_unit_test(test_stub_flash_end_reboot_and_run),
		cmocka_unit_test(test_timing_chip_erase),
		cmocka_unit_test(test_timing_stub_write_overlaps),
		cmocka_unit_test(test_persistence_roundtrip),
		cmocka_unit_test(test_garbage_frames),
	};
	return cmocka_run_group_tests_name("sim_chip", tests, NULL, NULL);
}
