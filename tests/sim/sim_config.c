/*
 * sim_config.c - espline-sim option parsing.
 */
#include "sim_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A realistic Espressif OUI: ESP8266 modules carrying it store it in eFuse
 * word 3, which esptool's OUI rule accepts. */
static const uint8_t default_mac[6] = { 0x5c, 0xcf, 0x7f, 0xa0, 0x00, 0x00 };

const char *sim_options_usage(void)
{
	return
"usage: espline-sim [options]\n"
"\n"
"Simulates N ESP8266 modules (ROM loader, flasher stub, SPI NOR flash) on\n"
"pseudo-terminals or RFC 2217 TCP servers, until SIGINT/SIGTERM.  Prints one\n"
"line per device on stdout when all are listening:\n"
"  device K PORT mac=.. chip_id=.. flash=.. jedec=.. xtal=.. boot=.. [link=..]\n"
"where PORT is what espline takes: /dev/pts/N or rfc2217://127.0.0.1:P.\n"
"A device that is unplugged and comes back (pty: maybe another /dev/pts/N)\n"
"prints its line again; --ready-file is rewritten then too.  Exit status: 0\n"
"after a signal or --exit-after-idle, 1 if a device cannot be set up, 2 for\n"
"a bad command line.  Logs (boots, faults, summaries) go to stderr.\n"
"\n"
"Process options:\n"
"  -n, --devices N        number of devices (1..64, default 1)\n"
"  --link-dir DIR         create symlinks DIR/devK -> the device's pty\n"
"  --flash-dir DIR        load DIR/devK.bin at start (if present); save it on\n"
"                         exit, after every FLASH_END/FLASH_DEFL_END, reset and\n"
"                         unplug (written atomically by a thread of its own:\n"
"                         tmp file + rename)\n"
"  --ready-file PATH      write the device lines to PATH once all listen\n"
"                         (removed at exit)\n"
"  --time-scale X         multiply every simulated delay (wire time at the\n"
"                         current baud, flash erase/program, reboot) by X;\n"
"                         0 = none, 1 = real time (default 1)\n"
"  --exit-after-idle S    exit after S seconds without host traffic on any device\n"
"  --port-base P          device K listens on 127.0.0.1:P+K (default: free ports)\n"
"  --en-delay MS          EN capacitor: EN rises MS ms after release (default 10)\n"
"  --line-latency MS[:J]  RFC 2217: each DTR/RTS change takes effect MS ms (plus\n"
"                         a seeded random 0..J ms) after it arrives, in order,\n"
"                         and is acknowledged then, as through a serial server\n"
"                         on a slow network (default 0: at once)\n"
"  --seed N               seed for random faults and line noise (default 1);\n"
"                         device K uses N+K\n"
"  -v, --verbose          log every reset, boot, baud change and connection\n"
"  -h, --help             this text\n"
"\n"
"Device defaults (apply to every device unless overridden):\n"
"  --link pty|rfc2217     transport (default pty)\n"
"  --boot download|app    GPIO0 at power-on (default: download on pty, app on\n"
"                         rfc2217); boot=download on rfc2217 means a jig that\n"
"                         holds GPIO0 low, so every reset enters the loader\n"
"  --flash SIZE           512KB, 1MB, 2MB, 4MB, 8MB, 16MB (default 4MB)\n"
"  --jedec HEX            SPI flash id as read from W0 (default Winbond:\n"
"                         0xEF, 0x40, log2(size), i.e. 0x1640EF for 4MB)\n"
"  --xtal 26|40           crystal MHz (default 26)\n"
"  --mac MAC              MAC of device 0; device K gets MAC+K (default\n"
"                         5c:cf:7f:a0:00:00, an Espressif OUI)\n"
"  --fault SPEC           add a fault to every device (repeatable)\n"
"  --rom-max-baud N       the ROM loader syncs only at host rates up to N\n"
"                         (default: any rate; it auto-bauds on SYNC).  Models\n"
"                         a chip/adapter that fails above N: faster frames\n"
"                         reach the ROM as noise and get no answer.  The stub's\n"
"                         CHANGE_BAUDRATE is not limited\n"
"  --adapter-max-baud N   the USB-serial adapter runs at most N baud: at a\n"
"                         faster host rate every byte either way is noise\n"
"                         (ROM, stub and boot log alike)\n"
"  --marginal N:P         host rates above N, up to the adapter's maximum, flip\n"
"                         one bit of a byte either way with probability P\n"
"                         (seeded, see --seed), e.g. --marginal 1500000:1e-4\n"
"  --modes LIST           SPI modes the flash part can do, a comma list of qio,\n"
"                         qout, dio, dout (default all; in --dev lists join\n"
"                         them with +: modes=dio+dout); an image whose header\n"
"                         asks for another one fails to boot (csum err)\n"
"  --claim SIZE           a fake part: its JEDEC id claims SIZE (more than\n"
"                         --flash, the die); addresses past the die wrap\n"
"  --marker TEXT          the firmware banner is the first printable string in\n"
"                         the first 1 MiB of flash that starts with TEXT\n"
"                         (default NodeMCU)\n"
"  --fw-baud N            the firmware's UART rate (default 115200)\n"
"  --fw-boot-ms MS        end of the ROM's loading -> firmware banner (default 250)\n"
"  --boot-fault F         none, loop[:MS] (watchdog reset MS after loading,\n"
"                         default 500), brownout:MS (a reset MS after every EN\n"
"                         rise), dead-xtal (silent, never answers),\n"
"                         exception[:MS] (Fatal exception MS after the banner)\n"
"  --dirty D              a used module: none (default, all 0xFF as from the\n"
"                         factory), P% (each 4 KiB sector dirty with\n"
"                         probability P, seeded) or ADDR+ADDR+... (the sectors\n"
"                         holding these addresses hold random bytes)\n"
"\n"
"Per-device overrides:\n"
"  --dev K:SETTINGS       K is an index or a range A-B; SETTINGS is a comma list\n"
"                         of link=, boot=, flash=, jedec=, xtal=, mac=, port=,\n"
"                         rom_max_baud=, adapter_max_baud=, marginal=, modes=, claim=, marker=, fw_baud=,\n"
"                         fw_boot_ms=, boot_fault=, dirty=,\n"
"                         fault=SPEC (adds; repeatable) and fault=none (clears)\n"
"  e.g. --devices 8 --flash 4MB --dev 3:flash=1MB,xtal=40,fault=corrupt@2000\n"
"\n"
"The line: the host's baud rate is the pty's termios speed (read at each\n"
"arrival) or the RFC 2217 SET-BAUDRATE.  Bytes take 10 bits of wire time each\n"
"way; a frame reaches the chip when its last byte would have.  The ROM\n"
"auto-bauds (up to rom_max_baud if set); after the stub's CHANGE_BAUDRATE\n"
"a host at another rate gets noise both ways.  The ROM's boot line goes out\n"
"at 74880 (26 MHz crystal) or 115200 (40 MHz) and reads as noise at other\n"
"rates.  After a reset the ROM boots what is in flash (docs/boot-model.md):\n"
"load lines and csum at its rate, then the firmware's banner at --fw-baud.\n"
"A pty has no modem lines.  On RFC 2217, DTR/RTS drive EN and\n"
"GPIO0 through the NodeMCU circuit (EN low iff RTS and not DTR, GPIO0 low\n"
"iff DTR and not RTS); the chip boots when EN rises and samples GPIO0 then.\n"
"One client at a time; others ""wait until it leaves.\n"
"\n"
"Fault SPECs (DIR is rx: host->chip, the default, or tx: chip->host; byte N\n"
"counts that direction's bytes from 0 since start, across reconnects; tx\n"
"counts bytes as the chip sends them, boot log included, before garbling;\n"
"MS are real milliseconds, never scaled):\n"
"  drop@[DIR:]N            drop byte N\n"
"  corrupt@[DIR:]N         flip one bit of byte N\n"
"  drop~[DIR:]P            drop each byte with probability P (seeded)\n"
"  corrupt~[DIR:]P         flip one bit of each byte with probability P\n"
"  stall@[DIR:]N:MS        hold the line MS ms before byte N\n"
"  unplug@[DIR:]N[:MS]     at byte N pull the cable: the pty/connection closes,\n"
"                          nothing listens for MS ms (default 1000), then the\n"
"                          device comes back and powers on\n"
"  reset@[DIR:]N           at byte N pulse EN: the chip reboots (boot log, stub\n"
"                          lost) into the mode GPIO0 selects (pty: --boot)\n"
"  unplug@flash:OFF[:MS]   unplug when a flash write reaches offset OFF\n"
"  reset@flash:OFF         reset when a flash write reaches offset OFF\n"
"  stuck@OFF               the 4 KiB sector holding OFF keeps bits at 1\n"
"  silent                  the chip never answers\n"
"  magic:HEX, wrong-chip   chip-detect register reads HEX (wrong-chip: ESP32)\n"
"Each fault that fires is logged on stderr; a per-device summary of counts is\n"
"printed at exit (\"dev K: faults: rx.drop=1 ...; F frames, B boots, ...\").\n";
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

int sim_parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char sep[5], tail;
	int n = sscanf(s, "%2x%c%2x%c%2x%c%2x%c%2x%c%2x%c", &v[0], &sep[0], &v[1], &sep[1], &v[2],
	               &sep[2], &v[3], &sep[3], &v[4], &sep[4], &v[5], &tail);
	if (n != 11 || strlen(s) != 17)
		return -1;
	for (int i = 0; i < 5; i++)
		if (sep[i] != ':' && sep[i] != '-')
			return -1;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

void sim_format_flash_size(size_t bytes, char *out, size_t len)
{
	if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0)
		snprintf(out, len, "%zuMB", bytes / (1024 * 1024));
	else
		snprintf(out, len, "%zuKB", bytes / 1024);
}

