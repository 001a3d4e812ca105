/*
 * uart_echo: interrupt-driven COM1 input. Prints "READY", then answers each
 * received line with "echo: <line>" until the line "quit" arrives.
 * vireo.echo_lines=N: expect exactly N lines before "quit".
 */
#include "cmdline.h"
#include "printf.h"
#include "report.h"
#include "serial.h"
#include "string.h"

#define UART_VECTOR 0x24

int main(void) {
    printf("Vireo guest kit: uart_echo\n");
    serial_enable_rx_irq(UART_VECTOR);
    printf("READY\n");
    char line[256];
    size_t len = 0;
    uint64_t lines = 0;
    for (;;) {
        int c = serial_getc();
        if (c < 0) {
            serial_wait_rx();
            continue;
        }
        if (c == '\r' || c == '\n') {
            if (!len)
                continue; /* the \n of \r\n, or an empty line */
            line[len] = 0;
            len = 0;
            if (!strcmp(line, "quit"))
                break;
            printf("echo: %s\n", line);
            lines++;
        } else if (len + 1 < sizeof(line)) {
            line[len++] = (char)c;
        }
    }
    report(serial_rx_interrupts > 0, "input arrived through the UART interrupt (%lu interrupts)",
           serial_rx_interrupts);
    uint64_t want = cmdline_u64("vireo.echo_lines", ~0ull);
    if (want != ~0ull)
        report(lines == want, "%lu lines echoed, vireo.echo_lines=%lu", lines, want);
    else
        report(lines > 0, "%lu lines echoed", lines);
    report_summary();
}
