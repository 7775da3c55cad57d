/*
 * sim_reset.h - the board's auto-reset circuit, as the chip sees it.
 *
 * Models the NodeMCU two-transistor circuit between a USB-UART's DTR/RTS and
 * the ESP8266's EN and GPIO0 pins (protocol notes 3.3): EN is pulled low iff
 * RTS is asserted and DTR is not; GPIO0 is pulled low iff DTR is asserted and
 * RTS is not.  The capacitor on EN is modelled as a delay: EN falls at once,
 * but rises en_delay_us after it is released, and the chip samples GPIO0
 * (boot mode) at that moment, not when the lines changed.  That is what makes
 * the classic reset work when the host changes DTR and RTS one at a time.
 *
 * Pure: time is an argument, nothing is read or slept here.
 * Thread safety: an object belongs to one device thread.
 */
#ifndef ESPLINE_SIM_RESET_H
#define ESPLINE_SIM_RESET_H

#include <stdint.h>

/* The truth table (1 = line asserted, i.e. pin low on a USB-UART). */
int sim_reset_en_pulled_low(int dtr, int rts);
int sim_reset_gpio0_pulled_low(int dtr, int rts);

typedef struct sim_reset {
	int dtr, rts;          /* current line state, 1 = asserted */
	int en_high;           /* EN above threshold: the chip runs */
	uint64_t rise_at;      /* EN released and rising: crosses at this time; 0 = none */
	uint64_t en_delay_us;
} sim_reset;

enum sim_reset_event {
	SIM_RESET_NONE = 0,
	SIM_RESET_HOLD,        /* EN went low: the chip stops now */
	SIM_RESET_BOOT,        /* EN rose: the chip boots; *download says how */
};

/* Lines released, EN high (powered and running). */
void sim_reset_init(sim_reset *r, uint64_t en_delay_us);

/* New line state at time now.  Returns SIM_RESET_HOLD if EN fell. */
enum sim_reset_event sim_reset_set_lines(sim_reset *r, int dtr, int rts, uint64_t now);

/* A reset that does not come from the lines (a fault injected by the
 * simulator): EN drops now and is released at once, so it rises after the
 * capacitor delay unless the lines hold it low. */
void sim_reset_pulse(sim_reset *r, uint64_t now);

/* Call when time passes (at or after sim_reset_deadline).  Returns
 * SIM_RESET_BOOT once, when a pending rise completes, with *download = 1 if
 * GPIO0 is low at that instant. */
enum sim_reset_event sim_reset_poll(sim_reset *r, uint64_t now, int *download);

/* When sim_reset_poll next needs calling, or 0 if nothing is pending. */
uint64_t sim_reset_deadline(const sim_reset *r);

#endif /* ESPLINE_SIM_RESET_H */
