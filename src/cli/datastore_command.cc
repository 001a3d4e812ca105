#include "cli/datastore_command.h"

#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/human_size.h"
#include "host/datastore_registry.h"

namespace vireo::cli {

namespace {

struct DatastoreOptions {
    std::string name;
    std::string path;
    bool force = false;
    bool json = false;
};

nlohmann::json describe(const Datastore& datastore) {
    DatastoreUsage usage = DatastoreRegistry::usage(datastore.path);
    nlohmann::json entry = {{"name", datastore.name},
                            {"path", datastore.path.string()},
                            {"reachable", usage.reachable}};
    if (usage.reachable) {
        entry["capacity"] = usage.capacity;
        entry["free"] = usage.free;
    } else {
        entry["capacity"] = nullptr;
        entry["free"] = nullptr;
    }
    entry["vm_folders"] = usage.vm_folders.size();
    entry["vms"] = usage.vm_folders;
    return entry;
}

int add(const DatastoreOptions& options) {
    DatastoreRegistry registry(DatastoreRegistry::default_state_dir());
    Datastore added = registry.add(options.name, options.path);
    nlohmann::json entry = describe(added);
    if (options.json) {
        std::cout << entry.dump() << std::endl;
    } else {
        std::cout << fmt::format(
            "datastore '{}' added: {} ({} free of {}, {} VM folders)\n", added.name,
            added.path.string(), human_size(entry["free"].get<uint64_t>()),
            human_size(entry["capacity"].get<uint64_t>()), entry["vm_folders"].get<size_t>());
    }
    return 0;
}

int list(const DatastoreOptions& options) {
    DatastoreRegistry registry(DatastoreRegistry::default_state_dir());
    nlohmann::json entries = nlohmann::json::array();
    for (const Datastore& datastore : registry.list()) {
        entries.push_back(describe(datastore));
    }
    if (options.json) {
        std::cout << nlohmann::json{{"datastores", entries}}.dump() << std::endl;
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
    DatastoreRegistry registry(DatastoreRegistry::default_state_dir());
    Datastore removed = registry.remove(options.name, options.force);
    if (options.json) {
        std::cout << nlohmann::json{{"name", removed.name}, {"path", removed.path.string()}}.dump()
                  << std::endl;
    } else {
        std::cout << fmt::format("datastore '{}' removed (its files in {} are untouched)\n",
                                 removed.name, removed.path.string());
    }
    return 0;
}

}  // namespace

void add_datastore_command(CLI::App& app) {
    CLI::App* datastore = app.add_subcommand(
        "datastore",
        "Datastores: directories holding VM folders (<datastore>/<vm>/: vm.json, disks, log).\n"
        "The registry is $VIREO_STATE_DIR/datastores.json (default /var/lib/vireo).");
    datastore->require_subcommand(1);

    auto options = std::make_shared<DatastoreOptions>();
    CLI::App* add_command =
        datastore->add_subcommand("add", "Register an existing directory as a datastore");
    add_command->add_option("NAME", options->name, "the datastore's name: 1 to 64 of a-z 0-9 - _ .")
        ->required();
    add_command->add_option("PATH", options->path, "an existing directory")->required();
    add_command->add_flag("--json", options->json, "print the datastore as JSON");
    add_command->final_callback([options] { throw CLI::RuntimeError(add(*options)); });

    CLI::App* list_command = datastore->add_subcommand(
        "list", "List the datastores with their capacity, free space and VM folders");
    list_command->add_flag("--json", options->json, "print the list as JSON");
    list_command->final_callback([options] { throw CLI::RuntimeError(list(*options)); });

    CLI::App* remove_command =
        datastore->add_subcommand("remove", "Forget a datastore (its files stay where they are)");
    remove_command->add_option("NAME", options->name, "the datastore's name")->required();
    remove_command->add_flag("--force", options->force,
                             "forget it even though it holds VM folders");
    remove_command->add_flag("--json", options->json, "print the removed datastore as JSON");
    remove_command->final_callback([options] { throw CLI::RuntimeError(remove(*options)); });
}

}  // namespace vireo::cli
