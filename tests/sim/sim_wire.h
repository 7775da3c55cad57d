/*
 * sim_wire.h - the physics of a UART line, for the simulator.
 *
 * How long bytes take on the wire at a baud rate (10 bits per byte: start,
 * 8 data, stop), scaled by the simulator's --time-scale; when a byte the host
 * handed over is fully received; and what a receiver sees when the two ends
 * disagree on the baud rate (garbage).  Pure arithmetic, no I/O, no state.
 * Thread safety: none needed.
 */
#ifndef ESPLINE_SIM_WIRE_H
#define ESPLINE_SIM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define SIM_WIRE_BITS_PER_BYTE 10

/* Real microseconds n bytes occupy the line at baud, times scale (0 = free).
 * A baud of 0 (unknown) counts as free too. */
uint64_t sim_wire_us(uint64_t n, unsigned baud, double scale);

/* A byte handed to the line at time `sent` (real us) while the line is busy
 * until line_free: returns when its last bit has arrived. */
uint64_t sim_wire_arrival(uint64_t line_free, uint64_t sent, unsigned baud, double scale);

/* Whether a receiver at rx_baud decodes what a sender at tx_baud sends:
 * within 3 %, as a real UART tolerates.  0 on either side means "follows
 * the other" (auto-baud) and always matches. */
int sim_wire_compatible(unsigned tx_baud, unsigned rx_baud);

/* How many bytes a receiver at rx_baud sees for n bytes sent at tx_baud
 * (a faster receiver sees more, shorter frames), at least 1 for n > 0. */
size_t sim_wire_garbled_len(size_t n, unsigned tx_baud, unsigned rx_baud);

/* One byte of line noise.  Never 0xC0, so noise can cost a client a retry
 * ("Invalid head of packet") but never fakes a SLIP delimiter. */
uint8_t sim_wire_noise(uint64_t *rng);

/* A USB-serial adapter and its cable, as a line sees them: above max_baud
 * nothing it passes is intelligible (a CH340 asked for 3 Mbaud); above
 * marginal_baud, up to max_baud, each byte has one bit flipped with
 * probability marginal_p (a rate the bridge or the cable barely makes).
 * Zero fields mean no limit.  Applies to both directions. */
typedef struct sim_adapter {
	unsigned max_baud;
	unsigned marginal_baud;
	double marginal_p;
} sim_adapter;

/* What arrives of byte b sent through adapter a with the line at baud; the
 * randomness comes from *rng (seeded by the caller, so runs repeat).
 * *hit (may be NULL) is set to 1 when the byte was changed, else 0. */
uint8_t sim_wire_through_adapter(const sim_adapter *a, unsigned baud, uint8_t b, uint64_t *rng,
                                 int *hit);

/* Bytes a chip with this crystal prints its boot log at (74880 for 26 MHz,
 * 115200 for 40 MHz: the ROM's divider assumes 40 MHz). */
unsigned sim_wire_boot_baud(unsigned xtal_mhz);

#endif /* ESPLINE_SIM_WIRE_H */
