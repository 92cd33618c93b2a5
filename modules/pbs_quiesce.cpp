// pbs_quiesce: makes a PBS host quiet before the reboot. state=quiesced puts every datastore that is not already
// in maintenance into our maintenance mode (new work is refused from then on, running work goes on) and waits,
// bounded, until no PBS task runs and no datastore has an active operation; state=drained only waits and looks
// (the final check right before `qm reboot`, failing closed like the gate); state=restored takes away the modes
// we set, and only those. Whenever it fails after setting a mode, or is interrupted, it restores first.
#include "pbs_patch/active_operations.hpp"
#include "pbs_patch/datastores.hpp"
#include "pbs_patch/maintenance_mode.hpp"
#include "pbs_patch/module.hpp"
#include "pbs_patch/process.hpp"
#include "pbs_patch/quiesce.hpp"
#include "pbs_patch/running_tasks.hpp"
#include "pbs_patch/text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <map>
#include <thread>

namespace {

using nlohmann::json;
using namespace pbs_patch;
using Clock = std::chrono::steady_clock;

const ParamSpecs kSpec = {
    {.name = "state", .type = ParamType::Str, .default_value = "quiesced", .choices = {"quiesced", "drained", "restored"}},
    {.name = "mode", .type = ParamType::Str, .default_value = "read-only", .choices = {"read-only", "offline", "none"}},
    {.name = "message", .type = ParamType::Str, .default_value = "pbs_patch: upgrade and reboot"},
    {.name = "timeout", .type = ParamType::Int, .default_value = 1800, .min_value = 0},
    {.name = "poll_interval", .type = ParamType::Int, .default_value = 2, .min_value = 1},
    {.name = "datastores", .type = ParamType::List, .default_value = json::array(), .elements = ParamType::Dict},
    {.name = "pbm_path", .type = ParamType::Path, .default_value = "/usr/sbin/proxmox-backup-manager"},
    {.name = "task_active_file", .type = ParamType::Path, .default_value = kTaskActiveFile},
    {.name = "active_operations_dir", .type = ParamType::Path, .default_value = kActiveOperationsDir},
    {.name = "proc_path", .type = ParamType::Path, .default_value = "/proc"},
    {.name = "command_timeout", .type = ParamType::Int, .default_value = 60, .min_value = 1},
};

volatile std::sig_atomic_t g_signal = 0;
extern "C" void on_signal(int sig) { g_signal = sig; }

// A dropped connection (SIGHUP), a cancelled job (SIGTERM/SIGINT): stop waiting and restore, never leave our
// modes behind without a word.
void catch_signals() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGHUP, SIGTERM, SIGINT}) ::sigaction(sig, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
}

// What one look at the host found.
struct Look {
    std::vector<TaskItem> running;
    std::string task_source;
    std::map<std::string, ActiveOperations> operations;
    std::vector<std::string> problems;  // what could not be read: never "idle"
    bool idle() const {
        return running.empty() && problems.empty() &&
               std::all_of(operations.begin(), operations.end(), [](const auto& p) { return p.second.idle(); });
    }
    json operations_json() const {
        json j = json::object();
        for (const auto& [store, ops] : operations) j[store] = ops.to_json();
        return j;
    }
};

class Quiesce {
public:
    explicit Quiesce(Module& module) : m_(module) {}

    json run() {
        const auto state = m_.str("state");
        if (state == "restored") return restored();
        if (state == "drained") return drained();
        return quiesced();
    }

private:
    // --- the datastores ----------------------------------------------------------------------------------
    std::vector<Datastore> list_datastores() {
        const auto r = pbm({"datastore", "list", "--output-format", "json"});
        if (r.rc != 0) throw ModuleFailure(failure("proxmox-backup-manager datastore list", r));
        try {
            return parse_datastore_list(r.out);
        } catch (const DatastoreListError& e) {
            throw ModuleFailure(e.what());
        }
    }

    ProcessResult pbm(std::vector<std::string> args) {
        args.insert(args.begin(), m_.str("pbm_path"));
        RunOptions options;
        options.timeout = std::chrono::seconds(m_.integer("command_timeout"));
        return run_process(args, options);
    }

