// pbs_quiesce's decisions.
#include "pbs_patch/quiesce.hpp"

#include "pbs_patch/running_tasks.hpp"

#include <fmt/format.h>

#include <stdexcept>

namespace pbs_patch {

using nlohmann::json;

namespace {

json optional_json(const std::optional<std::string>& v) { return v ? json(*v) : json(nullptr); }

std::optional<std::string> optional_string(const json& j, const char* key) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) throw std::invalid_argument(fmt::format("'{}' is not a string", key));
    return it->get<std::string>();
}

bool optional_bool(const json& j, const char* key) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) return false;
    if (!it->is_boolean()) throw std::invalid_argument(fmt::format("'{}' is not a boolean", key));
    return it->get<bool>();
}

const Datastore* find_store(const std::vector<Datastore>& stores, const std::string& name) {
    for (const auto& s : stores) {
        if (s.name == name) return &s;
    }
    return nullptr;
}

}  // namespace

json QuiesceEntry::to_json() const {
    return {{"name", name},       {"before", optional_json(before)}, {"set", optional_json(set)},
            {"restored", restored}, {"left_alone", left_alone},       {"error", optional_json(error)}};
}

QuiesceEntry QuiesceEntry::from_json(const json& j) {
    if (!j.is_object()) throw std::invalid_argument("a datastore entry is not a dict");
    QuiesceEntry e;
    const auto name = optional_string(j, "name");
    if (!name || name->empty()) throw std::invalid_argument("a datastore entry has no 'name'");
    e.name = *name;
    e.before = optional_string(j, "before");
    e.set = optional_string(j, "set");
    e.restored = optional_bool(j, "restored");
    e.left_alone = optional_bool(j, "left_alone");
    e.error = optional_string(j, "error");
    return e;
}

std::vector<QuiesceEntry> plan_quiesce(const std::vector<Datastore>& stores) {
    std::vector<QuiesceEntry> plan;
    for (const auto& s : stores) {
        QuiesceEntry e;
        e.name = s.name;
        // Any maintenance-mode property at all, even one PBS cannot parse, is someone's: never ours to touch.
        if (s.maintenance_mode && !s.maintenance_mode->empty()) {
            e.before = s.maintenance_mode;
            e.left_alone = true;
        }
        plan.push_back(e);
    }
    return plan;
}

RestoreAction restore_action(const QuiesceEntry& entry, const std::vector<Datastore>& now) {
    if (!entry.set || entry.left_alone || entry.restored) return RestoreAction::Nothing;
    const Datastore* store = find_store(now, entry.name);
    if (!store) return RestoreAction::Gone;
    if (!store->maintenance_mode || store->maintenance_mode->empty()) return RestoreAction::AlreadyClear;
    if (*store->maintenance_mode == *entry.set) return RestoreAction::Clear;
    const auto ours = parse_maintenance_mode(*entry.set);
    const auto theirs = parse_maintenance_mode(*store->maintenance_mode);
    if (ours && theirs && same_maintenance(*ours, *theirs)) return RestoreAction::Clear;  // same, written differently
    return RestoreAction::Changed;
}

std::vector<std::string> describe_busy(const std::vector<TaskItem>& running,
                                       const std::map<std::string, ActiveOperations>& operations) {
    std::vector<std::string> out;
    for (const auto& t : running) out.push_back("task " + describe_task(t));
    for (const auto& [store, ops] : operations) {
        if (!ops.idle()) {
            out.push_back(fmt::format("datastore {}: {} read and {} write operation(s) active", store, ops.read, ops.write));
        }
    }
    return out;
}

}  // namespace pbs_patch
