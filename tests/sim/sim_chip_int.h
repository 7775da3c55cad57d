/*
 * sim_chip_int.h - internals shared by the files that make up the simulated
 * chip: sim_chip.c (frame dispatch, ROM loader), sim_stub.c (flasher stub),
 * sim_regs.c (READ_REG/WRITE_REG address map, SPI user-command engine),
 * sim_ram.c (uploaded RAM, and which flasher stub sits at an entry point).
 * Not for the transport: it uses sim_chip.h only.
 *
 * Thread-safety: none; one sim_chip is driven by one thread.
 */
#ifndef ESPLINE_SIM_CHIP_INT_H
#define ESPLINE_SIM_CHIP_INT_H

#include <stdbool.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "sim_chip.h"
#include "sim_flash.h"

/* Opcodes (protocol notes 2.1). */
enum {
	OP_FLASH_BEGIN = 0x02, OP_FLASH_DATA = 0x03, OP_FLASH_END = 0x04,
	OP_MEM_BEGIN = 0x05, OP_MEM_END = 0x06, OP_MEM_DATA = 0x07,
	OP_SYNC = 0x08, OP_WRITE_REG = 0x09, OP_READ_REG = 0x0A,
	OP_SPI_SET_PARAMS = 0x0B, OP_SPI_ATTACH = 0x0D, OP_CHANGE_BAUDRATE = 0x0F,
	OP_FLASH_DEFL_BEGIN = 0x10, OP_FLASH_DEFL_DATA = 0x11, OP_FLASH_DEFL_END = 0x12,
	OP_SPI_FLASH_MD5 = 0x13, OP_ERASE_FLASH = 0xD0, OP_ERASE_REGION = 0xD1,
	OP_READ_FLASH = 0xD2, OP_RUN_USER_CODE = 0xD3,
};

/* ROM error codes (status byte 1, then this). */
enum { ROM_ERR_INVALID = 0x05, ROM_ERR_FAILED = 0x06, ROM_ERR_CHECKSUM = 0x07, ROM_ERR_WRITE = 0x08 };

/* Stub error codes (first status byte). */
enum {
	STUB_OK = 0x00, STUB_BAD_DATA_LEN = 0xC0, STUB_BAD_CHECKSUM = 0xC1, STUB_BAD_BLOCKSIZE = 0xC2,
	STUB_FAILED_SPI_OP = 0xC4, STUB_NOT_IN_FLASH_MODE = 0xC6, STUB_INFLATE_ERROR = 0xC7,
	STUB_NOT_ENOUGH_DATA = 0xC8, STUB_TOO_MUCH_DATA = 0xC9, STUB_NOT_IMPLEMENTED = 0xFF,
	STUB_MD5_READ_FAILED = 0x63, STUB_INVALID_COMMAND = 0xC3,
};

/* Which flasher stub runs (sim_ram.c tells them apart by entry point and the
 * SHA-256 of the code at it; docs/simulator-fidelity.md lists the builds). */
enum sim_stub_kind {
	SIM_STUB_LEGACY,      /* esptool-legacy-flasher-stub v1.10+: FLASH_BEGIN takes 16 or 20 bytes;
	                         also the fallback for a stub nobody recognises */
	SIM_STUB_LEGACY_OLD,  /* the same stub built before v1.10 (esptool v4.5 to v5.1, esptool-js
	                         0.4.x): a 20-byte FLASH_BEGIN fails with status 0x01 */
	SIM_STUB_EFS,         /* esp-flasher-stub (esptool-js 0.7, esptool's stub set 2) */
};

#define SIM_ROM_SYNC_VALUE 0x20120707u
/* The op of the ROM's "unsupported" reply: unknown without hardware, beyond
 * "not the request's" (docs/simulator-fidelity.md); 0x00 is no request's. */
#define SIM_ROM_UNSUPPORTED_OP 0x00
#define SIM_ESP8266_MAGIC 0xFFF0C101u
#define SIM_UART_DATE 0x00062000u
#define SIM_STUB_MAX_BLOCK 0x4000u
#define SIM_STUB_INFLATE_BUF 0x8000u
#define SIM_STUB_DEFAULT_FLASH (16u << 20)  /* SPIParamCfg at stub start */
#define SIM_SCRATCH_REGS 64
#define SIM_RAM_SEGMENTS 4
#define SIM_RAM_SEGMENT_MAX 0x20000u  /* more than the ESP8266 has in one region */
#define SIM_STUB_RX_BUF (SIM_STUB_MAX_BLOCK + 64)  /* the legacy stub's frame buffers */

/* A decoded request. */
typedef struct sim_req {
	uint8_t dir, op;
	uint16_t size;          /* header size field */
	uint32_t checksum;
	const uint8_t *data;    /* bytes after the header */
	size_t len;             /* how many there really are */
} sim_req;

/* One region the host filled through MEM_BEGIN/MEM_DATA. */
typedef struct sim_ram_seg {
	uint32_t addr, size, filled;
	uint8_t *bytes;             /* size bytes, at most SIM_RAM_SEGMENT_MAX */
} sim_ram_seg;

