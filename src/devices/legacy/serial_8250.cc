#include "devices/legacy/serial_8250.h"

#include <algorithm>

#include "base/error.h"

namespace vireo {
namespace {

// Register offsets (DLAB selects the divisor latch at 0 and 1).
constexpr uint64_t kRbrThr = 0;  // DLL with DLAB
constexpr uint64_t kIer = 1;     // DLM with DLAB
constexpr uint64_t kIirFcr = 2;
constexpr uint64_t kLcr = 3;
constexpr uint64_t kMcr = 4;
constexpr uint64_t kLsr = 5;
constexpr uint64_t kMsr = 6;
constexpr uint64_t kScr = 7;
static_assert(kScr + 1 == Serial8250::kSize);

constexpr uint8_t kIerRxData = 0x01;
constexpr uint8_t kIerThrEmpty = 0x02;
constexpr uint8_t kIerLineStatus = 0x04;
constexpr uint8_t kIerModemStatus = 0x08;
constexpr uint8_t kIerMask = 0x0f;

constexpr uint8_t kIirNone = 0x01;
constexpr uint8_t kIirModemStatus = 0x00;
constexpr uint8_t kIirThrEmpty = 0x02;
constexpr uint8_t kIirRxData = 0x04;
constexpr uint8_t kIirLineStatus = 0x06;
constexpr uint8_t kIirRxTimeout = 0x0c;
constexpr uint8_t kIirFifoEnabled = 0xc0;

constexpr uint8_t kFcrEnable = 0x01;
constexpr uint8_t kFcrClearRx = 0x02;
constexpr uint8_t kFcrTriggerMask = 0xc0;

constexpr uint8_t kLcrDlab = 0x80;

constexpr uint8_t kMcrDtr = 0x01;
constexpr uint8_t kMcrRts = 0x02;
constexpr uint8_t kMcrOut1 = 0x04;
constexpr uint8_t kMcrOut2 = 0x08;
constexpr uint8_t kMcrLoop = 0x10;
constexpr uint8_t kMcrMask = 0x1f;

constexpr uint8_t kLsrDataReady = 0x01;
constexpr uint8_t kLsrOverrun = 0x02;
constexpr uint8_t kLsrErrors = 0x1e;  // OE, PE, FE, BI
constexpr uint8_t kLsrThrEmpty = 0x20;
constexpr uint8_t kLsrTransmitterEmpty = 0x40;

constexpr uint8_t kMsrDeltaCts = 0x01;
constexpr uint8_t kMsrDeltaDsr = 0x02;
constexpr uint8_t kMsrTrailingRi = 0x04;
constexpr uint8_t kMsrDeltaDcd = 0x08;
constexpr uint8_t kMsrCts = 0x10;
constexpr uint8_t kMsrDsr = 0x20;
constexpr uint8_t kMsrRi = 0x40;
constexpr uint8_t kMsrDcd = 0x80;

// Receive FIFO trigger levels selected by FCR bits 7:6.
constexpr size_t kTriggerLevels[4] = {1, 4, 8, 14};

}  // namespace

Serial8250::Serial8250(std::shared_ptr<IrqLine> irq, OutputSink output)
    : irq_(std::move(irq)), output_(std::move(output)) {
    if (!irq_ || !output_) {
        fail("serial: an IRQ line and an output sink are required");
    }
}

// Registers are one byte wide; a wider access is split into byte accesses at
// consecutive offsets, as the ISA bus does.
void Serial8250::read(uint64_t offset, std::span<uint8_t> data) {
    // Bytes past the last register read as an unclaimed port does.
    size_t inside = offset < kSize ? std::min<uint64_t>(data.size(), kSize - offset) : 0;
    std::fill(data.begin() + static_cast<std::ptrdiff_t>(inside), data.end(), 0xff);
    if (inside < data.size()) {
        log_.warn("{}-byte read at offset {:#x} reaches past the 8 registers", data.size(), offset);
    } else if (data.size() > 1) {
        log_.debug("{}-byte read at offset {} split into byte reads", data.size(), offset);
    }
    if (inside == 0) {
        return;
    }
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < inside; ++i) {
        data[i] = read_register(offset + i);
    }
    update_irq();
}