static unsigned log2_exact(uint64_t v)
{
	unsigned n = 0;
	while (v > 1) {
		v >>= 1;
		n++;
	}
	return n;
}

uint32_t sim_default_jedec(size_t flash_size)
{
	return ((uint32_t)log2_exact(flash_size) << 16) | (0x40u << 8) | 0xEFu;
}

uint32_t sim_chip_id(const uint8_t mac[6])
{
	return ((uint32_t)mac[3] << 16) | ((uint32_t)mac[4] << 8) | mac[5];
}

static void mac_add(const uint8_t base[6], unsigned k, uint8_t out[6])
{
	uint32_t nic = (((uint32_t)base[3] << 16) | ((uint32_t)base[4] << 8) | base[5]) + k;
	memcpy(out, base, 3);
	out[3] = (uint8_t)(nic >> 16);
	out[4] = (uint8_t)(nic >> 8);
	out[5] = (uint8_t)nic;
}

/* --- one setting, shared by global options and --dev lists ------------- */

static int set_flash(sim_device_config *d, const char *v, char *err, size_t errlen)
{
	uint64_t size;
	if (sim_parse_size(v, &size) || size < 512 * 1024 || size > 16 * 1024 * 1024 ||
	    (size & (size - 1)))
		return fail(err, errlen, "bad flash size \"%s\": use 512KB, 1MB, 2MB, 4MB, 8MB or 16MB", v);
	d->chip.flash_size = (size_t)size;
	return 0;
}

