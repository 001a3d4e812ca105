// vireo: the command line for Vireo.
#include <iostream>

#include <CLI/CLI.hpp>

#include "base/error.h"
#include "cli/datastore_command.h"
#include "cli/disk_command.h"
#include "cli/help_text.h"
#include "cli/host_command.h"
#include "cli/run_command.h"
#include "cli/switch_command.h"
#include "cli/vm_command.h"

int main(int argc, char** argv) {
    CLI::App app{"vireo: run and manage virtual machines on KVM"};
    app.require_subcommand(1);
    vireo::cli::add_run_command(app);
    vireo::cli::add_host_command(app);
    vireo::cli::add_disk_command(app);
    vireo::cli::add_datastore_command(app);
    vireo::cli::add_switch_commands(app);
    vireo::cli::add_vm_commands(app);
    vireo::cli::tidy_help(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::RuntimeError& done) {
        return done.get_exit_code();  // a command's own exit status
    } catch (const CLI::ParseError& error) {
        int status = app.exit(error);
        return status == 0 ? 0 : 2;
    } catch (const vireo::Error& error) {
        std::cerr << "vireo: " << error.what() << "\n";
        return 2;
    }
    return 0;
}
