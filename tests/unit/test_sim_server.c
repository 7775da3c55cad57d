/* test_sim_server.c - espline-sim's transport: byte-level fault injection,
 * the DTR/RTS reset circuit and its EN latch, wire-time math, option
 * parsing, and the server end to end over a pty and over RFC 2217. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "espline/port.h"
#include "espline/rfc2217.h"
#include "espline/slip.h"
#include "../sim/sim_config.h"
#include "../sim/sim_fault.h"
#include "../sim/sim_reset.h"
#include "../sim/sim_server.h"
#include "../sim/sim_wire.h"
#include "boot_fixture.h"

/* ------------------------------------------------------------------------ */
/* fault specs                                                               */

static sim_fault parse_ok(const char *spec)
{
	sim_fault f;
	char err[200] = "";
	int rc = sim_fault_parse(spec, &f, err, sizeof err);
	if (rc != 0)
		fail_msg("\"%s\" rejected: %s", spec, err);
	return f;
}

static void test_fault_parse_valid(void **state)
{
	(void)state;
	sim_fault f = parse_ok("drop@2000");
	assert_int_equal(f.kind, SIM_FAULT_DROP);
	assert_int_equal(f.dir, SIM_RX);
	assert_int_equal(f.at, 2000);
	assert_false(f.random);

	f = parse_ok("corrupt@tx:0x10");
	assert_int_equal(f.kind, SIM_FAULT_CORRUPT);
	assert_int_equal(f.dir, SIM_TX);
	assert_int_equal(f.at, 16);

	f = parse_ok("drop~0.01");
	assert_true(f.random);
	assert_int_equal(f.dir, SIM_RX);
	assert_true(f.p > 0.0099 && f.p < 0.0101);

	f = parse_ok("corrupt~tx:0.5");
	assert_true(f.random);
	assert_int_equal(f.kind, SIM_FAULT_CORRUPT);
	assert_int_equal(f.dir, SIM_TX);

	f = parse_ok("stall@rx:100:250");
	assert_int_equal(f.kind, SIM_FAULT_STALL);
	assert_int_equal(f.at, 100);
	assert_int_equal(f.ms, 250);

	f = parse_ok("unplug@5K");
	assert_int_equal(f.kind, SIM_FAULT_UNPLUG);
	assert_int_equal(f.at, 5120);
	assert_int_equal(f.ms, 1000);
	f = parse_ok("unplug@tx:7:300");
	assert_int_equal(f.dir, SIM_TX);
	assert_int_equal(f.ms, 300);

	f = parse_ok("reset@tx:9");
	assert_int_equal(f.kind, SIM_FAULT_RESET);
	assert_int_equal(f.at, 9);

	f = parse_ok("unplug@flash:0x80000:500");
	assert_int_equal(f.kind, SIM_FAULT_FLASH_UNPLUG);
	assert_int_equal(f.at, 0x80000);
	assert_int_equal(f.ms, 500);
	f = parse_ok("reset@flash:64K");
	assert_int_equal(f.kind, SIM_FAULT_FLASH_RESET);
	assert_int_equal(f.at, 65536);

	f = parse_ok("stuck@0x3000");
	assert_int_equal(f.kind, SIM_FAULT_STUCK);
	assert_int_equal(f.at, 0x3000);
	assert_int_equal(parse_ok("silent").kind, SIM_FAULT_SILENT);
	f = parse_ok("magic:0x12345678");
	assert_int_equal(f.kind, SIM_FAULT_MAGIC);
	assert_int_equal(f.magic, 0x12345678);
	assert_int_equal(parse_ok("wrong-chip").magic, 0x00F01D83);
}

static void test_fault_parse_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "drop", "drop@", "drop@x", "drop@-1", "drop@rx:", "drop@up:3", "drop~0",
		"drop~1.5", "drop~abc", "stall@5", "stall~0.1", "reset@5:100", "corrupt@flash:5",
		"bogus@1", "magic:0", "magic:0x1FFFFFFFF", "stuck@", "unplug@3:xyz", "drop@12junk",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		sim_fault f;
		char err[200] = "";
		if (sim_fault_parse(bad[i], &f, err, sizeof err) != -1)
			fail_msg("\"%s\" was accepted", bad[i]);
		assert_true(strlen(err) > 0);
	}
}

static void test_chip_faults_passthrough(void **state)
{
	(void)state;
	sim_chip_faults cf;
	sim_fault_chip_faults(NULL, 0, &cf);
	assert_int_equal(cf.silent, 0);
	assert_int_equal(cf.chip_magic, 0);
	assert_int_equal(cf.stuck_sector, -1);
	assert_int_equal(cf.unplug_at_flash_offset, -1);
	assert_int_equal(cf.reset_at_flash_offset, -1);
	sim_fault list[] = { parse_ok("stuck@0x3000"), parse_ok("silent"), parse_ok("wrong-chip"),
	                     parse_ok("unplug@flash:0x80000"), parse_ok("reset@flash:0x1000"),
	                     parse_ok("drop@5") };
	sim_fault_chip_faults(list, 6, &cf);
	assert_int_equal(cf.stuck_sector, 3);
	assert_int_equal(cf.silent, 1);
	assert_int_equal(cf.chip_magic, 0x00F01D83);
	assert_int_equal(cf.unplug_at_flash_offset, 0x80000);
	assert_int_equal(cf.reset_at_flash_offset, 0x1000);
}

/* ------------------------------------------------------------------------ */
/* the byte engine                                                           */

static int popcount8(unsigned v)
{
	int n = 0;
	for (; v; v &= v - 1)
		n++;
	return n;
}

static void test_engine_drop_at_n(void **state)
{
	(void)state;
	sim_fault f = parse_ok("drop@5");
	sim_fault_engine e;
	sim_fault_engine_init(&e, &f, 1, 42);
	for (unsigned i = 0; i < 20; i++) {
		sim_byte_verdict v;
		sim_fault_byte(&e, SIM_RX, (uint8_t)(0xA0 + i), &v);
		if (i == 5) {
			assert_false(v.pass);
			assert_true(v.dropped);
			assert_int_equal(v.fault_index, 0);
		} else {
			assert_true(v.pass);
			assert_int_equal(v.byte, 0xA0 + i);
		}
		/* The other direction has its own count and no faults. */
		sim_fault_byte(&e, SIM_TX, (uint8_t)i, &v);
		assert_true(v.pass);
		assert_int_equal(v.byte, i);
	}
	assert_int_equal(e.injected[SIM_RX][SIM_FAULT_DROP], 1);
	assert_int_equal(e.injected[SIM_TX][SIM_FAULT_DROP], 0);
	assert_int_equal(sim_fault_total(&e), 1);
}

static void test_engine_corrupt_at_n(void **state)
{
	(void)state;
	sim_fault f = parse_ok("corrupt@tx:3");
	sim_fault_engine e;
	sim_fault_engine_init(&e, &f, 1, 7);
	for (unsigned i = 0; i < 10; i++) {
		sim_byte_verdict v;
		uint8_t b = (uint8_t)(0x55 + i);
		sim_fault_byte(&e, SIM_TX, b, &v);
		assert_true(v.pass);
		if (i == 3) {
			assert_true(v.corrupted);
			assert_int_equal(popcount8(v.byte ^ b), 1);
		} else {
			assert_false(v.corrupted);
			assert_int_equal(v.byte, b);
		}
	}
	assert_int_equal(e.injected[SIM_TX][SIM_FAULT_CORRUPT], 1);
}

/* Run n bytes through an engine; record the verdicts. */
static void run_engine(uint64_t seed, sim_byte_verdict *out, size_t n, unsigned long *drops,
                       unsigned long *corrupts)
{
	sim_fault f[2] = { parse_ok("drop~0.1"), parse_ok("corrupt~0.05") };
	sim_fault_engine e;
	sim_fault_engine_init(&e, f, 2, seed);
	for (size_t i = 0; i < n; i++)
		sim_fault_byte(&e, SIM_RX, (uint8_t)i, &out[i]);
	*drops = e.injected[SIM_RX][SIM_FAULT_DROP];
	*corrupts = e.injected[SIM_RX][SIM_FAULT_CORRUPT];
}

/* The adapter model: noise above its maximum, seeded bit flips at a
 * marginal rate, nothing at or below the marginal threshold. */
