/*
 * sim_reset.c - NodeMCU auto-reset circuit with an EN capacitor.
 */
#include "sim_reset.h"

static void start_rise(sim_reset *r, uint64_t now);

int sim_reset_en_pulled_low(int dtr, int rts)
{
	return rts && !dtr;
}

int sim_reset_gpio0_pulled_low(int dtr, int rts)
{
	return dtr && !rts;
}

void sim_reset_init(sim_reset *r, uint64_t en_delay_us)
{
	r->dtr = r->rts = 0;
	r->en_high = 1;
	r->rise_at = 0;
	r->en_delay_us = en_delay_us;
}

enum sim_reset_event sim_reset_set_lines(sim_reset *r, int dtr, int rts, uint64_t now)
{
	r->dtr = !!dtr;
	r->rts = !!rts;
	if (sim_reset_en_pulled_low(r->dtr, r->rts)) {
		/* The transistor discharges the capacitor at once; a rise
		 * in progress is cancelled. */
		r->rise_at = 0;
		if (r->en_high) {
			r->en_high = 0;
			return SIM_RESET_HOLD;
		}
		return SIM_RESET_NONE;
	}
	/* Released: start charging (0 means "no rise pending", so never
	 * store it as a time). */
	if (!r->en_high && !r->rise_at)
		start_rise(r, now);
	return SIM_RESET_NONE;
}

static void start_rise(sim_reset *r, uint64_t now)
{
	r->rise_at = now + r->en_delay_us;
	if (r->rise_at == 0)
		r->rise_at = 1;
}

void sim_reset_pulse(sim_reset *r, uint64_t now)
{
	r->en_high = 0;
	r->rise_at = 0;
	if (!sim_reset_en_pulled_low(r->dtr, r->rts))
		start_rise(r, now);
}

enum sim_reset_event sim_reset_poll(sim_reset *r, uint64_t now, int *download)
{
	if (r->en_high || !r->rise_at || now < r->rise_at)
		return SIM_RESET_NONE;
	r->rise_at = 0;
	r->en_high = 1;
	*download = sim_reset_gpio0_pulled_low(r->dtr, r->rts);
	return SIM_RESET_BOOT;
}

uint64_t sim_reset_deadline(const sim_reset *r)
{
	return r->en_high ? 0 : r->rise_at;
}