void Serial8250::write(uint64_t offset, std::span<const uint8_t> data) {
    size_t inside = offset < kSize ? std::min<uint64_t>(data.size(), kSize - offset) : 0;
    if (inside < data.size()) {
        log_.warn("{}-byte write at offset {:#x} reaches past the 8 registers", data.size(),
                  offset);
    } else if (data.size() > 1) {
        log_.debug("{}-byte write at offset {} split into byte writes", data.size(), offset);
    }
    if (inside == 0) {
        return;
    }
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < inside; ++i) {
        write_register(offset + i, data[i]);
    }
    update_irq();
}

uint8_t Serial8250::read_register(uint64_t offset) {
    bool dlab = lcr_ & kLcrDlab;
    switch (offset) {
        case kRbrThr: {
            if (dlab) {
                return static_cast<uint8_t>(divisor_);
            }
            if (rx_.empty()) {
                return 0;
            }
            uint8_t byte = rx_.front();
            rx_.pop_front();
            room_.notify_all();
            return byte;
        }
        case kIer:
            return dlab ? static_cast<uint8_t>(divisor_ >> 8) : ier_;
        case kIirFcr: {
            uint8_t id = interrupt_identification();
            // Reading IIR acknowledges "THR empty" when that is what it reports.
            if (id == kIirThrEmpty) {
                thr_interrupt_ = false;
            }
            return id | ((fcr_ & kFcrEnable) ? kIirFifoEnabled : 0);
        }
        case kLcr:
            return lcr_;
        case kMcr:
            return mcr_;
        case kLsr: {
            uint8_t lsr = lsr_errors_ | kLsrThrEmpty | kLsrTransmitterEmpty;
            if (!rx_.empty()) {
                lsr |= kLsrDataReady;
            }
            lsr_errors_ = 0;
            return lsr;
        }
        case kMsr: {
            uint8_t msr = modem_inputs() | msr_deltas_;
            msr_deltas_ = 0;
            return msr;
        }
        default:  // kScr, the last register
            return scr_;
    }
}

void Serial8250::write_register(uint64_t offset, uint8_t value) {
    bool dlab = lcr_ & kLcrDlab;
    switch (offset) {
        case kRbrThr:
            if (dlab) {
                divisor_ = static_cast<uint16_t>((divisor_ & 0xff00) | value);
                return;
            }
            // The holding register empties at once, which raises "THR empty" again:
            // the line drops and rises, a new edge for the next byte.
            thr_interrupt_ = false;
            update_irq();
            if (mcr_ & kMcrLoop) {
                receive(value);
            } else {
                output_({&value, 1});
            }
            thr_interrupt_ = true;
            return;
        case kIer:
            if (dlab) {
                divisor_ = static_cast<uint16_t>((divisor_ & 0x00ff) | (value << 8));
                return;
            }
            // Enabling the THR interrupt while THR is empty raises it at once (Linux
            // probes for this, and Windows relies on it).
            if ((value & ~ier_) & kIerThrEmpty) {
                thr_interrupt_ = true;
            }
            ier_ = value & kIerMask;
            return;
        case kIirFcr:
            set_fifo_control(value);
            return;
        case kLcr:
            lcr_ = value;
            return;
        case kMcr:
            set_modem_control(value & kMcrMask);
            return;
        case kLsr:
        case kMsr:
            return;  // factory test registers: writes have no defined effect
        default:     // kScr, the last register
            scr_ = value;
            return;
    }
}

size_t Serial8250::enqueue_input(std::span<const uint8_t> bytes) {
    std::lock_guard lock(mutex_);
    size_t capacity = receive_capacity();
    size_t room = capacity > rx_.size() ? capacity - rx_.size() : 0;
    size_t count = std::min(room, bytes.size());
    rx_.insert(rx_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(count));
    update_irq();
    return count;
}

