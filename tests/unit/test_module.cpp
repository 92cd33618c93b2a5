// The module protocol: args file handling, result completion, failures never crash.
#include "pbs_patch/module.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

using namespace pbs_patch;
using nlohmann::json;

namespace {

const ParamSpecs kSpec = {
    {.name = "name", .type = ParamType::Str, .default_value = "world"},
    {.name = "password", .type = ParamType::Str, .no_log = true},
};

json hello(Module& m) {
    if (m.str("name") == "boom") throw std::runtime_error("kaboom");
    if (m.str("name") == "fail") throw ModuleFailure("refused", json{{"checks", {{"a", "failed"}}}});
    if (m.str("name") == "int") throw 42;
    m.warn("a warning");
    return json{{"msg", "hello " + m.str("name")}, {"check_mode", m.check_mode()}, {"changed", !m.check_mode()}};
}

}  // namespace

TEST_CASE("a good run: changed, warnings, invocation with no_log masked") {
    const auto r = run_module_json(R"({"name":"pbs","password":"pw","_ansible_check_mode":false})", kSpec, hello);
    CHECK(r["failed"] == false);
    CHECK(r["changed"] == true);
    CHECK(r["msg"] == "hello pbs");
    CHECK(r["warnings"] == json::array({"a warning"}));
    CHECK(r["invocation"]["module_args"]["password"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER");
    CHECK(r.dump().find("\"pw\"") == std::string::npos);
}

TEST_CASE("check mode reaches the module") {
    const auto r = run_module_json(R"({"_ansible_check_mode":true})", kSpec, hello);
    CHECK(r["check_mode"] == true);
    CHECK(r["changed"] == false);
}

TEST_CASE("failures: module failure keeps its data, exceptions become failed results") {
    auto r = run_module_json(R"({"name":"fail"})", kSpec, hello);
    CHECK(r["failed"] == true);
    CHECK(r["msg"] == "refused");
    CHECK(r["checks"]["a"] == "failed");
    CHECK(r["changed"] == false);
    r = run_module_json(R"({"name":"boom"})", kSpec, hello);
    CHECK(r["failed"] == true);
    CHECK(r["msg"] == "internal error: kaboom");
    r = run_module_json(R"({"name":"int"})", kSpec, hello);
    CHECK(r["failed"] == true);
    r = run_module_json(R"({"nmae":"x"})", kSpec, hello);
    CHECK(r["failed"] == true);
    CHECK(r["msg"].get<std::string>().find("Unsupported parameters: nmae") != std::string::npos);
    r = run_module_json("{not json", kSpec, hello);
    CHECK(r["failed"] == true);
    CHECK(r["msg"].get<std::string>().find("not valid JSON") != std::string::npos);
}

TEST_CASE("args file: missing, invalid, valid") {
    CHECK_THROWS_WITH_AS(read_args_file("/nonexistent/args"), doctest::Contains("is missing"), ParamError);
    const auto path = std::filesystem::temp_directory_path() / "pbs_patch_args_test.json";
    {
        std::ofstream(path) << "{\"name\": ";
    }
    CHECK_THROWS_WITH_AS(read_args_file(path.string()), doctest::Contains("not valid JSON"), ParamError);
    {
        std::ofstream(path) << R"({"name": "x"})";
    }
    CHECK(read_args_file(path.string())["name"] == "x");
    std::filesystem::remove(path);
}

TEST_CASE("internal keys never come back") {
    const ParamSpecs spec = {};
    const auto r = run_module_json("{}", spec, [](Module&) { return json{{"_ansible_no_log", true}, {"x", 1}}; });
    CHECK_FALSE(r.contains("_ansible_no_log"));
    CHECK(r["x"] == 1);
}
