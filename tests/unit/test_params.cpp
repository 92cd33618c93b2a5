// Parameter validation: every type, bad values, unknown keys, Ansible's truthy strings.
#include "param_error.hpp"
#include "pbs_patch/params.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace pbs_patch;
using nlohmann::json;

namespace {

const ParamSpecs kSpec = {
    {.name = "name", .type = ParamType::Str, .required = true},
    {.name = "count", .type = ParamType::Int, .default_value = 3, .min_value = 0},
    {.name = "enabled", .type = ParamType::Bool, .default_value = false},
    {.name = "units", .type = ParamType::List, .default_value = json::array({"a", "b"})},
    {.name = "where", .type = ParamType::Path, .default_value = "/"},
    {.name = "mode", .type = ParamType::Str, .default_value = "fast", .choices = {"fast", "slow"}},
    {.name = "token", .type = ParamType::Str, .no_log = true},
};

std::string error_of(const json& raw) { return param_error(raw, kSpec); }

}  // namespace

TEST_CASE("defaults are filled and types kept") {
    const auto v = validate_params(json{{"name", "x"}}, kSpec);
    CHECK(v.params["name"] == "x");
    CHECK(v.params["count"] == 3);
    CHECK(v.params["enabled"] == false);
    CHECK(v.params["units"] == json::array({"a", "b"}));
    CHECK(v.params["where"] == "/");
    CHECK(v.params["mode"] == "fast");
    CHECK(v.params["token"].is_null());
    CHECK_FALSE(v.flags.check_mode);
}

TEST_CASE("Ansible's truthy and falsy strings") {
    for (const char* t : {"yes", "on", "1", "true", "t", "y", "YES", "True", " on "}) {
        CAPTURE(t);
        CHECK(parse_ansible_bool(t) == true);
        CHECK(validate_params(json{{"name", "x"}, {"enabled", t}}, kSpec).params["enabled"] == true);
    }
    for (const char* f : {"no", "off", "0", "false", "f", "n", "NO", "False"}) {
        CAPTURE(f);
        CHECK(parse_ansible_bool(f) == false);
        CHECK(validate_params(json{{"name", "x"}, {"enabled", f}}, kSpec).params["enabled"] == false);
    }
    CHECK(validate_params(json{{"name", "x"}, {"enabled", 1}}, kSpec).params["enabled"] == true);
    CHECK_FALSE(parse_ansible_bool("maybe"));
    CHECK_FALSE(parse_ansible_bool(""));
    const auto msg = error_of(json{{"name", "x"}, {"enabled", "maybe"}});
    CHECK(msg.find("'enabled'") != std::string::npos);
    CHECK(msg.find("bool") != std::string::npos);
    CHECK(msg.find("maybe") != std::string::npos);
    CHECK(!error_of(json{{"name", "x"}, {"enabled", 2}}).empty());
    CHECK(!error_of(json{{"name", "x"}, {"enabled", json::array()}}).empty());
}

TEST_CASE("ints: numbers and numeric strings (Semaphore survey values arrive as strings)") {
    CHECK(validate_params(json{{"name", "x"}, {"count", "12"}}, kSpec).params["count"] == 12);
    CHECK(validate_params(json{{"name", "x"}, {"count", 7.0}}, kSpec).params["count"] == 7);
    CHECK(validate_params(json{{"name", "x"}, {"count", " 8 "}}, kSpec).params["count"] == 8);
    for (const json& bad : {json("12GB"), json("1.5"), json(1.5), json(true), json::array(), json(""), json("0x10")}) {
        CAPTURE(bad.dump());
        const auto msg = error_of(json{{"name", "x"}, {"count", bad}});
        CHECK(msg.find("'count'") != std::string::npos);
        CHECK(msg.find("int") != std::string::npos);
    }
    const auto msg = error_of(json{{"name", "x"}, {"count", -1}});
    CHECK(msg.find(">= 0") != std::string::npos);
    // Out of range for the type is a bad value, never wrapped (2^64-1 used to become -1).
    for (const char* text : {"18446744073709551615", "9223372036854775808", "1e300", "-1e300"}) {
        CAPTURE(text);
        const auto out = error_of(json{{"name", "x"}, {"count", json::parse(text)}});
        CHECK(out.find("unable to convert to int") != std::string::npos);
    }
    CHECK(validate_params(json{{"name", "x"}, {"count", json::parse("9223372036854775807")}}, kSpec).params["count"] ==
          9223372036854775807LL);
    CHECK(error_of(json{{"name", "x"}, {"enabled", json::parse("18446744073709551615")}}).find("bool") != std::string::npos);
}

TEST_CASE("strings, lists, paths, choices") {
    CHECK(validate_params(json{{"name", 5}}, kSpec).params["name"] == "5");
    CHECK(!error_of(json{{"name", json::object()}}).empty());
    CHECK(validate_params(json{{"name", "x"}, {"units", "a, b,,c"}}, kSpec).params["units"] == json::array({"a", "b", "c"}));
    CHECK(validate_params(json{{"name", "x"}, {"units", json::array({"x", 1})}}, kSpec).params["units"] ==
          json::array({"x", "1"}));
    CHECK(error_of(json{{"name", "x"}, {"units", json::array({json::object()})}}).find("'units'") != std::string::npos);
    CHECK(!error_of(json{{"name", "x"}, {"units", 3}}).empty());
    CHECK(error_of(json{{"name", "x"}, {"where", ""}}).find("'where'") != std::string::npos);
    CHECK(!error_of(json{{"name", "x"}, {"where", 3}}).empty());
    const auto msg = error_of(json{{"name", "x"}, {"mode", "medium"}});
    CHECK(msg.find("mode") != std::string::npos);
    CHECK(msg.find("fast, slow") != std::string::npos);
    CHECK(msg.find("medium") != std::string::npos);
}

TEST_CASE("required and unknown parameters") {
    CHECK(error_of(json::object()).find("missing required argument: name") != std::string::npos);
    CHECK(error_of(json{{"name", nullptr}}).find("missing required argument: name") != std::string::npos);
    const auto msg = error_of(json{{"name", "x"}, {"colour", "red"}, {"size", 1}});
    CHECK(msg.find("Unsupported parameters: colour, size") != std::string::npos);
    CHECK(msg.find("count, enabled, mode, name, token, units, where") != std::string::npos);
    CHECK(!error_of(json::array()).empty());
}

TEST_CASE("_ansible_* keys: known ones read, unknown ones ignored") {
    const auto v = validate_params(json{{"name", "x"},
                                        {"_ansible_check_mode", true},
                                        {"_ansible_diff", "yes"},
                                        {"_ansible_verbosity", 3},
                                        {"_ansible_no_log", false},
                                        {"_ansible_tracebacks_for", json::array()},
                                        {"_ansible_some_future_key", 1}},
                                   kSpec);
    CHECK(v.flags.check_mode);
    CHECK(v.flags.diff);
    CHECK(v.flags.verbosity == 3);
    CHECK_FALSE(v.params.contains("_ansible_check_mode"));
}

TEST_CASE("no_log parameters are masked in the invocation") {
    const auto v = validate_params(json{{"name", "x"}, {"token", "s3cret"}}, kSpec);
    const auto inv = masked_invocation(v.params, kSpec);
    CHECK(inv["module_args"]["token"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER");
    CHECK(inv["module_args"]["name"] == "x");
    CHECK(inv.dump().find("s3cret") == std::string::npos);
}