struct sim_chip {
	sim_chip_config cfg;
	sim_chip_io io;
	enum sim_chip_mode mode;
	int latched_download;       /* GPIO0 low at the last EN rise */
	unsigned host_baud;         /* the host's line rate (sim_chip_set_host_baud) */
	unsigned uart_baud;         /* baud the chip's UART runs at (CLKDIV) */
	sim_flash flash;
	bool flash_attached;
	uint64_t busy_until;        /* stub: flash busy with a deferred write/erase */

	struct {
		uint32_t spi[32];       /* 0x60000200..0x6000027C */
		uint32_t status[3];     /* flash status registers 1..3 */
		uint32_t scratch_addr[SIM_SCRATCH_REGS];
		uint32_t scratch_val[SIM_SCRATCH_REGS];
		unsigned scratch_n;
	} regs;

	struct {                    /* ROM FLASH_BEGIN..FLASH_DATA */
		bool active;
		uint32_t offset, block_size, num_blocks;
	} rom_flash;

	struct {                    /* MEM_BEGIN..MEM_END, ROM and stub */
		bool active;
		uint32_t addr, remaining, uploaded;
	} mem;

	struct {                    /* stub FLASH_(DEFL_)BEGIN..END */
		bool in_flash_mode;
		bool deflate;
		uint32_t next_write, remaining;
		uint32_t next_erase_sector, remaining_erase_sector;
		uint8_t last_error;
		uint32_t believed_size; /* SPI_SET_PARAMS total_size */
		z_stream z;
		bool z_live, z_done;
		uint8_t *out;           /* SIM_STUB_INFLATE_BUF bytes */
		size_t out_len;
	} fw;

	struct {                    /* RAM uploads survive until power is lost */
		sim_ram_seg seg[SIM_RAM_SEGMENTS];
		int cur;                /* segment MEM_DATA appends to, -1 = none */
	} ram;

	struct {                    /* which stub runs, and its quirks */
		enum sim_stub_kind kind;
		uint8_t pending_error;  /* esp-flasher-stub: a post-process error for the next command */
		bool dirty_seen;        /* esp-flasher-stub: its skip-blank-sector erase gave up */
		bool hung;              /* esp-flasher-stub: looping for ever, until a reset */
		uint8_t rx[2][SIM_STUB_RX_BUF]; /* legacy: double-buffered frames, stale bytes stay */
		int rx_next;
	} stub;

	struct {                    /* stub READ_FLASH streaming */
		bool active;
		uint32_t addr, len, block, max_in_flight, sent, acked;
		uint32_t sent_packets, acked_packets;  /* esp-flasher-stub counts packets */
		EVP_MD_CTX *md5;
	} rd;
};

/* sim_chip.c */
void sim_emit_response(sim_chip *c, uint8_t op, uint32_t value, uint16_t size_field,
		       const uint8_t *out, size_t out_len, uint8_t s0, uint8_t s1);
void sim_sleep(sim_chip *c, uint64_t us);
uint64_t sim_now(sim_chip *c);
uint32_t sim_le32(const uint8_t *p);
uint8_t sim_checksum(const uint8_t *p, size_t n);
/* Program flash, firing the unplug/reset faults: SIM_FLASH_* or 1 = faulted. */
int sim_chip_program(sim_chip *c, uint32_t addr, const uint8_t *src, size_t n, uint64_t *us);
/* One WRITE_REG entry (addr, value, mask, delay: 16 bytes), ROM and stub. */
void sim_chip_apply_write_reg(sim_chip *c, const uint8_t *p);
void sim_chip_software_reset(sim_chip *c);
void sim_chip_enter_stub(sim_chip *c, enum sim_stub_kind kind);
/* The CPU jumps to entry (MEM_END): a stub uploaded there starts, anything
 * else crashes and the chip resets (protocol notes 5.7). */
void sim_chip_jump(sim_chip *c, uint32_t entry);
void sim_chip_run_user_code(sim_chip *c);

/* sim_regs.c */
uint32_t sim_regs_read(sim_chip *c, uint32_t addr);
void sim_regs_write(sim_chip *c, uint32_t addr, uint32_t value);
void sim_regs_reset(sim_chip *c);

/* sim_ram.c */
void sim_ram_free(sim_chip *c);
/* MEM_BEGIN: a new region (or the same address again, refilled). */
void sim_ram_begin(sim_chip *c, uint32_t addr, uint32_t size);
/* MEM_DATA: bytes after what the region holds so far (excess ignored). */
void sim_ram_append(sim_chip *c, const uint8_t *p, size_t n);
/* Jump to entry: 0 = code there, *kind says which stub (an unknown one is
 * SIM_STUB_LEGACY and logged); -1 = nothing uploaded there. */
int sim_ram_identify(sim_chip *c, uint32_t entry, enum sim_stub_kind *kind);
/* A line for the transport's log (no newline). */
void sim_log(sim_chip *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* sim_stub.c */
void sim_stub_reset(sim_chip *c);
void sim_stub_handle(sim_chip *c, const sim_req *r);
/* A raw frame while READ_FLASH streams: the host's ACK (or anything else). */
void sim_stub_read_flash_frame(sim_chip *c, const uint8_t *frame, size_t len);

#endif /* ESPLINE_SIM_CHIP_INT_H */
