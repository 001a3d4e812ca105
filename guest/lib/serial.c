#include "serial.h"

#include "acpi.h"
#include "io.h"
#include "ioapic.h"
#include "lapic.h"
#include "ring0.h"
#include "trap.h"

#define UART_RBR 0
#define UART_THR 0
#define UART_IER 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define LSR_DR 0x01
#define LSR_THRE 0x20

void serial_putc(char c) {
    /* Bounded wait: a VMM with an always-ready UART never loops here. */
    for (int i = 0; i < 100000 && !(inb(COM1_PORT + UART_LSR) & LSR_THRE); i++)
        cpu_relax();
    outb(COM1_PORT + UART_THR, (uint8_t)c);
}

void serial_write(const char* s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n')
            serial_putc('\r');
        serial_putc(s[i]);
    }
}

/* Receive queue: filled by the interrupt handler (ring 0), drained in ring 3. */
static volatile uint8_t rx_buf[1024];
static volatile uint64_t rx_head, rx_tail;
volatile uint64_t serial_rx_interrupts;

static void serial_rx_handler(struct trap_frame* f) {
    (void)f;
    serial_rx_interrupts++;
    while (inb(COM1_PORT + UART_LSR) & LSR_DR) {
        uint8_t b = inb(COM1_PORT + UART_RBR);
        if (rx_head - rx_tail < sizeof(rx_buf))
            rx_buf[rx_head++ % sizeof(rx_buf)] = b;
    }
    lapic_eoi();
}

void serial_enable_rx_irq(uint8_t vector) {
    trap_set_handler(vector, serial_rx_handler);
    lapic_enable();
    outb(COM1_PORT + UART_LCR, 0x03); /* 8N1, DLAB off */
    outb(COM1_PORT + UART_FCR, 0x00); /* no FIFO: one interrupt per byte is fine */
    outb(COM1_PORT + UART_MCR, 0x0b); /* DTR | RTS | OUT2 (gates the IRQ line) */
    uint32_t flags;
    uint32_t gsi = acpi_isa_irq_gsi(COM1_IRQ, &flags);
    ioapic_route(gsi, vector, lapic_id(), flags);
    outb(COM1_PORT + UART_IER, 0x01); /* received data available */
}

int serial_getc(void) {
    if (rx_tail == rx_head)
        return -1;
    return rx_buf[rx_tail++ % sizeof(rx_buf)];
}

static uint64_t rx_pending(uint64_t arg) {
    (void)arg;
    if (rx_head == rx_tail)
        asm volatile("sti; hlt; cli" ::: "memory");
    return 0;
}

void serial_wait_rx(void) {
    ring0_call(rx_pending, 0);
}
