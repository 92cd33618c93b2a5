// Range-checked integers from JSON.
#include "pbs_patch/json_number.hpp"

#include <fmt/format.h>

#include <cmath>

namespace pbs_patch {
namespace {

constexpr double kExactDouble = 9007199254740992.0;  // 2^53

enum class Kind { Ok, NotNumber, NotIntegral, OutOfRange };

Kind classify(const nlohmann::json& v, std::int64_t min, std::int64_t max, std::int64_t& out) {
    if (v.is_number_unsigned()) {
        const auto u = v.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return Kind::OutOfRange;
        out = static_cast<std::int64_t>(u);
    } else if (v.is_number_integer()) {
        out = v.get<std::int64_t>();
    } else if (v.is_number_float()) {
        const double d = v.get<double>();
        if (!std::isfinite(d)) return Kind::OutOfRange;
        if (std::floor(d) != d) return Kind::NotIntegral;
        if (std::fabs(d) > kExactDouble) return Kind::OutOfRange;
        out = static_cast<std::int64_t>(d);
    } else {
        return Kind::NotNumber;
    }
    return out < min || out > max ? Kind::OutOfRange : Kind::Ok;
}

}  // namespace

std::optional<std::int64_t> json_integer(const nlohmann::json& value, std::int64_t min, std::int64_t max) {
    std::int64_t n = 0;
    if (classify(value, min, max, n) != Kind::Ok) return std::nullopt;
    return n;
}

std::string json_integer_problem(const nlohmann::json& value, std::int64_t min, std::int64_t max) {
    std::int64_t n = 0;
    switch (classify(value, min, max, n)) {
        case Kind::Ok: return {};
        case Kind::NotNumber: return fmt::format("is a {}, not an integer", value.type_name());
        case Kind::NotIntegral: return fmt::format("is not an integer ({})", value.dump());
        case Kind::OutOfRange: break;
    }
    return fmt::format("is out of range ({}; allowed {}..{})", value.dump(), min, max);
}

}  // namespace pbs_patch