static void test_adapter_limits(void **state)
{
	(void)state;
	enum { N = 20000 };
	const sim_adapter a = { .max_baud = 2000000, .marginal_baud = 1500000, .marginal_p = 0.01 };
	uint64_t r1 = 42, r2 = 42, r3 = 42;
	unsigned flips = 0, noise = 0, clean = 0;
	for (unsigned i = 0; i < N; i++) {
		uint8_t b = (uint8_t)(i * 7), x, y;
		int hit;
		x = sim_wire_through_adapter(&a, 2000000, b, &r1, &hit);
		y = sim_wire_through_adapter(&a, 2000000, b, &r2, NULL);
		assert_int_equal(x, y); /* same seed, same bytes */
		assert_int_equal(hit, x != b);
		if (x != b) {
			flips++;
			assert_int_equal(popcount8(x ^ b), 1);
		}
		noise += sim_wire_through_adapter(&a, 3000000, b, &r3, NULL) != b;
		clean += sim_wire_through_adapter(&a, 1500000, b, &r3, NULL) == b;
	}
	assert_true(flips > 150 && flips < 250);   /* p = 0.01 of 20000 */
	assert_true(noise > N * 9 / 10);           /* above the maximum: noise */
	assert_int_equal(clean, N);                /* at the threshold: untouched */
}

static void test_engine_random_is_seeded(void **state)
{
	(void)state;
	enum { N = 10000 };
	static sim_byte_verdict a[N], b[N], c[N];
	unsigned long da, ca, db, cb, dc, cc;
	run_engine(1234, a, N, &da, &ca);
	run_engine(1234, b, N, &db, &cb);
	run_engine(1235, c, N, &dc, &cc);
	assert_int_equal(da, db);
	assert_int_equal(ca, cb);
	size_t differ = 0, dropped = 0, corrupted = 0;
	for (size_t i = 0; i < N; i++) {
		assert_int_equal(a[i].pass, b[i].pass);
		assert_int_equal(a[i].byte, b[i].byte);
		differ += a[i].pass != c[i].pass || a[i].byte != c[i].byte;
		dropped += !a[i].pass;
		if (a[i].pass && a[i].byte != (uint8_t)i) {
			corrupted++;
			assert_int_equal(popcount8(a[i].byte ^ (uint8_t)i), 1);
		}
	}
	assert_true(differ > 100);                 /* another seed, another run */
	assert_int_equal(dropped, da);             /* counts match what happened */
	assert_true(da > 800 && da < 1200);        /* p = 0.1 of 10000 */
	assert_true(corrupted <= ca && ca > 350 && ca < 650); /* p = 0.05 */
}

static void test_engine_stall_unplug_reset(void **state)
{
	(void)state;
	sim_fault f[3] = { parse_ok("stall@2:150"), parse_ok("unplug@tx:4:300"), parse_ok("reset@6") };
	sim_fault_engine e;
	sim_fault_engine_init(&e, f, 3, 1);
	sim_byte_verdict v;
	for (unsigned i = 0; i < 8; i++) {
		sim_fault_byte(&e, SIM_RX, 0x11, &v);
		assert_int_equal(v.stall_ms, i == 2 ? 150 : 0);
		assert_true(v.pass == (i != 6));
		assert_int_equal(v.reset, i == 6);
		assert_false(v.unplug);
		sim_fault_byte(&e, SIM_TX, 0x22, &v);
		assert_int_equal(v.unplug, i == 4);
		assert_int_equal(v.unplug_ms, i == 4 ? 300 : 0);
		assert_true(v.pass == (i != 4));
	}
}

/* ------------------------------------------------------------------------ */
/* the reset circuit                                                         */

static void test_reset_truth_table(void **state)
{
	(void)state;
	/* dtr, rts asserted -> EN low, GPIO0 low (protocol notes 3.3) */
	assert_false(sim_reset_en_pulled_low(0, 0));
	assert_false(sim_reset_gpio0_pulled_low(0, 0));
	assert_false(sim_reset_en_pulled_low(1, 1));
	assert_false(sim_reset_gpio0_pulled_low(1, 1));
	assert_true(sim_reset_en_pulled_low(0, 1));
	assert_false(sim_reset_gpio0_pulled_low(0, 1));
	assert_false(sim_reset_en_pulled_low(1, 0));
	assert_true(sim_reset_gpio0_pulled_low(1, 0));
}

#define MS 1000u

static void test_reset_classic_sequence(void **state)
{
	(void)state;
	sim_reset r;
	int dl = -1;
	sim_reset_init(&r, 10 * MS);
	assert_int_equal(sim_reset_set_lines(&r, 0, 1, 1 * MS), SIM_RESET_HOLD);
	assert_int_equal(sim_reset_deadline(&r), 0);
	assert_int_equal(sim_reset_poll(&r, 50 * MS, &dl), SIM_RESET_NONE);
	/* D=1, R=0 together (one setSignals / TIOCMSET) */
	assert_int_equal(sim_reset_set_lines(&r, 1, 0, 101 * MS), SIM_RESET_NONE);
	assert_int_equal(sim_reset_deadline(&r), 111 * MS);
	assert_int_equal(sim_reset_poll(&r, 105 * MS, &dl), SIM_RESET_NONE);
	assert_int_equal(sim_reset_poll(&r, 111 * MS, &dl), SIM_RESET_BOOT);
	assert_int_equal(dl, 1);
	/* The boot is reported once; releasing GPIO0 afterwards changes nothing. */
	assert_int_equal(sim_reset_poll(&r, 200 * MS, &dl), SIM_RESET_NONE);
	assert_int_equal(sim_reset_set_lines(&r, 0, 0, 151 * MS), SIM_RESET_NONE);
	assert_int_equal(sim_reset_deadline(&r), 0);
}

/* Over RFC 2217 the lines change one command at a time; RTS let go before
 * DTR is asserted briefly looks like "EN high, GPIO0 high".  The EN
 * capacitor is what still gets the chip into download mode. */
static void test_reset_latch_at_rise_not_at_release(void **state)
{
	(void)state;
	sim_reset r;
	int dl = -1;
	sim_reset_init(&r, 10 * MS);
	sim_reset_set_lines(&r, 0, 1, 0);
	sim_reset_set_lines(&r, 0, 0, 100 * MS);  /* RTS off first: EN starts rising */
	sim_reset_set_lines(&r, 1, 0, 101 * MS);  /* DTR on 1 ms later */
	assert_int_equal(sim_reset_poll(&r, 110 * MS, &dl), SIM_RESET_BOOT);
	assert_int_equal(dl, 1);

	/* Without the capacitor the same order boots the application. */
	sim_reset_init(&r, 0);
	sim_reset_set_lines(&r, 0, 1, 0);
	sim_reset_set_lines(&r, 0, 0, 100 * MS);
	assert_int_equal(sim_reset_poll(&r, 100 * MS, &dl), SIM_RESET_BOOT);
	assert_int_equal(dl, 0);
}

static void test_reset_gpio0_released_before_rise(void **state)
{
	(void)state;
	sim_reset r;
	int dl = -1;
	sim_reset_init(&r, 10 * MS);
	sim_reset_set_lines(&r, 0, 1, 0);
	sim_reset_set_lines(&r, 1, 0, 100 * MS);
	sim_reset_set_lines(&r, 0, 0, 105 * MS); /* too early: EN not up yet */
	assert_int_equal(sim_reset_poll(&r, 110 * MS, &dl), SIM_RESET_BOOT);
	assert_int_equal(dl, 0);
}

static void test_reset_hard_reset_and_harmless_states(void **state)
{
	(void)state;
	sim_reset r;
	int dl = -1;
	sim_reset_init(&r, 10 * MS);
	/* Both asserted (terminal programs) and toggling DTR alone never reset. */
	assert_int_equal(sim_reset_set_lines(&r, 1, 1, 0), SIM_RESET_NONE);
	assert_int_equal(sim_reset_set_lines(&r, 1, 0, 1 * MS), SIM_RESET_NONE);
	assert_int_equal(sim_reset_set_lines(&r, 0, 0, 2 * MS), SIM_RESET_NONE);
	assert_true(r.en_high);
	/* UnixTight passes (1,1) -> (0,1): that one holds the chip. */
	sim_reset_set_lines(&r, 1, 1, 3 * MS);
	assert_int_equal(sim_reset_set_lines(&r, 0, 1, 4 * MS), SIM_RESET_HOLD);
	/* HardReset: RTS released with DTR released -> application. */
	assert_int_equal(sim_reset_set_lines(&r, 0, 0, 104 * MS), SIM_RESET_NONE);
	assert_int_equal(sim_reset_poll(&r, 114 * MS, &dl), SIM_RESET_BOOT);
	assert_int_equal(dl, 0);
}

