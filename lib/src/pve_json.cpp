// Strict readers for pvesh's JSON (see pve_json.hpp).
#include "pbs_patch/pve_json.hpp"

#include "pbs_patch/text.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <limits>

namespace pbs_patch {

using nlohmann::json;

json parse_pve_json(std::string_view text, const std::string& what) {
    try {
        return json::parse(text);
    } catch (const json::parse_error& e) {
        throw PveJsonError(fmt::format("{}: not JSON ({}): {}", what, e.what(), tail_lines(trim(text), 2)));
    }
}

json parse_pve_object_array(std::string_view text, const std::string& what) {
    json data = parse_pve_json(text, what);
    if (!data.is_array()) throw PveJsonError(fmt::format("{}: expected a JSON array, got {}", what, data.type_name()));
    for (const auto& entry : data) {
        if (!entry.is_object()) throw PveJsonError(fmt::format("{}: entry {} is not an object", what, entry.dump()));
    }
    return data;
}

namespace {

[[noreturn]] void out_of_range(const json& value, const char* key, std::int64_t min, std::int64_t max,
                               const std::string& what) {
    throw PveJsonError(fmt::format("{}: '{}' is {}, out of range ({}..{})", what, key, value.dump(), min, max));
}

}  // namespace

std::optional<std::int64_t> pve_int(const json& entry, const char* key, std::int64_t min, std::int64_t max,
                                    const std::string& what) {
    const auto it = entry.find(key);
    if (it == entry.end() || it->is_null()) return std::nullopt;
    const json& v = *it;
    std::int64_t value = 0;
    if (v.is_number_unsigned()) {
        const auto u = v.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) out_of_range(v, key, min, max, what);
        value = static_cast<std::int64_t>(u);
    } else if (v.is_number_integer()) {
        value = v.get<std::int64_t>();
    } else if (v.is_number_float()) {
        // nlohmann reads integers beyond 64 bits as floats: out of range, not a fraction.
        const double d = v.get<double>();
        if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) out_of_range(v, key, min, max, what);
        throw PveJsonError(fmt::format("{}: '{}' is {}, not an integer", what, key, v.dump()));
    } else if (v.is_string()) {
        const auto s = v.get<std::string>();
        const char* first = s.data();
        const char* last = s.data() + s.size();
        const auto [end, ec] = std::from_chars(first, last, value);
        if (ec == std::errc::result_out_of_range) out_of_range(v, key, min, max, what);
        if (ec != std::errc() || end != last || s.empty()) {
            throw PveJsonError(fmt::format("{}: '{}' is {}, not an integer", what, key, v.dump()));
        }
    } else {
        throw PveJsonError(fmt::format("{}: '{}' is {}, not an integer", what, key, v.dump()));
    }
    if (value < min || value > max) out_of_range(v, key, min, max, what);
    return value;
}

std::optional<bool> pve_flag(const json& entry, const char* key, const std::string& what) {
    const auto it = entry.find(key);
    if (it == entry.end() || it->is_null()) return std::nullopt;
    if (it->is_boolean()) return it->get<bool>();
    return pve_int(entry, key, 0, 1, what).value() == 1;
}

std::string pve_str(const json& entry, const char* key, const std::string& what) {
    const auto it = entry.find(key);
    if (it == entry.end() || it->is_null()) return {};
    if (it->is_string()) return it->get<std::string>();
    if (it->is_number_integer()) return it->dump();
    throw PveJsonError(fmt::format("{}: '{}' is {}, not a string", what, key, it->dump()));
}

std::string pve_required_str(const json& entry, const char* key, const std::string& what) {
    std::string value = pve_str(entry, key, what);
    if (value.empty()) throw PveJsonError(fmt::format("{}: entry without '{}': {}", what, key, entry.dump()));
    return value;
}

bool valid_pve_node_name(std::string_view name) {
    if (name.empty()) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        const bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (alnum) continue;
        if (c == '-' && i != 0 && i != name.size() - 1) continue;
        return false;
    }
    return true;
}

}  // namespace pbs_patch
