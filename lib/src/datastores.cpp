// Datastore list parsing and the availability probe.
#include "pbs_patch/datastores.hpp"

#include "pbs_patch/text.hpp"

#include <fmt/format.h>

#include <sys/stat.h>
#include <unistd.h>

namespace pbs_patch {

using nlohmann::json;

namespace {

std::optional<std::string> optional_string(const json& item, const char* key) {
    const auto it = item.find(key);
    if (it == item.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
}

bool is_directory(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

std::vector<Datastore> parse_datastore_list(std::string_view text) {
    json doc;
    try {
        doc = json::parse(text);
    } catch (const json::exception&) {
        throw DatastoreListError(fmt::format("datastore list output is not JSON: {}", tail_lines(trim(text), 2)));
    }
    if (doc.is_object() && doc.contains("data")) doc = doc["data"];  // the API's envelope
    if (!doc.is_array()) throw DatastoreListError("datastore list output is not a JSON array");
    std::vector<Datastore> stores;
    for (std::size_t i = 0; i < doc.size(); ++i) {
        const auto& item = doc[i];
        if (!item.is_object()) throw DatastoreListError(fmt::format("datastore entry {} is not an object", i));
        auto name = optional_string(item, "name");
        auto path = optional_string(item, "path");
        if (!name || !path) throw DatastoreListError(fmt::format("datastore entry {} has no name/path", i));
        stores.push_back({*name, *path, optional_string(item, "comment"), optional_string(item, "maintenance-mode"),
                          optional_string(item, "backing-device")});
    }
    return stores;
}

std::string DatastoreStatus::problem() const {
    if (!path_exists) return fmt::format("path {} does not exist", store.path);
    if (!readable) return fmt::format("path {} is not readable", store.path);
    if (!chunk_store) return fmt::format("{} has no .chunks directory (backing storage not mounted?)", store.path);
    return {};
}

json DatastoreStatus::to_json() const {
    json j{{"name", store.name},
           {"path", store.path},
           {"path_exists", path_exists},
           {"readable", readable},
           {"chunk_store", chunk_store},
           {"available", available()},
           {"removable", store.backing_device.has_value()},
           {"maintenance_mode", nullptr},
           {"problem", available() ? json(nullptr) : json(problem())}};
    if (store.comment) j["comment"] = *store.comment;
    if (maintenance) {
        j["maintenance_mode"] = json{{"type", maintenance->type},
                                     {"message", maintenance->message ? json(*maintenance->message) : json(nullptr)}};
    }
    return j;
}

DatastoreStatus probe_datastore(const Datastore& store) {
    DatastoreStatus s;
    s.store = store;
    s.path_exists = is_directory(store.path);
    s.readable = s.path_exists && ::access(store.path.c_str(), R_OK | X_OK) == 0;
    s.chunk_store = s.readable && is_directory(store.path + "/.chunks");
    if (store.maintenance_mode) s.maintenance = parse_maintenance_mode(*store.maintenance_mode);
    return s;
}

}  // namespace pbs_patch