    std::string failure(const std::string& what, const ProcessResult& r) const {
        if (r.timed_out) return fmt::format("{} timed out after {} s", what, m_.integer("command_timeout"));
        return fmt::format("{} failed (rc {}): {}", what, r.rc, tail_lines(trim(r.err + r.error + r.out), 3));
    }

    // Sets our mode on one datastore and reads back what PBS stored.
    void set_mode(QuiesceEntry& e, const std::string& type, const std::string& message) {
        const auto r = pbm({"datastore", "update", e.name, "--maintenance-mode", maintenance_mode_argument(type, message)});
        if (r.rc != 0) {
            e.error = failure("datastore update " + e.name, r);
            return;
        }
        changed_ = true;
        const MaintenanceMode want{type, message.empty() ? std::nullopt : std::optional<std::string>(message)};
        for (const auto& s : list_datastores()) {
            if (s.name != e.name) continue;
            e.set = s.maintenance_mode;
            const auto got = s.maintenance_mode ? parse_maintenance_mode(*s.maintenance_mode) : std::nullopt;
            if (!got || !same_maintenance(*got, want)) {
                e.error = fmt::format("PBS stored '{}' after setting '{}'", s.maintenance_mode.value_or(""),
                                      maintenance_mode_argument(type, message));
            }
            return;
        }
        e.error = "the datastore vanished while its maintenance mode was set";
    }

    // Takes our modes away again; returns the names it could not restore (each entry says why).
    std::vector<std::string> restore(std::vector<QuiesceEntry>& entries) {
        std::vector<std::string> failed;
        std::vector<Datastore> now;
        try {
            now = list_datastores();
        } catch (const ModuleFailure& e) {
            for (auto& entry : entries) {
                if (entry.set && !entry.restored && !entry.left_alone) {
                    entry.error = fmt::format("not restored: {}", e.what());
                    failed.push_back(entry.name);
                }
            }
            return failed;
        }
        for (auto& e : entries) {
            switch (restore_action(e, now)) {
                case RestoreAction::Nothing:
                    break;
                case RestoreAction::AlreadyClear:
                    e.restored = true;
                    m_.warn(fmt::format("datastore {}: our maintenance mode was already cleared by someone else", e.name));
                    break;
                case RestoreAction::Gone:
                    e.error = "the datastore no longer exists";
                    failed.push_back(e.name);
                    break;
                case RestoreAction::Changed: {
                    const auto* s = find(now, e.name);
                    e.error = fmt::format("changed by someone else since we set it (now '{}'): left as it is",
                                          s ? s->maintenance_mode.value_or("") : "");
                    failed.push_back(e.name);
                    break;
                }
                case RestoreAction::Clear: {
                    if (m_.check_mode()) {
                        changed_ = true;  // would clear it
                        break;
                    }
                    const auto r = pbm({"datastore", "update", e.name, "--delete", "maintenance-mode"});
                    if (r.rc != 0) {
                        e.error = failure("datastore update " + e.name + " --delete maintenance-mode", r);
                        failed.push_back(e.name);
                        break;
                    }
                    changed_ = true;
                    e.restored = true;
                    e.error.reset();
                    break;
                }
            }
        }
        return failed;
    }

    static const Datastore* find(const std::vector<Datastore>& stores, const std::string& name) {
        for (const auto& s : stores) {
            if (s.name == name) return &s;
        }
        return nullptr;
    }

    // --- what runs ---------------------------------------------------------------------------------------
    Look look(const std::vector<std::string>& stores) {
        Look l;
        try {
            auto found = read_running_tasks(m_.str("pbm_path"), m_.str("task_active_file"),
                                            std::chrono::seconds(m_.integer("command_timeout")));
            l.running = std::move(found.running);
            l.task_source = found.source;
            if (!found.cli_problem.empty() && warned_cli_.empty()) {
                warned_cli_ = found.cli_problem;
                m_.warn(fmt::format("proxmox-backup-manager task list failed ({}); used {} instead", found.cli_problem,
                                    found.source));
            }
        } catch (const TaskListError& e) {
            l.problems.push_back(e.what());
        }
        for (const auto& store : stores) {
            try {
                l.operations[store] = read_active_operations(m_.str("active_operations_dir"), store, m_.str("proc_path"));
            } catch (const ActiveOperationsError& e) {
                l.problems.push_back(fmt::format("cannot read the active operations of datastore {}: {}", store, e.what()));
            }
        }
        return l;
    }