bool Serial8250::wait_for_room(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return room_.wait_for(lock, timeout, [this] { return rx_.size() < receive_capacity(); });
}

size_t Serial8250::receive_capacity() const {
    if (mcr_ & kMcrLoop) {
        return 0;  // host input only; loopback bytes go through receive()
    }
    return (fcr_ & kFcrEnable) ? kFifoSize : 1;
}

void Serial8250::receive(uint8_t byte) {
    size_t capacity = (fcr_ & kFcrEnable) ? kFifoSize : 1;
    if (rx_.size() < capacity) {
        rx_.push_back(byte);
        return;
    }
    // Overrun: the FIFO keeps its bytes and the new one is lost; without a FIFO
    // the new byte overwrites the holding register.
    lsr_errors_ |= kLsrOverrun;
    if (capacity == 1) {
        rx_.back() = byte;
    }
}

void Serial8250::set_fifo_control(uint8_t value) {
    // Turning the FIFOs on or off empties them; FCR bits 1-7 take effect only
    // together with bit 0.
    bool was_enabled = fcr_ & kFcrEnable;
    bool enable = value & kFcrEnable;
    if (enable != was_enabled || (enable && (value & kFcrClearRx))) {
        rx_.clear();
    }
    fcr_ = enable ? (value & (kFcrEnable | kFcrTriggerMask)) : 0;
    room_.notify_all();
}

void Serial8250::set_modem_control(uint8_t value) {
    uint8_t before = modem_inputs();
    mcr_ = value;
    uint8_t after = modem_inputs();
    uint8_t changed = before ^ after;
    if (changed & kMsrCts) {
        msr_deltas_ |= kMsrDeltaCts;
    }
    if (changed & kMsrDsr) {
        msr_deltas_ |= kMsrDeltaDsr;
    }
    if ((before & kMsrRi) && !(after & kMsrRi)) {
        msr_deltas_ |= kMsrTrailingRi;
    }
    if (changed & kMsrDcd) {
        msr_deltas_ |= kMsrDeltaDcd;
    }
    room_.notify_all();  // leaving loopback reconnects the receiver
}

uint8_t Serial8250::modem_inputs() const {
    if (!(mcr_ & kMcrLoop)) {
        return kMsrDcd | kMsrDsr | kMsrCts;  // a terminal is always attached
    }
    // Loopback wires RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD.
    uint8_t inputs = 0;
    if (mcr_ & kMcrRts) {
        inputs |= kMsrCts;
    }
    if (mcr_ & kMcrDtr) {
        inputs |= kMsrDsr;
    }
    if (mcr_ & kMcrOut1) {
        inputs |= kMsrRi;
    }
    if (mcr_ & kMcrOut2) {
        inputs |= kMsrDcd;
    }
    return inputs;
}

uint8_t Serial8250::interrupt_identification() const {
    if ((ier_ & kIerLineStatus) && (lsr_errors_ & kLsrErrors)) {
        return kIirLineStatus;
    }
    if ((ier_ & kIerRxData) && !rx_.empty()) {
        bool fifo = fcr_ & kFcrEnable;
        size_t trigger = kTriggerLevels[(fcr_ & kFcrTriggerMask) >> 6];
        return (fifo && rx_.size() < trigger) ? kIirRxTimeout : kIirRxData;
    }
    if ((ier_ & kIerThrEmpty) && thr_interrupt_) {
        return kIirThrEmpty;
    }
    if ((ier_ & kIerModemStatus) && msr_deltas_) {
        return kIirModemStatus;
    }
    return kIirNone;
}

void Serial8250::update_irq() {
    bool level = interrupt_identification() != kIirNone && (mcr_ & kMcrOut2);
    if (level != irq_level_) {
        irq_level_ = level;
        irq_->set_level(level);
    }
}

}  // namespace vireo
