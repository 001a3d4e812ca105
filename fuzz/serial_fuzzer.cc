// libFuzzer target for the legacy port devices: the input is a sequence of guest
// port accesses (device, offset, width, value, read or write) mixed with host
// input bytes for the UART and power-button presses. Nothing may crash, and the
// devices must only ever report level changes on their interrupt lines.
#include <fuzzer/FuzzedDataProvider.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "devices/legacy/acpi_pm.h"
#include "devices/legacy/cmos_rtc.h"
#include "devices/legacy/debug_exit.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial_8250.h"

namespace {

// Aborts (a finding) if a device sets a line to the level it already has: the
// VMM's edge-triggered GSIs rely on every call being a transition.
class TransitionCheckingIrqLine : public vireo::IrqLine {
public:
    void set_level(bool asserted) override {
        if (asserted == level_) {
            std::abort();
        }
        level_ = asserted;
    }

private:
    bool level_ = false;
};

void log_to_nowhere() {
    // Keep the formatting paths running without flooding the fuzzer's output.
    auto logger =
        std::make_shared<spdlog::logger>("fuzz", std::make_shared<spdlog::sinks::null_sink_mt>());
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
}

enum class Target { Uart, Rtc, I8042Data, I8042Command, AcpiPm, DebugExit, kMaxValue = DebugExit };
enum class Action { Read, Write, Input, PowerButton, kMaxValue = PowerButton };

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
    static bool logging_set_up = (log_to_nowhere(), true);
    (void)logging_set_up;

    FuzzedDataProvider input(bytes, size);
    std::time_t now = input.ConsumeIntegralInRange<std::time_t>(0, std::time_t{1} << 40);
    uint64_t ram_size = input.ConsumeIntegral<uint64_t>();
    uint32_t cpus = input.ConsumeIntegralInRange<uint32_t>(1, 256);

    auto uart_irq = std::make_shared<TransitionCheckingIrqLine>();
    auto sci = std::make_shared<TransitionCheckingIrqLine>();
    size_t output_bytes = 0;
    vireo::Serial8250 uart(uart_irq,
                           [&](std::span<const uint8_t> out) { output_bytes += out.size(); });
    vireo::CmosRtc rtc(ram_size, cpus, [&now] { return now; });
    auto controller = std::make_shared<vireo::I8042>([] {});
    vireo::I8042Port i8042_data(controller, vireo::I8042Port::Kind::Data);
    vireo::I8042Port i8042_command(controller, vireo::I8042Port::Kind::Command);
    vireo::AcpiPm acpi(sci, [] {});
    vireo::DebugExit debug_exit([](uint32_t) {});

    while (input.remaining_bytes() > 0) {
        auto target = input.ConsumeEnum<Target>();
        auto action = input.ConsumeEnum<Action>();
        vireo::BusDevice* device = nullptr;
        switch (target) {
            case Target::Uart:
                device = &uart;
                break;
            case Target::Rtc:
                device = &rtc;
                break;
            case Target::I8042Data:
                device = &i8042_data;
                break;
            case Target::I8042Command:
                device = &i8042_command;
                break;
            case Target::AcpiPm:
                device = &acpi;
                break;
            case Target::DebugExit:
                device = &debug_exit;
                break;
        }
        // Mostly offsets inside or just past the devices, sometimes anything.
        uint64_t offset = input.ConsumeBool() ? input.ConsumeIntegralInRange<uint64_t>(0, 9)
                                              : input.ConsumeIntegral<uint64_t>();
        size_t width = size_t{1} << input.ConsumeIntegralInRange(0, 3);
        uint64_t value = input.ConsumeIntegral<uint64_t>();
        std::vector<uint8_t> data(width);
        for (size_t i = 0; i < width; ++i) {
            data[i] = static_cast<uint8_t>(value >> (8 * i));
        }
        switch (action) {
            case Action::Read:
                device->read(offset, data);
                break;
            case Action::Write:
                device->write(offset, data);
                break;
            case Action::Input: {
                auto host = input.ConsumeBytes<uint8_t>(input.ConsumeIntegralInRange(0, 80));
                if (uart.enqueue_input(host) > host.size()) {
                    std::abort();
                }
                uart.wait_for_room(std::chrono::milliseconds(0));
                now += static_cast<std::time_t>(value % 100000);
                break;
            }
            case Action::PowerButton:
                acpi.press_power_button();
                break;
        }
    }
    return 0;
}