/* dirty=none | P% | ADDR+ADDR+...: a used module (sim_chip_config). */
static int set_dirty(sim_device_config *d, const char *v, char *err, size_t errlen)
{
	uint64_t n;
	size_t len = strlen(v);
	d->chip.dirty_pct = 0;
	d->chip.n_dirty_at = 0;
	if (!strcmp(v, "none"))
		return 0;
	if (len > 1 && v[len - 1] == '%') {
		char num[16];
		if (len > sizeof num)
			return fail(err, errlen, "bad dirty \"%s\": a percentage like 50%%", v);
		memcpy(num, v, len - 1);
		num[len - 1] = 0;
		if (sim_parse_size(num, &n) || n > 100)
			return fail(err, errlen, "bad dirty \"%s\": a percentage 0%%..100%%", v);
		d->chip.dirty_pct = (unsigned)n;
		return 0;
	}
	char *list = strdup(v), *save = NULL;
	if (!list)
		return fail(err, errlen, "out of memory");
	int rc = 0;
	for (char *a = strtok_r(list, "+", &save); a && !rc; a = strtok_r(NULL, "+", &save)) {
		if (d->chip.n_dirty_at >= SIM_DIRTY_MAX)
			rc = fail(err, errlen, "dirty=: at most %d addresses", SIM_DIRTY_MAX);
		else if (sim_parse_size(a, &n) || n > 0xFFFFFFFFu)
			rc = fail(err, errlen, "bad dirty address \"%s\": like 0x3000", a);
		else
			d->chip.dirty_at[d->chip.n_dirty_at++] = (uint32_t)n;
	}
	free(list);
	return rc;
}

