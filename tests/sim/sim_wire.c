/*
 * sim_wire.c - UART wire time and wrong-baud garbage.
 */
#include "sim_wire.h"

#include "sim_fault.h"

uint64_t sim_wire_us(uint64_t n, unsigned baud, double scale)
{
	if (baud == 0 || !(scale > 0.0))
		return 0;
	double us = (double)n * SIM_WIRE_BITS_PER_BYTE * 1e6 / (double)baud * scale;
	return (uint64_t)(us + 0.5);
}

uint64_t sim_wire_arrival(uint64_t line_free, uint64_t sent, unsigned baud, double scale)
{
	uint64_t start = sent > line_free ? sent : line_free;
	return start + sim_wire_us(1, baud, scale);
}

int sim_wire_compatible(unsigned tx_baud, unsigned rx_baud)
{
	if (tx_baud == 0 || rx_baud == 0)
		return 1;
	double ratio = (double)tx_baud / (double)rx_baud;
	return ratio > 0.97 && ratio < 1.03;
}

size_t sim_wire_garbled_len(size_t n, unsigned tx_baud, unsigned rx_baud)
{
	if (n == 0)
		return 0;
	if (tx_baud == 0 || rx_baud == 0)
		return n;
	size_t len = (size_t)((double)n * (double)rx_baud / (double)tx_baud + 0.5);
	return len ? len : 1;
}

uint8_t sim_wire_noise(uint64_t *rng)
{
	uint8_t b = (uint8_t)(sim_rng_next(rng) >> 56);
	return b == 0xC0 ? 0xF0 : b;
}

uint8_t sim_wire_through_adapter(const sim_adapter *a, unsigned baud, uint8_t b, uint64_t *rng,
                                 int *hit)
{
	uint8_t out = b;
	if (a->max_baud && baud > a->max_baud) {
		out = sim_wire_noise(rng);
	} else if (a->marginal_baud && baud > a->marginal_baud && a->marginal_p > 0.0) {
		/* 53 random bits as a uniform number in [0, 1) */
		double u = (double)(sim_rng_next(rng) >> 11) / 9007199254740992.0;
		if (u < a->marginal_p)
			out = (uint8_t)(b ^ (1u << (sim_rng_next(rng) & 7)));
	}
	if (hit)
		*hit = out != b;
	return out;
}

unsigned sim_wire_boot_baud(unsigned xtal_mhz)
{
	if (xtal_mhz == 0)
		xtal_mhz = 26;
	return (unsigned)(115200ull * xtal_mhz / 40);
}
