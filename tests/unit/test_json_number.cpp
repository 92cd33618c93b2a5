// Range-checked integers from PBS/PVE JSON.
#include "pbs_patch/json_number.hpp"

#include <doctest/doctest.h>

using namespace pbs_patch;
using nlohmann::json;

TEST_CASE("json_integer: in range, out of range, fractions, non-numbers") {
    CHECK(json_integer(json::parse("42")) == 42);
    CHECK(json_integer(json::parse("-7")) == -7);
    CHECK(json_integer(json::parse("9223372036854775807")) == INT64_MAX);
    CHECK(json_integer(json::parse("3.0")) == 3);
    CHECK_FALSE(json_integer(json::parse("9223372036854775808")));
    CHECK_FALSE(json_integer(json::parse("18446744073709551615")));
    CHECK_FALSE(json_integer(json::parse("1e300")));
    CHECK_FALSE(json_integer(json::parse("9007199254740994.0")));  // beyond 2^53: not exact in a double
    CHECK_FALSE(json_integer(json::parse("2.5")));
    CHECK_FALSE(json_integer(json::parse("\"5\"")));
    CHECK_FALSE(json_integer(json::parse("true")));
    CHECK_FALSE(json_integer(json::parse("null")));
    CHECK(json_integer(json::parse("255"), 0, 255) == 255);
    CHECK_FALSE(json_integer(json::parse("256"), 0, 255));
    CHECK_FALSE(json_integer(json::parse("-1"), 0, 255));
}

TEST_CASE("json_integer_problem says why") {
    CHECK(json_integer_problem(json::parse("5")).empty());
    CHECK(json_integer_problem(json::parse("\"5\"")) == "is a string, not an integer");
    CHECK(json_integer_problem(json::parse("1.5")) == "is not an integer (1.5)");
    CHECK(json_integer_problem(json::parse("18446744073709551615"), 0, 4294967295) ==
          "is out of range (18446744073709551615; allowed 0..4294967295)");
}