/* marginal=N:P (see --help). */
static int parse_marginal(sim_device_config *d, const char *v, char *err, size_t errlen)
{
	char rate[32];
	const char *colon = strchr(v, ':');
	uint64_t n;
	char *end;
	if (!colon || (size_t)(colon - v) >= sizeof rate)
		return fail(err, errlen, "bad marginal \"%s\": RATE:P, e.g. 1500000:1e-4", v);
	memcpy(rate, v, (size_t)(colon - v));
	rate[colon - v] = '\0';
	double p = strtod(colon + 1, &end);
	if (sim_parse_size(rate, &n) || n < 300 || n > 12000000 || end == colon + 1 || *end || !(p > 0.0) || p > 1.0)
		return fail(err, errlen, "bad marginal \"%s\": RATE:P with 0 < P <= 1, e.g. 1500000:1e-4", v);
	d->adapter.marginal_baud = (unsigned)n;
	d->adapter.marginal_p = p;
	return 0;
}

static int set_setting(sim_device_config *d, const char *key, const char *v, char *err, size_t errlen)
{
	uint64_t n;
	if (!strcmp(key, "link")) {
		if (!strcmp(v, "pty"))
			d->link = SIM_LINK_PTY;
		else if (!strcmp(v, "rfc2217"))
			d->link = SIM_LINK_RFC2217;
		else
			return fail(err, errlen, "bad link \"%s\": use pty or rfc2217", v);
	} else if (!strcmp(key, "boot")) {
		if (!strcmp(v, "download"))
			d->boot = SIM_BOOT_DOWNLOAD;
		else if (!strcmp(v, "app"))
			d->boot = SIM_BOOT_APP;
		else
			return fail(err, errlen, "bad boot mode \"%s\": use download or app", v);
	} else if (!strcmp(key, "flash")) {
		return set_flash(d, v, err, errlen);
	} else if (!strcmp(key, "jedec")) {
		if (sim_parse_size(v, &n) || n == 0 || n > 0xFFFFFF)
			return fail(err, errlen, "bad JEDEC id \"%s\": a 24-bit hex number like 0x1640EF", v);
		d->chip.jedec_id = (uint32_t)n;
		d->jedec_set = 1;
	} else if (!strcmp(key, "xtal")) {
		if (strcmp(v, "26") && strcmp(v, "40"))
			return fail(err, errlen, "bad crystal \"%s\": use 26 or 40", v);
		d->chip.xtal_mhz = (unsigned)atoi(v);
	} else if (!strcmp(key, "mac")) {
		if (sim_parse_mac(v, d->chip.mac))
			return fail(err, errlen, "bad MAC \"%s\": use aa:bb:cc:dd:ee:ff", v);
		d->mac_set = 1;
	} else if (!strcmp(key, "port")) {
		if (sim_parse_size(v, &n) || n == 0 || n > 65535)
			return fail(err, errlen, "bad TCP port \"%s\"", v);
		d->port = (unsigned)n;
	} else if (!strcmp(key, "rom_max_baud")) {
		if (sim_parse_size(v, &n) || n < 300 || n > 12000000)
			return fail(err, errlen, "bad rom_max_baud \"%s\": a baud rate like 115200", v);
		d->rom_max_baud = (unsigned)n;
	} else if (!strcmp(key, "adapter_max_baud")) {
		if (sim_parse_size(v, &n) || n < 300 || n > 12000000)
			return fail(err, errlen, "bad adapter_max_baud \"%s\": a baud rate like 2000000", v);
		d->adapter.max_baud = (unsigned)n;
	} else if (!strcmp(key, "marginal")) {
		return parse_marginal(d, v, err, errlen);
	} else if (!strcmp(key, "modes")) {
		if (sim_boot_parse_modes(v, &d->boot_model.spi_modes))
			return fail(err, errlen, "bad modes \"%s\": a comma list of qio, qout, dio, dout", v);
	} else if (!strcmp(key, "claim")) {
		if (sim_parse_size(v, &n) || n < 512 * 1024 || n > 16 * 1024 * 1024 || (n & (n - 1)))
			return fail(err, errlen, "bad claim \"%s\": the size the JEDEC id claims, 512KB..16MB", v);
		d->claim_size = (size_t)n;
	} else if (!strcmp(key, "marker")) {
		if (!*v || strlen(v) >= sizeof d->boot_model.marker)
			return fail(err, errlen, "bad marker \"%s\": 1..%zu characters", v,
			            sizeof d->boot_model.marker - 1);
		snprintf(d->boot_model.marker, sizeof d->boot_model.marker, "%s", v);
	} else if (!strcmp(key, "fw_baud")) {
		if (sim_parse_size(v, &n) || n < 300 || n > 12000000)
			return fail(err, errlen, "bad fw_baud \"%s\": a baud rate like 115200", v);
		d->boot_model.fw_baud = (unsigned)n;
	} else if (!strcmp(key, "fw_boot_ms")) {
		if (sim_parse_size(v, &n) || n > 60000)
			return fail(err, errlen, "bad fw_boot_ms \"%s\": 0..60000", v);
		d->boot_model.fw_boot_us = (uint32_t)n * 1000u;
	} else if (!strcmp(key, "boot_fault")) {
		if (sim_boot_parse_fault(v, &d->boot_model))
			return fail(err, errlen, "bad boot_fault \"%s\": none, loop[:MS], brownout:MS, "
			            "dead-xtal or exception[:MS]", v);
	} else if (!strcmp(key, "dirty")) {
		return set_dirty(d, v, err, errlen);
	} else if (!strcmp(key, "fault")) {
		if (!strcmp(v, "none")) {
			d->nfaults = 0;
			return 0;
		}
		if (d->nfaults >= SIM_FAULTS_MAX)
			return fail(err, errlen, "too many faults (at most %d per device)", SIM_FAULTS_MAX);
		return sim_fault_parse(v, &d->faults[d->nfaults++], err, errlen);
	} else {
		return fail(err, errlen, "unknown device setting \"%s\" (see espline-sim --help)", key);
	}
	return 0;
}

