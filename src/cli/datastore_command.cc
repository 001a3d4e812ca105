#include "cli/datastore_command.h"

#include <filesystem>
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/api_client.h"
#include "cli/human_size.h"

namespace vireo::cli {

namespace {

using nlohmann::json;

struct DatastoreOptions {
    ApiTarget target;
    std::string name;
    std::string path;
    bool force = false;
    bool json = false;
};

int add(const DatastoreOptions& options) {
    // A relative path means one here, which is the host's when vireod is local.
    std::string path = options.target.host.empty()
                           ? std::filesystem::absolute(options.path).lexically_normal().string()
                           : options.path;
    json body = {{"name", options.name}, {"path", path}};
    json added = ApiClient(options.target).call("POST", "/v1/datastores", &body);
    if (options.json) {
        std::cout << added.dump() << std::endl;
    } else {
        std::cout << fmt::format("datastore '{}' added: {} ({} free of {}, {} VM folders)\n",
                                 added["name"].get<std::string>(), added["path"].get<std::string>(),
                                 human_size(added["free"].get<uint64_t>()),
                                 human_size(added["capacity"].get<uint64_t>()),
                                 added["vm_folders"].get<size_t>());
    }
    return 0;
}

int list(const DatastoreOptions& options) {
    json entries = ApiClient(options.target).call("GET", "/v1/datastores")["datastores"];
    if (options.json) {
        std::cout << json{{"datastores", entries}}.dump() << std::endl;
        return 0;
    }
    if (entries.empty()) {
        std::cout << "no datastores (add one: vireo datastore add NAME PATH)\n";
        return 0;
    }
    size_t name_width = 4;
    size_t path_width = 4;
    for (const auto& e : entries) {
        name_width = std::max(name_width, e["name"].get<std::string>().size());
        path_width = std::max(path_width, e["path"].get<std::string>().size());
    }
    std::cout << fmt::format("{:<{}}  {:<{}}  {:>10}  {:>10}  {:>4}\n", "NAME", name_width, "PATH",
                             path_width, "CAPACITY", "FREE", "VMS");
    for (const auto& e : entries) {
        bool reachable = e["reachable"];
        std::cout << fmt::format(
            "{:<{}}  {:<{}}  {:>10}  {:>10}  {:>4}\n", e["name"].get<std::string>(), name_width,
            e["path"].get<std::string>(), path_width,
            reachable ? human_size(e["capacity"].get<uint64_t>()) : "unreachable",
            reachable ? human_size(e["free"].get<uint64_t>()) : "-", e["vm_folders"].get<size_t>());
    }
    return 0;
}

int remove(const DatastoreOptions& options) {
    json removed = ApiClient(options.target)
                       .call("DELETE", "/v1/datastores/" + options.name +
                                           (options.force ? "?force=true" : ""));
    if (options.json) {
        std::cout << removed.dump() << std::endl;
    } else {
        std::cout << fmt::format("datastore '{}' removed (its files in {} are untouched)\n",
                                 removed["name"].get<std::string>(),
                                 removed["path"].get<std::string>());
    }
    return 0;
}

// The options every datastore command takes.
void common(CLI::App* command, DatastoreOptions& options, const char* json_help) {
    add_target_options(command, options.target);
    command->add_flag("--json", options.json, json_help);
}

}  // namespace

void add_datastore_command(CLI::App& app) {
    CLI::App* datastore = app.add_subcommand(
        "datastore",
        "Datastores: directories holding VM folders (<datastore>/<vm>/: vm.json, disks, log),\n"
        "registered with the host's vireod.");
    datastore->require_subcommand(1);

    auto options = std::make_shared<DatastoreOptions>();
    CLI::App* add_command =
        datastore->add_subcommand("add", "Register an existing directory as a datastore");
    add_command->add_option("NAME", options->name, "the datastore's name: 1 to 64 of a-z 0-9 - _ .")
        ->required();
    add_command->add_option("PATH", options->path, "an existing directory")->required();
    common(add_command, *options, "print the datastore as JSON");
    add_command->final_callback([options] { throw CLI::RuntimeError(add(*options)); });

    CLI::App* list_command = datastore->add_subcommand(
        "list", "List the datastores with their capacity, free space and VM folders");
    common(list_command, *options, "print the list as JSON");
    list_command->final_callback([options] { throw CLI::RuntimeError(list(*options)); });

    CLI::App* remove_command =
        datastore->add_subcommand("remove", "Forget a datastore (its files stay where they are)");
    remove_command->add_option("NAME", options->name, "the datastore's name")->required();
    remove_command->add_flag("--force", options->force,
                             "forget it even though it holds VM folders");
    common(remove_command, *options, "print the removed datastore as JSON");
    remove_command->final_callback([options] { throw CLI::RuntimeError(remove(*options)); });
}

}  // namespace vireo::cli
