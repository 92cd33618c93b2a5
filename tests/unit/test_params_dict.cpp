// Dict parameters and lists of dicts (ParamType::Dict, ParamSpec::elements), and their spec_to_json.
#include "param_error.hpp"
#include "pbs_patch/params.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace pbs_patch;
using nlohmann::json;

namespace {

const ParamSpecs kSpec = {
    {.name = "opts", .type = ParamType::Dict},
    {.name = "jobs", .type = ParamType::List, .default_value = json::array(), .elements = ParamType::Dict},
    {.name = "names", .type = ParamType::List, .default_value = json::array()},
};

std::string error_of(const json& raw) { return param_error(raw, kSpec); }

}  // namespace

TEST_CASE("dict: objects, and JSON text holding an object") {
    CHECK(validate_params(json{{"opts", {{"a", 1}}}}, kSpec).params["opts"] == json{{"a", 1}});
    CHECK(validate_params(json{{"opts", R"({"a": 1})"}}, kSpec).params["opts"] == json{{"a", 1}});
    CHECK(validate_params(json::object(), kSpec).params["opts"].is_null());
    const auto msg = error_of(json{{"opts", "a=1"}});
    CHECK(msg.find("argument 'opts'") != std::string::npos);
    CHECK(msg.find("dict") != std::string::npos);
    CHECK(error_of(json{{"opts", json::array()}}).find("dict") != std::string::npos);
}

TEST_CASE("list of dicts: elements checked; a single dict or JSON text accepted") {
    const json jobs = json::array({{{"id", "a"}}, {{"id", "b"}}});
    CHECK(validate_params(json{{"jobs", jobs}}, kSpec).params["jobs"] == jobs);
    CHECK(validate_params(json{{"jobs", jobs.dump()}}, kSpec).params["jobs"] == jobs);
    CHECK(validate_params(json{{"jobs", {{"id", "a"}}}}, kSpec).params["jobs"] == json::array({{{"id", "a"}}}));
    CHECK(validate_params(json{{"jobs", json::array({R"({"id": "a"})"})}}, kSpec).params["jobs"] ==
          json::array({{{"id", "a"}}}));
    CHECK(validate_params(json::object(), kSpec).params["jobs"] == json::array());
    auto msg = error_of(json{{"jobs", json::array({{{"id", "a"}}, "b"})}});
    CHECK(msg.find("must be a list of dicts") != std::string::npos);
    CHECK(msg.find("\"b\"") != std::string::npos);
    msg = error_of(json{{"jobs", "a,b"}});
    CHECK(msg.find("argument 'jobs'") != std::string::npos);
    // String lists keep their behaviour.
    CHECK(validate_params(json{{"names", "a, b"}}, kSpec).params["names"] == json::array({"a", "b"}));
}

TEST_CASE("spec_to_json: dict type and list elements") {
    const auto spec = spec_to_json(kSpec);
    CHECK(spec["opts"]["type"] == "dict");
    CHECK_FALSE(spec["opts"].contains("elements"));
    CHECK(spec["jobs"]["type"] == "list");
    CHECK(spec["jobs"]["elements"] == "dict");
    CHECK(spec["jobs"]["default"] == json::array());
    CHECK(spec["names"]["elements"] == "str");
}
