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
#define UART_IIR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define LSR_DR 0x01
#define LSR_THRE 0x20

#define FCR_ENABLE_AND_CLEAR 0x07 /* FIFOs on, both cleared, RX trigger at 1 byte */
#define IIR_FIFOS_ON 0xc0
#define UART_TX_FIFO 16

/* Bytes THR takes after THRE reads set: 16 with the FIFO on (a 16550A), else 1.
 * Filling the FIFO per THRE poll, as Linux's 8250 driver does, halves the port
 * exits of serial output. 0 until the first write probes the UART. */
static int tx_burst;

static void wait_thre(void) {
    /* Bounded wait: a VMM with an always-ready UART never loops here. */
    for (int i = 0; i < 100000 && !(inb(COM1_PORT + UART_LSR) & LSR_THRE); i++)
        cpu_relax();
}

/* Turning the FIFOs on empties them, so only while no input is waiting: a
 * byte typed before the guest's first output stays in RBR, and the UART
 * keeps working one byte at a time. */
static void enable_fifo(void) {
    tx_burst = 1;
    if (inb(COM1_PORT + UART_LSR) & LSR_DR)
        return;
    outb(COM1_PORT + UART_FCR, FCR_ENABLE_AND_CLEAR);
    if ((inb(COM1_PORT + UART_IIR) & IIR_FIFOS_ON) == IIR_FIFOS_ON)
        tx_burst = UART_TX_FIFO;
}

void serial_putc(char c) { serial_write(&c, 1); }

void serial_write(const char* s, size_t n) {
    if (tx_burst == 0)
        enable_fifo();
    int room = 0;
    for (size_t i = 0; i < n; i++) {
        int need = s[i] == '\n' ? 2 : 1;
        if (room < need) {
            wait_thre();
            room = tx_burst;
        }
        if (s[i] == '\n') {
            outb(COM1_PORT + UART_THR, '\r');
            room--;
        }
        outb(COM1_PORT + UART_THR, (uint8_t)s[i]);
        room--;
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
    if (tx_burst == 0)
        enable_fifo(); /* RX trigger level 1: still one interrupt per byte */
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