/* "K:key=v,key=v" or "A-B:..." */
static int apply_dev_spec(sim_options *o, const char *spec, char *err, size_t errlen)
{
	char *end;
	errno = 0;
	unsigned long first = strtoul(spec, &end, 10), last = first;
	if (end == spec || errno)
		return fail(err, errlen, "bad --dev \"%s\": expected K:SETTINGS or A-B:SETTINGS", spec);
	if (*end == '-') {
		const char *p = end + 1;
		last = strtoul(p, &end, 10);
		if (end == p)
			return fail(err, errlen, "bad --dev \"%s\": expected A-B:SETTINGS", spec);
	}
	if (*end != ':' || !end[1])
		return fail(err, errlen, "bad --dev \"%s\": expected K:SETTINGS", spec);
	if (first > last || last >= o->ndevices)
		return fail(err, errlen, "--dev \"%s\": no such device (devices are 0..%u)", spec,
		            o->ndevices - 1);
	char *list = strdup(end + 1);
	if (!list)
		return fail(err, errlen, "out of memory");
	int rc = 0;
	char *save = NULL;
	for (char *item = strtok_r(list, ",", &save); item && !rc; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		if (!eq || eq == item) {
			rc = fail(err, errlen, "bad --dev setting \"%s\": expected key=value", item);
			break;
		}
		*eq = '\0';
		for (unsigned long k = first; k <= last && !rc; k++) {
			sim_device_config *d = &o->devices[k];
			rc = set_setting(d, item, eq + 1, err, errlen);
			/* A MAC given for a range counts up from the first device. */
			if (!rc && !strcmp(item, "mac"))
				mac_add(d->chip.mac, (unsigned)(k - first), d->chip.mac);
		}
	}
	free(list);
	return rc;
}

static int parse_double(const char *v, double lo, double *out)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (errno || end == v || *end || !(d >= lo) || d > 1e6)
		return -1;
	*out = d;
	return 0;
}