    // Looks until idle or the bound; remembers everything it saw busy, in the order first seen.
    Look wait_idle(const std::vector<std::string>& stores, long long timeout_s) {
        const auto start = Clock::now();
        const auto limit = std::chrono::seconds(timeout_s);
        const auto poll = std::chrono::seconds(m_.integer("poll_interval"));
        while (true) {
            Look l = look(stores);
            waited_s_ = std::chrono::duration<double>(Clock::now() - start).count();
            note_busy(l);
            if (l.idle() || g_signal != 0 || Clock::now() - start >= limit || m_.check_mode()) return l;
            const auto left = limit - (Clock::now() - start);
            const auto until = Clock::now() + std::min<Clock::duration>(poll, left);
            while (Clock::now() < until && g_signal == 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
    }

    void note_busy(const Look& l) {
        for (const auto& what : describe_busy(l.running, l.operations)) {
            if (std::find(waited_for_.begin(), waited_for_.end(), what) == waited_for_.end()) waited_for_.push_back(what);
        }
    }

    static std::string busy_text(const Look& l) {
        auto parts = describe_busy(l.running, l.operations);
        parts.insert(parts.end(), l.problems.begin(), l.problems.end());
        return join(parts, "; ");
    }

    static std::vector<std::string> names(const std::vector<Datastore>& stores) {
        std::vector<std::string> out;
        for (const auto& s : stores) out.push_back(s.name);
        return out;
    }

    json entries_json(const std::vector<QuiesceEntry>& entries) const {
        json out = json::array();
        for (const auto& e : entries) out.push_back(e.to_json());
        return out;
    }

    json result(const std::vector<QuiesceEntry>& entries, const Look& l) const {
        json running = json::array();
        for (const auto& t : l.running) running.push_back(t.to_json());
        return {{"changed", changed_},
                {"mode", m_.str("mode")},
                {"datastores", entries_json(entries)},
                {"waited_s", waited_s_},
                {"waited_for", waited_for_},
                {"running_tasks", running},
                {"active_operations", l.operations_json()},
                {"task_source", l.task_source.empty() ? json(nullptr) : json(l.task_source)}};
    }

    // --- the three states --------------------------------------------------------------------------------
    json quiesced() {
        catch_signals();
        const auto mode = m_.str("mode");
        bool altered = false;
        const auto message = sanitize_maintenance_message(m_.str("message"), &altered);
        if (altered) {
            m_.warn(fmt::format("maintenance message changed to '{}' (PBS allows 64 characters and cannot read back "
                                "commas, quotes, backslashes or percent signs in it)", message));
        }
        const auto stores = list_datastores();
        // What runs as the quiesce begins is what it waits for, however fast it ends afterwards.
        note_busy(look(names(stores)));
        auto entries = plan_quiesce(stores);
        for (auto& e : entries) {
            if (e.left_alone) {
                const auto parsed = parse_maintenance_mode(*e.before);
                if (!parsed) {
                    m_.warn(fmt::format("datastore {} has a maintenance-mode PBS cannot parse ('{}'), so PBS does not "
                                        "treat it as in maintenance: left alone", e.name, *e.before));
                }
            } else if (mode != "none") {
                if (m_.check_mode()) {
                    // what PBS would store
                    e.set = format_maintenance_mode({mode, message.empty() ? std::nullopt : std::optional<std::string>(message)});
                    changed_ = true;
                } else {
                    set_mode(e, mode, message);
                    if (e.error) break;
                }
            }
        }
        const auto failed_set = std::find_if(entries.begin(), entries.end(), [](const auto& e) { return e.error.has_value(); });
        if (failed_set != entries.end()) {
            const std::string why = *failed_set->error;
            const auto not_restored = restore(entries);
            throw ModuleFailure(fmt::format("cannot set the maintenance mode of datastore {}: {}. {}", failed_set->name,
                                            why, restored_text(entries, not_restored)),
                                result(entries, Look{}));
        }

        Look l = wait_idle(names(stores), m_.integer("timeout"));
        json res = result(entries, l);
        if (m_.check_mode()) {
            res["msg"] = fmt::format("check mode: {}; {}", set_text(entries, mode, true),
                                     l.idle() ? std::string("nothing runs now") : "would wait for: " + busy_text(l));
            return res;
        }
        if (g_signal != 0 || !l.idle()) {
            const std::string why = g_signal != 0
                ? fmt::format("interrupted by signal {} while waiting", static_cast<int>(g_signal))
                : fmt::format("PBS did not quiesce within {} s, still busy: {}", m_.integer("timeout"), busy_text(l));
            const auto not_restored = restore(entries);
            res = result(entries, l);
            throw ModuleFailure(fmt::format("{}. {}", why, restored_text(entries, not_restored)), res);
        }
        res["msg"] = fmt::format("{}; PBS quiet after {:.0f} s{}", set_text(entries, mode, false), waited_s_,
                                 waited_for_.empty() ? std::string(" (nothing was running)")
                                                     : " (waited for: " + join(waited_for_, "; ") + ")");
        return res;
    }

    json drained() {
        catch_signals();
        const auto stores = list_datastores();
        Look l = wait_idle(names(stores), m_.check_mode() ? 0 : m_.integer("timeout"));
        json res = result({}, l);
        res.erase("datastores");
        res.erase("mode");
        if (!l.idle()) {
            throw ModuleFailure(fmt::format("PBS is not quiet{}: {}", g_signal != 0 ? " (interrupted)" : "", busy_text(l)), res);
        }
        res["msg"] = fmt::format("no PBS task running and no active datastore operation (tasks from {})", l.task_source);
        return res;
    }

    json restored() {
        std::vector<QuiesceEntry> entries;
        for (const auto& item : m_.params().at("datastores")) {
            try {
                entries.push_back(QuiesceEntry::from_json(item));
            } catch (const std::invalid_argument& e) {
                throw ModuleFailure(fmt::format("datastores: {} ({})", e.what(), item.dump()));
            }
        }
        const auto not_restored = restore(entries);
        json res{{"changed", changed_}, {"datastores", entries_json(entries)}};
        if (!not_restored.empty()) {
            throw ModuleFailure(restored_text(entries, not_restored), res);
        }
        res["msg"] = m_.check_mode() ? "check mode: " + restored_text(entries, {}) : restored_text(entries, {});
        return res;
    }

    std::string set_text(const std::vector<QuiesceEntry>& entries, const std::string& mode, bool would) const {
        std::vector<std::string> set, alone;
        for (const auto& e : entries) {
            if (e.left_alone) alone.push_back(fmt::format("{} ({})", e.name, *e.before));
            else if (e.set) set.push_back(e.name);
        }
        std::string text = mode == "none" ? std::string("no maintenance mode set (mode none)")
                           : set.empty()  ? std::string("no datastore to put into maintenance")
                                          : fmt::format("{} {} maintenance on {}", would ? "would set" : "set", mode, join(set, ", "));
        if (!alone.empty()) text += fmt::format("; already in maintenance, left alone: {}", join(alone, ", "));
        return text;
    }

    std::string restored_text(const std::vector<QuiesceEntry>& entries, const std::vector<std::string>& not_restored) const {
        std::vector<std::string> done;
        for (const auto& e : entries) {
            if (e.set && (e.restored || (m_.check_mode() && !e.left_alone && !e.error))) done.push_back(e.name);
        }
        std::string text = done.empty() ? std::string("No maintenance mode of ours to restore")
                                        : fmt::format("Maintenance mode {} on {}", m_.check_mode() ? "would be restored" : "restored", join(done, ", "));
        if (!not_restored.empty()) {
            std::vector<std::string> why;
            for (const auto& e : entries) {
                if (std::find(not_restored.begin(), not_restored.end(), e.name) != not_restored.end()) {
                    why.push_back(fmt::format("{} ({})", e.name, e.error.value_or("?")));
                }
            }
            text += fmt::format("; NOT restored: {}", join(why, "; "));
        }
        return text;
    }

    Module& m_;
    bool changed_ = false;
    double waited_s_ = 0.0;
    std::vector<std::string> waited_for_;
    std::string warned_cli_;
};

json run_quiesce(Module& m) { return Quiesce(m).run(); }

}  // namespace

int main(int argc, char** argv) { return pbs_patch::run_module(argc, argv, kSpec, run_quiesce); }
