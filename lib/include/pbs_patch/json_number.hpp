// Integers read from PBS/PVE JSON, range-checked: a number out of range for its type, a fraction, or not a
// number at all is a parse error like any other malformed input, never a silent wrap or truncation
// (nlohmann's get<> converts 2^64-1 to -1 and 1e300 to undefined behaviour).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

namespace pbs_patch {

// The value as an integer within [min, max]; nullopt when it is not a JSON number, not integral, or out of
// range. Integral floats are accepted within +-2^53 (exact in a double).
std::optional<std::int64_t> json_integer(const nlohmann::json& value,
                                         std::int64_t min = std::numeric_limits<std::int64_t>::min(),
                                         std::int64_t max = std::numeric_limits<std::int64_t>::max());

// Why json_integer refused it, for messages: "is a string", "is not an integer (1.5)", "is out of range
// (18446744073709551615; allowed 0..4294967295)".
std::string json_integer_problem(const nlohmann::json& value,
                                 std::int64_t min = std::numeric_limits<std::int64_t>::min(),
                                 std::int64_t max = std::numeric_limits<std::int64_t>::max());

}  // namespace pbs_patch