/* "MS" or "MS:JITTER", each 0..10000 ms. */
static int parse_latency(const char *v, unsigned *ms, unsigned *jitter)
{
	char *end;
	errno = 0;
	unsigned long a = strtoul(v, &end, 10), b = 0;
	if (errno || end == v || a > 10000 || !isdigit((unsigned char)*v))
		return -1;
	if (*end == ':') {
		const char *j = end + 1;
		b = strtoul(j, &end, 10);
		if (errno || end == j || b > 10000 || !isdigit((unsigned char)*j))
			return -1;
	}
	if (*end)
		return -1;
	*ms = (unsigned)a;
	*jitter = (unsigned)b;
	return 0;
}

/* Fill in what depends on other settings, then check consistency. */
static int finish_device(sim_options *o, sim_device_config *d, char *err, size_t errlen)
{
	if (d->boot == SIM_BOOT_AUTO)
		d->boot = d->link == SIM_LINK_PTY ? SIM_BOOT_DOWNLOAD : SIM_BOOT_APP;
	if (d->claim_size && d->claim_size <= d->chip.flash_size)
		return fail(err, errlen, "device %u: claim=%zuKB is not more than its %zuKB flash", d->index,
		            d->claim_size / 1024, d->chip.flash_size / 1024);
	if (!d->jedec_set)
		d->chip.jedec_id = sim_default_jedec(d->claim_size ? d->claim_size : d->chip.flash_size);
	d->boot_model.xtal_mhz = d->chip.xtal_mhz;
	if (d->boot_model.fw_boot_us < d->boot_model.sdk_init_us)
		d->boot_model.sdk_init_us = d->boot_model.fw_boot_us;
	if (!d->port && o->port_base) {
		if (o->port_base + d->index > 65535)
			return fail(err, errlen, "--port-base %u + device %u is beyond port 65535",
			            o->port_base, d->index);
		d->port = o->port_base + d->index;
	}
	sim_fault_chip_faults(d->faults, d->nfaults, &d->chip.faults);
	if (!d->chip.flash_seed)
		d->chip.flash_seed = (uint32_t)(o->seed * 2654435761u + d->index + 1);
	if (d->boot_model.fault == SIM_BOOT_FAULT_DEAD_XTAL)
		d->chip.faults.silent = 1; /* no clock: the loader cannot answer either */
	return 0;
}

