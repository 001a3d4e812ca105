/* COM1 (8250 at 0x3f8): polled output, optional interrupt-driven input. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define COM1_PORT 0x3f8
#define COM1_IRQ 4

void serial_putc(char c);
void serial_write(const char* s, size_t n);

/* Enable the receive interrupt: IER.RDA, MCR.OUT2, IOAPIC pin for IRQ 4 -> `vector`
 * on this CPU. Received bytes are queued; serial_getc() pops one (-1: none). */
void serial_enable_rx_irq(uint8_t vector);
int serial_getc(void);
/* Receive interrupts taken so far. */
extern volatile uint64_t serial_rx_interrupts;
/* Ring 3: sleep in ring 0 until a byte may be queued (returns at once if one is). */
void serial_wait_rx(void);
