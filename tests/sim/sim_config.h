/*
 * sim_config.h - espline-sim's command line: what devices to simulate.
 *
 * Turns argv into one sim_device_config per simulated device (link type,
 * boot mode, MAC, flash size and JEDEC id, crystal, faults) plus the
 * process-wide settings (time scale, directories, ready file).  Defaults come
 * from the global options; "--dev K:key=value,..." overrides device K (or a
 * range A-B).  It does no I/O and prints nothing: errors come back as text.
 *
 * Thread safety: plain data; parse once in main before starting threads.
 */
#ifndef ESPLINE_SIM_CONFIG_H
#define ESPLINE_SIM_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "sim_boot.h"
#include "sim_chip.h"
#include "sim_fault.h"
#include "sim_wire.h"

#define SIM_MAX_DEVICES 64

enum sim_link_kind { SIM_LINK_PTY, SIM_LINK_RFC2217 };
enum sim_boot { SIM_BOOT_AUTO, SIM_BOOT_DOWNLOAD, SIM_BOOT_APP };

typedef struct sim_device_config {
	unsigned index;
	enum sim_link_kind link;
	enum sim_boot boot;         /* never AUTO after parsing: pty -> download, rfc2217 -> app */
	sim_chip_config chip;       /* chip.faults already filled from faults[] */
	sim_fault faults[SIM_FAULTS_MAX];
	size_t nfaults;
	unsigned port;              /* TCP port for rfc2217; 0 = let the OS choose */
	int mac_set, jedec_set;     /* given explicitly (not derived) */
	unsigned rom_max_baud;      /* 0 = the ROM auto-bauds at any rate; else host rates above
	                               it never sync (a chip/adapter that fails there): the ROM
	                               hears noise until the host comes down to this rate */
	sim_adapter adapter;        /* adapter_max_baud=, marginal=: the USB-serial bridge's
	                               limits on the host's rate (sim_wire.h) */
	sim_boot_config boot_model; /* what it prints after a reset (sim_boot.h); its xtal_mhz
	                               follows chip.xtal_mhz after parsing */
	size_t claim_size;          /* claim=: the JEDEC id claims this much (> flash: a fake part) */
} sim_device_config;

typedef struct sim_options {
	unsigned ndevices;
	sim_device_config *devices; /* ndevices entries, malloc'd */
	const char *link_dir;       /* symlinks DIR/devK -> pty slave; NULL = none */
	const char *flash_dir;      /* DIR/devK.bin persistence; NULL = none */
	const char *ready_file;     /* device list written once all listen; NULL = none */
	double time_scale;          /* multiplies every simulated delay; 0 = none */
	double exit_after_idle;     /* seconds without host traffic; 0 = run until signalled */
	unsigned port_base;         /* device K listens on port_base + K; 0 = any free port */
	unsigned en_delay_ms;       /* EN capacitor: rise time after reset is released */
	unsigned line_latency_ms;   /* RFC 2217 SET-CONTROL applied this late (0 = at once) */
	unsigned line_jitter_ms;    /* ... plus a seeded random 0..jitter ms */
	uint64_t seed;              /* fault/noise RNG; device K uses seed + K */
	int verbose;
	int help;                   /* --help was given: print sim_options_usage() */
} sim_options;

/* Parse argv (argv[0] is the program).  Returns 0, or -1 with a message in
 * err.  On success free with sim_options_free. */
int sim_options_parse(int argc, char **argv, sim_options *o, char *err, size_t errlen);
void sim_options_free(sim_options *o);

/* The --help text. */
const char *sim_options_usage(void);

/* "aa:bb:cc:dd:ee:ff" (also with '-').  Returns 0 or -1. */
int sim_parse_mac(const char *s, uint8_t mac[6]);
/* Flash size as the tools print it: "512KB", "4MB". */
void sim_format_flash_size(size_t bytes, char *out, size_t len);
/* Winbond-style JEDEC id for a flash size: manufacturer 0xEF, type 0x40,
 * capacity byte log2(size), packed as read from SPI W0 (0x1640EF for 4 MB). */
uint32_t sim_default_jedec(size_t flash_size);
/* chip_id as esptool computes it: the MAC's last three bytes. */
uint32_t sim_chip_id(const uint8_t mac[6]);

#endif /* ESPLINE_SIM_CONFIG_H */