static void test_reset_reassert_cancels_rise_and_pulse(void **state)
{
	(void)state;
	sim_reset r;
	int dl = -1;
	sim_reset_init(&r, 10 * MS);
	sim_reset_set_lines(&r, 0, 1, 0);
	sim_reset_set_lines(&r, 0, 0, 100 * MS);
	assert_int_equal(sim_reset_set_lines(&r, 0, 1, 105 * MS), SIM_RESET_NONE); /* already low */
	assert_int_equal(sim_reset_deadline(&r), 0);
	assert_int_equal(sim_reset_poll(&r, 500 * MS, &dl), SIM_RESET_NONE);
	/* A fault's pulse while RTS holds EN low: no rise. */
	sim_reset_pulse(&r, 501 * MS);
	assert_int_equal(sim_reset_deadline(&r), 0);
	/* A pulse with the lines released: boots after the RC delay, GPIO0 as driven. */
	sim_reset_set_lines(&r, 1, 0, 600 * MS);
	assert_int_equal(sim_reset_poll(&r, 610 * MS, &dl), SIM_RESET_BOOT);
	sim_reset_pulse(&r, 700 * MS);
	assert_false(r.en_high);
	assert_int_equal(sim_reset_poll(&r, 709 * MS, &dl), SIM_RESET_NONE);
	assert_int_equal(sim_reset_poll(&r, 710 * MS, &dl), SIM_RESET_BOOT);
	assert_int_equal(dl, 1);
}

/* ------------------------------------------------------------------------ */
/* wire time                                                                  */

static void test_wire_time(void **state)
{
	(void)state;
	assert_int_equal(sim_wire_us(1, 115200, 1.0), 87);           /* 86.8 us */
	assert_int_equal(sim_wire_us(11520, 115200, 1.0), 1000000);  /* 11520 bytes = 1 s */
	assert_int_equal(sim_wire_us(11520, 115200, 0.5), 500000);
	assert_int_equal(sim_wire_us(46080, 460800, 1.0), 1000000);
	assert_int_equal(sim_wire_us(11520, 115200, 0.0), 0);
	assert_int_equal(sim_wire_us(100, 0, 1.0), 0);
	/* Arrival: a byte sent while the line is busy queues behind it. */
	assert_int_equal(sim_wire_arrival(1000, 500, 115200, 1.0), 1087);
	assert_int_equal(sim_wire_arrival(1000, 2000, 115200, 1.0), 2087);
	/* A 46-byte SYNC frame handed over at once arrives ~4 ms later. */
	uint64_t free_at = 0;
	for (int i = 0; i < 46; i++)
		free_at = sim_wire_arrival(free_at, 10000, 115200, 1.0);
	assert_true(free_at >= 10000 + 3990 && free_at <= 10000 + 4010);
	/* Scaled ten times slower. */
	free_at = 0;
	for (int i = 0; i < 46; i++)
		free_at = sim_wire_arrival(free_at, 0, 115200, 10.0);
	assert_true(free_at >= 39900 && free_at <= 40100);
}

/* espline sets every rate with BOTHER (termios2); the simulator must read
 * what the host set, standard rate code or not. */
static void test_pty_host_baud_reads_bother(void **state)
{
	(void)state;
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	assert_true(m >= 0);
	assert_int_equal(grantpt(m), 0);
	assert_int_equal(unlockpt(m), 0);
	char path[128];
	assert_int_equal(ptsname_r(m, path, sizeof path), 0);
	espl_error err = { 0 };
	espl_port *p = NULL;
	assert_int_equal(espl_port_open(path, 115200, &p, &err), 0);
	assert_int_equal(sim_pty_host_baud(m), 115200);
	const unsigned rates[] = { 460800, 921600, 250000, 1500000 };
	for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
		assert_int_equal(espl_port_set_baud(p, rates[i], &err), 0);
		assert_int_equal(sim_pty_host_baud(m), rates[i]);
	}
	espl_port_close(p);
	close(m);
}

static void test_wire_baud_mismatch(void **state)
{
	(void)state;
	assert_true(sim_wire_compatible(115200, 115200));
	assert_true(sim_wire_compatible(115200, 116000));
	assert_false(sim_wire_compatible(115200, 74880));
	assert_false(sim_wire_compatible(460800, 115200));
	assert_true(sim_wire_compatible(0, 921600)); /* auto-baud */
	assert_int_equal(sim_wire_garbled_len(50, 74880, 115200), 77);
	assert_int_equal(sim_wire_garbled_len(10, 460800, 115200), 3);
	assert_int_equal(sim_wire_garbled_len(1, 921600, 9600), 1);
	assert_int_equal(sim_wire_garbled_len(0, 921600, 9600), 0);
	assert_int_equal(sim_wire_boot_baud(26), 74880);
	assert_int_equal(sim_wire_boot_baud(40), 115200);
	uint64_t rng = 99;
	int seen[256] = { 0 };
	for (int i = 0; i < 100000; i++)
		seen[sim_wire_noise(&rng)]++;
	assert_int_equal(seen[0xC0], 0);
	int distinct = 0;
	for (int i = 0; i < 256; i++)
		distinct += seen[i] > 0;
	assert_true(distinct >= 250);
}

/* ------------------------------------------------------------------------ */
/* options                                                                    */

static int parse_args(sim_options *o, char *err, size_t errlen, ...)
{
	char *argv[40] = { "espline-sim" };
	int argc = 1;
	va_list ap;
	va_start(ap, errlen);
	for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 39;)
		argv[argc++] = a;
	va_end(ap);
	return sim_options_parse(argc, argv, o, err, errlen);
}

static void test_options_defaults(void **state)
{
	(void)state;
	sim_options o;
	char err[300];
	assert_int_equal(parse_args(&o, err, sizeof err, NULL), 0);
	assert_int_equal(o.ndevices, 1);
	const sim_device_config *d = &o.devices[0];
	assert_int_equal(d->link, SIM_LINK_PTY);
	assert_int_equal(d->boot, SIM_BOOT_DOWNLOAD);
	assert_int_equal(d->chip.flash_size, 4 * 1024 * 1024);
	assert_int_equal(d->chip.jedec_id, 0x1640EF);
	assert_int_equal(d->chip.xtal_mhz, 26);
	static const uint8_t mac[6] = { 0x5c, 0xcf, 0x7f, 0xa0, 0x00, 0x00 };
	assert_memory_equal(d->chip.mac, mac, 6);
	assert_int_equal(d->chip.faults.stuck_sector, -1);
	assert_true(o.time_scale == 1.0);
	assert_int_equal(d->port, 0);
	assert_false(o.help);
	sim_options_free(&o);
}

static void test_options_devices_and_overrides(void **state)
{
	(void)state;
	sim_options o;
	char err[300];
	assert_int_equal(parse_args(&o, err, sizeof err, "--devices", "8", "--flash", "4MB",
	                            "--mac", "18:fe:34:00:00:ff", "--dev",
	                            "3:flash=1MB,xtal=40,fault=corrupt@2000", "--time-scale=0.5",
	                            "--dev", "5-6:link=rfc2217,boot=download", "--port-base", "41000",
	                            "--fault", "silent", "--dev", "7:fault=none,jedec=0x1840C8", NULL),
	                 0);
	assert_int_equal(o.ndevices, 8);
	assert_true(o.time_scale == 0.5);
	/* Sequential MACs with carry into the next byte. */
	assert_int_equal(o.devices[0].chip.mac[5], 0xff);
	assert_int_equal(o.devices[1].chip.mac[4], 0x01);
	assert_int_equal(o.devices[1].chip.mac[5], 0x00);
	assert_int_equal(o.devices[2].chip.mac[5], 0x01);
	assert_int_equal(o.devices[3].chip.flash_size, 1024 * 1024);
	assert_int_equal(o.devices[3].chip.jedec_id, 0x1440EF);
	assert_int_equal(o.devices[3].chip.xtal_mhz, 40);
	assert_int_equal(o.devices[3].nfaults, 2); /* silent from --fault, plus its own */
	assert_int_equal(o.devices[3].faults[1].kind, SIM_FAULT_CORRUPT);
	assert_int_equal(o.devices[3].faults[1].at, 2000);
	assert_int_equal(o.devices[2].chip.flash_size, 4 * 1024 * 1024);
	assert_int_equal(o.devices[2].chip.xtal_mhz, 26);
	assert_int_equal(o.devices[2].chip.faults.silent, 1);
	assert_int_equal(o.devices[5].link, SIM_LINK_RFC2217);
	assert_int_equal(o.devices[5].boot, SIM_BOOT_DOWNLOAD);
	assert_int_equal(o.devices[6].link, SIM_LINK_RFC2217);
	assert_int_equal(o.devices[4].link, SIM_LINK_PTY);
	assert_int_equal(o.devices[5].port, 41005);
	assert_int_equal(o.devices[7].chip.faults.silent, 0);
	assert_int_equal(o.devices[7].nfaults, 0);
	assert_int_equal(o.devices[7].chip.jedec_id, 0x1840C8); /* kept, even if it disagrees */
	sim_options_free(&o);

	assert_int_equal(parse_args(&o, err, sizeof err, "-n", "2", "--link", "rfc2217", NULL), 0);
	assert_int_equal(o.devices[1].boot, SIM_BOOT_APP); /* rfc2217 powers up into the app */
	sim_options_free(&o);
	assert_int_equal(parse_args(&o, err, sizeof err, "--help", NULL), 0);
	assert_true(o.help);
	sim_options_free(&o);
}

