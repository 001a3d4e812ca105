#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>

#include "base/rate_limited_log.h"
#include "devices/bus_device.h"
#include "devices/interrupts.h"

namespace vireo {

// A 16550A UART (COM1 at x86::kCom1Port, x86::kCom1Interrupt), the guest's
// interactive console. Transmission is instantaneous: every byte the guest writes
// to THR goes straight to the output sink, so THR/TEMT always read empty.
//
// Interrupts: the IRQ line follows "an interrupt is pending and MCR.OUT2 is set"
// (OUT2 gates the line on PC hardware; we apply the bit in loopback mode too).
// set_level() is called only when that level changes, so every new interrupt after
// the guest acknowledged the previous one is a rising edge (the VMM programs GSI 4
// edge-triggered). The receiver has no character timer: data below the FIFO
// trigger level is reported at once as a character timeout (IIR 0xC), which Linux
// handles like "data available".
//
// Threads: read()/write() from vCPU threads, enqueue_input()/wait_for_room() from
// the VMM's input thread. The output sink and the IRQ line are called with the
// UART's lock held (so output keeps the guest's order): they must not call back
// into the UART.
class Serial8250 final : public BusDevice {
public:
    using OutputSink = std::function<void(std::span<const uint8_t>)>;

    static constexpr uint64_t kSize = 8;     // ports base..base+7
    static constexpr size_t kFifoSize = 64;  // receive FIFO, in bytes

    // Throws vireo::Error if irq or output is empty.
    Serial8250(std::shared_ptr<IrqLine> irq, OutputSink output);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // Host input: appends as many bytes as the receive FIFO has room for (64 with
    // the FIFO enabled, 1 in 16450 mode, none in loopback mode, where the receiver
    // is disconnected from the line) and returns that count. Nothing is dropped:
    // the caller keeps the rest and retries after wait_for_room().
    size_t enqueue_input(std::span<const uint8_t> bytes);
    // Blocks until the receiver can take at least one byte or `timeout` passed;
    // returns whether there is room.
    bool wait_for_room(std::chrono::milliseconds timeout);

private:
    uint8_t read_register(uint64_t offset);
    void write_register(uint64_t offset, uint8_t value);
    void receive(uint8_t byte);  // a byte arriving at the receiver (input or loopback)
    size_t receive_capacity() const;
    uint8_t interrupt_identification() const;  // IIR bits 3:0
    uint8_t modem_inputs() const;              // MSR bits 7:4
    void set_modem_control(uint8_t value);
    void set_fifo_control(uint8_t value);
    void update_irq();

    const std::shared_ptr<IrqLine> irq_;
    const OutputSink output_;
    RateLimitedLog log_{"serial"};

    std::mutex mutex_;
    std::condition_variable room_;
    std::deque<uint8_t> rx_;
    uint8_t ier_ = 0;
    uint8_t fcr_ = 0;
    uint8_t lcr_ = 0;
    uint8_t mcr_ = 0;
    uint8_t lsr_errors_ = 0;  // OE; cleared by reading LSR
    uint8_t msr_deltas_ = 0;  // MSR bits 3:0; cleared by reading MSR
    uint8_t scr_ = 0;
    uint16_t divisor_ = 12;       // 9600 baud, the BIOS default
    bool thr_interrupt_ = false;  // "THR empty" pending, until IIR reports it or THR is written
    bool irq_level_ = false;
};

}  // namespace vireo
