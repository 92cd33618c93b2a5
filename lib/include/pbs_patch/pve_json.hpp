// Readers for the JSON that pvesh prints (Perl's JSON module): numbers arrive as JSON numbers or as digit
// strings, booleans as 0/1. Lenient about those encodings, strict about everything else: a wrong type, a
// fraction where an integer belongs, or a number out of its range is a parse error, never a guess.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace pbs_patch {

struct PveJsonError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The text as JSON; `what` names the source in errors ("pvesh get /cluster/status").
nlohmann::json parse_pve_json(std::string_view text, const std::string& what);

// The same, required to be an array whose entries are all objects.
nlohmann::json parse_pve_object_array(std::string_view text, const std::string& what);

// entry[key] as an integer within [min, max]; nullopt when absent or null.
std::optional<std::int64_t> pve_int(const nlohmann::json& entry, const char* key, std::int64_t min, std::int64_t max,
                                    const std::string& what);

// entry[key] as a flag: 0/1 (number or string) or a JSON boolean; nullopt when absent or null.
std::optional<bool> pve_flag(const nlohmann::json& entry, const char* key, const std::string& what);

// entry[key] as text ("" when absent or null); an integer is taken as its decimal text (Perl may print a
// numeric-looking value either way); anything else is an error.
std::string pve_str(const nlohmann::json& entry, const char* key, const std::string& what);

// The same, but absent or empty is an error.
std::string pve_required_str(const nlohmann::json& entry, const char* key, const std::string& what);

// A PVE node name as pmxcfs accepts it (letters, digits, inner hyphens; memdb.c valid_nodename).
bool valid_pve_node_name(std::string_view name);

}  // namespace pbs_patch