static void test_options_errors(void **state)
{
	(void)state;
	static const char *const bad[][3] = {
		{ "--devices", "0" }, { "--devices", "65" }, { "--flash", "3MB" },
		{ "--flash", "256KB" }, { "--flash", "32MB" }, { "--xtal", "24" }, { "--mac", "12:34" },
		{ "--dev", "5:flash=1MB" }, { "--dev", "0:bogus=1" }, { "--dev", "0:flash" },
		{ "--dev", "x" }, { "--dev", "0-3:xtal=40" }, { "--fault", "drop@" },
		{ "--time-scale", "-1" }, { "--frobnicate" }, { "--flash" }, { "--port-base", "70000" },
		{ "--link", "serial" }, { "--boot", "maybe" }, { "--jedec", "0x1000000" },
		{ "--exit-after-idle", "soon" }, { "--dev", "0:mac=zz:00:00:00:00:00" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		sim_options o;
		char err[300] = "";
		char *argv[4] = { "espline-sim", (char *)bad[i][0], (char *)bad[i][1], NULL };
		int argc = bad[i][1] ? 3 : 2;
		if (sim_options_parse(argc, argv, &o, err, sizeof err) != -1)
			fail_msg("%s %s was accepted", bad[i][0], bad[i][1] ? bad[i][1] : "");
		assert_true(strlen(err) > 0);
		assert_null(o.devices);
	}
}

static void test_options_usage_documents_every_fault(void **state)
{
	(void)state;
	const char *u = sim_options_usage();
	static const char *const words[] = { "drop@", "corrupt@", "drop~", "corrupt~", "stall@",
	                                     "unplug@", "reset@", "unplug@flash:", "reset@flash:",
	                                     "stuck@", "silent", "magic:", "wrong-chip", "--dev",
	                                     "--time-scale", "--flash-dir", "--ready-file",
	                                     "--link-dir", "--exit-after-idle" };
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
		if (!strstr(u, words[i]))
			fail_msg("--help does not mention %s", words[i]);
}

/* ------------------------------------------------------------------------ */
/* the server, end to end                                                    */

typedef struct harness {
	sim_options o;
	sim_server_options so;
	sim_device *dev;
	int stop[2];
	int host;                    /* pty slave or TCP socket */
	pthread_mutex_t lock;
	char log[16384];
	size_t log_len;
	uint8_t frames[8][128];
	size_t frame_len[8];
	size_t nframes;
	char announced[512];
	int announcements;
	espl_telnet_decoder tdec;
	espl_telnet_options topt;
} harness;

static void h_log(void *ctx, const char *line)
{
	harness *h = ctx;
	pthread_mutex_lock(&h->lock);
	int n = snprintf(h->log + h->log_len, sizeof h->log - h->log_len, "%s\n", line);
	if (n > 0 && h->log_len + (size_t)n < sizeof h->log)
		h->log_len += (size_t)n;
	pthread_mutex_unlock(&h->lock);
}

static void h_announce(void *ctx, unsigned index, const char *line)
{
	harness *h = ctx;
	(void)index;
	pthread_mutex_lock(&h->lock);
	snprintf(h->announced, sizeof h->announced, "%s", line);
	h->announcements++;
	pthread_mutex_unlock(&h->lock);
}

static void h_frame(void *ctx, unsigned index, const uint8_t *frame, size_t len)
{
	harness *h = ctx;
	(void)index;
	pthread_mutex_lock(&h->lock);
	if (h->nframes < 8) {
		size_t n = len < sizeof h->frames[0] ? len : sizeof h->frames[0];
		memcpy(h->frames[h->nframes], frame, n);
		h->frame_len[h->nframes++] = len;
	}
	pthread_mutex_unlock(&h->lock);
}

static uint64_t now_ms(void)
{
	return sim_mono_us() / 1000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int open_slave(const char *path)
{
	int fd = open(path, O_RDWR | O_NOCTTY);
	assert_true(fd >= 0);
	return fd;
}

/* Start one device from command-line style arguments (NULL-terminated). */
static harness *h_start(const char *first, ...)
{
	harness *h = calloc(1, sizeof *h);
	assert_non_null(h);
	pthread_mutex_init(&h->lock, NULL);
	char *argv[40] = { "espline-sim" };
	int argc = 1;
	va_list ap;
	va_start(ap, first);
	for (const char *a = first; a && argc < 39; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	char err[300];
	if (sim_options_parse(argc, argv, &h->o, err, sizeof err) != 0)
		fail_msg("options: %s", err);
	assert_int_equal(pipe(h->stop), 0);
	h->so = (sim_server_options){
		.time_scale = h->o.time_scale, .en_delay_ms = h->o.en_delay_ms, .seed = h->o.seed,
		.verbose = 1, .stop_fd = h->stop[0], .ctx = h, .log = h_log, .announce = h_announce,
		.frame_hook = h_frame, .flash_dir = h->o.flash_dir,
	};
	if (sim_device_open(&h->o.devices[0], &h->so, &h->dev, err, sizeof err) != 0)
		fail_msg("open: %s", err);
	h->host = -1;
	return h;
}

static const char *h_port(harness *h)
{
	static char line[600];
	sim_device_describe(h->dev, line, sizeof line);
	char *port = strchr(line + 7, ' ') + 1; /* "device 0 PORT ..." */
	*strchr(port, ' ') = '\0';
	return port;
}

/* Stop and free; the whole log (with the exit summary) goes to log_out if
 * given. */
static void h_stop_log(harness *h, char *log_out, size_t cap)
{
	assert_int_equal(write(h->stop[1], "x", 1), 1);
	sim_device_close(h->dev);
	if (log_out)
		snprintf(log_out, cap, "%s", h->log);
	if (h->host >= 0)
		close(h->host);
	close(h->stop[0]);
	close(h->stop[1]);
	sim_options_free(&h->o);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static void h_stop(harness *h)
{
	h_stop_log(h, NULL, 0);
}

/* Read from fd until `quiet_ms` pass without data or `max_ms` in total. */
static size_t read_quiet(int fd, uint8_t *buf, size_t cap, unsigned quiet_ms, unsigned max_ms)
{
	size_t n = 0;
	uint64_t end = now_ms() + max_ms;
	while (n < cap && now_ms() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, (int)quiet_ms) <= 0)
			break;
		ssize_t r = read(fd, buf + n, cap - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	return n;
}

static size_t slip_cmd(uint8_t op, const uint8_t *data, size_t len, uint8_t *out)
{
	uint8_t pkt[64] = { 0x00, op, (uint8_t)len, (uint8_t)(len >> 8), 0, 0, 0, 0 };
	memcpy(pkt + 8, data, len);
	return espl_slip_encode(pkt, 8 + len, out);
}

static size_t sync_frame(uint8_t *out)
{
	uint8_t data[36] = { 0x07, 0x07, 0x12, 0x20 };
	memset(data + 4, 0x55, 32);
	return slip_cmd(0x08, data, sizeof data, out);
}

/* Count SLIP frames in a byte stream that look like replies to op. */
static int count_replies(const uint8_t *buf, size_t n, uint8_t op)
{
	uint8_t fb[256];
	espl_slip_decoder dec;
	espl_slip_decoder_init(&dec, fb, sizeof fb);
	int count = 0;
	for (size_t i = 0; i < n; i++)
		if (espl_slip_feed(&dec, buf[i]) == ESPL_SLIP_FRAME && dec.len >= 8 && dec.frame[0] == 1 &&
		    dec.frame[1] == op)
			count++;
	return count;
}

static void test_server_pty_sync(void **state)
{
	(void)state;
	harness *h = h_start("--time-scale", "0", NULL);
	assert_int_equal(sim_device_start(h->dev), 0);
	h->host = open_slave(h_port(h));
	uint8_t buf[4096], cmd[128];
	size_t n = read_quiet(h->host, buf, sizeof buf, 100, 1000);
	/* The ROM's 74880-baud boot line, seen at 115200: garbage, no frame. */
	assert_true(n >= 50);
	assert_null(memchr(buf, 0xC0, n));
	size_t clen = sync_frame(cmd);
	assert_int_equal(write(h->host, cmd, clen), (ssize_t)clen);
	n = read_quiet(h->host, buf, sizeof buf, 100, 2000);
	assert_int_equal(count_replies(buf, n, 0x08), 8);
	pthread_mutex_lock(&h->lock);
	assert_int_equal(h->nframes, 1);
	assert_int_equal(h->frame_len[0], 44);
	assert_int_equal(h->frames[0][1], 0x08);
	pthread_mutex_unlock(&h->lock);
	h_stop(h);
}

static void wait_frames(harness *h, size_t want)
{
	for (int i = 0; i < 200; i++) {
		pthread_mutex_lock(&h->lock);
		size_t n = h->nframes;
		pthread_mutex_unlock(&h->lock);
		if (n >= want)
			return;
		sleep_ms(10);
	}
	fail_msg("only %zu of %zu frames reached the chip", h->nframes, want);
}

/* rx faults at byte N: the chip receives the frame without that byte, or
 * with exactly one bit of it flipped. */
static void test_server_rx_drop_and_corrupt_at_n(void **state)
{
	(void)state;
	/* READ_REG 0x40001000 encodes to 14 bytes: C0, 12 packet bytes, C0.
	 * Byte 5 is packet byte 4 of the first frame; byte 19 is packet
	 * byte 4 of the second. */
	harness *h = h_start("--time-scale", "0", "--fault", "drop@5", "--fault", "corrupt@rx:19", NULL);
	assert_int_equal(sim_device_start(h->dev), 0);
	h->host = open_slave(h_port(h));
	uint8_t buf[4096], cmd[64];
	read_quiet(h->host, buf, sizeof buf, 100, 1000);
	const uint8_t addr[4] = { 0x00, 0x10, 0x00, 0x40 };
	size_t clen = slip_cmd(0x0A, addr, 4, cmd);
	assert_int_equal(clen, 14);
	uint8_t pkt[12] = { 0x00, 0x0A, 0x04, 0x00, 0, 0, 0, 0, 0x00, 0x10, 0x00, 0x40 };
	assert_int_equal(write(h->host, cmd, clen), (ssize_t)clen);
	assert_int_equal(write(h->host, cmd, clen), (ssize_t)clen);
	wait_frames(h, 2);
	pthread_mutex_lock(&h->lock);
	assert_int_equal(h->frame_len[0], 11);
	assert_memory_equal(h->frames[0], pkt, 4);
	assert_memory_equal(h->frames[0] + 4, pkt + 5, 7);
	assert_int_equal(h->frame_len[1], 12);
	int diffs = 0;
	for (int i = 0; i < 12; i++)
		diffs += popcount8(h->frames[1][i] ^ pkt[i]);
	assert_int_equal(diffs, 1);
	assert_int_equal(popcount8(h->frames[1][4] ^ pkt[4]), 1);
	assert_non_null(strstr(h->log, "fault rx drop@5 fired"));
	assert_non_null(strstr(h->log, "fault rx corrupt@19 fired"));
	pthread_mutex_unlock(&h->lock);
	static char log[16384];
	h_stop_log(h, log, sizeof log);
	assert_non_null(strstr(log, "dev 0: faults: rx.drop=1 rx.corrupt=1;"));
}

/* Everything the host receives from power-on to the SYNC replies. */
static size_t capture_sync_session(harness *h, uint8_t *buf, size_t cap)
{
	assert_int_equal(sim_device_start(h->dev), 0);
	h->host = open_slave(h_port(h));
	size_t n = read_quiet(h->host, buf, cap, 100, 1000);
	uint8_t cmd[128];
	size_t clen = sync_frame(cmd);
	assert_int_equal(write(h->host, cmd, clen), (ssize_t)clen);
	n += read_quiet(h->host, buf + n, cap - n, 150, 2000);
	return n;
}

/* tx faults at byte N: compared with a clean run of the same seed, the host
 * sees exactly that byte missing, and exactly one bit flipped in another.
 * tx byte numbers count what the chip transmits; with a 40 MHz crystal the
 * ROM's boot line goes out at 115200 like everything else, so they are
 * also the host's byte numbers (at 26 MHz each boot byte arrives garbled
 * as about 1.5 bytes). */
static void test_server_tx_drop_and_corrupt_at_n(void **state)
{
	(void)state;
	static uint8_t clean[4096], faulty[4096];
	harness *h = h_start("--time-scale", "0", "--seed", "77", "--xtal", "40", NULL);
	size_t n_clean = capture_sync_session(h, clean, sizeof clean);
	h_stop(h);
	assert_non_null(memmem(clean, n_clean, "ets Jan  8 2013,rst cause:1, boot mode:(1,6)", 44));
	const uint8_t *first_frame = memchr(clean, 0xC0, n_clean);
	assert_non_null(first_frame);
	size_t boot_len = (size_t)(first_frame - clean);
	assert_true(boot_len >= 44 && n_clean > boot_len + 60);
	size_t k_drop = boot_len + 20, k_corrupt = boot_len + 40;
	char drop[32], corrupt[32];
	snprintf(drop, sizeof drop, "drop@tx:%zu", k_drop);
	snprintf(corrupt, sizeof corrupt, "corrupt@tx:%zu", k_corrupt);
	h = h_start("--time-scale", "0", "--seed", "77", "--xtal", "40", "--fault", drop, "--fault",
	            corrupt, NULL);
	size_t n_faulty = capture_sync_session(h, faulty, sizeof faulty);
	assert_int_equal(n_faulty, n_clean - 1);
	assert_memory_equal(faulty, clean, k_drop);
	for (size_t i = k_drop; i < n_faulty; i++) {
		if (i == k_corrupt - 1)
			assert_int_equal(popcount8(faulty[i] ^ clean[i + 1]), 1);
		else if (faulty[i] != clean[i + 1])
			fail_msg("byte %zu differs from the clean run", i);
	}
	h_stop(h);
}

static long elapsed_sync_ms(harness *h, speed_t speed)
{
	uint8_t buf[4096], cmd[128];
	if (speed) {
		struct termios tio;
		assert_int_equal(tcgetattr(h->host, &tio), 0);
		cfsetispeed(&tio, speed);
		cfsetospeed(&tio, speed);
		assert_int_equal(tcsetattr(h->host, TCSANOW, &tio), 0);
	}
	size_t clen = sync_frame(cmd);
	uint64_t t0 = sim_mono_us();
	assert_int_equal(write(h->host, cmd, clen), (ssize_t)clen);
	size_t n = 0;
	while (count_replies(buf, n, 0x08) < 8 && sim_mono_us() - t0 < 3000000) {
		struct pollfd p = { .fd = h->host, .events = POLLIN };
		if (poll(&p, 1, 100) > 0) {
			ssize_t r = read(h->host, buf + n, sizeof buf - n);
			if (r > 0)
				n += (size_t)r;
		}
	}
	assert_int_equal(count_replies(buf, n, 0x08), 8);
	return (long)((sim_mono_us() - t0) / 1000);
}

/* 46 bytes in and 8 x 12 bytes out take 12.3 ms of wire time at 115200,
 * 148 ms at 9600 (read from the pty's termios), times the scale. */
static void test_server_wire_pacing(void **state)
{
	(void)state;
	harness *h = h_start("--time-scale", "1", NULL);
	assert_int_equal(sim_device_start(h->dev), 0);
	h->host = open_slave(h_port(h));
	uint8_t buf[4096];
	read_quiet(h->host, buf, sizeof buf, 100, 1000);
	long ms = elapsed_sync_ms(h, 0);
	assert_true(ms >= 11 && ms < 1000);
	ms = elapsed_sync_ms(h, B9600);
	assert_true(ms >= 140 && ms < 2000);
	h_stop(h);

	h = h_start("--time-scale", "10", NULL);
	assert_int_equal(sim_device_start(h->dev), 0);
	h->host = open_slave(h_port(h));
	read_quiet(h->host, buf, sizeof buf, 200, 3000);
	ms = elapsed_sync_ms(h, 0);
	assert_true(ms >= 120 && ms < 3000);
	h_stop(h);
}

/* stall@N:MS holds the line: a SYNC whose byte 10 is stalled 300 ms (rx),
 * or whose replies stall at chip byte 100 (tx, past the ~50-byte boot
 * line), is answered no sooner than 300 ms later. */
static void test_server_stall(void **state)
{
	(void)state;
	static const char *const faults[] = { "stall@10:300", "stall@tx:100:300" };
	for (size_t i = 0; i < 2; i++) {
		harness *h = h_start("--time-scale", "0", "--fault", faults[i], NULL);
		assert_int_equal(sim_device_start(h->dev), 0);
		h->host = open_slave(h_port(h));
		uint8_t buf[4096];
		read_quiet(h->host, buf, sizeof buf, 100, 1000);
		long ms = elapsed_sync_ms(h, 0);
		if (ms < 300 || ms > 2500)
			fail_msg("%s: SYNC answered after %ld ms", faults[i], ms);
		h_stop(h);
	}
}

static void test_server_unplug_and_replug(void **state)
{
	(void)state;
	harness *h = h_start("--time-scale", "0", "--fault", "unplug@3:200", NULL);
	assert_int_equal(sim_device_start(h->dev), 0);
	char first[256];
	snprintf(first, sizeof first, "%s", h_port(h));
	h->host = open_slave(first);
	uint8_t buf[4096], cmd[128];
	read_quiet(h->host, buf, sizeof buf, 100, 1000);
	size_t clen = sync_frame(cmd);
	assert_int_equal(write(h->host, cmd, clen), (ssize_t)clen);
	/* The cable is pulled: the slave hangs up (EIO or end of file). */
	uint64_t t0 = now_ms();
	ssize_t r = 1;
	while (r > 0 && now_ms() - t0 < 2000) {
		struct pollfd p = { .fd = h->host, .events = POLLIN };
		if (poll(&p, 1, 100) > 0)
			r = read(h->host, buf, sizeof buf);
	}
	assert_true(r <= 0);
	close(h->host);
	h->host = -1;
	/* It comes back with a new description after ~200 ms. */
	for (int i = 0; i < 300; i++) {
		pthread_mutex_lock(&h->lock);
		int done = h->announcements > 0;
		pthread_mutex_unlock(&h->lock);
		if (done)
			break;
		sleep_ms(10);
	}
	pthread_mutex_lock(&h->lock);
	assert_int_equal(h->announcements, 1);
	assert_non_null(strstr(h->log, "unplugged for 200 ms"));
	pthread_mutex_unlock(&h->lock);
	h->host = open_slave(h_port(h));
	read_quiet(h->host, buf, sizeof buf, 100, 1000);
	assert_int_equal(write(h->host, cmd, clen), (ssize_t)clen);
	size_t n = read_quiet(h->host, buf, sizeof buf, 100, 2000);
	assert_int_equal(count_replies(buf, n, 0x08), 8);
	h_stop(h);
}

/* --- RFC 2217 ----------------------------------------------------------- */

static int tcp_connect(const char *url)
{
	unsigned port = 0;
	assert_int_equal(sscanf(url, "rfc2217://127.0.0.1:%u", &port), 1);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

static void cpo_send(harness *h, uint8_t cmd, uint32_t value)
{
	uint8_t out[ESPL_RFC2217_CMD_MAX];
	size_t n = cmd == ESPL_RFC2217_SET_BAUDRATE ? espl_rfc2217_build_baud(cmd, value, out)
	                                             : espl_rfc2217_build_byte(cmd, (uint8_t)value, out);
	assert_int_equal(write(h->host, out, n), (ssize_t)n);
}

/* Read telnet-decoded data for up to max_ms, answering negotiations;
 * appends to buf (NUL-terminated for strstr), stops early once `want`
 * appears. */
static size_t tcp_read(harness *h, uint8_t *buf, size_t len, size_t cap, unsigned max_ms,
                       const char *want)
{
	uint64_t end = now_ms() + max_ms;
	while (len + 1 < cap && now_ms() < end) {
		buf[len] = 0;
		if (want && memmem(buf, len, want, strlen(want)))
			break;
		struct pollfd p = { .fd = h->host, .events = POLLIN };
		if (poll(&p, 1, 20) <= 0)
			continue;
		uint8_t raw[2048];
		ssize_t r = read(h->host, raw, sizeof raw);
		if (r <= 0)
			break;
		size_t off = 0;
		while (off < (size_t)r) {
			uint8_t data[2048];
			size_t dlen;
			espl_telnet_event ev;
			off += espl_telnet_feed(&h->tdec, raw + off, (size_t)r - off, data, &dlen, &ev);
			if (dlen > cap - 1 - len)
				dlen = cap - 1 - len;
			memcpy(buf + len, data, dlen);
			len += dlen;
			if (ev.kind == ESPL_TELNET_EV_NEGOTIATION) {
				uint8_t ans[3];
				size_t an = espl_telnet_answer(&h->topt, &ev, 1, ans);
				if (an)
					assert_int_equal(write(h->host, ans, an), (ssize_t)an);
			}
		}
	}
	buf[len] = 0;
	return len;
}

/* esptool's classic reset, one SET-CONTROL at a time and in the awkward
 * order (RTS released before DTR asserted), through the NodeMCU circuit:
 * the chip must come up in download mode and answer SYNC.  Then a hard
 * reset (RTS pulse) boots the application, which ignores SYNC.  The host
 * listens at 74880 baud so the ROM's boot line is readable text. */
static void test_server_rfc2217_reset_circuit(void **state)
{
	(void)state;
	harness *h = h_start("--time-scale", "0", "--link", "rfc2217", "--en-delay", "10", NULL);
	assert_int_equal(sim_device_start(h->dev), 0);
	h->host = tcp_connect(h_port(h));
	espl_telnet_decoder_init(&h->tdec);
	espl_telnet_options_init(&h->topt);
	static uint8_t buf[8192];
	size_t n = tcp_read(h, buf, 0, sizeof buf, 200, NULL);
	assert_true(espl_telnet_him_enabled(&h->topt, ESPL_TELNET_OPT_COM_PORT) ||
	            espl_telnet_us_enabled(&h->topt, ESPL_TELNET_OPT_COM_PORT));
	cpo_send(h, ESPL_RFC2217_SET_BAUDRATE, 74880);
	cpo_send(h, ESPL_RFC2217_SET_CONTROL, ESPL_RFC2217_DTR_OFF);
	cpo_send(h, ESPL_RFC2217_SET_CONTROL, ESPL_RFC2217_RTS_ON);
	sleep_ms(100);
	cpo_send(h, ESPL_RFC2217_SET_CONTROL, ESPL_RFC2217_RTS_OFF);
	cpo_send(h, ESPL_RFC2217_SET_CONTROL, ESPL_RFC2217_DTR_ON);
	sleep_ms(50);
	cpo_send(h, ESPL_RFC2217_SET_CONTROL, ESPL_RFC2217_DTR_OFF);
	n = tcp_read(h, buf, 0, sizeof buf, 2000, "boot mode:(1,6)");
	assert_non_null(memmem(buf, n, "rst cause:2, boot mode:(1,6)", 28));
	uint8_t cmd[128];
	size_t clen = sync_frame(cmd); /* no 0xFF inside: no telnet escaping needed */
	assert_int_equal(write(h->host, cmd, clen), (ssize_t)clen);
	n = tcp_read(h, buf, 0, sizeof buf, 500, NULL);
	assert_int_equal(count_replies(buf, n, 0x08), 8);
	/* The magic 0xFFF0C101 carries 0xFF bytes: telnet-escaped on the way. */
	const uint8_t magic_addr[4] = { 0x00, 0x10, 0x00, 0x40 };
	clen = slip_cmd(0x0A, magic_addr, 4, cmd);
	assert_int_equal(write(h->host, cmd, clen), (ssize_t)clen);
	n = tcp_read(h, buf, 0, sizeof buf, 500, NULL);
	static const uint8_t magic_reply[] = { 0xC0, 0x01, 0x0A, 0x02, 0x00, 0x01, 0xC1, 0xF0, 0xFF };
	assert_non_null(memmem(buf, n, magic_reply, sizeof magic_reply));

	cpo_send(h, ESPL_RFC2217_SET_CONTROL, ESPL_RFC2217_RTS_ON);
	sleep_ms(100);
	cpo_send(h, ESPL_RFC2217_SET_CONTROL, ESPL_RFC2217_RTS_OFF);
	n = tcp_read(h, buf, 0, sizeof buf, 2000, "boot mode:(3,6)");
	assert_non_null(memmem(buf, n, "boot mode:(3,6)", 15));
	n = tcp_read(h, buf, 0, sizeof buf, 300, NULL); /* application banner */
	assert_int_equal(write(h->host, cmd, clen), (ssize_t)clen);
	n = tcp_read(h, buf, 0, sizeof buf, 300, NULL);
	assert_int_equal(count_replies(buf, n, 0x08), 0);
	h_stop(h);
}

/* A --flash-dir holding dev0.bin: a bootable image whose header declares
 * 512 KB (mode DIO), the banner string in its flash-mapped part at 0x10000
 * (none if NULL) and SDK init data at 0x7C000; the rest of the flash stays
 * erased.  *csum gets the image's checksum byte.  Free with drop_flash_dir. */
static const boot_seg demo_segs[] = { { 0x40100000u, 27728 }, { 0x3FFE8000u, 2124 }, { 0x3FFE8850u, 9276 } };

static void make_flash_dir(char dir[32], const char *banner, uint8_t *csum)
{
	static uint8_t img[0x7C000 + 128];
	memset(img, 0xFF, sizeof img);
	boot_image_write(img, 2, 0x00, demo_segs, 3, 9, csum);
	if (banner)
		memcpy(img + 0x10000 + 40, banner, strlen(banner) + 1);
	boot_put_init_data(img, 0x7C000);
	snprintf(dir, 32, "/tmp/test_sim_boot_XXXXXX");
	assert_non_null(mkdtemp(dir));
	char path[64];
	snprintf(path, sizeof path, "%s/dev0.bin", dir);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(img, 1, sizeof img, f), sizeof img);
	assert_int_equal(fclose(f), 0);
}

static void drop_flash_dir(const char *dir)
{
	char path[64];
	snprintf(path, sizeof path, "%s/dev0.bin", dir);
	unlink(path);
	rmdir(dir);
}

/* RFC 2217 PURGE-DATA (server receive buffer): the chip's output that is
 * queued but not yet on the wire is dropped; what the chip prints later
 * comes out.  At time scale 20 the ROM's first text (its banner and the
 * first load line, ~90 bytes at 74880 baud) trickles out from ~50 to
 * ~290 ms after RTS is released; a purge at 150 ms drops the rest of it,
 * and the lines it prints after loading the first segment still arrive. */
static void test_server_rfc2217_purge_drops_queued_output(void **state)
{
	(void)state;
	char dir[32], csum[16];
	uint8_t cks;
	make_flash_dir(dir, NULL, &cks);
	snprintf(csum, sizeof csum, "csum 0x%02x", cks);
	for (int purge = 0; purge <= 1; purge++) {
		harness *h = h_start("--time-scale", "20", "--link", "rfc2217", "--en-delay", "10", "--flash-dir",
		                     dir, NULL);
		assert_int_equal(sim_device_start(h->dev), 0);
		h->host = tcp_connect(h_port(h));
		espl_telnet_decoder_init(&h->tdec);
		espl_telnet_options_init(&h->topt);
		static uint8_t buf[8192];
		tcp_read(h, buf, 0, sizeof buf, 1500, NULL); /* negotiation, first boot lines */
		cpo_send(h, ESPL_RFC2217_SET_BAUDRATE, 74880);
		cpo_send(h, ESPL_RFC2217_SET_CONTROL, ESPL_RFC2217_DTR_OFF);
		cpo_send(h, ESPL_RFC2217_SET_CONTROL, ESPL_RFC2217_RTS_ON);
		sleep_ms(100);
		tcp_read(h, buf, 0, sizeof buf, 100, NULL);
		cpo_send(h, ESPL_RFC2217_SET_CONTROL, ESPL_RFC2217_RTS_OFF); /* boots from flash */
		size_t n = tcp_read(h, buf, 0, sizeof buf, 150, NULL);
		if (purge)
			cpo_send(h, ESPL_RFC2217_PURGE_DATA, ESPL_RFC2217_PURGE_RX);
		n = tcp_read(h, buf, n, sizeof buf, 3000, csum);
		assert_non_null(memmem(buf, n, "ets Jan", 7)); /* it did start */
		assert_non_null(memmem(buf, n, csum, strlen(csum)));
		const void *load1 = memmem(buf, n, "load 0x40100000, len 27728", 26);
		if (purge)
			assert_null(load1);
		else
			assert_non_null(load1);
		h_stop(h);
	}
	drop_flash_dir(dir);
}

/* An RTS pulse on an RFC 2217 device; returns when RTS is released (EN
 * starts rising), in ms. */
static uint64_t rts_pulse(harness *h)
{
	cpo_send(h, ESPL_RFC2217_SET_CONTROL, ESPL_RFC2217_RTS_ON);
	sleep_ms(50);
	cpo_send(h, ESPL_RFC2217_SET_CONTROL, ESPL_RFC2217_RTS_OFF);
	return now_ms();
}

static harness *h_start_rfc2217(const char *xtal, const char *dir, const char *extra)
{
	harness *h = h_start("--time-scale", "1", "--link", "rfc2217", "--en-delay", "10", "--xtal", xtal,
	                     "--flash-dir", dir, extra ? extra : "--seed", extra ? NULL : "1", NULL);
	assert_int_equal(sim_device_start(h->dev), 0);
	h->host = tcp_connect(h_port(h));
	espl_telnet_decoder_init(&h->tdec);
	espl_telnet_options_init(&h->topt);
	return h;
}

/* The boot path end to end at real speed: after a reset the ROM prints its
 * banner and one load line per segment at its rate (115200 with a 40 MHz
 * crystal), and the firmware's banner, taken from the image, follows about
 * 250 ms after loading, at 115200. */
static void test_server_boots_what_is_in_flash(void **state)
{
	(void)state;
	char dir[32];
	uint8_t cks;
	make_flash_dir(dir, "NodeMCU 3.0.0-espline-test", &cks);
	harness *h = h_start_rfc2217("40", dir, NULL);
	static uint8_t buf[8192];
	tcp_read(h, buf, 0, sizeof buf, 600, NULL); /* power-on boot */
	cpo_send(h, ESPL_RFC2217_SET_BAUDRATE, 115200);
	uint64_t t0 = rts_pulse(h);
	size_t n = tcp_read(h, buf, 0, sizeof buf, 3000, "csum 0x");
	uint64_t t_rom = now_ms() - t0;
	n = tcp_read(h, buf, n, sizeof buf, 3000, "espline-test\r\n");
	uint64_t t_banner = now_ms() - t0;
	char want[512];
	snprintf(want, sizeof want,
	         "ets Jan  8 2013,rst cause:2, boot mode:(3,6)\r\n\r\n"
	         "load 0x40100000, len 27728, room 16 \r\ntail 0\r\nchksum 0x%02x\r\n"
	         "load 0x3ffe8000, len 2124, room 8 \r\ntail 4\r\nchksum 0x%02x\r\n"
	         "load 0x3ffe8850, len 9276, room 4 \r\ntail 8\r\nchksum 0x%02x\r\n"
	         "csum 0x%02x\r\n\r\nNodeMCU 3.0.0-espline-test\r\n",
	         boot_running_checksum(demo_segs, 0, 9), boot_running_checksum(demo_segs, 1, 9), cks, cks);
	if (!memmem(buf, n, want, strlen(want)))
		fail_msg("boot text not found in %zu bytes: %s", n, (const char *)buf);
	/* EN rises 10 ms after release; the ROM's lines take ~30 ms at 115200 */
	assert_true(t_rom >= 20 && t_rom < 1000);
	assert_true(t_banner >= t_rom + 200 && t_banner < t_rom + 1500);
	h_stop(h);
	drop_flash_dir(dir);
}

/* 26 MHz: the ROM's lines are text only at 74880 and the firmware's banner
 * only at 115200; a host at the other rate reads noise. */
static void test_server_rom_and_firmware_rates_at_26mhz(void **state)
{
	(void)state;
	char dir[32];
	uint8_t cks;
	make_flash_dir(dir, "NodeMCU 3.0.0-espline-test", &cks);
	harness *h = h_start_rfc2217("26", dir, NULL);
	static uint8_t buf[8192];
	tcp_read(h, buf, 0, sizeof buf, 600, NULL);
	for (int rate = 0; rate < 2; rate++) {
		cpo_send(h, ESPL_RFC2217_SET_BAUDRATE, rate ? 115200 : 74880);
		rts_pulse(h);
		size_t n = tcp_read(h, buf, 0, sizeof buf, 1200, NULL);
		int rom = memmem(buf, n, "rst cause:2, boot mode:(3,6)", 28) != NULL;
		int banner = memmem(buf, n, "NodeMCU 3.0.0-espline-test", 26) != NULL;
		assert_int_equal(rom, !rate);
		assert_int_equal(banner, rate);
	}
	h_stop(h);
	drop_flash_dir(dir);
}

/* A boot fault that resets the chip: the server performs the reset the
 * plan asks for, so the host sees the ROM banner again with the cause. */
static void test_server_boot_loop_resets_itself(void **state)
{
	(void)state;
	char dir[32];
	uint8_t cks;
	make_flash_dir(dir, "NodeMCU 3.0.0-espline-test", &cks);
	harness *h = h_start_rfc2217("40", dir, "--boot-fault=loop:100");
	static uint8_t buf[16384];
	size_t n = tcp_read(h, buf, 0, sizeof buf, 3000, "wdt reset\r\nload");
	assert_non_null(memmem(buf, n, "rst cause:1, boot mode:(3,6)", 28));
	static const char wdt[] = "rst cause:4, boot mode:(3,6)\r\n\r\nwdt reset\r\nload";
	assert_non_null(memmem(buf, n, wdt, strlen(wdt)));
	assert_null(memmem(buf, n, "NodeMCU", 7));
	h_stop(h);
	drop_flash_dir(dir);
}

/* Bad input never kills the simulator: thousands of random frames with
 * plausible headers (every opcode, wrong lengths and checksums), raw noise
 * with telnet IACs, then a reset through the lines (the device is strapped
 * for download, as in a jig) must give a loader that answers SYNC. */
static void test_server_survives_random_input(void **state)
{
	(void)state;
	harness *h = h_start("--time-scale", "0", "--link", "rfc2217", "--boot", "download", NULL);
	assert_int_equal(sim_device_start(h->dev), 0);
	h->host = tcp_connect(h_port(h));
	espl_telnet_decoder_init(&h->tdec);
	espl_telnet_options_init(&h->topt);
	static uint8_t buf[1 << 16];
	tcp_read(h, buf, 0, sizeof buf, 100, NULL);
	uint64_t rng = 2026;
	static const uint8_t ops[] = { 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B,
	                               0x0D, 0x0F, 0x10, 0x11, 0x12, 0x13, 0x14, 0xD0, 0xD1, 0xD2,
	                               0xD3, 0xFF };
	for (int i = 0; i < 3000; i++) {
		uint8_t pkt[80], enc[ESPL_SLIP_ENCODED_MAX(80)], esc[2 * sizeof enc];
		size_t len = 8 + sim_rng_next(&rng) % 72;
		for (size_t k = 0; k < len; k++)
			pkt[k] = (uint8_t)sim_rng_next(&rng);
		pkt[0] = sim_rng_next(&rng) % 8 ? 0x00 : pkt[0];
		pkt[1] = ops[sim_rng_next(&rng) % sizeof ops];
		if (sim_rng_next(&rng) % 2) { /* a consistent size field half the time */
			pkt[2] = (uint8_t)(len - 8);
			pkt[3] = 0;
		}
		size_t n = espl_slip_encode(pkt, len, enc);
		if (sim_rng_next(&rng) % 10 == 0) /* noise, IACs included, unescaped */
			for (size_t k = 0; k < n; k++)
				enc[k] = (uint8_t)sim_rng_next(&rng);
		n = espl_telnet_escape(enc, n, esc);
		assert_int_equal(write(h->host, esc, n), (ssize_t)n);
		if (i % 100 == 0)
			tcp_read(h, buf, 0, sizeof buf, 5, NULL); /* keep the socket drained */
		if (i % 200 == 199) {
			/* Random FLASH_END / RUN_USER_CODE frames start the
			 * application, which ignores SLIP: reset now and then. */
			cpo_send(h, ESPL_RFC2217_SET_CONTROL, ESPL_RFC2217_RTS_ON);
			sleep_ms(2);
			cpo_send(h, ESPL_RFC2217_SET_CONTROL, ESPL_RFC2217_RTS_OFF);
			tcp_read(h, buf, 0, sizeof buf, 30, NULL);
		}
	}
	tcp_read(h, buf, 0, sizeof buf, 300, NULL);
	cpo_send(h, ESPL_RFC2217_SET_BAUDRATE, 115200);
	cpo_send(h, ESPL_RFC2217_SET_CONTROL, ESPL_RFC2217_DTR_OFF);
	cpo_send(h, ESPL_RFC2217_SET_CONTROL, ESPL_RFC2217_RTS_ON);
	sleep_ms(50);
	cpo_send(h, ESPL_RFC2217_SET_CONTROL, ESPL_RFC2217_RTS_OFF);
	tcp_read(h, buf, 0, sizeof buf, 300, NULL);
	uint8_t cmd[128];
	size_t clen = sync_frame(cmd);
	int replies = 0;
	for (int attempt = 0; attempt < 3 && replies < 8; attempt++) {
		assert_int_equal(write(h->host, cmd, clen), (ssize_t)clen);
		size_t n = tcp_read(h, buf, 0, sizeof buf, 300, NULL);
		replies = count_replies(buf, n, 0x08);
	}
	assert_int_equal(replies, 8);
	static char log[16384];
	h_stop_log(h, log, sizeof log);
	const char *summary = strstr(log, "dev 0: faults: none; ");
	assert_non_null(summary);
	unsigned long frames = strtoul(summary + strlen("dev 0: faults: none; "), NULL, 10);
	if (frames < 1500)
		fail_msg("only %lu frames reached the chip", frames);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fault_parse_valid),
		cmocka_unit_test(test_fault_parse_invalid),
		cmocka_unit_test(test_chip_faults_passthrough),
		cmocka_unit_test(test_engine_drop_at_n),
		cmocka_unit_test(test_engine_corrupt_at_n),
		cmocka_unit_test(test_engine_random_is_seeded),
		cmocka_unit_test(test_adapter_limits),
		cmocka_unit_test(test_engine_stall_unplug_reset),
		cmocka_unit_test(test_reset_truth_table),
		cmocka_unit_test(test_reset_classic_sequence),
		cmocka_unit_test(test_reset_latch_at_rise_not_at_release),
		cmocka_unit_test(test_reset_gpio0_released_before_rise),
		cmocka_unit_test(test_reset_hard_reset_and_harmless_states),
		cmocka_unit_test(test_reset_reassert_cancels_rise_and_pulse),
		cmocka_unit_test(test_wire_time),
		cmocka_unit_test(test_wire_baud_mismatch),
		cmocka_unit_test(test_pty_host_baud_reads_bother),
		cmocka_unit_test(test_options_defaults),
		cmocka_unit_test(test_options_devices_and_overrides),
		cmocka_unit_test(test_options_errors),
		cmocka_unit_test(test_options_usage_documents_every_fault),
		cmocka_unit_test(test_server_pty_sync),
		cmocka_unit_test(test_server_rx_drop_and_corrupt_at_n),
		cmocka_unit_test(test_server_tx_drop_and_corrupt_at_n),
		cmocka_unit_test(test_server_wire_pacing),
		cmocka_unit_test(test_server_stall),
		cmocka_unit_test(test_server_unplug_and_replug),
		cmocka_unit_test(test_server_rfc2217_reset_circuit),
		cmocka_unit_test(test_server_rfc2217_purge_drops_queued_output),
		cmocka_unit_test(test_server_boots_what_is_in_flash),
		cmocka_unit_test(test_server_rom_and_firmware_rates_at_26mhz),
		cmocka_unit_test(test_server_boot_loop_resets_itself),
		cmocka_unit_test(test_server_survives_random_input),
	};
	return cmocka_run_group_tests_name("sim_server", tests, NULL, NULL);
}