/* "--name value" or "--name=value". */
static const char *option_value(int argc, char **argv, int *i, const char *arg, const char *name,
                                int *matched)
{
	size_t len = strlen(name);
	*matched = 0;
	if (strncmp(arg, name, len))
		return NULL;
	if (arg[len] == '=') {
		*matched = 1;
		return arg + len + 1;
	}
	if (arg[len] != '\0')
		return NULL;
	*matched = 1;
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

int sim_options_parse(int argc, char **argv, sim_options *o, char *err, size_t errlen)
{
	memset(o, 0, sizeof *o);
	o->ndevices = 1;
	o->time_scale = 1.0;
	o->en_delay_ms = 10;
	o->seed = 1;
	sim_device_config defaults = { .link = SIM_LINK_PTY, .boot = SIM_BOOT_AUTO };
	memcpy(defaults.chip.mac, default_mac, 6);
	defaults.chip.flash_size = 4 * 1024 * 1024;
	defaults.chip.xtal_mhz = 26;
	sim_boot_config_defaults(&defaults.boot_model);
	const char **dev_specs = calloc((size_t)argc + 1, sizeof *dev_specs);
	size_t ndev_specs = 0;
	if (!dev_specs)
		return fail(err, errlen, "out of memory");
	int rc = 0;

	static const char *const device_opts[] = { "link", "boot", "flash", "jedec", "xtal", "mac", "fault",
	                                           "rom_max_baud", "modes", "claim", "marker", "fw_baud",
	                                           "fw_boot_ms", "boot_fault", "dirty", "adapter_max_baud",
	                                           "marginal" };
	for (int i = 1; i < argc && !rc; i++) {
		const char *arg = argv[i];
		const char *v;
		int m = 0;
		if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
			o->help = 1;
			continue;
		}
		if (!strcmp(arg, "-v") || !strcmp(arg, "--verbose")) {
			o->verbose = 1;
			continue;
		}
		if (!strcmp(arg, "-n"))
			arg = "--devices";
#define VALUE(name) (v = option_value(argc, argv, &i, arg, name, &m), m)
#define NEED() if (!v) { rc = fail(err, errlen, "%s needs a value", arg); continue; }
		if (VALUE("--devices")) {
			NEED();
			uint64_t n;
			if (sim_parse_size(v, &n) || n < 1 || n > SIM_MAX_DEVICES)
				rc = fail(err, errlen, "bad --devices \"%s\": 1..%d", v, SIM_MAX_DEVICES);
			else
				o->ndevices = (unsigned)n;
		} else if (VALUE("--link-dir")) {
			NEED();
			o->link_dir = v;
		} else if (VALUE("--flash-dir")) {
			NEED();
			o->flash_dir = v;
		} else if (VALUE("--ready-file")) {
			NEED();
			o->ready_file = v;
		} else if (VALUE("--time-scale")) {
			NEED();
			if (parse_double(v, 0.0, &o->time_scale))
				rc = fail(err, errlen, "bad --time-scale \"%s\": a number >= 0", v);
		} else if (VALUE("--exit-after-idle")) {
			NEED();
			if (parse_double(v, 0.0, &o->exit_after_idle))
				rc = fail(err, errlen, "bad --exit-after-idle \"%s\": seconds >= 0", v);
		} else if (VALUE("--port-base")) {
			NEED();
			uint64_t n;
			if (sim_parse_size(v, &n) || n == 0 || n > 65535)
				rc = fail(err, errlen, "bad --port-base \"%s\": 1..65535", v);
			else
				o->port_base = (unsigned)n;
		} else if (VALUE("--en-delay")) {
			NEED();
			uint64_t n;
			if (sim_parse_size(v, &n) || n > 10000)
				rc = fail(err, errlen, "bad --en-delay \"%s\": 0..10000 ms", v);
			else
				o->en_delay_ms = (unsigned)n;
		} else if (VALUE("--line-latency")) {
			NEED();
			if (parse_latency(v, &o->line_latency_ms, &o->line_jitter_ms))
				rc = fail(err, errlen, "bad --line-latency \"%s\": MS or MS:JITTER, 0..10000 ms", v);
		} else if (VALUE("--seed")) {
			NEED();
			if (sim_parse_size(v, &o->seed))
				rc = fail(err, errlen, "bad --seed \"%s\"", v);
		} else if (VALUE("--dev")) {
			NEED();
			dev_specs[ndev_specs++] = v;
		} else {
			size_t k;
			for (k = 0; k < sizeof device_opts / sizeof device_opts[0]; k++) {
				char name[24];
				snprintf(name, sizeof name, "--%s", device_opts[k]);
				for (char *c = name; *c; c++) /* rom_max_baud -> --rom-max-baud */
					if (*c == '_')
						*c = '-';
				if (VALUE(name)) {
					rc = v ? set_setting(&defaults, device_opts[k], v, err, errlen)
					       : fail(err, errlen, "%s needs a value", arg);
					break;
				}
			}
			if (k == sizeof device_opts / sizeof device_opts[0])
				rc = fail(err, errlen, "unknown option \"%s\" (see espline-sim --help)", arg);
		}
#undef VALUE
#undef NEED
	}
	if (!rc && o->port_base && o->port_base + o->ndevices - 1 > 65535)
		rc = fail(err, errlen, "--port-base %u leaves no room for %u devices", o->port_base, o->ndevices);
	if (!rc) {
		o->devices = calloc(o->ndevices, sizeof *o->devices);
		if (!o->devices)
			rc = fail(err, errlen, "out of memory");
	}
	for (unsigned k = 0; !rc && k < o->ndevices; k++) {
		o->devices[k] = defaults;
		o->devices[k].index = k;
		mac_add(defaults.chip.mac, k, o->devices[k].chip.mac);
	}
	for (size_t s = 0; !rc && s < ndev_specs; s++)
		rc = apply_dev_spec(o, dev_specs[s], err, errlen);
	for (unsigned k = 0; !rc && k < o->ndevices; k++)
		rc = finish_device(o, &o->devices[k], err, errlen);
	free(dev_specs);
	if (rc)
		sim_options_free(o);
	return rc;
}

void sim_options_free(sim_options *o)
{
	free(o->devices);
	o->devices = NULL;
	o->ndevices = 0;
}
