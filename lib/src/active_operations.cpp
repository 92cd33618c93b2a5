// Active-operations files and the process check behind them.
#include "pbs_patch/active_operations.hpp"

#include "pbs_patch/text.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <sys/stat.h>

namespace pbs_patch {

using nlohmann::json;

namespace {

// An integer in [lo, hi]; a float, a string or an out-of-range number is an error, never truncated.
template <typename T>
T integer_in_range(const json& item, const char* key, std::size_t index) {
    const auto it = item.find(key);
    const auto fail = [&](const std::string& why) {
        return ActiveOperationsError(fmt::format("active operations entry {}: '{}' {}", index, key, why));
    };
    if (it == item.end()) throw fail("is missing");
    if (it->is_number_unsigned()) {
        const auto v = it->get<std::uint64_t>();
        if (v > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) throw fail(fmt::format("{} is out of range", v));
        return static_cast<T>(v);
    }
    if (it->is_number_integer()) {
        const auto v = it->get<std::int64_t>();
        if constexpr (std::numeric_limits<T>::is_signed) {
            if (v < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
                v > static_cast<std::int64_t>(std::numeric_limits<T>::max())) {
                throw fail(fmt::format("{} is out of range", v));
            }
        } else if (v < 0) {
            throw fail(fmt::format("{} is out of range", v));
        }
        return static_cast<T>(v);
    }
    throw fail(fmt::format("is not an integer ({})", it->type_name()));
}

}  // namespace

std::vector<OperationsEntry> parse_active_operations(std::string_view text) {
    json doc;
    try {
        doc = json::parse(text);
    } catch (const json::exception&) {
        throw ActiveOperationsError(fmt::format("active operations file is not JSON: {}", tail_lines(trim(text), 2)));
    }
    if (!doc.is_array()) throw ActiveOperationsError("active operations file is not a JSON array");
    std::vector<OperationsEntry> entries;
    for (std::size_t i = 0; i < doc.size(); ++i) {
        const auto& item = doc[i];
        if (!item.is_object()) throw ActiveOperationsError(fmt::format("active operations entry {} is not an object", i));
        OperationsEntry e;
        e.pid = integer_in_range<std::uint32_t>(item, "pid", i);
        e.starttime = integer_in_range<std::uint64_t>(item, "starttime", i);
        const auto ops = item.find("active_operations");
        if (ops == item.end() || !ops->is_object()) {
            throw ActiveOperationsError(fmt::format("active operations entry {} has no 'active_operations' object", i));
        }
        e.operations.read = integer_in_range<std::int64_t>(*ops, "read", i);
        e.operations.write = integer_in_range<std::int64_t>(*ops, "write", i);
        entries.push_back(e);
    }
    return entries;
}

ActiveOperations sum_live_operations(const std::vector<OperationsEntry>& entries, const StartTimeOf& starttime_of) {
    ActiveOperations sum;
    for (const auto& e : entries) {
        const auto started = starttime_of(e.pid);
        if (!started || *started != e.starttime) continue;  // that process is gone: its operations ended
        sum.read += e.operations.read;
        sum.write += e.operations.write;
    }
    return sum;
}

std::optional<std::uint64_t> parse_proc_stat_starttime(std::string_view stat) {
    const auto close = stat.rfind(')');
    if (close == std::string_view::npos) return std::nullopt;
    const auto fields = split_ws(stat.substr(close + 1));  // fields 3.. : state, ppid, ...
    if (fields.size() < 20 || fields[0] == "Z") return std::nullopt;
    const auto& f = fields[19];
    if (f.empty() || f.size() > 20 || f.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    try {
        return std::stoull(f);
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::optional<std::uint64_t> process_starttime(const std::string& proc_root, std::uint32_t pid) {
    std::ifstream in(fmt::format("{}/{}/stat", proc_root, pid));
    if (!in) return std::nullopt;
    std::stringstream buffer;
    buffer << in.rdbuf();
    return parse_proc_stat_starttime(buffer.str());
}

ActiveOperations read_active_operations(const std::string& dir, const std::string& store, const std::string& proc_root) {
    const std::string path = dir + "/" + store;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return {};  // no operation was ever registered since boot (the file lives in /run)
        throw ActiveOperationsError(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    }
    std::string text;
    try {
        text = read_file(path);
    } catch (const std::exception& e) {
        throw ActiveOperationsError(e.what());
    }
    try {
        return sum_live_operations(parse_active_operations(text),
                                   [&](std::uint32_t pid) { return process_starttime(proc_root, pid); });
    } catch (const ActiveOperationsError& e) {
        throw ActiveOperationsError(fmt::format("{}: {}", path, e.what()));
    }
}

}  // namespace pbs_patch
