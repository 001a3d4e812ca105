#include "devices/legacy/serial_8250.h"

#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "port_io.h"
#include "recording_irq_line.h"

namespace vireo {
namespace {

constexpr uint64_t kRbr = 0, kIer = 1, kIir = 2, kFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6,
                   kScr = 7;
constexpr uint8_t kIerRx = 0x01, kIerThr = 0x02, kIerAll = 0x0f;
constexpr uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut2 = 0x08, kMcrLoop = 0x10;
constexpr uint8_t kLsrDr = 0x01, kLsrOe = 0x02, kLsrThre = 0x20, kLsrTemt = 0x40;

class Serial8250Test : public ::testing::Test {
protected:
    std::shared_ptr<RecordingIrqLine> irq = std::make_shared<RecordingIrqLine>();
    std::string output;
    Serial8250 uart{
        irq, [this](std::span<const uint8_t> bytes) { output.append(bytes.begin(), bytes.end()); }};

    size_t enqueue(const std::string& text) {
        return uart.enqueue_input({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
    }
    std::string drain() {
        std::string text;
        while (inb(uart, kLsr) & kLsrDr) {
            text.push_back(static_cast<char>(inb(uart, kRbr)));
        }
        return text;
    }
};

TEST_F(Serial8250Test, StartsInTheResetState) {
    EXPECT_EQ(inb(uart, kIer), 0);
    EXPECT_EQ(inb(uart, kIir), 0x01);  // no interrupt, FIFO off
    EXPECT_EQ(inb(uart, kLcr), 0);
    EXPECT_EQ(inb(uart, kMcr), 0);
    EXPECT_EQ(inb(uart, kLsr), kLsrThre | kLsrTemt);
    EXPECT_EQ(inb(uart, kMsr), 0xb0);  // CTS, DSR, DCD: a terminal is attached
    EXPECT_TRUE(irq->levels().empty());
}

TEST_F(Serial8250Test, RejectsMissingIrqOrSink) {
    EXPECT_THROW(Serial8250(nullptr, [](std::span<const uint8_t>) {}), Error);
    EXPECT_THROW(Serial8250(irq, nullptr), Error);
}

TEST_F(Serial8250Test, BytesWrittenToThrGoToTheSink) {
    for (char c : std::string("hello\n")) {
        outb(uart, kRbr, static_cast<uint8_t>(c));
    }
    EXPECT_EQ(output, "hello\n");
    EXPECT_EQ(inb(uart, kLsr) & (kLsrThre | kLsrTemt), kLsrThre | kLsrTemt);
}

TEST_F(Serial8250Test, EnablingThrInterruptRaisesItAtOnce) {
    outb(uart, kMcr, kMcrOut2);
    outb(uart, kIer, kIerThr);
    EXPECT_TRUE(irq->level());
    EXPECT_EQ(inb(uart, kIir), 0x02);
    // Reading IIR acknowledged it.
    EXPECT_FALSE(irq->level());
    EXPECT_EQ(inb(uart, kIir), 0x01);
}

TEST_F(Serial8250Test, EachThrWriteIsANewRisingEdge) {
    outb(uart, kMcr, kMcrOut2);
    outb(uart, kIer, kIerThr);
    EXPECT_EQ(irq->rising_edges(), 1);
    inb(uart, kIir);  // acknowledged
    outb(uart, kRbr, 'a');
    EXPECT_TRUE(irq->level());
    EXPECT_EQ(irq->rising_edges(), 2);
    // Not acknowledged: a write still drops and raises the line.
    outb(uart, kRbr, 'b');
    EXPECT_TRUE(irq->level());
    EXPECT_EQ(irq->rising_edges(), 3);
    EXPECT_EQ(output, "ab");
}

TEST_F(Serial8250Test, RewritingTheSameIerDoesNotReraiseThrInterrupt) {
    outb(uart, kMcr, kMcrOut2);
    outb(uart, kIer, kIerThr);
    inb(uart, kIir);
    outb(uart, kIer, kIerThr);
    EXPECT_FALSE(irq->level());
    EXPECT_EQ(inb(uart, kIir), 0x01);
}

// Linux's serial8250_do_startup: the THRE interrupt must show in IIR after IER
// is written, and again after IER is cleared and rewritten (else UART_BUG_THRE /
// UART_BUG_TXEN).
TEST_F(Serial8250Test, PassesLinuxThreProbe) {
    outb(uart, kIer, kIerThr);
    EXPECT_TRUE(inb(uart, kLsr) & kLsrTemt);
    EXPECT_EQ(inb(uart, kIir) & 0x01, 0);
    outb(uart, kIer, 0);
    outb(uart, kIer, kIerThr);
    EXPECT_EQ(inb(uart, kIir) & 0x0f, 0x02);
    outb(uart, kIer, 0);
}

TEST_F(Serial8250Test, ReceivedDataRaisesAndReadingDrainedLowers) {
    outb(uart, kMcr, kMcrOut2);
    outb(uart, kFcr, 0x01);  // FIFO on, trigger level 1
    outb(uart, kIer, kIerRx);
    EXPECT_FALSE(irq->level());
    EXPECT_EQ(enqueue("ab"), 2u);
    EXPECT_TRUE(irq->level());
    EXPECT_EQ(inb(uart, kIir), 0xc4);  // FIFO bits + received data
    EXPECT_EQ(inb(uart, kLsr) & kLsrDr, kLsrDr);
    EXPECT_EQ(inb(uart, kRbr), 'a');
    EXPECT_TRUE(irq->level());
    EXPECT_EQ(inb(uart, kRbr), 'b');
    EXPECT_FALSE(irq->level());
    EXPECT_EQ(inb(uart, kLsr) & kLsrDr, 0);
    // New input after the guest drained the FIFO: a new edge.
    enqueue("c");
    EXPECT_EQ(irq->rising_edges(), 2);
}

TEST_F(Serial8250Test, DataBelowTriggerLevelReportsCharacterTimeout) {
    outb(uart, kFcr, 0xc1);  // trigger level 14
    outb(uart, kIer, kIerRx);
    enqueue("abc");
    EXPECT_EQ(inb(uart, kIir), 0xcc);
    enqueue("defghijklmnop");  // 16 bytes >= 14
    EXPECT_EQ(inb(uart, kIir), 0xc4);
}

TEST_F(Serial8250Test, EnqueueTakesWhatFitsInTheFifo) {
    outb(uart, kFcr, 0x01);
    std::vector<uint8_t> bytes(100);
    std::iota(bytes.begin(), bytes.end(), 0);
    EXPECT_EQ(uart.enqueue_input(bytes), Serial8250::kFifoSize);
    EXPECT_EQ(uart.enqueue_input(bytes), 0u);
    EXPECT_EQ(inb(uart, kRbr), 0);
    EXPECT_EQ(uart.enqueue_input(std::span(bytes).subspan(64)), 1u);
    // Nothing lost or reordered, and no overrun: the input side was told.
    for (int i = 1; i < 65; ++i) {
        ASSERT_EQ(inb(uart, kRbr), i);
    }
    EXPECT_EQ(inb(uart, kLsr) & (kLsrDr | kLsrOe), 0);
}

TEST_F(Serial8250Test, WithoutFifoOnlyOneByteFits) {
    EXPECT_EQ(enqueue("xyz"), 1u);
    EXPECT_EQ(inb(uart, kRbr), 'x');
    EXPECT_EQ(enqueue("yz"), 1u);
}

TEST_F(Serial8250Test, WaitForRoomWakesWhenTheGuestReads) {
    outb(uart, kFcr, 0x01);
    std::vector<uint8_t> bytes(Serial8250::kFifoSize, 'x');
    ASSERT_EQ(uart.enqueue_input(bytes), bytes.size());
    EXPECT_FALSE(uart.wait_for_room(std::chrono::milliseconds(10)));
    std::thread guest([this] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        inb(uart, kRbr);
    });
    EXPECT_TRUE(uart.wait_for_room(std::chrono::seconds(10)));
    guest.join();
    EXPECT_EQ(enqueue("y"), 1u);
}

TEST_F(Serial8250Test, InputThreadAndVcpuLoseNothing) {
    outb(uart, kFcr, 0x01);
    constexpr size_t kTotal = 20000;
    std::thread input([this] {
        std::vector<uint8_t> bytes(kTotal);
        for (size_t i = 0; i < kTotal; ++i) {
            bytes[i] = static_cast<uint8_t>(i * 7);
        }
        std::span<const uint8_t> rest(bytes);
        while (!rest.empty()) {
            rest = rest.subspan(uart.enqueue_input(rest));
            if (!rest.empty()) {
                uart.wait_for_room(std::chrono::milliseconds(100));
            }
        }
    });
    size_t received = 0;
    bool in_order = true;
    while (received < kTotal) {
        if (inb(uart, kLsr) & kLsrDr) {
            in_order &= inb(uart, kRbr) == static_cast<uint8_t>(received * 7);
            ++received;
        }
    }
    input.join();
    EXPECT_TRUE(in_order);
    EXPECT_EQ(inb(uart, kLsr) & kLsrOe, 0);
}

TEST_F(Serial8250Test, IirReportsTheHighestPriorityFirst) {
    outb(uart, kFcr, 0x01);
    // Entering loopback drops DSR (a modem status change); 65 bytes overrun the FIFO.
    outb(uart, kMcr, kMcrLoop | kMcrOut2 | kMcrRts);
    for (int i = 0; i < 65; ++i) {
        outb(uart, kRbr, static_cast<uint8_t>(i));
    }
    outb(uart, kIer, kIerAll);
    EXPECT_TRUE(irq->level());
    EXPECT_EQ(inb(uart, kIir), 0xc6);  // line status
    EXPECT_EQ(inb(uart, kLsr) & (kLsrOe | kLsrDr), kLsrOe | kLsrDr);
    EXPECT_EQ(inb(uart, kIir), 0xc4);  // received data
    EXPECT_EQ(drain().size(), Serial8250::kFifoSize);
    EXPECT_EQ(inb(uart, kIir), 0xc2);         // THR empty, acknowledged by this read
    EXPECT_EQ(inb(uart, kIir), 0xc0);         // modem status
    EXPECT_EQ(inb(uart, kMsr) & 0x0f, 0x02);  // delta DSR, cleared by the read
    EXPECT_EQ(inb(uart, kIir), 0xc1);
    EXPECT_FALSE(irq->level());
}

TEST_F(Serial8250Test, LoopbackReturnsOutputAsInput) {
    outb(uart, kFcr, 0x01);
    outb(uart, kMcr, kMcrLoop);
    outb(uart, kRbr, 'q');
    EXPECT_EQ(output, "");
    EXPECT_EQ(drain(), "q");
    // The receiver is disconnected from the line: host input waits.
    EXPECT_EQ(enqueue("z"), 0u);
    EXPECT_FALSE(uart.wait_for_room(std::chrono::milliseconds(1)));
    outb(uart, kMcr, 0);
    EXPECT_TRUE(uart.wait_for_room(std::chrono::milliseconds(1)));
    EXPECT_EQ(enqueue("z"), 1u);
}

TEST_F(Serial8250Test, LoopbackMapsModemControlToModemStatus) {
    // Linux's autoconfig check: RTS|OUT2 in loopback reads back as CTS|DCD.
    outb(uart, kMcr, kMcrLoop | 0x0a);
    EXPECT_EQ(inb(uart, kMsr) & 0xf0, 0x90);
    outb(uart, kMcr, kMcrLoop | kMcrDtr | 0x04);  // DTR -> DSR, OUT1 -> RI
    EXPECT_EQ(inb(uart, kMsr), 0x60 | 0x0b);      // DSR, RI; deltas CTS, DSR, DCD
    outb(uart, kMcr, kMcrLoop);
    EXPECT_EQ(inb(uart, kMsr), 0x06);  // DSR changed, RI trailing edge
    EXPECT_EQ(inb(uart, kMsr), 0x00);
}

TEST_F(Serial8250Test, OverrunWithoutFifoKeepsTheNewestByte) {
    outb(uart, kMcr, kMcrLoop);
    outb(uart, kRbr, '1');
    outb(uart, kRbr, '2');
    EXPECT_EQ(inb(uart, kLsr) & (kLsrOe | kLsrDr), kLsrOe | kLsrDr);
    EXPECT_EQ(inb(uart, kLsr) & kLsrOe, 0);  // cleared by the read
    EXPECT_EQ(inb(uart, kRbr), '2');
}

TEST_F(Serial8250Test, DlabSelectsTheDivisorLatch) {
    outb(uart, kIer, 0x05);
    outb(uart, kLcr, 0x83);
    outb(uart, kRbr, 0x01);
    outb(uart, kIer, 0x02);
    EXPECT_EQ(inb(uart, kRbr), 0x01);
    EXPECT_EQ(inb(uart, kIer), 0x02);
    EXPECT_EQ(output, "");  // not a THR write
    outb(uart, kLcr, 0x03);
    EXPECT_EQ(inb(uart, kIer), 0x05);
    EXPECT_EQ(inb(uart, kLcr), 0x03);
    outb(uart, kLcr, 0x80);
    EXPECT_EQ(inb(uart, kRbr), 0x01);
    EXPECT_EQ(inb(uart, kIer), 0x02);
}

TEST_F(Serial8250Test, Out2GatesTheLine) {
    outb(uart, kIer, kIerThr);
    EXPECT_TRUE(irq->levels().empty());
    outb(uart, kMcr, kMcrOut2);
    EXPECT_TRUE(irq->level());
    outb(uart, kMcr, 0);
    EXPECT_FALSE(irq->level());
    EXPECT_EQ(irq->levels(), (std::vector<bool>{true, false}));
    // Still pending, so the line rises again with OUT2.
    outb(uart, kMcr, kMcrOut2);
    EXPECT_TRUE(irq->level());
}

TEST_F(Serial8250Test, FifoControlClearsTheReceiver) {
    outb(uart, kFcr, 0x01);
    enqueue("abc");
    outb(uart, kFcr, 0x03);  // clear receive FIFO
    EXPECT_EQ(inb(uart, kLsr) & kLsrDr, 0);
    enqueue("abc");
    outb(uart, kFcr, 0x00);  // disabling the FIFO empties it too
    EXPECT_EQ(inb(uart, kLsr) & kLsrDr, 0);
    EXPECT_EQ(inb(uart, kIir) & 0xc0, 0);
}

TEST_F(Serial8250Test, ScratchRegisterHoldsAByte) {
    outb(uart, kScr, 0xa5);
    EXPECT_EQ(inb(uart, kScr), 0xa5);
}

TEST_F(Serial8250Test, HostileAccessesDoNotCrash) {
    // A 2-byte write at 0 is THR then IER; a 4-byte read at 4 is MCR..SCR.
    out_wide(uart, 0, 2, 0x0241);
    EXPECT_EQ(output, "A");
    EXPECT_EQ(inb(uart, kIer), 0x02);
    outb(uart, kScr, 0x5a);
    EXPECT_EQ(in_wide(uart, 4, 4), 0x5a'b0'60'00u);
    // Past the 8 registers: all ones, writes dropped.
    EXPECT_EQ(in_wide(uart, 6, 4), 0xffff'5a'b0u);
    EXPECT_EQ(in_wide(uart, 8, 1), 0xffu);
    EXPECT_EQ(in_wide(uart, ~uint64_t{0}, 8), ~uint64_t{0});
    out_wide(uart, ~uint64_t{0} - 1, 8, 0x4242);
    out_wide(uart, 7, 8, ~uint64_t{0});
    EXPECT_EQ(inb(uart, kScr), 0xff);
    EXPECT_EQ(output, "A");
}

}  // namespace
}  // namespace vireo
